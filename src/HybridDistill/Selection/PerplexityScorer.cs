using System.Text.Json.Serialization;
using HybridDistill.Artifacts;
using HybridDistill.Checkpoints;
using HybridDistill.Models;
using static TorchSharp.torch;

namespace HybridDistill.Selection;

/// <summary>
/// ppl: the perplexity damage of ablating one teacher layer. For each layer l, zero that layer's attention output
/// (the residual skips it; its MLP still runs) and measure the mean next-token NLL over the same held-out windows:
///   NLL(A) = -(1/N) Σ_windows Σ_{t=1..T-1} log p(x_t | x_&lt;t; layers A ablated),   score(l) = NLL({l}) - NLL({}).
/// A large increase means the teacher leans on that layer's attention, so keep it softmax.
/// </summary>
public sealed class PerplexityScorer : PerLayerScorer
{
    public const long DefaultBudgetTokens = 32_768;

    public override string Name => "ppl";
    public override string Description => "increase in held-out NLL when one teacher layer's attention output is zeroed (--data, --budget-tokens per pass).";
    public override IReadOnlyList<ScorerSetting> Settings { get; } =
    [
        new("window", "256", "tokens per window (at most the teacher's context)"),
        new("batch", "8", "windows per forward pass"),
    ];

    protected override IPerLayerRun Open(ScoringContext context)
    {
        string teacherDir = HfCheckpoint.ResolveModelDirectory(context.RequireTeacher());
        var source = context.RequireData();
        long budget = context.BudgetTokensOr(DefaultBudgetTokens);
        int window = context.SettingInt("window", min: 2);
        int batch = context.SettingInt("batch", min: 1);
        var config = context.TeacherConfig();
        if (window > config.MaxPositionEmbeddings)
            throw new InputException($"--set window={window} exceeds the teacher's context ({config.MaxPositionEmbeddings}); pick a window up to {config.MaxPositionEmbeddings}.");
        var windows = source.Open(teacherDir, window, budget);
        var provenance = OpaqueJson.Of(new AblationProvenance(context.TeacherFingerprint(), windows.Describe(), budget, context.ResolvedSettings(),
            "attention output zeroed (residual skips it), one layer at a time"), ArtifactJson.Types.AblationProvenance);
        var teacher = HfCheckpoint.Load(teacherDir, context.Device.Torch);
        return new PplRun(teacher, windows, batch, provenance, context);
    }

    sealed class PplRun(HybridCausalLM teacher, ITokenWindows windows, int batch, OpaqueJson provenance, ScoringContext context) : IPerLayerRun
    {
        private double? baseline;

        public int NumLayers => teacher.Config.NumHiddenLayers;
        public OpaqueJson Provenance => provenance;

        public LayerResult ScoreLayer(int layer)
        {
            baseline ??= MeanNll(teacher, windows, null, batch, context.Cancellation);
            double nll = MeanNll(teacher, windows, new HashSet<int> { layer }, batch, context.Cancellation);
            var metrics = new PplLayerMetrics(nll, Math.Exp(nll), baseline.Value, Math.Exp(baseline.Value), (long)windows.Count * (windows.Length - 1));
            return new LayerResult(layer, nll - baseline.Value, OpaqueJson.Of(metrics, ArtifactJson.Types.PplLayerMetrics));
        }

        public void Dispose() => teacher.Dispose();
    }

    /// <summary>Mean next-token NLL (nats) over every window's positions 1..T-1, with <paramref name="ablated"/> layers' attention zeroed.</summary>
    public static double MeanNll(HybridCausalLM model, ITokenWindows windows, ISet<int>? ablated, int batch = 8, CancellationToken cancellation = default)
    {
        double sum = 0;
        long count = 0;
        using var _ = no_grad();
        for (int start = 0; start < windows.Count; start += batch)
        {
            cancellation.ThrowIfCancellationRequested();
            using var scope = NewDisposeScope();
            var ids = windows.Batch(start, Math.Min(batch, windows.Count - start)).to(model.LmHeadWeight.device);   // [B, T], on the model's device
            long b = ids.shape[0], t = ids.shape[1];
            var logits = model.Forward(ids, null, ablated);                                          // [B, T, V]
            var predicted = logits.narrow(1, 0, t - 1).reshape(b * (t - 1), -1);                     // [B, T-1, V] -> [B*(T-1), V]
            var targets = ids.narrow(1, 1, t - 1).reshape(b * (t - 1));                              // [B, T-1] -> [B*(T-1)]
            var nll = nn.functional.cross_entropy(predicted, targets, reduction: nn.Reduction.Sum);
            sum += nll.to_type(ScalarType.Float64).item<double>();
            count += b * (t - 1);
        }
        return sum / count;
    }
}

/// <summary>ppl's provenance: teacher, windows, tokens per pass, settings and what the ablation does.</summary>
public sealed record AblationProvenance(ModelFingerprint Teacher, WindowsDescription Data, long BudgetTokens,
    IReadOnlyDictionary<string, string> Settings, string Ablation);

/// <summary>ppl's measurement of one layer: held-out NLL and perplexity with the layer ablated and without.</summary>
public sealed record PplLayerMetrics(double Nll, double Ppl, double BaseNll, double BasePpl, long Tokens);
