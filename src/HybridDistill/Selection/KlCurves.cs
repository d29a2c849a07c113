using System.Text.Json.Serialization;
using HybridDistill.Artifacts;

namespace HybridDistill.Selection;

/// <summary>
/// From per-layer KL curves (one short stage-2 run per candidate layer, all on the same batches in the same order)
/// to scores, and the early-stopping rule of method.md section 6:
///   score(l) = -(mean of the last n logged KL values of run l after step 0)   (low remaining KL = keep l softmax;
///              the step-0 point, measured before any update, is never in a score);
///   top-K(i) = the K layers with the best score using the curves up to logged point i;
///   stop for K at point i when all of:
///     (a) tokens(i) >= min_fraction x the full budget        (the paper's sets settle after 25-42% of stage 2);
///     (b) top-K(i - w) = ... = top-K(i)                       (the set held for w = stable_window rounds);
///     (c) s_K - s_(K+1) > z sqrt(se_K^2 + se_(K+1)^2)        (the K-th and (K+1)-th candidates are apart by more than
///         their curves' noise: se = sd of the curve's last max(n, 3) points after step 0 / sqrt(n); z = margin_z).
///   A run naming several K stops at the first point where every K stops.
/// </summary>
public static class KlCurves
{
    /// <summary>Points measured after at least one update (the step-0 point has tokens 0).</summary>
    public static CurvePoint[] AfterStepZero(IEnumerable<CurvePoint> curve) => curve.Where(p => p.Tokens > 0).ToArray();

    /// <summary>-(mean of the last <paramref name="lastN"/> KL values after step 0) of a curve.</summary>
    public static double LateMeanScore(IReadOnlyList<CurvePoint> curve, int lastN = 3)
    {
        var points = AfterStepZero(curve);
        if (points.Length == 0) throw new InputException("a KL curve with no logged points after step 0 cannot be scored; log the scoring runs more often.");
        int n = Math.Clamp(lastN, 1, points.Length);
        return -points.Skip(points.Length - n).Average(p => p.Kl);
    }

    /// <summary>Standard error of <see cref="LateMeanScore"/>: sd of the last max(n, 3) points after step 0, over sqrt(n); infinite with fewer than 2 points.</summary>
    public static double LateMeanNoise(IReadOnlyList<CurvePoint> curve, int lastN = 3)
    {
        var points = AfterStepZero(curve);
        int m = Math.Min(points.Length, Math.Max(lastN, 3));
        if (m < 2) return double.PositiveInfinity;
        var tail = points.Skip(points.Length - m).Select(p => p.Kl).ToArray();
        double mean = tail.Average();
        double sd = Math.Sqrt(tail.Sum(x => (x - mean) * (x - mean)) / (m - 1));
        return sd / Math.Sqrt(Math.Min(lastN, points.Length));
    }

    /// <summary>Each curve's first <paramref name="points"/> points.</summary>
    public static Dictionary<int, IReadOnlyList<CurvePoint>> Prefix(IReadOnlyDictionary<int, IReadOnlyList<CurvePoint>> curves, int points) =>
        curves.ToDictionary(c => c.Key, c => (IReadOnlyList<CurvePoint>)c.Value.Take(points).ToArray());

    /// <summary>Each curve's points up to <paramref name="tokens"/> training tokens.</summary>
    public static Dictionary<int, IReadOnlyList<CurvePoint>> CutAt(IReadOnlyDictionary<int, IReadOnlyList<CurvePoint>> curves, long tokens) =>
        curves.ToDictionary(c => c.Key, c => (IReadOnlyList<CurvePoint>)c.Value.Where(p => p.Tokens <= tokens).ToArray());

    /// <summary>Layers by descending late-mean score (ties: lower layer first), using each curve's first <paramref name="steps"/> points.</summary>
    public static int[] Ranking(IReadOnlyDictionary<int, IReadOnlyList<CurvePoint>> curves, int steps = int.MaxValue, int lastN = 3) =>
        curves.ToDictionary(c => c.Key, c => LateMeanScore(c.Value.Take(steps).ToArray(), lastN))
            .OrderByDescending(s => s.Value).ThenBy(s => s.Key).Select(s => s.Key).ToArray();

