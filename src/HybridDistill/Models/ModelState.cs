using HybridDistill.Attention;

namespace HybridDistill.Models;

/// <summary>
/// Everything decoding carries from one call to the next: one <see cref="LayerState"/> per layer (KV caches
/// for softmax layers, recurrent states for linear ones, ring buffers for sliding-window ones) and the number
/// of tokens seen. Passed into and out of <see cref="HybridCausalLM.Forward"/>; owns its tensors.
/// </summary>
public sealed class ModelState : IDisposable
{
    public ModelState(IReadOnlyList<LayerState> layers, long capacity)
    {
        Layers = layers;
        Capacity = capacity;
    }

    public IReadOnlyList<LayerState> Layers { get; }
    public long Capacity { get; }
    /// <summary>Tokens processed so far: the position of the next token.</summary>
    public long Position { get; private set; }

    /// <summary>Bytes held by caches and states for the tokens seen so far.</summary>
    public long CacheBytes => Layers.Sum(l => l.Bytes);

    internal void Advance(long tokens) => Position += tokens;

    public void Dispose()
    {
        foreach (var layer in Layers) layer.Dispose();
    }
}
