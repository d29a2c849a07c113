using HybridDistill.Data;
using HybridDistill.Models;
using static TorchSharp.torch;

namespace HybridDistill.Training;

/// <summary>
/// What one micro-batch gave: the loss (a mean over its positions), named side values averaged the same way
/// (e.g. stage 1's zero-output <c>baseline_loss</c>), and optionally one value per layer. An extra "x" that is a
/// mean over a varying number of tokens comes with "x#n", that number, so the loop averages it over tokens and
/// a batch without such tokens does not count.
/// </summary>
public sealed record LossReport(double Loss, IReadOnlyDictionary<string, double> Extras, IReadOnlyList<double>? LayerLosses = null)
{
    public static readonly IReadOnlyDictionary<string, double> NoExtras = new Dictionary<string, double>();
    public const string CountSuffix = "#n";
}

/// <summary>
/// A stage's loss, as the shared <see cref="Trainer"/> sees it. The objective runs its own backward (stage 2
/// back-propagates chunk by chunk so full logits never exist), scaled by the loop's accumulation factor.
/// </summary>
public interface ITrainingObjective
{
    /// <summary>The model being trained; checkpoints save its whole state.</summary>
    HybridCausalLM Student { get; }

    /// <summary>The parameters that train, grouped by learning rate. Everything else stays bit-identical.</summary>
    IReadOnlyList<ParameterGroup> ParameterGroups(TrainConfig config);

    /// <summary>Loss of one micro-batch of windows [B, T + 1] and gradients of <c>lossScale x loss</c> added into .grad.
    /// <paramref name="phases"/>: the Trainer's hook, told the wall time of each forward and backward phase (when it has one).</summary>
    LossReport ForwardBackward(TrainingBatch batch, double lossScale, ITrainPhaseObserver? phases = null);

    /// <summary>Loss of one batch, no gradients.</summary>
    LossReport Evaluate(TrainingBatch batch);
}
