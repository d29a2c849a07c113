using System.Globalization;
using System.Text;
using HybridDistill.Artifacts;
using HybridDistill.Benchmarks;

namespace HybridDistill.Evaluation;

/// <summary>One model's <c>eval.json</c> in a report.</summary>
public sealed record EvalEntry(string Name, string Path, EvalFile File)
{
    public EvalTaskResults Tasks => File.TaskResults;
}


/// <summary>
/// Side-by-side Markdown of several models' evaluations (and decode benchmarks), with PNG plots (ScottPlot):
/// recall accuracy vs context length per task, decode ms/token and cache bytes vs context length.
/// <c>eval</c> uses the same tables with one column.
/// </summary>
public static class EvalReport
{
    public const string EvalFileName = "eval.json";
    public const string DecodeFileName = "bench_decode.json";

    /// <summary>Reads the eval.json and bench_decode.json files named, or found under the directories named.</summary>
    public static (List<EvalEntry> Evals, List<DecodeRow> Decode) Gather(IEnumerable<string> inputs)
    {
        var evalFiles = new List<string>();
        var decodeFiles = new List<string>();
        foreach (var input in inputs)
        {
            if (File.Exists(input))
            {
                (System.IO.Path.GetFileName(input) == DecodeFileName ? decodeFiles : evalFiles).Add(input);
                continue;
            }
            if (!Directory.Exists(input)) throw new InputException($"'{input}' is neither a file nor a directory; pass directories holding {EvalFileName} / {DecodeFileName}.");
            evalFiles.AddRange(Directory.EnumerateFiles(input, EvalFileName, SearchOption.AllDirectories).Order(StringComparer.Ordinal));
            decodeFiles.AddRange(Directory.EnumerateFiles(input, DecodeFileName, SearchOption.AllDirectories).Order(StringComparer.Ordinal));
        }
        if (evalFiles.Count == 0 && decodeFiles.Count == 0)
            throw new InputException($"no {EvalFileName} or {DecodeFileName} found in {string.Join(", ", inputs)}; run `hybrid eval --json DIR` first.");

        var evals = new List<EvalEntry>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var file in evalFiles.Distinct())
        {
            var json = EvalFile.Load(file);
            string name = json.Name ?? json.Model ?? System.IO.Path.GetFileName(System.IO.Path.GetDirectoryName(file))!;
            string unique = name;
            for (int i = 2; !names.Add(unique); i++) unique = $"{name} ({i})";
            evals.Add(new EvalEntry(unique, file, json));
        }
        var rows = new List<DecodeRow>();
        foreach (var file in decodeFiles.Distinct())
        {
            var json = ArtifactJson.Read(file, ArtifactJson.Types.DecodeBenchFile, "a decode benchmark",
                "expected {\"rows\": [{\"model\", \"context\", \"ms_per_token\", \"cache_bytes\"}]}");
            rows.AddRange(json.Rows.Select(r => new DecodeRow(r.Model, r.Context, r.MsPerToken, r.CacheBytes, r.WeightBytes)));
        }
        return (evals, rows);
    }

    static string F(double x, string format = "0.000") => x.ToString(format, CultureInfo.InvariantCulture);

    /// <summary>The Markdown tables; <paramref name="images"/> are PNG file names (relative to the Markdown) to embed.</summary>
    public static string Markdown(IReadOnlyList<EvalEntry> evals, IReadOnlyList<DecodeRow> decode, IReadOnlyList<string>? images = null, string title = "Evaluation report")
    {
        var md = new StringBuilder();
        md.AppendLine($"# {title}").AppendLine();
        if (evals.Count > 0)
        {
            md.AppendLine("## Models").AppendLine();
            md.AppendLine("| name | model | teacher | seed | tasks |").AppendLine("|---|---|---|---|---|");
            foreach (var e in evals)
                md.AppendLine($"| {e.Name} | {e.File.Model} | {e.File.Teacher ?? "-"} | {e.File.Seed.ToString(CultureInfo.InvariantCulture)} | " +
                              $"{string.Join(", ", e.File.Settings?.Tasks ?? [])} |");
            md.AppendLine();
            string header = "| | " + string.Join(" | ", evals.Select(e => e.Name)) + " |";
            string rule = "|---|" + string.Concat(evals.Select(_ => "---|"));

            var lm = new List<(string Label, Func<EvalTaskResults, string?> Cell)>
            {
                ("ppl", t => t.Ppl is { } p ? $"{F(p.Ppl, "0.00")} (NLL {F(p.Nll)}, {p.Tokens.ToString(CultureInfo.InvariantCulture)} tokens)" : null),
                ("agree: KL(teacher ‖ model)", t => t.Agree is { } a ? F(a.Kl, "0.0000") : null),
                ("agree: top-1", t => t.Agree is { } a ? F(a.Top1) : null),
            };
            var lmRows = lm.Where(r => evals.Any(e => r.Cell(e.Tasks) is not null)).ToList();
            if (lmRows.Count > 0)
            {
                md.AppendLine("## Language modelling").AppendLine().AppendLine(header).AppendLine(rule);
                foreach (var (label, cell) in lmRows)
                    md.AppendLine($"| {label} | " + string.Join(" | ", evals.Select(e => cell(e.Tasks) ?? "-")) + " |");
                md.AppendLine();
            }

            var recallTasks = RecallTasks.All.Where(t => evals.Any(e => e.Tasks.RecallTask(t) is not null)).ToList();
            if (recallTasks.Count > 0)
            {
                md.AppendLine("## Recall").AppendLine();
                md.AppendLine("Accuracy [95% Wilson interval] and count per prompt length (tokens, answers included). passkey, kv-recall, " +
                              "kv-multihop: exact match of the greedy answer; copy: teacher-forced top-1 over the repeated span " +
                              "(first: the same tokens at their first occurrence).").AppendLine();
                foreach (var task in recallTasks)
                {
                    md.AppendLine($"### {task}").AppendLine().AppendLine(header.Replace("| |", "| length |")).AppendLine(rule);
                    foreach (int length in Lengths(evals, task))
                    {
                        var cells = evals.Select(e => e.Tasks.RecallAt(task, length) is { } r
                            ? $"{F(r.Acc, "0.00")} [{F(r.Lo, "0.00")}, {F(r.Hi, "0.00")}] n={r.N.ToString(CultureInfo.InvariantCulture)}" +
                              (r.FirstAcc is { } first ? $"; first {F(first, "0.00")}" : "") +
                              (r.ByLabel is { } labels && task == RecallTasks.KvMultihop
                                  ? "; " + string.Join(", ", labels.Select(l => $"{l.Key} {F(l.Value.Acc, "0.00")}")) : "")
                            : "-");
                        md.AppendLine($"| {length} | " + string.Join(" | ", cells) + " |");
                    }
                    md.AppendLine();
                }
            }

            var mcKeys = evals.SelectMany(e => e.Tasks.Mc.Select(m => "mc/" + m.Name)).Distinct().Order(StringComparer.Ordinal).ToList();
            if (mcKeys.Count > 0)
            {
                md.AppendLine("## Multiple choice").AppendLine().AppendLine("acc / acc_norm (count); cloze sets have acc only.").AppendLine();
                md.AppendLine(header).AppendLine(rule);
                foreach (var key in mcKeys)
                    md.AppendLine($"| {key[3..]} | " + string.Join(" | ", evals.Select(e => e.Tasks.Mc.FirstOrDefault(m => "mc/" + m.Name == key)?.Result is { } m
                        ? F(m.Acc) + (m.AccNorm is { } norm ? " / " + F(norm) : "") + $" ({m.N.ToString(CultureInfo.InvariantCulture)})" : "-")) + " |");
                md.AppendLine();
            }
        }

        if (decode.Count > 0)
        {
            var models = decode.Select(r => r.Model).Distinct().ToList();
            md.AppendLine("## Decoding").AppendLine().AppendLine("ms per token / cache bytes at each context length.").AppendLine();
            md.AppendLine("| context | " + string.Join(" | ", models) + " |").AppendLine("|---|" + string.Concat(models.Select(_ => "---|")));
            foreach (int context in decode.Select(r => r.Context).Distinct().Order())
                md.AppendLine($"| {context} | " + string.Join(" | ", models.Select(m => decode.LastOrDefault(r => r.Model == m && r.Context == context) is { } r
                    ? $"{F(r.MsPerToken, "0.00")} ms / {Bytes(r.CacheBytes)}" : "-")) + " |");
            md.AppendLine();
        }

        if (images is { Count: > 0 })
        {
            md.AppendLine("## Plots").AppendLine();
            foreach (var image in images) md.AppendLine($"![{System.IO.Path.GetFileNameWithoutExtension(image)}]({image})").AppendLine();
        }
        return md.ToString();
    }

    static IEnumerable<int> Lengths(IEnumerable<EvalEntry> evals, string task) =>
        evals.SelectMany(e => e.Tasks.RecallTask(task)?.Keys.Select(key => int.TryParse(key, out int l) ? l : -1) ?? [])
             .Where(l => l > 0).Distinct().Order();

    static string Bytes(long bytes) => bytes switch
    {
        >= 1L << 30 => F(bytes / (double)(1L << 30), "0.00") + " GiB",
        >= 1L << 20 => F(bytes / (double)(1L << 20), "0.00") + " MiB",
        >= 1L << 10 => F(bytes / (double)(1L << 10), "0.0") + " KiB",
        _ => bytes + " B",
    };

    /// <summary>Writes the plots as PNGs named {stem}-*.png into <paramref name="directory"/>; returns their file names.</summary>
    public static List<string> Plots(IReadOnlyList<EvalEntry> evals, IReadOnlyList<DecodeRow> decode, string directory, string stem)
    {
        var files = new List<string>();
        foreach (var task in RecallTasks.All.Where(t => evals.Any(e => e.Tasks.RecallTask(t) is not null)))
        {
            var series = evals.Where(e => e.Tasks.RecallTask(task) is not null).Select(e =>
            {
                var lengths = Lengths([e], task).ToArray();
                return (e.Name, X: lengths.Select(l => (double)l).ToArray(), Y: lengths.Select(l => e.Tasks.RecallAt(task, l)!.Acc).ToArray());
            }).ToList();
            files.Add(LinePlot(directory, $"{stem}-recall-{task}.png", $"{task}: accuracy vs context length", "context length (tokens)",
                task == RecallTasks.Copy ? "top-1 accuracy (repeated span)" : "exact-match accuracy", series, yLimits: (-0.03, 1.05)));
        }
        if (decode.Count > 0)
        {
            var models = decode.Select(r => r.Model).Distinct().ToList();
            var byModel = models.Select(m => decode.Where(r => r.Model == m).OrderBy(r => r.Context).ToList()).ToList();
            files.Add(LinePlot(directory, $"{stem}-decode-ms.png", "decode latency vs context length", "context length (tokens)", "ms / token",
                models.Select((m, i) => (m, byModel[i].Select(r => (double)r.Context).ToArray(), byModel[i].Select(r => r.MsPerToken).ToArray())).ToList(), null));
            long largest = decode.Max(r => r.CacheBytes);
            var (unit, scale) = largest >= 1L << 30 ? ("GiB", 1L << 30) : largest >= 1L << 20 ? ("MiB", 1L << 20) : ("KiB", 1L << 10);
            files.Add(LinePlot(directory, $"{stem}-cache-bytes.png", "decoding state size vs context length", "context length (tokens)", $"cache {unit}",
                models.Select((m, i) => (m, byModel[i].Select(r => (double)r.Context).ToArray(), byModel[i].Select(r => r.CacheBytes / (double)scale).ToArray())).ToList(), null));
        }
        return files;
    }

    static string LinePlot(string directory, string file, string title, string xLabel, string yLabel,
        IReadOnlyList<(string Name, double[] X, double[] Y)> series, (double Lo, double Hi)? yLimits)
    {
        var plot = new ScottPlot.Plot();
        var palette = new ScottPlot.Palettes.Category10();
        for (int i = 0; i < series.Count; i++)
        {
            var (name, x, y) = series[i];
            if (x.Length == 0) continue;
            var line = plot.Add.Scatter(x, y, palette.GetColor(i));
            line.LegendText = name;
            line.LineWidth = 2;
            line.MarkerSize = 8;
        }
        plot.Title(title);
        plot.XLabel(xLabel);
        plot.YLabel(yLabel);
        var ticks = series.SelectMany(s => s.X).Distinct().Order().ToArray();
        if (ticks.Length > 0) plot.Axes.Bottom.SetTicks(ticks, ticks.Select(t => F(t, "0")).ToArray());
        plot.Axes.AutoScale();
        if (yLimits is { } limits) plot.Axes.SetLimitsY(limits.Lo, limits.Hi);
        else plot.Axes.SetLimitsY(0, Math.Max(1e-9, series.SelectMany(s => s.Y).DefaultIfEmpty(1).Max() * 1.1));
        plot.ShowLegend(ScottPlot.Edge.Right);                            // outside the data: curves often sit at 0 or 1
        Directory.CreateDirectory(directory);
        plot.SavePng(System.IO.Path.Combine(directory, file), 900, 500);
        return file;
    }

    /// <summary>Gathers <paramref name="inputs"/>, writes the plots beside <paramref name="markdownPath"/> and the Markdown itself.</summary>
    public static (int Models, int DecodeRows, List<string> Images) Write(IEnumerable<string> inputs, string markdownPath)
    {
        var (evals, decode) = Gather(inputs);
        string directory = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(markdownPath))!;
        var images = Plots(evals, decode, directory, System.IO.Path.GetFileNameWithoutExtension(markdownPath));
        Checkpoints.AtomicFile.WriteAllBytes(markdownPath, System.Text.Encoding.UTF8.GetBytes(Markdown(evals, decode, images)));
        return (evals.Count, decode.Count, images);
    }
}
