using System.ComponentModel;
using System.Text.Json.Nodes;
using HybridDistill.Artifacts;
using HybridDistill.Benchmarks;
using HybridDistill.Evaluation;
using HybridDistill.Models;
using Spectre.Console;
using Spectre.Console.Cli;

namespace HybridDistill.Cli.Commands;

public sealed class BenchAttentionCommand : Command<BenchAttentionCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandOption("--lengths <LIST>")]
        [Description("Sequence lengths T (default 512,2048,8192).")]
        [DefaultValue("512,2048,8192")]
        public string Lengths { get; init; } = "512,2048,8192";

        [CommandOption("--kinds <LIST>")]
        [Description("Kinds to measure: gdn, gla, swa, softmax (default: all).")]
        [DefaultValue("gdn,gla,swa,softmax")]
        public string Kinds { get; init; } = "gdn,gla,swa,softmax";

        [CommandOption("--naive-max-t <T>")]
        [Description("Skip the naive references above this length (they are slow).")]
        [DefaultValue(8192)]
        public int NaiveMaxT { get; init; } = 8192;

        [CommandOption("--naive-bwd-max-t <T>")]
        [Description("Skip the naive references' forward+backward above this length (autograd through their loops is O(T^2)).")]
        [DefaultValue(2048)]
        public int NaiveBackwardMaxT { get; init; } = 2048;

        [CommandOption("--swa-window <N>")]
        [DefaultValue(256)]
        public int SwaWindow { get; init; } = 256;

        [CommandOption("--repeats <N>")]
        [DefaultValue(3)]
        public int Repeats { get; init; } = 3;

        [CommandOption("--json [PATH]")]
        [Description("JSON on stdout, or to PATH (a directory gets bench_attention.json).")]
        public FlagValue<string>? Json { get; init; }

        [CommandOption("--device <DEVICE>")]
        [Description(CliParsing.BenchDeviceHelp)]
        [DefaultValue("cpu")]
        public string Device { get; init; } = "cpu";
    }

    public override int Execute(CommandContext context, Settings s, CancellationToken cancellation)
    {
        var lengths = CliParsing.IntList(s.Lengths, "--lengths");
        var device = ComputeDevice.Resolve(s.Device);
        var kinds = s.Kinds.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).ToHashSet();
        var unknown = kinds.Except(["gdn", "gla", "swa", "softmax"]).FirstOrDefault();
        if (unknown is not null) throw new InputException($"--kinds: unknown kind \"{unknown}\" (gdn, gla, swa, softmax).");
        bool quiet = s.Json is { IsSet: true } && string.IsNullOrEmpty(s.Json.Value);
        var progress = new SyncProgress<string>(m => { if (!quiet) CliRunner.Stderr.MarkupLineInterpolated($"[grey]{m}...[/]"); });
        var options = new AttentionBenchmark.Options(SwaWindow: s.SwaWindow, Repeats: s.Repeats, NaiveMaxT: s.NaiveMaxT, NaiveBackwardMaxT: s.NaiveBackwardMaxT,
            Device: device.Torch);
        progress.Report("machine limits (sgemm peak, read bandwidth)");
        var limits = MachineLimits.Measure(device.Torch);
        var rows = AttentionBenchmark.Run(lengths, kinds, options, progress, cancellation);
        int? crossover = AttentionBenchmark.GdnCrossover(rows);

        var table = new Table().AddColumns("kind", "path", "T", "pass", "ms", "vs naive", "vs sdpa");
        foreach (var r in rows)
        {
            var naive = rows.FirstOrDefault(x => x.Kind == r.Kind && x.Path == "naive" && x.T == r.T && x.Pass == r.Pass);
            var sdpa = rows.FirstOrDefault(x => x.Kind == "softmax" && x.T == r.T && x.Pass == r.Pass);
            table.AddRow(r.Kind, r.Path, r.T.ToString(), r.Pass, $"{r.Ms:F1}",
                naive is null || r.Path == "naive" ? "" : $"{naive.Ms / r.Ms:F1}x faster",
                sdpa is null || r.Kind == "softmax" ? "" : $"{r.Ms / sdpa.Ms:F2}x its time");
        }
        CliRunner.Stderr.Write(table);
        CliRunner.Stderr.WriteLine(MachineLimitsOutput.Line(limits));
        CliRunner.Stderr.MarkupLine(crossover is int c
            ? $"chunked GDN forward+backward is faster than SDPA from T = {c} on (among the measured lengths)."
            : "chunked GDN forward+backward was not faster than SDPA at any measured length.");

        if (s.Json is { IsSet: true })
        {
            var json = new JsonObject
            {
                ["B"] = 1, ["H"] = options.Heads, ["D"] = options.HeadDim, ["swa_window"] = options.SwaWindow,
                ["gdn_sdpa_crossover_T"] = crossover,
                ["machine"] = ArtifactJson.ToNode(limits, ArtifactJson.Types.MachineLimits),
                ["rows"] = new JsonArray(rows.Select(r => (JsonNode)new JsonObject
                {
                    ["kind"] = r.Kind, ["path"] = r.Path, ["T"] = r.T, ["pass"] = r.Pass, ["ms"] = r.Ms,
                }).ToArray()),
            };
            var written = JsonOutput.Write(json, s.Json.Value, "bench_attention.json");
            if (written is not null) CliRunner.Stderr.MarkupLineInterpolated($"[green]wrote[/] {written}");
        }
        return 0;
    }
}
