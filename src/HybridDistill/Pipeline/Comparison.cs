using System.Globalization;
using HybridDistill.Selection;

namespace HybridDistill.Pipeline;

/// <summary>A budget of softmax layers: a fraction of the L layers ("25%", "0.25") or a count ("2L"); K is what counts.</summary>
public sealed record ComparisonBudget(string Label, int K)
{
    /// <summary>"12.5%,25%" or "1L,2L" (mixed is fine); budgets giving the same K are merged (first label kept), ordered by K.</summary>
    public static IReadOnlyList<ComparisonBudget> ParseList(string text, int numLayers)
    {
        var budgets = LayerSelection.ParseBudgetList(text, numLayers, "--budgets");
        foreach (var (label, k) in budgets)
            if (k >= numLayers)
                throw new InputException($"--budgets: \"{label}\" keeps all {numLayers} layers softmax (that is the teacher); use a smaller budget.");
        return budgets.Select(b => new ComparisonBudget(b.Label, b.K)).ToArray();
    }

    /// <summary>K / L, the summary's <c>budget</c>.</summary>
    public double Fraction(int numLayers) => (double)K / numLayers;
}

/// <summary>
/// One scoring job of a comparison: the scorer it runs (with settings and seed) in OUT/scores/FOLDER, and which
/// row methods read their selection from which of its files.
/// </summary>
public sealed record ScoringJob(string Folder, string Method, IReadOnlyList<string> Settings, long Seed,
    IReadOnlyDictionary<string, string> ScoresFileOfRow);

/// <summary>The methods a comparison can list, and how they map onto scoring runs.</summary>
public static class ComparisonMethods
{
    public const string Teacher = "teacher";
    public const string AllLinear = "all-linear";
    public const string Kl = "kl";
    public const string KlFull = "kl-full";
    public const int RandomSeeds = 3;

    /// <summary>Row methods in report order (kl first: every other row is compared with it).</summary>
    public static IReadOnlyList<string> RowOrder { get; } =
        [Kl, KlFull, "uniform-first", "uniform-last", "random-s0", "random-s1", "random-s2", "ar", "ar-multihop", "stage1", "ppl", "removal"];

    /// <summary>A row method's place in <see cref="RowOrder"/> (-1 for a method not listed there), for sorting rows.</summary>
    public static int RowIndex(string rowMethod) => RowOrder.ToList().IndexOf(rowMethod);

    /// <summary>--methods as given ("kl,uniform,random") to row methods ("kl", "uniform-first", "uniform-last", "random-s0", ...).</summary>
    public static IReadOnlyList<string> Expand(string text)
    {
        var rows = new List<string>();
        foreach (var name in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            IEnumerable<string> expanded = name switch
            {
                "uniform" => ["uniform-first", "uniform-last"],
                "random" => Enumerable.Range(0, RandomSeeds).Select(s => $"random-s{s}"),
                _ when RowOrder.Contains(name) => [name],
                _ => throw new InputException($"--methods {name}: unknown method (methods: kl, kl-full, uniform, uniform-first, uniform-last, " +
                                              "random, random-s0..s2, ar, ar-multihop, stage1, ppl, removal)."),
            };
            rows.AddRange(expanded.Where(r => !rows.Contains(r)));
        }
        if (rows.Count == 0) throw new InputException("--methods: give at least one method, e.g. kl,uniform.");
        return rows.OrderBy(RowIndex).ToArray();
    }

    /// <summary>The scoring jobs for some row methods: one kl run serves kl and kl-full, one folder per other row.</summary>
    /// <param name="klBudgets">the K whose top-K sets kl's early stopping watches</param>
    public static IReadOnlyList<ScoringJob> Jobs(IReadOnlyList<string> rowMethods, IReadOnlyList<ComparisonBudget> klBudgets)
    {
        var jobs = new List<ScoringJob>();
        bool kl = rowMethods.Contains(Kl), klFull = rowMethods.Contains(KlFull);
        if (kl || klFull)
        {
            var files = new Dictionary<string, string>();
            if (kl) files[Kl] = LayerScores.FileName;
            if (klFull) files[KlFull] = KlFullScoresFile;
            List<string> settings = [$"stable_budgets={string.Join(",", klBudgets.Select(b => $"{b.K}L"))}"];
            if (klFull) settings.Add(KlFullSetting);
            jobs.Add(new ScoringJob(Kl, "kl", settings, 0, files));
        }
        foreach (var row in rowMethods.Where(r => r is not (Kl or KlFull)))
        {
            var one = new Dictionary<string, string> { [row] = LayerScores.FileName };
            jobs.Add(row switch
            {
                "uniform-first" => new ScoringJob(row, "uniform", ["anchor=first"], 0, one),
                "uniform-last" => new ScoringJob(row, "uniform", ["anchor=last"], 0, one),
                _ when row.StartsWith("random-s", StringComparison.Ordinal) =>
                    new ScoringJob(row, "random", [], long.Parse(row["random-s".Length..], CultureInfo.InvariantCulture), one),
                _ => new ScoringJob(row, row, [], 0, one),
            });
        }
        return jobs;
    }

    /// <summary>The file kl writes beside scores.json with the scores of the full budget (no early stopping).</summary>
    public const string KlFullScoresFile = "scores-full.json";

    /// <summary>The kl setting that runs every candidate to the full budget and writes <see cref="KlFullScoresFile"/> too.</summary>
    public const string KlFullSetting = "full_budget=true";

    /// <summary>The folder name of a stage-2 model: its softmax layers (or all-linear) and distillation seed.</summary>
    public static string ModelId(IReadOnlyList<int> softmaxLayers, int seed) =>
        (softmaxLayers.Count == 0 ? AllLinear : "softmax-" + string.Join("-", softmaxLayers)) + $"-s{seed}";
}

/// <summary>One method's choice at one budget.</summary>
public sealed record MethodSelection(string Method, ComparisonBudget Budget, IReadOnlyList<int> SoftmaxLayers);
