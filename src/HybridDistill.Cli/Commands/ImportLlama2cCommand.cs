using System.ComponentModel;
using HybridDistill.Checkpoints;
using HybridDistill.Models;
using Spectre.Console;
using Spectre.Console.Cli;

namespace HybridDistill.Cli.Commands;

public sealed class ImportLlama2cCommand : Command<ImportLlama2cCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandArgument(0, "<IN.bin>")]
        [Description("llama2.c checkpoint (\"v0\" format: 7-int header then fp32 weights).")]
        public string Input { get; init; } = "";

        [CommandArgument(1, "<OUT_DIR>")]
        [Description("Directory to write (config.json, model.safetensors, tokenizer.model).")]
        public string Output { get; init; } = "";

        [CommandOption("--tokenizer <TOKENIZER.model>")]
        [Description("The model's SentencePiece tokenizer.model file.")]
        public string Tokenizer { get; init; } = "";

        public override Spectre.Console.ValidationResult Validate() =>
            string.IsNullOrEmpty(Tokenizer)
                ? Spectre.Console.ValidationResult.Error("--tokenizer TOKENIZER.model is required (the SentencePiece model file).")
                : Spectre.Console.ValidationResult.Success();
    }

    public override int Execute(CommandContext context, Settings s, CancellationToken cancellation)
    {
        Llama2cImporter.Import(s.Input, s.Output, s.Tokenizer);
        CliRunner.Stderr.MarkupLineInterpolated($"[green]wrote[/] {Path.GetFullPath(s.Output)}");
        return 0;
    }
}
