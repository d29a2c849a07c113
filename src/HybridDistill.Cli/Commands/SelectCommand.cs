using System.ComponentModel;
using System.Text.Json.Nodes;
using HybridDistill.Artifacts;
using HybridDistill.Config;
using HybridDistill.Selection;
using Spectre.Console;
using Spectre.Console.Cli;

namespace HybridDistill.Cli.Commands;

/// <summary><c>hybrid select</c>: the K softmax layers for a budget from scores.json, and the layout file stage 2 and convert read.</summary>
public sealed class SelectCommand : Command<SelectCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandOption("--scores <FILE>")]
        [Description("scores.json written by hybrid score (or its directory).")]
        public string Scores { get; init; } = "";

        [CommandOption("--budget <B>")]
        [Description("Fraction of layers kept softmax: 25% or 0.25. K = max(1, round(B x L)), halves rounding up.")]
        public string? Budget { get; init; }

        [CommandOption("--keep <K>")]
        [Description("Number of softmax layers (instead of --budget).")]
        public int? Keep { get; init; }

        [CommandOption("--out <FILE>")]
        [Description("Write the layout file ({\"softmax_layers\": [[...]], \"layer_types\": [[...]]}) here.")]
        public string? Out { get; init; }

        [CommandOption("--linear-kind <KIND>")]
        [Description("Kind of the other layers in the layout (default gdn).")]
        [DefaultValue("gdn")]
        public string LinearKind { get; init; } = "gdn";

        [CommandOption("--plot <PNG>")]
        [Description("Also draw the scores with the chosen layers marked.")]
        public string? Plot { get; init; }

        [CommandOption("--json")]
        [Description("Print JSON (method, k, softmax_layers, layer_types) instead of the layer list.")]
        public bool Json { get; init; }

        public override ValidationResult Validate()
        {
            if (string.IsNullOrEmpty(Scores)) return ValidationResult.Error("--scores FILE is required.");
            return (Budget is null) == (Keep is null)
                ? ValidationResult.Error("give exactly one of --budget (e.g. 25%) or --keep K.")
                : ValidationResult.Success();
        }
    }

    public override int Execute(CommandContext context, Settings s, CancellationToken cancellation)
    {
        var scores = LayerScores.Load(s.Scores);
        int k = LayerSelection.ResolveK(s.Budget, s.Keep, scores.NumLayers);
        var layout = LayerSelection.Layout(scores, k, s.LinearKind);
        if (s.Out is not null)
        {
            var dir = Path.GetDirectoryName(Path.GetFullPath(s.Out));
            if (dir is not null) Directory.CreateDirectory(dir);
            layout.Save(s.Out);
            CliRunner.Stderr.MarkupLineInterpolated($"[green]wrote[/] {Path.GetFullPath(s.Out)}");
        }
        if (s.Plot is not null) ScoresPlot.Save(scores, s.Plot, k, s.Budget);
        string source = LayerSelection.UsesLayout(scores, k) ? "layouts" : "ranking";
        CliRunner.Stderr.MarkupLineInterpolated(
            $"[grey]{scores.Method}: K={k} of {scores.NumLayers} layers{(s.Budget is null ? "" : $" ({s.Budget})")}, from the {source}[/]");
        if (s.Json)
        {
            var json = new JsonObject
            {
                ["method"] = scores.Method,
                ["num_layers"] = scores.NumLayers,
                ["budget"] = s.Budget,
                ["k"] = k,
                ["source"] = source,
            };
            foreach (var (key, value) in ArtifactJson.ToNode(layout, ArtifactJson.Types.LayerLayout)) json[key] = value?.DeepClone();
            CliRunner.Stdout.WriteLine(json.ToJsonString(JsonOptions.Indented));
        }
        else CliRunner.Stdout.WriteLine(string.Join(",", layout.SoftmaxLayers));
        return 0;
    }
}
