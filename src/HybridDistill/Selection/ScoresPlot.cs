using HybridDistill.Checkpoints;
using ScottPlot;
using SkiaSharp;

namespace HybridDistill.Selection;

/// <summary>
/// scores.png: the per-layer scores as bars, the K layers chosen for a budget in another colour; when the scores
/// carry KL curves (kl, removal), a second panel below with every candidate's curve (chosen layers drawn thick).
/// </summary>
public static class ScoresPlot
{
    public const string FileName = "scores.png";

    static readonly Color Chosen = Color.FromHex("#d62728");
    static readonly Color Other = Color.FromHex("#4c72b0");

    /// <summary>Writes the PNG atomically; <paramref name="k"/> softmax layers are marked (<see cref="LayerSelection.Choose"/>).</summary>
    public static void Save(LayerScores scores, string path, int k, string? budgetLabel = null, int width = 900)
    {
        var chosen = LayerSelection.Choose(scores, k).ToHashSet();
        string keep = $"K={k}" + (budgetLabel is null ? "" : $" ({budgetLabel})") + (LayerSelection.UsesLayout(scores, k) ? $", {scores.Method}'s layout" : "");
        var panels = new List<Plot> { ScorePanel(scores, chosen, keep) };
        if (scores.Curves is { Count: > 0 } curves) panels.Add(CurvePanel(curves, chosen));

        int panelHeight = 420;
        using var surface = SKSurface.Create(new SKImageInfo(width, panelHeight * panels.Count));
        surface.Canvas.Clear(SKColors.White);
        for (int i = 0; i < panels.Count; i++)
        {
            // each panel on its own surface: a plot's render clears the whole canvas it is given
            using var panel = SKSurface.Create(new SKImageInfo(width, panelHeight));
            panels[i].Render(panel);
            using var snapshot = panel.Snapshot();
            surface.Canvas.DrawImage(snapshot, 0, panelHeight * i);
        }
        using var image = surface.Snapshot();
        using var png = image.Encode(SKEncodedImageFormat.Png, 100);
        AtomicFile.WriteAllBytes(path, png.AsSpan());
    }

    static Plot ScorePanel(LayerScores scores, HashSet<int> chosen, string keep)
    {
        var plot = new Plot();
        var bars = Enumerable.Range(0, scores.NumLayers).Select(l => new Bar
        {
            Position = l,
            Value = scores.Scores[l],
            FillColor = chosen.Contains(l) ? Chosen : Other,
            LineWidth = 0,
            Size = 0.8,
        }).ToList();
        plot.Add.Bars(bars);
        plot.Axes.Bottom.TickGenerator = LayerTicks(scores.NumLayers);
        // bars grow from 0: keep 0 in view whatever the sign of the scores (kl's are negative)
        double low = Math.Min(0, scores.Scores.Min()), high = Math.Max(0, scores.Scores.Max());
        double pad = Math.Max(1e-12, (high - low) * 0.05);
        plot.Axes.SetLimitsY(low < 0 ? low - pad : 0, high > 0 ? high + pad : 0);
        plot.Title($"{scores.Method}: per-layer score (higher = keep softmax), {scores.NumLayers} layers");
        plot.XLabel("layer");
        plot.YLabel(scores.Method switch
        {
            "ppl" => "NLL increase when ablated (nats)",
            "kl" => "score = -late KL (nats)",
            "removal" => "late KL when linearised (nats)",
            _ => "score",
        });
        plot.Legend.ManualItems.Add(new LegendItem { LabelText = $"softmax at {keep}: layers {string.Join(",", chosen.Order())}", FillColor = Chosen });
        plot.Legend.ManualItems.Add(new LegendItem { LabelText = "linear", FillColor = Other });
        plot.ShowLegend(Edge.Bottom);
        return plot;
    }

    static Plot CurvePanel(IReadOnlyDictionary<int, IReadOnlyList<CurvePoint>> curves, HashSet<int> chosen)
    {
        var plot = new Plot();
        var palette = new ScottPlot.Palettes.Category10();
        foreach (var (layer, points) in curves.OrderBy(c => c.Key))
        {
            if (points.Count == 0) continue;
            var line = plot.Add.Scatter(points.Select(p => (double)p.Tokens).ToArray(), points.Select(p => p.Kl).ToArray());
            line.Color = palette.GetColor(layer);
            line.LineWidth = chosen.Contains(layer) ? 3 : 1.2f;
            line.MarkerSize = chosen.Contains(layer) ? 5 : 0;
            line.LegendText = chosen.Contains(layer) ? $"layer {layer} (kept)" : $"layer {layer}";
        }
        plot.Title("KL of each candidate's scoring run (teacher softmax at that layer)");
        plot.XLabel("training tokens");
        plot.YLabel("KL (nats / position)");
        plot.ShowLegend(Edge.Right);
        return plot;
    }

    static ScottPlot.TickGenerators.NumericManual LayerTicks(int numLayers)
    {
        var ticks = new ScottPlot.TickGenerators.NumericManual();
        int step = Math.Max(1, (int)Math.Ceiling(numLayers / 32.0));
        for (int l = 0; l < numLayers; l += step) ticks.AddMajor(l, l.ToString());
        return ticks;
    }
}
