using System.Text.Json.Serialization;
using HybridDistill.Artifacts;

namespace HybridDistill.Evaluation;

/// <summary>How the run that produced an <see cref="EvalResult"/> was set up, for lm-eval's <c>config</c> block.</summary>
/// <param name="Device">The device the model ran on ("cpu", "cuda:0").</param>
/// <param name="BatchSize">Sequences per forward pass as given (null: chosen automatically, lm-eval's "auto").</param>
/// <param name="Date">Unix time in seconds when the evaluation finished (lm-eval's <c>date</c>).</param>
public sealed record LmEvalRun(string Device, int? BatchSize, double Date);

/// <summary>
/// An <see cref="EvalResult"/> in lm-evaluation-harness's results layout (v0.4 <c>results_&lt;timestamp&gt;.json</c>),
/// so dashboards and comparison scripts that read lm-eval output read ours:
/// <c>results.&lt;task&gt;["acc,none"]</c>, <c>["acc_stderr,none"]</c>, <c>["acc_norm,none"]</c>, plus <c>n-samples</c>
/// {original, effective}, <c>configs</c>, <c>versions</c>, <c>n-shot</c>, <c>higher_is_better</c> and <c>config</c>.
/// Task names: a multiple-choice file's stem (piqa, arc_easy), <c>&lt;recall task&gt;_&lt;length&gt;</c> (kv-recall_256),
/// <c>ppl</c> and <c>agree</c>. Standard errors are lm-eval's for a mean of 0/1 outcomes, sqrt(p (1 - p) / (n - 1)),
/// over the units the accuracy counts (answers; tokens of the repeated span for copy); "N/A" where lm-eval has none
/// (n &lt; 2, and the perplexity and agreement figures, which lm-eval would bootstrap).
/// </summary>
public static class LmEvalResults
{
    /// <summary>The file name beside <c>eval.json</c>: it matches lm-eval's <c>results_*.json</c> glob, and has no
    /// timestamp so that re-running an evaluation replaces it instead of piling up files.</summary>
    public const string FileName = "results_lm_eval.json";

    public const string NotAvailable = "N/A";

    /// <summary>Where the lm-eval layout goes for an eval JSON at <paramref name="evalJsonPath"/>: results_lm_eval.json in
    /// the same folder for eval.json, STEM.results_lm_eval.json for any other name (two evaluations may share a folder).</summary>
    public static string PathBeside(string evalJsonPath)
    {
        string directory = Path.GetDirectoryName(Path.GetFullPath(evalJsonPath))!;
        string file = Path.GetFileName(evalJsonPath);
        return Path.Combine(directory, file == EvalReport.EvalFileName ? FileName : Path.GetFileNameWithoutExtension(file) + "." + FileName);
    }

