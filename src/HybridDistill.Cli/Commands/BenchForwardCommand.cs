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

public sealed class BenchForwardCommand : Command<BenchForwardCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandOption("--model <DIR>")]
        [Description("Model directory to measure.")]
        public string? Model { get; init; }

        [CommandOption("--config <JSON>")]
        [Description("A config.json to build a random-weight model from (instead of --model).")]
        public string? Config { get; init; }

        [CommandOption("--tokens <T>")]
        [Description("Prefill sequence length (default: 1024, capped at the model's context).")]
        public int? Tokens { get; init; }

        [CommandOption("--batch <B>")]
        [DefaultValue(1)]
        public int Batch { get; init; } = 1;

        [CommandOption("--decode-contexts <LIST>")]
        [Description("Comma-separated context lengths for decode ms/token (default: 128 and the prefill length).")]
        public string? DecodeContexts { get; init; }

        [CommandOption("--json")]
        [Description("Print one JSON object on stdout.")]
        public bool Json { get; init; }

        [CommandOption("--device <DEVICE>")]
        [Description(CliParsing.BenchDeviceHelp)]
        [DefaultValue("cpu")]
        public string Device { get; init; } = "cpu";

        public override ValidationResult Validate() =>
            (Model is null) == (Config is null)
                ? ValidationResult.Error("give exactly one of --model DIR or --config JSON.")
                : Batch < 1 ? ValidationResult.Error("--batch must be >= 1.") : ValidationResult.Success();
    }

    public override int Execute(CommandContext context, Settings s, CancellationToken cancellation)
    {
        using var model = LoadOrBuild(s.Model, s.Config, ComputeDevice.Resolve(s.Device));
        int tokens = s.Tokens ?? Math.Min(1024, model.Config.MaxPositionEmbeddings);
        var contexts = s.DecodeContexts is null
            ? new[] { 128, tokens }.Where(c => c + 17 <= model.Config.MaxPositionEmbeddings).Distinct().ToArray()
            : CliParsing.IntList(s.DecodeContexts, "--decode-contexts");
        var progress = new SyncProgress<string>(m => CliRunner.Stderr.MarkupLineInterpolated($"[grey]{m}...[/]"));
        var r = ForwardBenchmark.Run(model, tokens, s.Batch, contexts, progress: progress);

        if (s.Json)
        {
            var json = new JsonObject
            {
                ["model"] = s.Model ?? s.Config,
                ["batch"] = r.Batch,
                ["tokens"] = r.Tokens,
                ["prefill_ms"] = r.PrefillMs,
                ["prefill_tokens_per_s"] = r.PrefillTokensPerSecond,
                ["model_gflops_per_token"] = r.ModelGflopsPerToken,
                ["achieved_gflops"] = r.AchievedGflops,
                ["matmul_gflops"] = r.MatmulGflops,
                ["achieved_fraction_of_matmul"] = r.AchievedGflops / r.MatmulGflops,
                ["sgemm_peak_gflops"] = r.Limits.SgemmPeakGflops,
                ["achieved_fraction_of_sgemm_peak"] = r.FractionOfSgemmPeak,
                ["read_bandwidth_gbps"] = r.Limits.ReadBandwidthGBps,
                ["decode_weight_bytes"] = r.DecodeWeightBytes,
                ["decode_bound_ms"] = new JsonObject(r.DecodeMsPerToken.Keys.Select(k => KeyValuePair.Create(k.ToString(), (JsonNode?)r.DecodeBoundMs(k)))),
                ["decode_fraction_of_bandwidth"] = new JsonObject(r.DecodeMsPerToken.Keys.Select(k => KeyValuePair.Create(k.ToString(), (JsonNode?)r.DecodeFractionOfBandwidth(k)))),
                ["decode_ms_per_token"] = new JsonObject(r.DecodeMsPerToken.Select(p => KeyValuePair.Create(p.Key.ToString(), (JsonNode?)p.Value))),
                ["decode_cache_bytes"] = new JsonObject(r.DecodeCacheBytes.Select(p => KeyValuePair.Create(p.Key.ToString(), (JsonNode?)p.Value))),
            };
            CliRunner.Stdout.WriteLine(json.ToJsonString(JsonOptions.Indented));
            return 0;
        }
        var table = new Table().AddColumn("measure").AddColumn(new TableColumn("value").RightAligned());
        table.AddRow("prefill", $"{r.Batch} x {r.Tokens} tokens in {r.PrefillMs:F1} ms");
        table.AddRow("prefill tokens/s", $"{r.PrefillTokensPerSecond:F0}");
        table.AddRow("model GFLOP/token", $"{r.ModelGflopsPerToken:F4}");
        MachineLimitsOutput.AddThroughputRows(table, r.AchievedGflops, r.MatmulGflops, r.Limits);
        table.AddRow("read bandwidth GB/s (same run)", $"{r.Limits.ReadBandwidthGBps:F1}");
        table.AddRow("decode weights read per token", $"{r.DecodeWeightBytes / 1e6:F1} MB");
        foreach (var (ctx, ms) in r.DecodeMsPerToken)
            table.AddRow($"decode ms/token @ {ctx}",
                $"{ms:F2} ({r.DecodeCacheBytes[ctx] / 1048576.0:F1} MiB cache; bound {r.DecodeBoundMs(ctx):F2} ms = {r.DecodeFractionOfBandwidth(ctx):P0} of bandwidth)");
        AnsiConsole.Write(table);
        return 0;
    }

    /// <summary>A model directory, or a random-weight model (seed 0) built from a config.json; on <paramref name="device"/>
    /// (default: the CPU; built there, then moved).</summary>
    public static HybridCausalLM LoadOrBuild(string? modelDir, string? configPath, ComputeDevice? device = null)
    {
        device ??= ComputeDevice.Cpu;
        if (modelDir is not null) return HfCheckpoint.Load(modelDir, device.Torch);
        var model = new HybridCausalLM(ModelConfig.Load(configPath!));
        model.InitializeWeights(seed: 0);
        if (!device.IsCpu) model.to(device.Torch);
        model.eval();
        return model;
    }
}
