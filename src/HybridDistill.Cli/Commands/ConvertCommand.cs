using System.ComponentModel;
using HybridDistill.Attention;
using HybridDistill.Checkpoints;
using HybridDistill.Config;
using HybridDistill.Models;
using Spectre.Console;
using Spectre.Console.Cli;

namespace HybridDistill.Cli.Commands;

public sealed class ConvertCommand : Command<ConvertCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandOption("--teacher <DIR>")]
        [Description("The all-softmax teacher's model directory.")]
        public string Teacher { get; init; } = "";

        [CommandOption("--out <DIR>")]
        [Description("Directory to write the untrained hybrid to (a complete model directory).")]
        public string Out { get; init; } = "";

        [CommandOption("--layer-types <LIST>")]
        [Description("One kind per layer: softmax, gdn, gla, swa (e.g. \"softmax,gdn,gdn,gdn,gdn\").")]
        public string? LayerTypes { get; init; }

        [CommandOption("--softmax-layers <LIST>")]
        [Description("Layers that stay softmax (e.g. 0,3); every other layer becomes --linear-kind.")]
        public string? SoftmaxLayers { get; init; }

        [CommandOption("--layout <FILE>")]
        [Description("A layout.json written by hybrid select.")]
        public string? Layout { get; init; }

        [CommandOption("--linear-kind <KIND>")]
        [Description("Kind of the non-softmax layers with --softmax-layers (default gdn).")]
        [DefaultValue("gdn")]
        public string LinearKind { get; init; } = "gdn";

        [CommandOption("--kv-expand <MODE>")]
        [Description("heads (default: query head i gets KV head i/G) or rows (the reference code's row repetition).")]
        [DefaultValue("heads")]
        public string KvExpand { get; init; } = "heads";

        [CommandOption("--swa-window <N>")]
        [Description("Window of swa layers (default: the teacher's sliding_window).")]
        public int? SwaWindow { get; init; }

        [CommandOption("--short-conv")]
        [Description("Give GDN layers the short causal convolution on q/k/v (off by default, as in the paper).")]
        public bool ShortConv { get; init; }

        [CommandOption("--seed <S>")]
        [Description("Seed of the fresh gate parameters.")]
        [DefaultValue(0)]
        public int Seed { get; init; }

        [CommandOption("--dtype <TYPE>")]
        [Description("Weights as fp32 (default) or bf16 (half the disk; loaded back as fp32).")]
        [DefaultValue("fp32")]
        public string DType { get; init; } = "fp32";

        [CommandOption("--force")]
        [Description("Replace --out if it exists.")]
        public bool Force { get; init; }

        public override ValidationResult Validate()
        {
            if (string.IsNullOrEmpty(Teacher)) return ValidationResult.Error("--teacher DIR is required.");
            if (string.IsNullOrEmpty(Out)) return ValidationResult.Error("--out DIR is required.");
            int given = new[] { LayerTypes, SoftmaxLayers, Layout }.Count(x => x is not null);
            return given == 1 ? ValidationResult.Success()
                : ValidationResult.Error("give exactly one of --layer-types LIST, --softmax-layers LIST or --layout FILE.");
        }
    }

    public override int Execute(CommandContext context, Settings s, CancellationToken cancellation)
    {
        var dtype = StoredDTypes.Parse(s.DType);
        using var teacher = HfCheckpoint.Load(s.Teacher);
        var layout = ResolveLayout(teacher.Config.NumHiddenLayers, s.LayerTypes, s.SoftmaxLayers, s.Layout, s.LinearKind);
        var options = teacher.Config.LinearAttention with
        {
            Gdn = teacher.Config.LinearAttention.Gdn with { UseShortConv = s.ShortConv },
            Swa = s.SwaWindow is int w ? new SwaOptions(w) : teacher.Config.LinearAttention.Swa,
        };
        using var hybrid = StudentBuilder.Build(teacher, layout.LayerTypes, fromDir: null, s.Seed, WeightTransfer.ParseKvExpansion(s.KvExpand), options: options);
        OutputDirectory.WriteAtomically(s.Out, s.Force, tmp => HfCheckpoint.Save(hybrid, tmp, HfCheckpoint.ResolveModelDirectory(s.Teacher), dtype));
        CliRunner.Stderr.MarkupLineInterpolated(
            $"[green]wrote[/] {Path.GetFullPath(s.Out)}: layer_types {string.Join(",", layout.LayerTypes)} (softmax layers: {string.Join(",", layout.SoftmaxLayers)})");
        return 0;
    }

    /// <summary>The layout from exactly one of --layer-types, --softmax-layers or --layout, checked against the layer count.</summary>
    public static LayerLayout ResolveLayout(int numLayers, string? layerTypes, string? softmaxLayers, string? layoutFile, string linearKind)
    {
        var layout = layoutFile is not null ? LayerLayout.Load(layoutFile)
            : layerTypes is not null ? LayerLayout.Parse(layerTypes)
            : LayerLayout.FromSoftmaxLayers(numLayers, CliParsing.IntList(softmaxLayers!, "--softmax-layers"), linearKind);
        if (layout.LayerTypes.Count != numLayers)
            throw new InputException($"the layout has {layout.LayerTypes.Count} layer types but the teacher has {numLayers} layers.");
        return layout;
    }
}
