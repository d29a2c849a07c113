using System.Text.Json;
using System.Text.Json.Serialization;
using HybridDistill.Artifacts;
using HybridDistill.Benchmarks;
using HybridDistill.Evaluation;

namespace HybridDistill.Pipeline;

/// <summary>
/// The headline metric of a comparison, defined here once:
///   recall_avg = mean over the recall suites (passkey, kv-recall, kv-multihop, copy) of the accuracy at the stage-2
///                length (copy counts tokens of the repeated span, the others exact-match answers),
/// the way RULER reports one average over its tasks.
/// </summary>
public static class RecallAverage
{
    public static IReadOnlyList<string> Tasks { get; } = [RecallTasks.Passkey, RecallTasks.KvRecall, RecallTasks.KvMultihop, RecallTasks.Copy];

    /// <summary>Each recall task's accuracy at <paramref name="length"/> in an eval.json; an error naming the file when one is missing.</summary>
    public static IReadOnlyDictionary<string, double> PerTask(EvalFile eval, int length, string source)
    {
        var result = new SortedDictionary<string, double>(StringComparer.Ordinal);
        foreach (var task in Tasks)
            result[task] = eval.TaskResults.RecallAt(task, length)?.Acc
                ?? throw new InputException($"{source}: no {task} accuracy at length {length}; evaluate with --tasks recall and a length of {length}.");
        return result;
    }

    public static double Of(IReadOnlyDictionary<string, double> perTask) => Tasks.Average(t => perTask[t]);

    /// <summary>Each prompt's [correct, count] of one task at one length, in prompt order.</summary>
    public static IReadOnlyList<Proportion> PerPrompt(EvalFile eval, string task, int length, string source)
    {
        var list = eval.TaskResults.RecallAt(task, length)?.PerPrompt
            ?? throw new InputException($"{source}: no per-prompt results of {task} at length {length} (an eval.json from before per_prompt was recorded); evaluate again.");
        return list.Select(p => p.Count == 2 ? new Proportion(p[0], p[1])
            : throw new InputException($"{source}: per_prompt entries of {task} at length {length} must be [correct, count]; evaluate again.")).ToArray();
    }
}

/// <summary>
/// What a comparison chose and distilled (OUT/selection.json): the run's inputs, each method's layers per budget,
/// and the distilled models. With the eval.json files and the decode benchmark it is all <see cref="ComparisonSummary"/> needs.
/// </summary>
public sealed record ComparisonPlan(
    string Teacher, string Data, string Recipe, int NumLayers, int RecallLength, IReadOnlyList<int> Seeds,
    IReadOnlyList<ComparisonBudget> Budgets, IReadOnlyList<MethodSelection> Selections)
{
    /// <summary>Every distinct layout (all-linear first, then by K and layers) distilled with every seed.</summary>
    public IReadOnlyList<(IReadOnlyList<int> Layers, int Seed, string Model)> Models()
    {
        var layouts = new List<IReadOnlyList<int>> { Array.Empty<int>() };
        foreach (var s in Selections.OrderBy(s => s.SoftmaxLayers.Count).ThenBy(s => string.Join(",", s.SoftmaxLayers)))
            if (!layouts.Any(l => l.SequenceEqual(s.SoftmaxLayers))) layouts.Add(s.SoftmaxLayers);
        return layouts.SelectMany(l => Seeds.Select(seed => (l, seed, ComparisonMethods.ModelId(l, seed)))).ToArray();
    }

    /// <summary>selection.json's content: the plan and the models it distills.</summary>
    public ComparisonPlanFile ToFile() => new(Teacher, Data, Recipe, NumLayers, RecallLength, Seeds,
        Budgets.Select(b => new BudgetEntry(b.Label, b.K)).ToArray(),
        Selections.Select(s => new SelectionEntry(s.Method, s.Budget.Label, s.Budget.K, s.SoftmaxLayers)).ToArray(),
        Models().Select(m => new PlannedModel(m.Model, m.Seed, m.Layers)).ToArray());

    /// <summary>Writes selection.json (atomically).</summary>
    public void Save(string path) => ArtifactJson.Write(path, ToFile(), ArtifactJson.Types.ComparisonPlanFile);

    public static ComparisonPlan Load(string path)
    {
        var file = ArtifactJson.Read(path, ArtifactJson.Types.ComparisonPlanFile, "a comparison's selection.json", "run hybrid run again to write it");
        var budgets = file.Budgets.Select(b => new ComparisonBudget(b.Label, b.K)).ToArray();
        var selections = file.Selections.Select(s => new MethodSelection(s.Method,
            budgets.FirstOrDefault(b => b.K == s.K) ?? throw new InputException($"{path}: selection {s.Method} has k = {s.K}, which no budget has; run hybrid run again to write it."),
            s.SoftmaxLayers)).ToArray();
        return new ComparisonPlan(file.Teacher, file.Data, file.Recipe, file.NumLayers, file.RecallLength, file.Seeds, budgets, selections);
    }
}

/// <summary>
/// selection.json: <c>{"teacher", "data", "recipe", "num_layers", "recall_length", "seeds": [s], "budgets": [{"label", "k"}],
/// "selections": [{"method", "budget", "k", "softmax_layers"}], "models": [{"model", "seed", "softmax_layers"}]}</c>
/// (models: what <see cref="ComparisonPlan.Models"/> derives, written for the reader; not read back).
/// </summary>
public sealed record ComparisonPlanFile(
    [property: JsonRequired] string Teacher, [property: JsonRequired] string Data, [property: JsonRequired] string Recipe,
    [property: JsonRequired] int NumLayers, [property: JsonRequired] int RecallLength, [property: JsonRequired] IReadOnlyList<int> Seeds,
    [property: JsonRequired] IReadOnlyList<BudgetEntry> Budgets, [property: JsonRequired] IReadOnlyList<SelectionEntry> Selections,
    IReadOnlyList<PlannedModel>? Models);