    /// <summary>The top-K layers (ascending) by late-mean score, using each curve's first <paramref name="steps"/> points.</summary>
    public static int[] TopK(IReadOnlyDictionary<int, IReadOnlyList<CurvePoint>> curves, int k, int steps, int lastN = 3) =>
        Ranking(curves, steps, lastN).Take(k).Order().ToArray();

    public static double Jaccard(IReadOnlyCollection<int> a, IReadOnlyCollection<int> b)
    {
        int union = a.Union(b).Count();
        return union == 0 ? 1 : (double)a.Intersect(b).Count() / union;
    }

    /// <summary>Budgets whose top-K sets must settle, unless a run names others (kl's stable_budgets setting).</summary>
    public static readonly string[] DefaultStabilityBudgets = ["12.5%", "25%"];

    /// <summary>
    /// K for each budget of a list such as "1L,2L" (layer counts) or "12.5%,25%" / "0.25" (fractions of the L layers),
    /// distinct and ascending, each in 1..L-1 (keeping every layer needs no stopping rule). Where names the setting in errors.
    /// </summary>
    public static int[] ParseKs(string text, int numLayers, string where = "--set stable_budgets") =>
        LayerSelection.ParseBudgetList(text, numLayers, where).Select(b => Math.Min(b.K, numLayers - 1)).Where(k => k >= 1).Distinct().Order().ToArray();

    /// <summary>The stopping rule's settings (kl's min_fraction, stable_window, margin_z, last_n).</summary>
    public sealed record StopRule(double MinFraction = 0.3, [property: JsonPropertyName("stable_window")] int Window = 3, double MarginZ = 2.0, int LastN = 3)
    {
    }

    /// <summary>
    /// Whether the rule stops for K at logged point <paramref name="points"/> (a 1-based count) of the curves, with
    /// <paramref name="fullTokens"/> the tokens of the full budget per run. Only the first <paramref name="points"/> points are read,
    /// so the lock-step runs and the after-the-fact simulation decide alike.
    /// </summary>
    public static bool Stops(IReadOnlyDictionary<int, IReadOnlyList<CurvePoint>> curves, int k, int points, long fullTokens, StopRule rule)
    {
        if (k < 1 || k >= curves.Count || points < 1) return false;
        if (curves.Values.Any(c => c.Count < points)) return false;
        long tokens = curves.Values.First()[points - 1].Tokens;
        if (tokens < rule.MinFraction * fullTokens) return false;                                  // (a)
        if (points - rule.Window < 1) return false;
        for (int i = points - rule.Window; i <= points; i++)
            if (curves.Values.Any(c => AfterStepZero(c.Take(i)).Length == 0)) return false;
        var top = TopK(curves, k, points, rule.LastN);
        for (int i = points - rule.Window; i < points; i++)                                        // (b)
            if (!TopK(curves, k, i, rule.LastN).SequenceEqual(top)) return false;
        var prefix = Prefix(curves, points);                                                        // (c)
        var ranking = Ranking(prefix, int.MaxValue, rule.LastN);
        int kth = ranking[k - 1], next = ranking[k];
        double margin = LateMeanScore(prefix[kth], rule.LastN) - LateMeanScore(prefix[next], rule.LastN);
        double noise = Math.Sqrt(Math.Pow(LateMeanNoise(prefix[kth], rule.LastN), 2) + Math.Pow(LateMeanNoise(prefix[next], rule.LastN), 2));
        return margin > rule.MarginZ * noise;
    }

    /// <summary>The first logged point (1-based count) at which every K of <paramref name="ks"/> stops; null when none does before the curves end.</summary>
    public static int? StopPoint(IReadOnlyDictionary<int, IReadOnlyList<CurvePoint>> curves, IReadOnlyList<int> ks, long fullTokens, StopRule rule)
    {
        if (curves.Count == 0) return null;
        int length = curves.Values.Min(c => c.Count);
        for (int points = 1; points <= length; points++)
            if (ks.All(k => Stops(curves, k, points, fullTokens, rule))) return points;
        return null;
    }

