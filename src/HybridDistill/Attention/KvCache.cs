using HybridDistill.Modules;
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
        long t = k.size(2);
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

    /// <summary>The whole stores K, V [B, H_kv, capacity, D] (positions from <see cref="Length"/> on unwritten), for kernels
    /// that read the cache in place (<see cref="SoftmaxAttention.AttendToken"/>).</summary>
    internal (Tensor Keys, Tensor Values) Stores => (keys, values);

    /// <summary>Whether <see cref="AppendToken"/> can take one token's k, v: fp32 CPU stores of at most 2^31 floats with a free position.</summary>
    internal bool CanAppendToken => RawFloats.IsCpuFloat(keys) && Length < Capacity && keys.numel() <= int.MaxValue;

    /// <summary>
    /// <see cref="Append"/> for one token given as raw k, v [B, H_kv, D]: copies each head's row to position
    /// <see cref="Length"/> of the stores (no libtorch call).
    /// </summary>
    internal void AppendToken(ReadOnlySpan<float> k, ReadOnlySpan<float> v)
    {
        if (Length >= Capacity)
            throw new InvalidOperationException($"KV cache full: {Length} + 1 tokens exceed its capacity of {Capacity}.");
        int d = (int)keys.size(3), rows = (int)(keys.size(0) * keys.size(1));
        long cap = Capacity;
        Span<float> ks = RawFloats.Of(keys), vs = RawFloats.Of(values);                 // [B*Hkv, capacity, D]
        for (int r = 0; r < rows; r++)
        {
            int at = checked((int)((r * cap + Length) * d));
            k.Slice(r * d, d).CopyTo(ks.Slice(at, d));
            v.Slice(r * d, d).CopyTo(vs.Slice(at, d));
        }
        Length++;
    }

    public override void Dispose()
    {
        keys.Dispose();
        values.Dispose();
    }
}
