using System.ComponentModel;
using System.Text.Json.Nodes;
using HybridDistill.Config;
using HybridDistill.Evaluation;
using HybridDistill.Generation;
using HybridDistill.Models;
using Spectre.Console;
using Spectre.Console.Cli;

namespace HybridDistill.Cli.Commands;

/// <summary>
/// The main job. Until the distillation pipeline lands this is a self-contained demo that needs nothing
/// outside the repository: a random-weight model from configs/demo-tiny.json decodes with and without its
/// cache (they must agree), then the forward benchmark runs on it. Results go to OUT/run.json.
/// </summary>
public sealed class RunCommand : Command<RunCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandOption("--config <JSON>")]
        [Description("Model config to build the demo model from (default: configs/demo-tiny.json in the repository).")]
        public string? Config { get; init; }

        [CommandOption("--out <DIR>")]
        [Description("Output directory (default: out/run).")]
        [DefaultValue("out/run")]
        public string Out { get; init; } = "out/run";
    }

    public override int Execute(CommandContext context, Settings s, CancellationToken cancellation)
    {
        string configPath = s.Config ?? Path.Combine(RepositoryRoot(), "configs", "demo-tiny.json");
        var config = ModelConfig.Load(configPath);
        var err = CliRunner.Stderr;
        err.MarkupLineInterpolated($"[bold]HybridDistill demo[/] on a random-weight {config.ModelType} ({config.NumHiddenLayers} layers, d={config.HiddenSize}) from {configPath}");

        using var model = new HybridCausalLM(config);
        model.InitializeWeights(seed: 0, std: 0.1);
        model.eval();
        int bos = config.BosTokenId ?? 1;
        var options = new SamplingOptions { MaxNewTokens = 48 };
        var cached = TokenGenerator.Generate(model, [bos], options, useCache: true).ToList();
        var reference = TokenGenerator.Generate(model, [bos], options, useCache: false).ToList();
        bool agree = cached.SequenceEqual(reference);
        err.MarkupLineInterpolated($"greedy decoding, 48 tokens: cached and full-forward paths {(agree ? "[green]agree[/]" : "[red]DISAGREE[/]")}");
        err.MarkupLineInterpolated($"tokens: {string.Join(' ', cached)}");

        var progress = new SyncProgress<string>(m => err.MarkupLineInterpolated($"[grey]{m}...[/]"));
        var bench = ForwardBenchmark.Run(model, Math.Min(256, config.MaxPositionEmbeddings - 32), 1, [128], progress: progress);
        var table = new Table().AddColumn("measure").AddColumn(new TableColumn("value").RightAligned());
        table.AddRow("prefill tokens/s", $"{bench.PrefillTokensPerSecond:F0}");
        table.AddRow("achieved / matmul GFLOP/s", $"{bench.AchievedGflops:F1} / {bench.MatmulGflops:F1}");
        table.AddRow("decode ms/token @ 128", $"{bench.DecodeMsPerToken[128]:F2}");
        err.Write(table);

        Directory.CreateDirectory(s.Out);
        var json = new JsonObject
        {
            ["config"] = Path.GetFullPath(configPath),
            ["greedy_tokens"] = new JsonArray(cached.Select(t => (JsonNode)t).ToArray()),
            ["cached_equals_full_forward"] = agree,
            ["prefill_tokens_per_s"] = bench.PrefillTokensPerSecond,
            ["achieved_gflops"] = bench.AchievedGflops,
            ["matmul_gflops"] = bench.MatmulGflops,
            ["decode_ms_per_token_128"] = bench.DecodeMsPerToken[128],
        };
        var path = Path.Combine(s.Out, "run.json");
        File.WriteAllText(path, json.ToJsonString(JsonOptions.Indented));
        err.MarkupLineInterpolated($"[green]wrote[/] {Path.GetFullPath(path)}");
        return agree ? 0 : 1;
    }

    /// <summary>The repository root (where HybridDistill.sln is), found upwards from the executable.</summary>
    public static string RepositoryRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir != null && !File.Exists(Path.Combine(dir.FullName, "HybridDistill.sln"))) dir = dir.Parent;
        return dir?.FullName ?? Directory.GetCurrentDirectory();
    }
}
