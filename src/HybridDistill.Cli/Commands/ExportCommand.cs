using System.ComponentModel;
using HybridDistill.Checkpoints;
using Spectre.Console;
using Spectre.Console.Cli;

namespace HybridDistill.Cli.Commands;

/// <summary><c>hybrid export --format fla</c>: a GDN/softmax hybrid as flash-linear-attention's Gated DeltaNet model directory.</summary>
public sealed class ExportCommand : Command<ExportCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandOption("--model <DIR>")]
        [Description("The model directory to export (a hybrid of gdn and softmax layers, or a finished run directory).")]
        public string Model { get; init; } = "";

        [CommandOption("--format <FORMAT>")]
        [Description("Output format: fla (flash-linear-attention's gated_deltanet model, " + FlaFormat.FlaVersion + ").")]
        public string Format { get; init; } = "";

        [CommandOption("--out <DIR>")]
        [Description("Directory to write: config.json, model.safetensors (or shards + index), tokenizer files, tokenizer_config.json.")]
        public string Out { get; init; } = "";

        [CommandOption("--max-shard-mb <MB>")]
        [Description("Largest weight file in MiB; bigger models are written as shards with model.safetensors.index.json (default 4096).")]
        [DefaultValue(4096)]
        public int MaxShardMb { get; init; } = 4096;

        [CommandOption("--verify")]
        [Description("Read the written directory back and compare with the model: logits max abs difference and greedy generation.")]
        public bool Verify { get; init; }

        [CommandOption("--force")]
        [Description("Replace --out if it exists.")]
        public bool Force { get; init; }

        public override ValidationResult Validate()
        {
            if (string.IsNullOrEmpty(Model)) return ValidationResult.Error("--model DIR is required.");
            if (string.IsNullOrEmpty(Out)) return ValidationResult.Error("--out DIR is required.");
            if (Format != "fla") return ValidationResult.Error($"--format {(Format == "" ? "FORMAT is required" : $"\"{Format}\" is not supported")}: the one format is fla.");
            return MaxShardMb > 0 ? ValidationResult.Success() : ValidationResult.Error("--max-shard-mb must be positive.");
        }
    }

    public override int Execute(CommandContext context, Settings s, CancellationToken cancellation)
    {
        var source = HfCheckpoint.ResolveModelDirectory(s.Model);
        using var model = HfCheckpoint.Load(source);
        try { FlaFormat.ToFlaConfig(model.Config); }
        catch (InputException e) { throw new InputException($"{Path.Combine(source, "config.json")}: {e.Message}", e); }
        OutputDirectory.WriteAtomically(s.Out, s.Force, tmp => FlaFormat.Export(model, tmp, source, (long)s.MaxShardMb << 20));
        var kinds = model.Config.LayerTypes;
        CliRunner.Stderr.MarkupLineInterpolated(
            $"[green]wrote[/] {Path.GetFullPath(s.Out)} ({FlaFormat.ModelType}, {FlaFormat.FlaVersion}): gdn layers {string.Join(",", Indices(kinds, "gdn"))}, attn layers {string.Join(",", Indices(kinds, "softmax"))}");
        if (s.Verify)
        {
            using var back = FlaFormat.Load(s.Out);
            Report(FlaFormat.Compare(model, back));
        }
        return 0;
    }

    static IEnumerable<int> Indices(IReadOnlyList<string> kinds, string kind) =>
        kinds.Select((k, i) => (k, i)).Where(p => p.k == kind).Select(p => p.i);

    internal static void Report(FlaFormat.OutputComparison c) =>
        CliRunner.Stderr.MarkupLineInterpolated(
            $"verify: logits max abs difference {c.MaxAbsLogitDifference:G3} over {c.ProbeTokens} tokens; greedy {c.GreedyTokens} tokens {(c.GreedyIdentical ? "identical" : "DIFFERENT")}");
}
