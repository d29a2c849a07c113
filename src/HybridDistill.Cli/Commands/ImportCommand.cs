using System.ComponentModel;
using HybridDistill.Checkpoints;
using Spectre.Console;
using Spectre.Console.Cli;

namespace HybridDistill.Cli.Commands;

/// <summary><c>hybrid import --format fla</c>: flash-linear-attention's Gated DeltaNet model directory as this project's model directory.</summary>
public sealed class ImportCommand : Command<ImportCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandOption("--format <FORMAT>")]
        [Description("Input format: fla (a GatedDeltaNetForCausalLM directory of flash-linear-attention, " + FlaFormat.FlaVersion + ").")]
        public string Format { get; init; } = "";

        [CommandOption("--model <DIR>")]
        [Description("The directory to read (fla's save_pretrained output, or hybrid export --format fla).")]
        public string Model { get; init; } = "";

        [CommandOption("--out <DIR>")]
        [Description("Directory to write the model to (Hugging Face layout, a hybrid config; tokenizer files copied).")]
        public string Out { get; init; } = "";

        [CommandOption("--verify")]
        [Description("Load the written model and compare with the fla directory as read: logits max abs difference and greedy generation.")]
        public bool Verify { get; init; }

        [CommandOption("--force")]
        [Description("Replace --out if it exists.")]
        public bool Force { get; init; }

        public override ValidationResult Validate()
        {
            if (string.IsNullOrEmpty(Model)) return ValidationResult.Error("--model DIR is required.");
            if (string.IsNullOrEmpty(Out)) return ValidationResult.Error("--out DIR is required.");
            return Format == "fla" ? ValidationResult.Success()
                : ValidationResult.Error($"--format {(Format == "" ? "FORMAT is required" : $"\"{Format}\" is not supported")}: the one format is fla.");
        }
    }

    public override int Execute(CommandContext context, Settings s, CancellationToken cancellation)
    {
        using var model = FlaFormat.Load(s.Model);
        OutputDirectory.WriteAtomically(s.Out, s.Force, tmp => HfCheckpoint.Save(model, tmp, tokenizerSource: Path.GetFullPath(s.Model)));
        CliRunner.Stderr.MarkupLineInterpolated(
            $"[green]wrote[/] {Path.GetFullPath(s.Out)}: layer_types {string.Join(",", model.Config.LayerTypes)}");
        if (s.Verify)
        {
            using var back = HfCheckpoint.Load(s.Out);
            ExportCommand.Report(FlaFormat.Compare(model, back));
        }
        return 0;
    }
}
