using System.ComponentModel;
using HybridDistill.Data;
using Spectre.Console;
using Spectre.Console.Cli;

namespace HybridDistill.Cli.Commands;

/// <summary>`hybrid corpus synth`: a deterministic synthetic corpus that teaches in-context recall (<see cref="SyntheticCorpus"/>).</summary>
public sealed class CorpusSynthCommand : Command<CorpusSynthCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandOption("--recipe <FILE>")]
        [Description("Corpus recipe JSON (tokenizer, text, seed, seq_len, train_windows, mix, ...; see recipes/corpus-recall.json).")]
        public string Recipe { get; init; } = "";

        [CommandOption("--out <DIR>")]
        [Description("Output directory: train.bin, val.bin, train.classes.bin, val.classes.bin, heldout.txt, manifest.json.")]
        public string Out { get; init; } = "";

        public override ValidationResult Validate() =>
            string.IsNullOrEmpty(Recipe) ? ValidationResult.Error("--recipe FILE is required.")
            : string.IsNullOrEmpty(Out) ? ValidationResult.Error("--out DIR is required.")
            : ValidationResult.Success();
    }

    public override int Execute(CommandContext context, Settings s, CancellationToken cancellation)
    {
        var recipe = SynthRecipe.Load(s.Recipe);
        var progress = new SyncProgress<string>(m => CliRunner.Stderr.MarkupLineInterpolated($"[grey]{m}[/]"));
        var manifest = SyntheticCorpus.Build(recipe, s.Out, progress, cancellation);
        CliRunner.Stderr.WriteLine(
            $"{manifest.Train.Documents:N0} training and {manifest.Val.Documents:N0} validation windows of {recipe.SeqLen} tokens " +
            $"({manifest.Train.Tokens + manifest.Val.Tokens:N0} tokens); held-out text in {SyntheticCorpus.HeldoutFile}");
        CliRunner.Stdout.WriteLine(Path.Combine(Path.GetFullPath(s.Out), CorpusManifest.FileName));
        return 0;
    }
}
