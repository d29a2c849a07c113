using System.Text.Json.Nodes;

namespace HybridDistill.Training;

/// <summary>
/// Sums of reported values since the last metrics line: the line holds their means. A checkpoint saves them, so a
/// resumed run's first line has the same mean as the uninterrupted run's.
/// </summary>
public sealed class MetricSums
{
    public double Weight;
    public double Loss;
    public Dictionary<string, double> Extras = new(StringComparer.Ordinal);
    /// <summary>What each extra's sum is divided by: the batch weights, or the token counts it came with.</summary>
    public Dictionary<string, double> ExtraWeights = new(StringComparer.Ordinal);
    public double[]? Layers;
    public double GradNorm;
    public long Steps;

    public void Add(LossReport r, double weight = 1)
    {
        Weight += weight;
        Loss += r.Loss * weight;
        foreach (var (k, v) in r.Extras)
        {
            if (k.EndsWith(LossReport.CountSuffix, StringComparison.Ordinal)) continue;
            double w = r.Extras.TryGetValue(k + LossReport.CountSuffix, out var count) ? count : weight;
            Extras[k] = Extras.GetValueOrDefault(k) + v * w;
            ExtraWeights[k] = ExtraWeights.GetValueOrDefault(k) + w;
        }
        if (r.LayerLosses is not null)
        {
            Layers ??= new double[r.LayerLosses.Count];
            for (int i = 0; i < Layers.Length; i++) Layers[i] += r.LayerLosses[i] * weight;
        }
    }

    public double MeanLoss => Weight == 0 ? double.NaN : Loss / Weight;
    public IEnumerable<(string Name, double Mean)> MeanExtras() =>
        Extras.OrderBy(e => e.Key, StringComparer.Ordinal).Select(e => (e.Key, e.Value / ExtraWeights.GetValueOrDefault(e.Key, Weight)));
    public double[]? LayerMeans() => Layers?.Select(v => v / Weight).ToArray();

    /// <summary>The sums as trainer_state.json's "metric_sums" holds them.</summary>
    public JsonObject ToJson() => new()
    {
        ["weight"] = Weight,
        ["loss"] = Loss,
        ["extras"] = new JsonObject(Extras.Select(e => KeyValuePair.Create(e.Key, (JsonNode?)e.Value))),
        ["extra_weights"] = new JsonObject(ExtraWeights.Select(e => KeyValuePair.Create(e.Key, (JsonNode?)e.Value))),
        ["layers"] = Layers is null ? null : ToArray(Layers),
        ["grad_norm"] = GradNorm,
        ["steps"] = Steps,
    };

    public static MetricSums FromJson(JsonObject o)
    {
        var extras = ((JsonObject)o["extras"]!).ToDictionary(e => e.Key, e => (double)e.Value!, StringComparer.Ordinal);
        double weight = (double)o["weight"]!;
        return new MetricSums
        {
            Weight = weight,
            Loss = (double)o["loss"]!,
            Extras = extras,
            ExtraWeights = o["extra_weights"] is JsonObject ew
                ? ew.ToDictionary(e => e.Key, e => (double)e.Value!, StringComparer.Ordinal)
                : extras.Keys.ToDictionary(k => k, _ => weight, StringComparer.Ordinal),
            Layers = (o["layers"] as JsonArray)?.Select(n => (double)n!).ToArray(),
            GradNorm = (double)o["grad_norm"]!,
            Steps = (long)o["steps"]!,
        };
    }

    internal static JsonArray ToArray(IEnumerable<double> values) => new(values.Select(v => (JsonNode)v).ToArray());
}
