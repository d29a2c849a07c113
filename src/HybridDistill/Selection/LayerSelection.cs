using System.Globalization;
using HybridDistill.Config;

namespace HybridDistill.Selection;

/// <summary>
/// From scores to the layers that stay softmax.
///   K = max(1, round(b * L)) for a budget b (a fraction of the L layers), halves rounding up (2.5 -> 3);
///   the chosen layers are scores.layouts[K] when the method wrote one, else the first K of the ranking.
/// </summary>
public static class LayerSelection
{
    /// <summary>Parses a budget: "25%" or "0.25" (a fraction in (0, 1]). Kept exact (decimal) so 12.5% of 8 is exactly 1.</summary>
    public static decimal ParseBudget(string text)
    {
        if (!TryParseFraction(text, out var fraction, out bool numeric))
            throw new InputException(numeric ? $"--budget must be above 0 and at most 100% of the layers, got \"{text}\"."
                : $"--budget expects a fraction of the layers such as 25% or 0.25, got \"{text}\".");
        return fraction;
    }

    /// <summary>"25%" or "0.25" as a fraction in (0, 1]; <paramref name="numeric"/> tells a number out of range from no number.</summary>
    static bool TryParseFraction(string text, out decimal fraction, out bool numeric)
    {
        var t = text.Trim();
        bool percent = t.EndsWith('%');
        if (percent) t = t[..^1].TrimEnd();
        numeric = decimal.TryParse(t, NumberStyles.Float, CultureInfo.InvariantCulture, out var value);
        fraction = percent ? value / 100m : value;
        return numeric && fraction > 0 && fraction <= 1;
    }

    /// <summary>
    /// A comma-separated list of budgets, each a layer count ("2L") or a fraction of the L layers ("12.5%", "0.25"), as
    /// (label as written, K in 1..L): items giving the same K are merged (the first label kept), ordered by K.
    /// <paramref name="setting"/> names the option in errors ("--budgets", "--set stable_budgets").
    /// </summary>
    public static IReadOnlyList<(string Label, int K)> ParseBudgetList(string text, int numLayers, string setting)
    {
        var budgets = new List<(string Label, int K)>();
        foreach (var item in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            int? k = item.EndsWith('L') || item.EndsWith('l')
                ? (int.TryParse(item[..^1], NumberStyles.None, CultureInfo.InvariantCulture, out int count) && count >= 1 && count <= numLayers ? count : null)
                : (TryParseFraction(item, out var fraction, out _) ? KeepCount(fraction, numLayers) : null);
            if (k is null)
                throw new InputException($"{setting}: \"{item}\" is not a budget for a model of {numLayers} layers; " +
                    $"give layer counts 1L..{numLayers}L or fractions of the layers such as 12.5%,25% (above 0, at most 100%).");
            if (budgets.All(b => b.K != k)) budgets.Add((item, k.Value));
        }
        if (budgets.Count == 0) throw new InputException($"{setting}: give at least one budget, e.g. 1L,2L or 12.5%,25%.");
        return budgets.OrderBy(b => b.K).ToArray();
    }

    /// <summary>K = max(1, round(budget * L)), halves rounding up.</summary>
    public static int KeepCount(decimal budget, int numLayers)
    {
        if (numLayers < 1) throw new ArgumentOutOfRangeException(nameof(numLayers));
        if (budget <= 0 || budget > 1) throw new InputException($"the budget must be in (0, 1], got {budget}.");
        int k = (int)Math.Round(budget * numLayers, MidpointRounding.AwayFromZero);
        return Math.Clamp(k, 1, numLayers);
    }

    /// <summary>K from exactly one of a budget ("25%", "0.25") or an explicit count, checked against L.</summary>
    public static int ResolveK(string? budget, int? keep, int numLayers)
    {
        if ((budget is null) == (keep is null)) throw new InputException("give exactly one of --budget (e.g. 25%) or --keep K.");
        if (keep is int k)
        {
            if (k < 1 || k > numLayers) throw new InputException($"--keep {k} is impossible: the model has {numLayers} layers (keep 1..{numLayers}).");
            return k;
        }
        return KeepCount(ParseBudget(budget!), numLayers);
    }

    /// <summary>The K softmax layers, ascending: layouts[K] when present, else the top K of the ranking.</summary>
    public static int[] Choose(LayerScores scores, int k)
    {
        if (k < 1 || k > scores.NumLayers)
            throw new InputException($"cannot keep {k} softmax layers of {scores.NumLayers} (keep 1..{scores.NumLayers}).");
        if (scores.Layouts is not null && scores.Layouts.TryGetValue(k, out var layout)) return layout.Order().ToArray();
        return scores.Ranking.Take(k).Order().ToArray();
    }

    /// <summary>True when <see cref="Choose"/> takes the method's own per-K layout rather than the ranking.</summary>
    public static bool UsesLayout(LayerScores scores, int k) => scores.Layouts?.ContainsKey(k) ?? false;

    /// <summary>The layout file for K layers: chosen layers softmax, the rest <paramref name="linearKind"/>.</summary>
    public static LayerLayout Layout(LayerScores scores, int k, string linearKind = LayerKinds.GatedDeltaNet) =>
        LayerLayout.FromSoftmaxLayers(scores.NumLayers, Choose(scores, k), linearKind);
}
