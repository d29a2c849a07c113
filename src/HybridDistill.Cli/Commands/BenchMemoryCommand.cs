using System.ComponentModel;
using System.Text.Json.Nodes;
using HybridDistill.Benchmarks;
using HybridDistill.Evaluation;
using HybridDistill.Models;
using Spectre.Console;
using Spectre.Console.Cli;

namespace HybridDistill.Cli.Commands;

public sealed class BenchMemoryCommand : Command<BenchMemoryCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandOption("--model <DIR>")]
        public string? Model { get; init; }

        [CommandOption("--config <JSON>")]
        [Description("Config of a random-weight model (default: configs/bench-d512.json).")]
        public string? Config { get; init; }

        [CommandOption("--tokens <N>")]
        [DefaultValue(2000)]
        public int Tokens { get; init; } = 2000;

        [CommandOption("--json")]
        public bool Json { get; init; }

        [CommandOption("--device <DEVICE>")]
        [Description(CliParsing.DeviceHelp + " The resident size is host memory: on cuda the cache is in GPU memory and not in it.")]
        [DefaultValue("cpu")]
        public string Device { get; init; } = "cpu";
    }

    public override int Execute(CommandContext context, Settings s, CancellationToken cancellation)
    {
        var device = ComputeDevice.Resolve(s.Device);
        using var model = BenchForwardCommand.LoadOrBuild(s.Model,
            s.Model is null ? s.Config ?? Path.Combine(RunCommand.RepositoryRoot(), "configs", "bench-d512.json") : null, device);
        var progress = new SyncProgress<int>(n => { if (!s.Json && n % 500 == 0) CliRunner.Stderr.MarkupLineInterpolated($"[grey]{n} tokens...[/]"); });
        var r = MemoryBenchmark.Decode(model, s.Tokens, progress: progress);
        const double MiB = 1048576.0;
        if (s.Json)
        {
            CliRunner.Stdout.WriteLine(new JsonObject
            {
                ["tokens"] = r.Tokens, ["warmup_tokens"] = r.WarmupTokens,
                ["rss_after_warmup_bytes"] = r.RssAfterWarmup, ["rss_at_end_bytes"] = r.RssAtEnd,
                ["rss_growth_bytes"] = r.RssGrowth, ["cache_growth_bytes"] = r.CacheGrowth, ["excess_bytes"] = r.Excess,
            }.ToJsonString(HybridDistill.Config.JsonOptions.Indented));
            return 0;
        }
        var table = new Table().AddColumn("measure").AddColumn(new TableColumn("MiB").RightAligned());
        table.AddRow($"RSS after {r.WarmupTokens} tokens", $"{r.RssAfterWarmup / MiB:F1}");
        table.AddRow($"RSS after {r.Tokens} tokens", $"{r.RssAtEnd / MiB:F1}");
        table.AddRow("RSS growth", $"{r.RssGrowth / MiB:F1}");
        table.AddRow("KV-cache bytes added", $"{r.CacheGrowth / MiB:F1}");
        table.AddRow("growth beyond the cache", $"{r.Excess / MiB:F1}");
        AnsiConsole.Write(table);
        return 0;
    }
}
