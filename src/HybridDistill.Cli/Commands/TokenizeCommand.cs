using System.ComponentModel;
using HybridDistill.Config;
using HybridDistill.Data;
using Spectre.Console;
using Spectre.Console.Cli;

namespace HybridDistill.Cli.Commands;

public sealed class TokenizeCommand : Command<TokenizeCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandOption("--model <DIR>")]
        [Description("Model directory whose tokenizer to use (the teacher).")]
        public string Model { get; init; } = "";

        [CommandOption("--input <PATH>")]
        [Description("Text file, folder of text files (.txt .text .md .raw .jsonl) or JSONL file with a \"text\" field; repeatable.")]
        public string[] Inputs { get; init; } = [];

        [CommandOption("--out <DIR>")]
        [Description("Output directory: train.bin, val.bin (uint32 LE tokens) and manifest.json.")]
        public string Out { get; init; } = "";

        [CommandOption("--split <MODE>")]
        [Description("Documents of a text file: \"paragraphs\" (blank-line separated, default) or \"files\" (one per file).")]
        [DefaultValue(DocumentSplits.Paragraphs)]
        public string Split { get; init; } = DocumentSplits.Paragraphs;

        [CommandOption("--field <NAME>")]
        [Description("JSONL field holding the text.")]
        [DefaultValue("text")]
        public string Field { get; init; } = "text";

        [CommandOption("--val-fraction <F>")]
        [Description("Fraction of documents held out for validation.")]
        [DefaultValue(0.05)]
        public double ValFraction { get; init; } = 0.05;

        [CommandOption("--min-val-tokens <N>")]
        [Description("Hold out more documents until validation has at least N tokens.")]
        [DefaultValue(4096L)]
        public long MinValTokens { get; init; } = 4096;

        [CommandOption("--seed <S>")]
        [Description("Seed of the choice of validation documents.")]
        [DefaultValue(0L)]
        public long Seed { get; init; }

        public override ValidationResult Validate() =>
            string.IsNullOrEmpty(Model) ? ValidationResult.Error("--model DIR is required.")
            : Inputs.Length == 0 ? ValidationResult.Error("--input PATH is required (repeat it for several inputs).")
            : string.IsNullOrEmpty(Out) ? ValidationResult.Error("--out DIR is required.")
            : ValidationResult.Success();
    }

    public override int Execute(CommandContext context, Settings s, CancellationToken cancellation)
    {
        var options = new TokenizeOptions
        {
            ValFraction = s.ValFraction, MinValTokens = s.MinValTokens, Seed = s.Seed, DocumentSplit = s.Split, JsonlField = s.Field,
        };
        var progress = new SyncProgress<string>(m => CliRunner.Stderr.MarkupLineInterpolated($"[grey]{m}[/]"));
        var manifest = CorpusBuilder.Build(s.Model, s.Inputs, s.Out, options, progress, cancellation);
        CliRunner.Stderr.WriteLine(
            $"{manifest.Train.Tokens + manifest.Val.Tokens:N0} tokens in {manifest.Train.Documents + manifest.Val.Documents:N0} documents " +
            $"({manifest.Separator}); validation {manifest.Val.Tokens:N0} tokens in {manifest.Val.Documents:N0} documents");
        CliRunner.Stdout.WriteLine(Path.Combine(Path.GetFullPath(s.Out), CorpusManifest.FileName));
        return 0;
    }
}
