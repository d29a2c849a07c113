namespace HybridDistill.Selection;

/// <summary>
/// From per-layer KL curves (one short stage-2 run per candidate layer, all on the same batches in the same order)
/// to scores, and the early-stopping rule of method.md section 6:
///   score(l) = -(mean of the last n logged KL values of run l)   (low remaining KL = keeping l helps most);
///   top-K set at logged step i = the K layers with the best score using the curves up to step i;
///   stable at step i when the Jaccard index of consecutive top-K sets is >= threshold for the last `window` steps.
/// </summary>
public static class KlCurves
{
    /// <summary>-(mean of the last <paramref name="lastN"/> KL values) of a curve.</summary>
    public static double LateMeanScore(IReadOnlyList<CurvePoint> curve, int lastN = 3)
    {
        if (curve.Count == 0) throw new InputException("a KL curve with no logged points cannot be scored; log the scoring runs more often.");
        int n = Math.Clamp(lastN, 1, curve.Count);
        return -curve.Skip(curve.Count - n).Average(p => p.Kl);
    }

    /// <summary>The top-K layers (ascending) by late-mean score, using each curve's first <paramref name="steps"/> points.</summary>
    public static int[] TopK(IReadOnlyDictionary<int, IReadOnlyList<CurvePoint>> curves, int k, int steps, int lastN = 3)
    {
        var scores = curves.ToDictionary(c => c.Key, c => LateMeanScore(c.Value.Take(steps).ToArray(), lastN));
        return scores.OrderByDescending(s => s.Value).ThenBy(s => s.Key).Take(k).Select(s => s.Key).Order().ToArray();
    }

    public static double Jaccard(IReadOnlyCollection<int> a, IReadOnlyCollection<int> b)
    {
        int union = a.Union(b).Count();
        return union == 0 ? 1 : (double)a.Intersect(b).Count() / union;
    }

    /// <summary>
    /// The first logged step (1-based count of points used) after which the top-K set has been stable for
    /// <paramref name="window"/> consecutive comparisons, and the tokens seen then; null when it never settles.
    /// Curves are compared point by point up to the shortest one.
    /// </summary>
    public static (int Steps, long Tokens)? StableStep(IReadOnlyDictionary<int, IReadOnlyList<CurvePoint>> curves, int k,
        int window = 3, double threshold = 1.0, int lastN = 3)
    {
        if (curves.Count == 0) return null;
        int length = curves.Values.Min(c => c.Count);
        int run = 0;
        int[]? previous = null;
        for (int steps = 1; steps <= length; steps++)
        {
            var current = TopK(curves, k, steps, lastN);
            run = previous is not null && Jaccard(previous, current) >= threshold ? run + 1 : 0;
            previous = current;
            if (run >= window) return (steps, curves.Values.First()[steps - 1].Tokens);
        }
        return null;
    }

    /// <summary>Budgets whose top-K sets must settle, unless a run names others (kl's stable_budgets setting).</summary>
    public static readonly decimal[] DefaultStabilityBudgets = [0.125m, 0.25m];

    /// <summary>The distinct K = KeepCount(budget, L) of some budgets, ascending.</summary>
    public static int[] KeepCounts(IEnumerable<decimal> budgets, int numLayers) =>
        budgets.Select(b => LayerSelection.KeepCount(b, numLayers)).Distinct().Order().ToArray();

    /// <summary>
    /// After-the-fact early stopping (runs scored separately, e.g. merged slices): for K of each budget (default 12.5% and 25% of the layers),
    /// where <see cref="StableStep"/> says the top-K set settled and the scoring tokens that stopping there would have
    /// saved against the tokens the curves cover. Null when there are no curves.
    /// </summary>
    public static System.Text.Json.Nodes.JsonObject? StabilityReport(IReadOnlyDictionary<int, IReadOnlyList<CurvePoint>> curves, int numLayers,
        int window = 3, int lastN = 3, IReadOnlyList<decimal>? budgets = null)
    {
        if (curves.Count == 0) return null;
        long full = curves.Values.Min(c => c.Count == 0 ? 0 : c[^1].Tokens);
        var report = new System.Text.Json.Nodes.JsonObject { ["window"] = window, ["last_n"] = lastN, ["curve_tokens"] = full };
        var perK = new System.Text.Json.Nodes.JsonObject();
        (int Steps, long Tokens)? latest = (0, 0);
        foreach (int k in KeepCounts(budgets ?? DefaultStabilityBudgets, numLayers))
        {
            var stable = StableStep(curves, Math.Min(k, curves.Count), window, 1.0, lastN);
            perK[k.ToString(System.Globalization.CultureInfo.InvariantCulture)] = stable is { } s
                ? new System.Text.Json.Nodes.JsonObject
                {
                    ["stable_step"] = s.Steps, ["stable_tokens"] = s.Tokens,
                    ["saved_fraction"] = full > 0 ? Math.Round(1 - (double)s.Tokens / full, 4) : 0,
                }
                : null;
            latest = stable is null || latest is null ? null : (Math.Max(latest.Value.Steps, stable.Value.Steps), Math.Max(latest.Value.Tokens, stable.Value.Tokens));
        }
        report["by_k"] = perK;
        report["all_stable_tokens"] = latest?.Tokens;
        report["saved_fraction"] = latest is { } l && full > 0 ? Math.Round(1 - (double)l.Tokens / full, 4) : 0;
        return report;
    }
}
