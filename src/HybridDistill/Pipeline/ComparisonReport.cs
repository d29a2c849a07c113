using System.Globalization;
using System.Text;
using HybridDistill.Artifacts;
using HybridDistill.Selection;

namespace HybridDistill.Pipeline;

/// <summary>
/// report.md of a comparison: a table per budget (method | layers | recall_avg mean ± s.d. over seeds | KL | ppl |
/// speed-up | cache | paired difference to kl with its 95% interval), the reference rows (teacher, all-linear), the
/// score plots, then each recall task's accuracy at the recall length.
/// </summary>
public static class ComparisonReport
{
    public static string Render(ComparisonSummary summary, ComparisonPlan plan, RunLayout layout)
    {
        var md = new StringBuilder();
        md.AppendLine("# Layer selection compared");
        md.AppendLine();
        md.AppendLine($"Teacher `{summary.Teacher}` ({plan.NumLayers} layers), data `{summary.Data}`, recipe `{summary.Recipe}`; " +
                      $"distillation seeds {string.Join(", ", plan.Seeds)}.");
        md.AppendLine($"**recall_avg** = mean accuracy over passkey, kv-recall, kv-multihop and copy at the stage-2 length " +
                      $"({summary.RecallLength} tokens), the same prompts for every model. KL = held-out KL to the teacher (nats/token); " +
                      $"speed-up and cache = the teacher's decode ms/token over the model's and the model's cache over the teacher's at " +
                      $"context {summary.DecodeContext} (one benchmarked model per K). " +
                      $"\"vs kl\" = recall_avg minus kl's at the same budget, paired over prompts and seeds, with a 95% bootstrap interval over prompts.");
        md.AppendLine();

        var reference = summary.Rows.Where(r => r.Method is ComparisonMethods.Teacher or ComparisonMethods.AllLinear).ToArray();
        foreach (var budget in plan.Budgets)
        {
            md.AppendLine($"## {budget.K} softmax layer{(budget.K == 1 ? "" : "s")} of {plan.NumLayers} ({budget.Label})");
            md.AppendLine();
            md.AppendLine("| method | softmax layers | recall_avg | KL | ppl | speed-up | cache | vs kl |");
            md.AppendLine("|---|---|---|---|---|---|---|---|");
            var rows = summary.Rows.Where(r => r.K == budget.K && r.Method is not (ComparisonMethods.Teacher or ComparisonMethods.AllLinear)).ToArray();
            foreach (var group in rows.GroupBy(r => r.Method))
            {
                var g = group.ToArray();
                string vsKl = "";
                var kl = plan.Selections.FirstOrDefault(s => s.Method == ComparisonMethods.Kl && s.Budget.K == budget.K);
                if (kl is not null && group.Key != ComparisonMethods.Kl)
                {
                    var d = PairedComparison.Compare(layout, summary.RecallLength,
                        plan.Seeds.Select(s => (g.First(r => r.Seed == s).Model, ComparisonMethods.ModelId(kl.SoftmaxLayers, s))).ToArray());
                    vsKl = g[0].SoftmaxLayers.SequenceEqual(kl.SoftmaxLayers) ? "same layers" : $"{Signed(d.Difference)} [{Signed(d.Lo)}, {Signed(d.Hi)}]";
                }
                md.AppendLine($"| {group.Key} | {string.Join(",", g[0].SoftmaxLayers)} | {MeanSd(g.Select(r => r.RecallAvg))} | " +
                              $"{MeanSd(g.Select(r => r.Kl), "F3")} | {MeanSd(g.Select(r => r.Ppl), "F2")} | {Times(g[0].DecodeSpeedup)} | {Percent(g[0].CacheShare)} | {vsKl} |");
            }
            md.AppendLine();
        }

        md.AppendLine("## Reference rows");
        md.AppendLine();
        md.AppendLine("| model | recall_avg | KL | ppl | speed-up | cache |");
        md.AppendLine("|---|---|---|---|---|---|");
        foreach (var group in reference.GroupBy(r => r.Method))
        {
            var g = group.ToArray();
            md.AppendLine($"| {group.Key} | {MeanSd(g.Select(r => r.RecallAvg))} | {MeanSd(g.Select(r => r.Kl), "F3")} | " +
                          $"{MeanSd(g.Select(r => r.Ppl), "F2")} | {Times(g[0].DecodeSpeedup)} | {Percent(g[0].CacheShare)} |");
        }
        md.AppendLine();

        var plots = plan.Selections.Select(s => s.Method).Distinct()
            .Select(m => (Method: m, Path: Path.Combine(layout.ScoresDir(m == ComparisonMethods.KlFull ? ComparisonMethods.Kl : m), "scores.png")))
            .Where(p => File.Exists(p.Path)).DistinctBy(p => p.Path).ToArray();
        if (plots.Length > 0)
        {
            md.AppendLine("## Scores");
            md.AppendLine();
            foreach (var (method, path) in plots)
                md.AppendLine($"![{method}]({Path.GetRelativePath(Path.GetDirectoryName(layout.Report)!, path).Replace('\\', '/')})");
            md.AppendLine();
        }

        AppendScoringCost(md, layout);

        md.AppendLine($"## Recall by task at {summary.RecallLength} tokens (mean over seeds)");
        md.AppendLine();
        md.AppendLine($"| model | budget | {string.Join(" | ", RecallAverage.Tasks)} |");
        md.AppendLine($"|---|---|{string.Concat(RecallAverage.Tasks.Select(_ => "---|"))}");
        foreach (var group in summary.Rows.GroupBy(r => (r.Method, r.K)))
        {
            var g = group.ToArray();
            md.AppendLine($"| {group.Key.Method} | {group.Key.K}/{plan.NumLayers} | " +
                          string.Join(" | ", RecallAverage.Tasks.Select(t => g.Average(r => r.Recall[t]).ToString("F3", CultureInfo.InvariantCulture))) + " |");
        }
        md.AppendLine();
        md.AppendLine("Evaluation lengths other than the stage-2 length are in each model's eval folder (eval/MODEL/eval.md); lengths " +
                      "beyond the stage-2 length are extrapolation: no model was distilled on windows that long.");
        return md.ToString();
    }