public sealed record BudgetEntry([property: JsonRequired] string Label, [property: JsonRequired] int K);

/// <param name="Budget">the budget's label</param>
public sealed record SelectionEntry(
    [property: JsonRequired] string Method, string Budget, [property: JsonRequired] int K, [property: JsonRequired] IReadOnlyList<int> SoftmaxLayers);

public sealed record PlannedModel(string Model, int Seed, IReadOnlyList<int> SoftmaxLayers);

/// <summary>One row of summary.json: one model (under one method's name) and one distillation seed.</summary>
public sealed record SummaryRow(string Model, string Method, double Budget, int K, IReadOnlyList<int> SoftmaxLayers, int Seed,
    double RecallAvg, IReadOnlyDictionary<string, double> Recall, double? Kl, double? Ppl, double? DecodeSpeedup, double? CacheShare);

/// <summary>
/// summary.json: <c>{"teacher", "data", "recipe", "recall_length", "rows": [{"model", "method", "budget", "k",
/// "softmax_layers", "seed", "recall_avg", "recall": {task: acc}, "kl", "ppl", "decode_speedup", "cache_share"}]}</c>,
/// one row per model and distillation seed; a layout chosen by several methods gives one row per method.
/// decode_speedup and cache_share are the teacher's ms/token and cache over the model's at the longest benchmarked
/// context (one benchmarked model per K: speed and cache depend on K, not on which layers).
/// </summary>
public sealed record ComparisonSummary(string Teacher, string Data, string Recipe, int RecallLength, int DecodeContext, IReadOnlyList<SummaryRow> Rows)
{
    public static ComparisonSummary Build(RunLayout layout, ComparisonPlan plan)
    {
        var (decode, context) = DecodeFigures(layout.BenchDecodeJson);
        var rows = new List<SummaryRow>();
        SummaryRow Row(string model, string method, int k, IReadOnlyList<int> layers, int seed)
        {
            string path = layout.EvalJson(model);
            if (!File.Exists(path)) throw new InputException($"{path}: missing; evaluate {model} first (hybrid run resumes there).");
            var eval = EvalFile.Load(path);
            var recall = RecallAverage.PerTask(eval, plan.RecallLength, path);
            // the teacher is the reference of the benchmark: 1x its own speed and cache
            var d = method == ComparisonMethods.Teacher ? (decode.Count > 0 ? (1.0, 1.0) : (null, null)) : decode.GetValueOrDefault(k);
            return new SummaryRow(model, method, (double)k / plan.NumLayers, k, layers, seed, RecallAverage.Of(recall), recall,
                eval.TaskResults.Agree?.Kl, eval.TaskResults.Ppl?.Ppl,
                d.Speedup, d.CacheShare);
        }
        var all = Enumerable.Range(0, plan.NumLayers).ToArray();
        rows.Add(Row(ComparisonMethods.Teacher, ComparisonMethods.Teacher, plan.NumLayers, all, 0));
        foreach (int seed in plan.Seeds)
            rows.Add(Row(ComparisonMethods.ModelId([], seed), ComparisonMethods.AllLinear, 0, [], seed));
        foreach (var budget in plan.Budgets)
            foreach (var s in plan.Selections.Where(s => s.Budget.K == budget.K).OrderBy(s => ComparisonMethods.RowIndex(s.Method)))
                foreach (int seed in plan.Seeds)
                    rows.Add(Row(ComparisonMethods.ModelId(s.SoftmaxLayers, seed), s.Method, budget.K, s.SoftmaxLayers, seed));
        return new ComparisonSummary(plan.Teacher, plan.Data, plan.Recipe, plan.RecallLength, context, rows);
    }

    /// <summary>Per K: speed-up and cache share against the teacher at the longest context (also returned; 0 without a benchmark).</summary>
    static (Dictionary<int, (double? Speedup, double? CacheShare)> Figures, int Context) DecodeFigures(string path)
    {
        var figures = new Dictionary<int, (double?, double?)>();
        if (!File.Exists(path)) return (figures, 0);
        const string fix = "rerun the benchmark step";
        var file = ArtifactJson.Read(path, ArtifactJson.Types.DecodeBenchFile, "a comparison's decode benchmark", fix);
        if (file.Rows.Count == 0) throw new InputException($"{path}: no rows; {fix}.");
        int context = file.Rows.Max(r => r.Context);
        var ks = file.K ?? throw new InputException($"{path}: no \"k\" map (model -> softmax layers); {fix}.");
        string teacher = file.Reference ?? throw new InputException($"{path}: no \"reference\" model; {fix}.");
        var at = file.Rows.Where(r => r.Context == context).ToDictionary(r => r.Model);
        DecodeBenchRow Row(string model) => at.GetValueOrDefault(model) ?? throw new InputException($"{path}: no row of {model} at context {context}; {fix}.");
        var t = Row(teacher);
        foreach (var (model, k) in ks)
        {
            var r = Row(model);
            double tCache = t.CacheBytes;
            figures[k] = (t.MsPerToken / r.MsPerToken, tCache == 0 ? null : r.CacheBytes / tCache);
        }
        return (figures, context);
    }

    /// <summary>Writes summary.json (atomically).</summary>
    public void Save(string path) => ArtifactJson.Write(path, this, ArtifactJson.Types.ComparisonSummary);
}