    public static LmEvalFile Build(EvalResult eval, LmEvalRun run)
    {
        // Every map below is filled in task order and only added to, so it enumerates (and is written) in that order.
        var results = new Dictionary<string, IReadOnlyDictionary<string, object>>();
        var configs = new Dictionary<string, LmEvalTaskConfig>();
        var versions = new Dictionary<string, double>();
        var nShot = new Dictionary<string, int>();
        var higherIsBetter = new Dictionary<string, IReadOnlyDictionary<string, bool>>();
        var nSamples = new Dictionary<string, LmEvalSamples>();
        var groupSubtasks = new Dictionary<string, IReadOnlyList<string>>();

        // metrics: "<metric>,none" -> a number, or "N/A" for a standard error lm-eval would not have.
        void Add(string task, string outputType, string? dataset, Dictionary<string, object> metrics, IReadOnlyList<(string Metric, bool Higher)> kinds,
                 int original, int effective)
        {
            var entry = new Dictionary<string, object> { ["alias"] = task };
            foreach (var (key, value) in metrics) entry[key] = value;
            results[task] = entry;
            configs[task] = new LmEvalTaskConfig(task, dataset, outputType, NumFewshot: 0,
                kinds.Select(k => new LmEvalMetric(k.Metric, "mean", k.Higher)).ToArray());
            versions[task] = 1.0;
            nShot[task] = 0;
            var better = new Dictionary<string, bool>();
            foreach (var (metric, higher) in kinds) better[metric] = higher;
            higherIsBetter[task] = better;
            nSamples[task] = new LmEvalSamples(original, effective);
            groupSubtasks[task] = [];
        }

        if (eval.Ppl is { } p)
            Add(EvalTasks.Ppl, "loglikelihood_rolling", eval.Options.DataPath,
                new() { ["token_perplexity,none"] = p.Ppl, ["token_perplexity_stderr,none"] = NotAvailable,
                        ["nll,none"] = p.Nll, ["nll_stderr,none"] = NotAvailable },
                [("token_perplexity", false), ("nll", false)], p.Windows, p.Windows);
        if (eval.Agree is { } a)
            Add(EvalTasks.Agree, "loglikelihood_rolling", eval.Options.DataPath,
                new() { ["kl,none"] = a.Kl, ["kl_stderr,none"] = NotAvailable,
                        ["top1,none"] = a.Top1, ["top1_stderr,none"] = NotAvailable },
                [("kl", false), ("top1", true)], a.Windows, a.Windows);
        foreach (var task in eval.Recall)
            foreach (var r in task.Lengths)
                Add($"{task.Task}_{r.Length}", "generate_until", null, Accuracy("acc", r.Accuracy), [("acc", true)], r.Prompts, r.Prompts);
        foreach (var m in eval.Mc)
        {
            var metrics = Accuracy("acc", m.Acc);
            var kinds = new List<(string, bool)> { ("acc", true) };
            if (m.AccNorm is { } norm)
            {
                foreach (var (key, value) in Accuracy("acc_norm", norm)) metrics[key] = value;
                kinds.Add(("acc_norm", true));
            }
            if (m.MeanNll is double nll)
            {
                // lm-eval's lambada perplexity: exp of the mean over items of the continuation's summed NLL.
                metrics["perplexity,none"] = Math.Exp(nll);
                metrics["perplexity_stderr,none"] = NotAvailable;
                kinds.Add(("perplexity", false));
            }
            Add(m.Name, m.Layout == McLayout.Cloze ? "loglikelihood" : "multiple_choice", eval.Options.McPaths.FirstOrDefault(x =>
                Path.GetFileNameWithoutExtension(x) == m.Name), metrics, kinds, m.Available, m.N);
        }

        return new LmEvalFile(results, groupSubtasks, configs, versions, nShot, higherIsBetter, nSamples,
            new LmEvalConfig("hybrid-distill", $"pretrained={eval.Model}", run.BatchSize is int b ? b : "auto", run.Device,
                eval.Options.Limit, BootstrapIters: 0, eval.Options.Seed),
            eval.Model, eval.Name, run.Date);
    }

    /// <summary>The file's bytes as written beside eval.json (indented, ending with a newline).</summary>
    public static byte[] Bytes(LmEvalFile file) => ArtifactJson.Bytes(file, ArtifactJson.Types.LmEvalFile, trailingNewline: true);

    static Dictionary<string, object> Accuracy(string metric, Proportion p) => new()
    {
        [$"{metric},none"] = p.Accuracy,
        [$"{metric}_stderr,none"] = p.Stderr is double se ? se : NotAvailable,
    };
}

/// <summary>lm-eval's results file; the maps are keyed by task name, in task order. A task's results map holds
/// "alias" and its metrics ("acc,none": a number; "acc_stderr,none": a number or "N/A").</summary>
public sealed record LmEvalFile(
    IReadOnlyDictionary<string, IReadOnlyDictionary<string, object>> Results,
    IReadOnlyDictionary<string, IReadOnlyList<string>> GroupSubtasks,
    IReadOnlyDictionary<string, LmEvalTaskConfig> Configs,
    IReadOnlyDictionary<string, double> Versions,
    [property: JsonPropertyName("n-shot")] IReadOnlyDictionary<string, int> NShot,
    IReadOnlyDictionary<string, IReadOnlyDictionary<string, bool>> HigherIsBetter,
    [property: JsonPropertyName("n-samples")] IReadOnlyDictionary<string, LmEvalSamples> NSamples,
    LmEvalConfig Config,
    string ModelName,
    string ModelNameSanitized,
    double Date);

public sealed record LmEvalTaskConfig(string Task, string? DatasetPath, string OutputType, int NumFewshot, IReadOnlyList<LmEvalMetric> MetricList);

public sealed record LmEvalMetric(string Metric, string Aggregation, bool HigherIsBetter);

/// <param name="Original">items in the file</param>
/// <param name="Effective">items evaluated (under --limit)</param>
public sealed record LmEvalSamples(int Original, int Effective);

/// <param name="BatchSize">sequences per forward pass, or "auto"</param>
public sealed record LmEvalConfig(string Model, string ModelArgs, object BatchSize, string Device, int? Limit, int BootstrapIters, int RandomSeed);