    /// <summary>Each scoring job's wall time (its step record) and, for kl, the training tokens of its candidate runs and
    /// where early stopping would have stopped for each K against the full budget.</summary>
    static void AppendScoringCost(StringBuilder md, RunLayout layout)
    {
        var scoresRoot = Path.Combine(layout.Root, "scores");
        if (!Directory.Exists(scoresRoot)) return;
        md.AppendLine("## Scoring cost");
        md.AppendLine();
        md.AppendLine("| scores | wall time | training tokens |");
        md.AppendLine("|---|---|---|");
        KlCurves.EarlyStopReport? comparison = null;
        foreach (var dir in Directory.EnumerateDirectories(scoresRoot).Order(StringComparer.Ordinal))
        {
            string folder = Path.GetFileName(dir);
            string record = layout.StepRecordPath("score-" + folder);
            double? seconds = File.Exists(record) ? StepRecord.Load(record).Seconds : null;
            string tokens = "-";
            var scoresFile = Path.Combine(dir, Selection.LayerScores.FileName);
            if (File.Exists(scoresFile))
            {
                var scores = LayerScores.Load(scoresFile);
                if (scores.Details?[0]?.As(ArtifactJson.Types.LockStepView).LockStep is { } lockStep)
                {
                    tokens = $"{lockStep.AllRunsTokensUsed:N0} of {lockStep.AllRunsTokensBudget:N0} (stopped at {lockStep.StoppedAtTokens:N0} per candidate)";
                }
                var fullFile = Path.Combine(dir, ComparisonMethods.KlFullScoresFile);
                if (EarlyStopReport(File.Exists(fullFile) ? LayerScores.Load(fullFile) : null) is { } c) comparison = c;
                comparison ??= EarlyStopReport(scores);
            }
            md.AppendLine($"| {folder} | {(seconds is double x ? $"{x:F0} s" : "-")} | {tokens} |");
        }
        md.AppendLine();
        if (comparison is not null)
        {
            md.AppendLine("kl's early stopping against its full budget, for every K (the stopping rule applied to K alone, on the full-budget curves):");
            md.AppendLine();
            md.AppendLine("| K | stopped at tokens | early top-K | full top-K | same | tokens saved |");
            md.AppendLine("|---|---|---|---|---|---|");
            foreach (var k in comparison.ByK)
                md.AppendLine($"| {k.K} | {k.StopTokens} of {k.FullTokens} | {Layers(k.EarlyTopK)} | {Layers(k.FullTopK)} | " +
                              $"{(k.Same ? "yes" : "no")} | {100 * k.SavedFraction:F0}% |");
            md.AppendLine();
        }
    }

    static string Layers(IReadOnlyList<int>? list) => list is null ? "-" : string.Join(",", list);

    /// <summary>kl's early stopping against the full budget, as recorded in a scores file's provenance (null when absent).</summary>
    static KlCurves.EarlyStopReport? EarlyStopReport(LayerScores? scores) =>
        scores?.Provenance.As(ArtifactJson.Types.KlStoppingView).EarlyStopVsFull;

    static string MeanSd(IEnumerable<double?> values, string format = "F3")
    {
        var v = values.Where(x => x.HasValue).Select(x => x!.Value).ToArray();
        if (v.Length == 0) return "-";
        double mean = v.Average();
        string m = mean.ToString(format, CultureInfo.InvariantCulture);
        if (v.Length == 1) return m;
        double sd = Math.Sqrt(v.Sum(x => (x - mean) * (x - mean)) / (v.Length - 1));
        return $"{m} ± {sd.ToString(format, CultureInfo.InvariantCulture)}";
    }

    static string MeanSd(IEnumerable<double> values, string format = "F3") => MeanSd(values.Select(v => (double?)v), format);

    /// <summary>+0.012 / -0.034, with a value that rounds to zero shown as +0.000 (never "-+0.000" or "-0.000").</summary>
    static string Signed(double x)
    {
        double r = Math.Round(x, 3);
        return (r == 0 ? 0 : r).ToString("+0.000;-0.000;+0.000", CultureInfo.InvariantCulture);
    }

    static string Times(double? x) => x is double v ? v.ToString("F2", CultureInfo.InvariantCulture) + "x" : "-";
    static string Percent(double? x) => x is double v ? (100 * v).ToString("F1", CultureInfo.InvariantCulture) + "%" : "-";
}

/// <summary>The part of a scores file's first layer detail the report reads: kl's lock-step record (other methods have none).</summary>
public sealed record LockStepView(LockStepRecord? LockStep);
