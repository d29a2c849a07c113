using System.ComponentModel;
using System.Text.Json.Nodes;
using HybridDistill.Benchmarks;
using HybridDistill.Checkpoints;
using HybridDistill.Config;
using HybridDistill.Evaluation;
using HybridDistill.Models;
using TorchSharp;
using Spectre.Console;
using Spectre.Console.Cli;

namespace HybridDistill.Cli.Commands;

public sealed class BenchDecodeCommand : Command<BenchDecodeCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandOption("--model <DIR>")]
        [Description("Model directories to measure (repeatable; the first is the reference). Default: a random-weight teacher from --config and its 25% and 12.5% GDN hybrids.")]
        public string[] Models { get; init; } = [];

        [CommandOption("--config <JSON>")]
        [Description("Teacher config for the default models (default: configs/bench-d512.json).")]
        public string? Config { get; init; }

        [CommandOption("--contexts <LIST>")]
        [Description("Context lengths (default 512,2048,8192,16384).")]
        [DefaultValue("512,2048,8192,16384")]
        public string Contexts { get; init; } = "512,2048,8192,16384";

        [CommandOption("--steps <N>")]
        [Description("Timed decode steps per model per round.")]
        [DefaultValue(8)]
        public int Steps { get; init; } = 8;

        [CommandOption("--rounds <N>")]
        [Description("Interleaved rounds (A B C A B C ...).")]
        [DefaultValue(3)]
        public int Rounds { get; init; } = 3;

        [CommandOption("--json [PATH]")]
        [Description("JSON on stdout, or to PATH (a directory gets bench_decode.json).")]
        public FlagValue<string>? Json { get; init; }

        [CommandOption("--device <DEVICE>")]
        [Description(CliParsing.BenchDeviceHelp)]
        [DefaultValue("cpu")]
        public string Device { get; init; } = "cpu";

        public override ValidationResult Validate() =>
            Steps < 1 || Rounds < 1 ? ValidationResult.Error("--steps and --rounds must be >= 1 (each row is the median of steps x rounds timed steps).")
            : ValidationResult.Success();
    }

    public override int Execute(CommandContext context, Settings s, CancellationToken cancellation)
    {
        var contexts = CliParsing.IntList(s.Contexts, "--contexts");
        var device = ComputeDevice.Resolve(s.Device);
        var models = new List<(string Name, HybridCausalLM Model)>();
        try
        {
            if (s.Models.Length > 0)
                foreach (var dir in s.Models) models.Add((Path.GetFileName(Path.GetFullPath(dir).TrimEnd('/')), HfCheckpoint.Load(dir)));
            else
            {
                var config = ModelConfig.Load(s.Config ?? Path.Combine(RunCommand.RepositoryRoot(), "configs", "bench-d512.json"));
                models.AddRange(DecodeBenchmark.DefaultLineup(config));
            }
            foreach (var (_, m) in models)
            {
                if (!device.IsCpu) m.to(device.Torch);                                  // built or loaded on the CPU, then moved
                m.eval();
            }
            bool quiet = s.Json is { IsSet: true } && string.IsNullOrEmpty(s.Json.Value);
            var progress = new SyncProgress<string>(m => { if (!quiet) CliRunner.Stderr.MarkupLineInterpolated($"[grey]{m}...[/]"); });
            progress.Report("machine limits (sgemm peak, read bandwidth)");
            var limits = MachineLimits.Measure(device.Torch);
            var rows = DecodeBenchmark.Run(models, contexts, s.Steps, s.Rounds, progress, cancellation);
            Render(rows, models[0].Name, limits);
            if (s.Json is { IsSet: true })
            {
                var written = JsonOutput.Write(DecodeBenchFile.Of(rows, limits).ToJson(), s.Json.Value, "bench_decode.json");
                if (written is not null) CliRunner.Stderr.MarkupLineInterpolated($"[green]wrote[/] {written}");
            }
        }
        finally
        {
            foreach (var (_, m) in models) m.Dispose();
        }
        return 0;
    }

    /// <summary>Table on stderr: each model's ms/token and cache, with speed-up and cache fraction against the reference and the bound implied by bytes read per token.</summary>
    private static void Render(IReadOnlyList<DecodeRow> rows, string reference, MachineLimits limits)
    {
        var table = new Table().AddColumns("model", "context", "ms/token", "tokens/s", "cache MiB", "speed-up", "bytes bound", "cache fraction", "of bandwidth", "weights of bandwidth");
        foreach (var r in rows)
        {
            var baseline = rows.First(x => x.Model == reference && x.Context == r.Context);
            table.AddRow(r.Model, r.Context.ToString(), $"{r.MsPerToken:F2}", $"{1000 / r.MsPerToken:F1}", $"{r.CacheBytes / 1048576.0:F1}",
                $"{baseline.MsPerToken / r.MsPerToken:F2}x", $"{(double)baseline.BytesPerToken / r.BytesPerToken:F2}x",
                baseline.CacheBytes == 0 ? "-" : $"{(double)r.CacheBytes / baseline.CacheBytes:P1}",
                $"{limits.ReadMs(r.BytesPerToken) / r.MsPerToken:P0}", $"{limits.ReadMs(r.WeightBytes) / r.MsPerToken:P0}");
        }
        CliRunner.Stderr.Write(table);
        CliRunner.Stderr.WriteLine(MachineLimitsOutput.Line(limits) + "; ms/token = median step; \"of bandwidth\" = bytes read per token (weights and cache; \"weights of\": weights only) / read bandwidth / ms per token");
    }
}
