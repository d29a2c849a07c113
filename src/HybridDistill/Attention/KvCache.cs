using static TorchSharp.torch;

namespace HybridDistill.Attention;

/// <summary>
/// Keys and values of a softmax layer, preallocated for <c>capacity</c> positions: K, V [B, H_kv, capacity, D].
/// Memory is only touched as positions are written, so resident memory grows with the tokens seen.
/// </summary>
public sealed class KvCache : LayerState
{
    private readonly Tensor keys;
    private readonly Tensor values;

    public KvCache(long batch, long kvHeads, long capacity, long headDim, Device device)
    {
        keys = empty(batch, kvHeads, capacity, headDim, device: device);
        values = empty(batch, kvHeads, capacity, headDim, device: device);
        Capacity = capacity;
    }

    public long Capacity { get; }
    public long Length { get; private set; }

    public override long Bytes => 2 * keys.shape[0] * keys.shape[1] * Length * keys.shape[3] * sizeof(float);

    /// <summary>Appends k, v [B, H_kv, T, D] and returns views of all cached keys and values [B, H_kv, Length, D].</summary>
    public (Tensor Keys, Tensor Values) Append(Tensor k, Tensor v)
    {
        long t = k.shape[2];
        if (Length + t > Capacity)
            throw new InvalidOperationException($"KV cache full: {Length} + {t} tokens exceed its capacity of {Capacity}.");
        using (no_grad())
        {
            keys.narrow(2, Length, t).copy_(k);
            values.narrow(2, Length, t).copy_(v);
        }
        Length += t;
        return (keys.narrow(2, 0, Length), values.narrow(2, 0, Length));
    }

    public override void Dispose()
    {
        keys.Dispose();
        values.Dispose();
    }
}
