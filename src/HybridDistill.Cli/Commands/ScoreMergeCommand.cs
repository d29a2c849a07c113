using System.ComponentModel;
using HybridDistill.Selection;
using Spectre.Console;
using Spectre.Console.Cli;

namespace HybridDistill.Cli.Commands;

/// <summary><c>hybrid score merge DIR</c>: combines DIR/layers/layer-{l}.json (from one or several processes) into DIR/scores.json.</summary>
public sealed class ScoreMergeCommand : Command<ScoreMergeCommand.Settings>
{
    /// <summary>Derives from the score branch's settings (Spectre requires it); only DIR, --plot-budget and --json apply.</summary>
    public sealed class Settings : ScoreCommand.Settings
    {
        [CommandArgument(0, "<DIR>")]
        [Description("The --out directory of hybrid score.")]
        public string Dir { get; init; } = "";

        public override ValidationResult Validate() =>
            string.IsNullOrEmpty(Dir) ? ValidationResult.Error("DIR is required: the --out directory of hybrid score.") : ValidationResult.Success();
    }

    public override int Execute(CommandContext context, Settings s, CancellationToken cancellation)
    {
        var scores = new LayerResultStore(s.Dir).Merge();
        ScoreCommand.Write(scores, s.Dir, s.PlotBudget, s.Json);
        return 0;
    }
}
