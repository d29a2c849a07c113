using System.ComponentModel;
using System.Text.Json.Nodes;
using HybridDistill.Benchmarks;
using HybridDistill.Config;
using HybridDistill.Evaluation;
using HybridDistill.Models;
using Spectre.Console;
using Spectre.Console.Cli;

namespace HybridDistill.Cli.Commands;

public sealed class BenchTrainCommand : Command<BenchTrainCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandOption("--config <JSON>")]
        [Description("A config.json to build the random-weight teacher from (e.g. configs/bench-d512.json).")]
        public string Config { get; init; } = "";

        [CommandOption("--stage <N>")]
        [Description("1: alignment of an all-GDN student; 2: KL distillation of the 25% hybrid (softmax at layers 3, 7, ...).")]
        [DefaultValue(2)]
        public int Stage { get; init; } = 2;

        [CommandOption("--seq <T>")]
        [DefaultValue(512)]
        public int Seq { get; init; } = 512;

        [CommandOption("--batch <B>")]
        [DefaultValue(4)]
        public int Batch { get; init; } = 4;

        [CommandOption("--steps <N>")]
        [Description("Timed steps after one warm-up step (the median step and its phases are reported).")]
        [DefaultValue(3)]
        public int Steps { get; init; } = 3;

        [CommandOption("--threads <N>")]
        [Description("Torch intra-op threads (default: libtorch's choice, one per core).")]
        public int? Threads { get; init; }

        [CommandOption("--json")]
        [Description("Print one JSON object on stdout.")]
        public bool Json { get; init; }

        [CommandOption("--device <DEVICE>")]
        [Description(CliParsing.BenchDeviceHelp + " The per-phase split is not synchronised (on cuda it shows launch times).")]
        [DefaultValue("cpu")]
        public string Device { get; init; } = "cpu";

        public override ValidationResult Validate() =>
            string.IsNullOrEmpty(Config) ? ValidationResult.Error("--config JSON is required.")
            : Seq < 1 || Batch < 1 || Steps < 1 ? ValidationResult.Error("--seq, --batch and --steps must be >= 1.")
            : ValidationResult.Success();
    }

    public override int Execute(CommandContext context, Settings s, CancellationToken cancellation)
    {
        var device = ComputeDevice.Resolve(s.Device);
        var config = ModelConfig.Load(s.Config);
        if (s.Threads is int threads) TorchSharp.torch.set_num_threads(threads);
        var progress = new SyncProgress<string>(m => CliRunner.Stderr.MarkupLineInterpolated($"[grey]{m}...[/]"));
        var r = TrainBenchmark.Run(config, s.Stage, s.Seq, s.Batch, s.Steps, progress, device.Torch);
        if (s.Json)
        {
            var json = new JsonObject
            {
                ["config"] = s.Config,
                ["stage"] = r.Stage,
                ["seq"] = r.Seq,
                ["batch"] = r.Batch,
                ["layer_types"] = new JsonArray(r.LayerTypes.Select(t => (JsonNode)t).ToArray()),
                ["steps"] = r.Steps,
                ["threads"] = TorchSharp.torch.get_num_threads(),
                ["step_ms"] = r.StepMs,
                ["tokens_per_s"] = r.TokensPerSecond,
                ["phase_ms"] = new JsonObject(r.PhaseMs.Select(p => KeyValuePair.Create(p.Key, (JsonNode?)p.Value))),
                ["teacher_gflop_per_token"] = r.TeacherGflopPerToken,
                ["student_forward_gflop_per_token"] = r.StudentForwardGflopPerToken,
                ["achieved_gflops"] = r.AchievedGflops,
                ["matmul_gflops"] = r.MatmulGflops,
                ["achieved_fraction_of_matmul"] = r.AchievedGflops / r.MatmulGflops,
                ["sgemm_peak_gflops"] = r.Limits.SgemmPeakGflops,
                ["read_bandwidth_gbps"] = r.Limits.ReadBandwidthGBps,
                ["achieved_fraction_of_sgemm_peak"] = r.FractionOfSgemmPeak,
                ["optimizer_fraction_of_step"] = r.OptimizerFraction,
                ["optimizer_bytes"] = r.OptimizerBytes,
                ["optimizer_floor_ms"] = r.OptimizerFloorMs,
            };
            CliRunner.Stdout.WriteLine(json.ToJsonString(JsonOptions.Indented));
            return 0;
        }
        var table = new Table().AddColumn("measure").AddColumn(new TableColumn("value").RightAligned());
        table.AddRow("stage / student", $"{r.Stage} / {string.Join(",", r.LayerTypes)}");
        table.AddRow("step", $"{r.Batch} x {r.Seq} tokens in {r.StepMs:F0} ms (median of {r.Steps})");
        table.AddRow("tokens/s", $"{r.TokensPerSecond:F0}");
        foreach (var (phase, ms) in r.PhaseMs) table.AddRow($"  {phase} ms", $"{ms:F0}");
        table.AddRow("  optimizer share of the step", $"{r.OptimizerFraction:P1}");
        table.AddRow("  optimizer floor ms (bytes / read bandwidth)", $"{r.OptimizerFloorMs:F0} ({r.OptimizerBytes / 1e9:F2} GB)");
        table.AddRow("GFLOP/token teacher fwd / student fwd", $"{r.TeacherGflopPerToken:F4} / {r.StudentForwardGflopPerToken:F4}");
        MachineLimitsOutput.AddThroughputRows(table, r.AchievedGflops, r.MatmulGflops, r.Limits);
        AnsiConsole.Write(table);
        return 0;
    }
}
