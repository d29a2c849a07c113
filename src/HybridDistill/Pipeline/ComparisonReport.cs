using System.Globalization;
using System.Text;

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
                    vsKl = g[0].SoftmaxLayers.SequenceEqual(kl.SoftmaxLayers) ? "same layers" : $"{d.Difference:+0.000;-0.000} [{d.Lo:+0.000;-0.000}, {d.Hi:+0.000;-0.000}]";
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

    static string Times(double? x) => x is double v ? v.ToString("F2", CultureInfo.InvariantCulture) + "x" : "-";
    static string Percent(double? x) => x is double v ? (100 * v).ToString("F1", CultureInfo.InvariantCulture) + "%" : "-";
}
