using System.ComponentModel;
using System.Text.Json.Nodes;
using HybridDistill.Artifacts;
using HybridDistill.Checkpoints;
using HybridDistill.Config;
using Spectre.Console;
using HybridDistill.Models;
using Spectre.Console.Cli;

namespace HybridDistill.Cli.Commands;

public sealed class InspectCommand : Command<InspectCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandArgument(0, "<DIR>")]
        [Description("Model directory (config.json, safetensors, tokenizer) or run directory.")]
        public string Directory { get; init; } = "";

        [CommandOption("--json")]
        [Description("Print one JSON object on stdout instead of tables.")]
        public bool Json { get; init; }
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellation)
    {
        var report = ModelInspector.Inspect(settings.Directory);
        if (settings.Json)
        {
            CliRunner.Stdout.WriteLine(System.Text.Encoding.UTF8.GetString(ArtifactJson.Bytes(report.ToFile(), ArtifactJson.Types.ModelReportFile)));
            return 0;
        }
        var c = report.Config;
        var table = new Table().AddColumn("property").AddColumn("value");
        table.AddRow("model_type", c.IsHybrid ? $"{ModelConfig.HybridModelType} (base {c.ModelType})" : c.ModelType);
        table.AddRow("layers", c.NumHiddenLayers.ToString());
        table.AddRow("layer_types", string.Join(",", c.LayerTypes));
        table.AddRow("hidden / intermediate", $"{c.HiddenSize} / {c.IntermediateSize}");
        table.AddRow("heads / kv heads / head dim", $"{c.NumAttentionHeads} / {c.NumKeyValueHeads} / {c.HeadDim}");
        table.AddRow("vocab / context", $"{c.VocabSize} / {c.MaxPositionEmbeddings}");
        table.AddRow("rope", $"theta {c.RopeTheta}" + (c.RopeScaling is null ? "" : $", {c.RopeScaling.Type} x{c.RopeScaling.Factor}"));
        table.AddRow("tied embeddings", c.TieWordEmbeddings.ToString());
        table.AddRow("dtype (stored)", report.StoredDtype);
        table.AddRow("tokenizer", report.Tokenizer);
        table.AddRow("parameters", report.Parameters.ToString("N0"));
        foreach (var (part, count) in report.ParametersByPart) table.AddRow("  " + part, count.ToString("N0"));
        AnsiConsole.Write(table);
        return 0;
    }
}