    /// <summary>One K of <see cref="Compare"/>: where the rule stops for K alone, its top-K there and the full-budget top-K.</summary>
    public sealed record KComparison(int K, int? StopPoint, long StopTokens, long FullTokens, int[] EarlyTopK, int[] FullTopK)
    {
        public bool Same => EarlyTopK.SequenceEqual(FullTopK);
        public double Jaccard => KlCurves.Jaccard(EarlyTopK, FullTopK);
        /// <summary>Fraction of each run's full-budget tokens not trained when stopping here.</summary>
        public double SavedFraction => FullTokens > 0 ? 1 - (double)StopTokens / FullTokens : 0;

        /// <summary>As reported, with saved_fraction and jaccard rounded to 4 digits.</summary>
        public KComparisonEntry ToEntry() =>
            new(K, StopPoint, StopTokens, FullTokens, Math.Round(SavedFraction, 4), EarlyTopK, FullTopK, Same, Math.Round(Jaccard, 4));
    }

    public sealed record KComparisonEntry(int K, int? StopPoint, long StopTokens, long FullTokens, double SavedFraction,
        IReadOnlyList<int> EarlyTopK, IReadOnlyList<int> FullTopK, bool Same, double Jaccard);

    /// <summary>Early stopping against the full budget (provenance.early_stop_vs_full of kl's scores.json).</summary>
    public sealed record EarlyStopReport(StopRule Rule, long FullTokens, IReadOnlyList<int> StopKs, long AllStopTokens, double SavedFraction,
        IReadOnlyList<KComparisonEntry> ByK);

    /// <summary>
    /// Early stopping against the full budget, from full curves: for every K in 1..L-1, the point where the rule stops
    /// for that K alone (the end of the curves when it never does), the top-K from the curves cut there, the top-K from
    /// the whole curves, and the tokens saved. <paramref name="fullTokens"/> defaults to the curves' last point.
    /// </summary>
    public static IReadOnlyList<KComparison> Compare(IReadOnlyDictionary<int, IReadOnlyList<CurvePoint>> curves, StopRule rule, long? fullTokens = null)
    {
        if (curves.Count < 2) return [];
        long full = fullTokens ?? curves.Values.Min(c => c.Count == 0 ? 0 : c[^1].Tokens);
        int length = curves.Values.Min(c => c.Count);
        var result = new List<KComparison>();
        for (int k = 1; k < curves.Count; k++)
        {
            int? stop = StopPoint(curves, [k], full, rule);
            int points = stop ?? length;
            long tokens = stop is null ? full : curves.Values.First()[points - 1].Tokens;
            result.Add(new KComparison(k, stop, tokens, full, TopK(curves, k, points, rule.LastN), TopK(curves, k, length, rule.LastN)));
        }
        return result;
    }

    /// <summary><see cref="Compare"/> as reported, with the rule and the point where the K of <paramref name="ks"/> all stop; null for fewer than two curves.</summary>
    public static EarlyStopReport? CompareReport(IReadOnlyDictionary<int, IReadOnlyList<CurvePoint>> curves, StopRule rule, IReadOnlyList<int> ks, long? fullTokens = null)
    {
        if (curves.Count < 2) return null;
        long full = fullTokens ?? curves.Values.Min(c => c.Count == 0 ? 0 : c[^1].Tokens);
        var all = StopPoint(curves, ks, full, rule);
        long allTokens = all is int p ? curves.Values.First()[p - 1].Tokens : full;
        return new EarlyStopReport(rule, full, ks, allTokens, full > 0 ? Math.Round(1 - (double)allTokens / full, 4) : 0,
            Compare(curves, rule, full).Select(c => c.ToEntry()).ToArray());
    }
}
