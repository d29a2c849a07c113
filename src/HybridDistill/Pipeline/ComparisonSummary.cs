using System.Text.Json;
using System.Text.Json.Nodes;
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
    public static IReadOnlyDictionary<string, double> PerTask(JsonObject eval, int length, string source)
    {
        var result = new SortedDictionary<string, double>(StringComparer.Ordinal);
        foreach (var task in Tasks)
        {
            var acc = eval["tasks"]?[task]?[length.ToString()]?["acc"]
                ?? throw new InputException($"{source}: no {task} accuracy at length {length}; evaluate with --tasks recall and a length of {length}.");
            result[task] = acc.GetValue<double>();
        }
        return result;
    }

    public static double Of(IReadOnlyDictionary<string, double> perTask) => Tasks.Average(t => perTask[t]);

    /// <summary>Each prompt's [correct, count] of one task at one length, in prompt order.</summary>
    public static IReadOnlyList<Proportion> PerPrompt(JsonObject eval, string task, int length, string source)
    {
        var list = eval["tasks"]?[task]?[length.ToString()]?["per_prompt"] as JsonArray
            ?? throw new InputException($"{source}: no per-prompt results of {task} at length {length} (an eval.json from before per_prompt was recorded); evaluate again.");
        return list.Select(p => new Proportion(p![0]!.GetValue<int>(), p[1]!.GetValue<int>())).ToArray();
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

    public JsonObject ToJson() => new()
    {
        ["teacher"] = Teacher, ["data"] = Data, ["recipe"] = Recipe, ["num_layers"] = NumLayers, ["recall_length"] = RecallLength,
        ["seeds"] = new JsonArray(Seeds.Select(s => (JsonNode)s).ToArray()),
        ["budgets"] = new JsonArray(Budgets.Select(b => (JsonNode)new JsonObject { ["label"] = b.Label, ["k"] = b.K }).ToArray()),
        ["selections"] = new JsonArray(Selections.Select(s => (JsonNode)new JsonObject
        {
            ["method"] = s.Method, ["budget"] = s.Budget.Label, ["k"] = s.Budget.K,
            ["softmax_layers"] = new JsonArray(s.SoftmaxLayers.Select(l => (JsonNode)l).ToArray()),
        }).ToArray()),
        ["models"] = new JsonArray(Models().Select(m => (JsonNode)new JsonObject
        {
            ["model"] = m.Model, ["seed"] = m.Seed, ["softmax_layers"] = new JsonArray(m.Layers.Select(l => (JsonNode)l).ToArray()),
        }).ToArray()),
    };

    public static ComparisonPlan Load(string path)
    {
        try
        {
            var json = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
            var budgets = json["budgets"]!.AsArray().Select(b => new ComparisonBudget(b!["label"]!.GetValue<string>(), b["k"]!.GetValue<int>())).ToArray();
            var selections = json["selections"]!.AsArray().Select(s => new MethodSelection(
                s!["method"]!.GetValue<string>(),
                budgets.First(b => b.K == s["k"]!.GetValue<int>()),
                s["softmax_layers"]!.AsArray().Select(l => l!.GetValue<int>()).ToArray())).ToArray();
            return new ComparisonPlan(json["teacher"]!.GetValue<string>(), json["data"]!.GetValue<string>(), json["recipe"]!.GetValue<string>(),
                json["num_layers"]!.GetValue<int>(), json["recall_length"]!.GetValue<int>(),
                json["seeds"]!.AsArray().Select(s => s!.GetValue<int>()).ToArray(), budgets, selections);
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or NullReferenceException or FormatException)
        {
            throw new InputException($"{path}: not a comparison's selection.json ({e.Message}).", e);
        }
    }
}

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
            var eval = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
            var recall = RecallAverage.PerTask(eval, plan.RecallLength, path);
            // the teacher is the reference of the benchmark: 1x its own speed and cache
            var d = method == ComparisonMethods.Teacher ? (decode.Count > 0 ? (1.0, 1.0) : (null, null)) : decode.GetValueOrDefault(k);
            return new SummaryRow(model, method, (double)k / plan.NumLayers, k, layers, seed, RecallAverage.Of(recall), recall,
                eval["tasks"]?["agree"]?["kl"]?.GetValue<double>(), eval["tasks"]?["ppl"]?["ppl"]?.GetValue<double>(),
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
        var json = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        var rows = json["rows"]!.AsArray().Select(r => r!.AsObject()).ToArray();
        int context = rows.Max(r => r["context"]!.GetValue<int>());
        var ks = json["k"]?.AsObject() ?? throw new InputException($"{path}: no \"k\" map (model -> softmax layers); rerun the benchmark step.");
        string teacher = json["reference"]!.GetValue<string>();
        var at = rows.Where(r => r["context"]!.GetValue<int>() == context).ToDictionary(r => r["model"]!.GetValue<string>());
        var t = at[teacher];
        foreach (var (model, k) in ks)
        {
            var r = at[model];
            double tCache = t["cache_bytes"]!.GetValue<long>();
            figures[k!.GetValue<int>()] = (t["ms_per_token"]!.GetValue<double>() / r["ms_per_token"]!.GetValue<double>(),
                tCache == 0 ? null : r["cache_bytes"]!.GetValue<long>() / tCache);
        }
        return (figures, context);
    }

    public JsonObject ToJson() => new()
    {
        ["teacher"] = Teacher, ["data"] = Data, ["recipe"] = Recipe,
        ["recall_length"] = RecallLength, ["decode_context"] = DecodeContext,
        ["rows"] = new JsonArray(Rows.Select(r => (JsonNode)new JsonObject
        {
            ["model"] = r.Model, ["method"] = r.Method, ["budget"] = r.Budget, ["k"] = r.K,
            ["softmax_layers"] = new JsonArray(r.SoftmaxLayers.Select(l => (JsonNode)l).ToArray()),
            ["seed"] = r.Seed, ["recall_avg"] = r.RecallAvg,
            ["recall"] = new JsonObject(r.Recall.Select(p => KeyValuePair.Create(p.Key, (JsonNode?)p.Value))),
            ["kl"] = r.Kl, ["ppl"] = r.Ppl, ["decode_speedup"] = r.DecodeSpeedup, ["cache_share"] = r.CacheShare,
        }).ToArray()),
    };
}
