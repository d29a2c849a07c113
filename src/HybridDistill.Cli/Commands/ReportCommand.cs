using System.ComponentModel;
using HybridDistill.Evaluation;
using Spectre.Console;
using Spectre.Console.Cli;

namespace HybridDistill.Cli.Commands;

public sealed class ReportCommand : Command<ReportCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandArgument(0, "<DIR>")]
        [Description("Directories (searched recursively) or files holding eval.json / bench_decode.json.")]
        public string[] Inputs { get; init; } = [];

        [CommandOption("--out <FILE>")]
        [Description("Markdown file to write; the PNG plots go beside it ({stem}-*.png).")]
        [DefaultValue("report.md")]
        public string Out { get; init; } = "report.md";

        public override ValidationResult Validate() =>
            Inputs.Length == 0 ? ValidationResult.Error("name at least one directory.") : ValidationResult.Success();
    }

    public override int Execute(CommandContext context, Settings s, CancellationToken cancellation)
    {
        var (models, rows, images) = EvalReport.Write(s.Inputs, s.Out);
        CliRunner.Stderr.MarkupLineInterpolated($"wrote [bold]{s.Out}[/]: {models} evaluations, {rows} decode rows, {images.Count} plots");
        foreach (var image in images) CliRunner.Stdout.WriteLine(Path.Combine(Path.GetDirectoryName(Path.GetFullPath(s.Out))!, image));
        return 0;
    }
}
