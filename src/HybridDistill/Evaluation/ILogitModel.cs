using HybridDistill.Models;
using static TorchSharp.torch;

namespace HybridDistill.Evaluation;

/// <summary>
/// What the evaluations need from a language model: next-token logits for batches of token ids.
/// <see cref="CausalLMLogits"/> adapts a <see cref="HybridCausalLM"/>; tests pass fakes (oracles, random guessers).
/// </summary>
public interface ILogitModel
{
    /// <summary>The longest sequence the model accepts (max_position_embeddings).</summary>
    int ContextLength { get; }
    int VocabSize { get; }
    /// <summary>ids [B, T] int64 -> logits [B, T, V] float32; row t scores the token at t + 1. Called under inference_mode.</summary>
    Tensor Logits(Tensor ids);
}

/// <summary>A <see cref="HybridCausalLM"/> as an <see cref="ILogitModel"/> (full forward from position 0), optionally
/// with some layers' attention output zeroed (the layer-ablation diagnostics score recall this way).</summary>
public sealed class CausalLMLogits(HybridCausalLM model, ISet<int>? ablatedLayers = null) : ILogitModel
{
    public int ContextLength => model.Config.MaxPositionEmbeddings;
    public int VocabSize => model.Config.VocabSize;
    /// <summary>ids go to the model's device; logits come back on the CPU, where the scoring reads them
    /// (a no-op on the CPU).</summary>
    public Tensor Logits(Tensor ids)
    {
        var device = model.LmHeadWeight.device;
        if (device.type == TorchSharp.DeviceType.CPU) return model.Forward(ids, null, ablatedLayers);
        using var scope = NewDisposeScope();
        var logits = model.Forward(ids.to(device), null, ablatedLayers).cpu();              // [B, T, V]
        return scope.MoveToOuter(logits);
    }
}

/// <summary>Batch sizes that keep logits and their log-softmax within a memory budget.</summary>
public static class EvalBatching
{
    /// <summary>Bytes that [B, T, V] logits plus two same-sized temporaries may take (512 MiB).</summary>
    public const long LogitBudgetBytes = 512L << 20;

    public static int BatchSize(int tokens, int vocab, int max = 16)
    {
        long perSequence = 3L * tokens * vocab * sizeof(float);
        return (int)Math.Clamp(LogitBudgetBytes / Math.Max(1, perSequence), 1, max);
    }
}
