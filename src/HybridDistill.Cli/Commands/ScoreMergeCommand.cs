using System.ComponentModel;
using HybridDistill.Selection;
using Spectre.Console.Cli;

namespace HybridDistill.Cli.Commands;

/// <summary><c>hybrid score merge DIR</c>: combines DIR/layers/layer-{l}.json (from one or several processes) into DIR/scores.json.</summary>
public sealed class ScoreMergeCommand : Command<ScoreMergeCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandArgument(0, "<DIR>")]
        [Description("The --out directory of hybrid score.")]
        public string Dir { get; init; } = "";

        [CommandOption("--plot-budget <B>")]
        [Description("Budget whose chosen layers scores.png marks (default 25%).")]
        [DefaultValue("25%")]
        public string PlotBudget { get; init; } = "25%";

        [CommandOption("--json")]
        [Description("Print scores.json on stdout.")]
        public bool Json { get; init; }
    }

    public override int Execute(CommandContext context, Settings s, CancellationToken cancellation)
    {
        var scores = new LayerResultStore(s.Dir).Merge();
        ScoreCommand.Write(scores, s.Dir, s.PlotBudget, s.Json);
        return 0;
    }
}
