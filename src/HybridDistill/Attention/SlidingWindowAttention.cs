// Sliding-window softmax attention (swa): each query attends to its last `window` positions, itself included.
//   o_t = sum_j softmax_j(q_t . k_j / sqrt(D)) v_j      over j in [max(0, t - window + 1), t]
// Shapes: q, k, v [B, H, T, D] (keys/values already expanded to all heads, RoPE already applied); o [B, H, T, D].
//
// Masked (prefill/training): queries are cut into blocks of Qb tokens; block n sees the keys
// [n*Qb - window + 1, n*Qb + Qb), gathered by unfold into [B*H, nBlocks, Qb + window - 1, D] (a copy of K and V,
// (Qb + window - 1) / Qb times), and one batched scaled_dot_product_attention call applies a per-block banded
// boolean mask. Work and memory are O(T * (Qb + window)) instead of O(T^2). window >= T is plain causal attention;
// T <= 2 * (Qb + window) uses one dense [T, T] banded mask (faster there than blocks plus K/V copies).
// Decoding: SlidingWindowCache keeps the last `window` keys/values in a ring [B, H, window, D]. Softmax attention
// is invariant to the order of the keys (RoPE is applied before caching), so the ring is never rotated.

using TorchSharp;
using static TorchSharp.torch;

namespace HybridDistill.Attention;

public sealed partial class SlidingWindowAttention
{
    /// <summary>
    /// Reference: an explicit loop over query positions, each a softmax over its window (scale D^-1/2).
    /// Differentiable. q, k, v [B, H, T, D]; returns [B, H, T, D].
    /// </summary>
    public static Tensor Naive(Tensor q, Tensor k, Tensor v, int window)
    {
        var (_, _, tokens, headDim) = CheckShapes(q, k, v, window);
        using var scope = torch.NewDisposeScope();
        double scale = 1.0 / Math.Sqrt(headDim);
        var outputs = new Tensor[tokens];
        for (long t = 0; t < tokens; t++)
        {
            long first = Math.Max(0, t - window + 1), length = t - first + 1;
            var keys = k.narrow(2, first, length);                                   // [B, H, L, D]
            var values = v.narrow(2, first, length);                                 // [B, H, L, D]
            var scores = q.narrow(2, t, 1).matmul(keys.transpose(-1, -2)) * scale;   // [B, H, 1, D] @ [B, H, D, L] -> [B, H, 1, L]
            outputs[t] = scores.softmax(-1).matmul(values);                          // [B, H, 1, L] @ [B, H, L, D] -> [B, H, 1, D]
        }
        var output = torch.cat(outputs, 2);                                           // T x [B, H, 1, D] -> [B, H, T, D]
        return scope.MoveToOuter(output);
    }

    /// <summary>
    /// Fast path for prefill and training: blocked queries, banded boolean mask, scaled_dot_product_attention.
    /// Same arguments and result as <see cref="Naive"/>.
    /// </summary>
    public static Tensor Masked(Tensor q, Tensor k, Tensor v, int window)
    {
        long block = QueryBlock(window);
        return MaskedCore(q, k, v, window, block, denseUpTo: 2 * (block + window));
    }

    /// <summary>
    /// Query block length: a quarter of the window, at least 64. Each block computes Qb + W - 1 scores per query
    /// (at most 1.25x the W needed, plus 64) and copies K/V (Qb + W - 1) / Qb times (at most about 5x).
    /// </summary>
    internal static long QueryBlock(int window) => Math.Max(64, window / 4);

    /// <param name="denseUpTo">Longest T that uses one dense [T, T] banded mask instead of query blocks.</param>
    internal static Tensor MaskedCore(Tensor q, Tensor k, Tensor v, int window, long block, long denseUpTo)
    {
        var (batch, heads, tokens, headDim) = CheckShapes(q, k, v, window);
        using var scope = torch.NewDisposeScope();
        if (window >= tokens)
            return scope.MoveToOuter(nn.functional.scaled_dot_product_attention(q, k, v, is_casual: true));

        if (tokens <= denseUpTo)
        {
            // Short sequence: one dense [T, T] banded mask. Its T^2 scores cost less than the blocks' T * (Qb + W - 1)
            // plus the K/V copies up to about T = 2 * (Qb + W) (measured: W = 256, crossover near T = 600).
            var position = torch.arange(tokens, device: q.device);
            var distance = position.reshape(tokens, 1) - position.reshape(1, tokens);  // t - j: [T, T]
            var band = distance.ge(0).logical_and(distance.lt(window))
                .reshape(1, 1, tokens, tokens);                                          // [T, T] -> [1, 1, T, T]
            return scope.MoveToOuter(nn.functional.scaled_dot_product_attention(q, k, v, attn_mask: band));
        }

        long blocks = (tokens + block - 1) / block, padded = blocks * block, span = block + window - 1;
        var qBlocks = nn.functional.pad(q, new long[] { 0, 0, 0, padded - tokens })   // [B, H, T, D] -> [B, H, nB*Qb, D]
            .reshape(batch * heads, blocks, block, headDim);                           // -> [B*H, nB, Qb, D]
        Tensor KeyBlocks(Tensor x) =>
            nn.functional.pad(x, new long[] { 0, 0, window - 1, padded - tokens })     // [B, H, T, D] -> [B, H, W-1 + nB*Qb, D]
                .unfold(2, span, block)                                                // -> [B, H, nB, D, L] (L = Qb + W - 1)
                .transpose(-1, -2)                                                     // -> [B, H, nB, L, D]
                .reshape(batch * heads, blocks, span, headDim);                        // -> [B*H, nB, L, D]
        var output = nn.functional.scaled_dot_product_attention(
            qBlocks, KeyBlocks(k), KeyBlocks(v), attn_mask: BlockMask(blocks, block, window, q.device)); // [B*H, nB, Qb, D]
        var result = output.reshape(batch, heads, padded, headDim)                    // [B*H, nB, Qb, D] -> [B, H, nB*Qb, D]
            .narrow(2, 0, tokens);                                                     // -> [B, H, T, D]
        return scope.MoveToOuter(result);
    }

    /// <summary>
    /// [1, nB, Qb, L] boolean mask (true = attend; 4-D: with a 3-D mask libtorch's CPU SDPA was about 4x slower). Query i of block n is token n*Qb + i; key slot l of that block is
    /// token n*Qb + l - (W - 1). Allowed: l in [i, i + W - 1] (the band) and the key token is not left padding.
    /// </summary>
    static Tensor BlockMask(long blocks, long block, int window, Device device)
    {
        using var scope = torch.NewDisposeScope();
        long span = block + window - 1;
        var query = torch.arange(block, device: device).reshape(1, block, 1);         // i: [1, Qb, 1]
        var slot = torch.arange(span, device: device).reshape(1, 1, span);            // l: [1, 1, L]
        var start = torch.arange(blocks, device: device).reshape(blocks, 1, 1) * block; // n*Qb: [nB, 1, 1]
        var band = slot.ge(query).logical_and(slot.le(query + (window - 1)));          // [1, Qb, L]
        var real = (start + slot).ge(window - 1);                                      // [nB, 1, L]
        return scope.MoveToOuter(band.logical_and(real).unsqueeze(0));                 // [nB, Qb, L] -> [1, nB, Qb, L]
    }

    /// <summary>
    /// Decoding over the cache as it is: q [B, H, 1, D] attends to every valid ring entry (append the current
    /// token's key/value first). Returns [B, H, 1, D].
    /// </summary>
    public static Tensor Step(Tensor q, SlidingWindowCache cache)
    {
        if (cache.Count == 0) throw new InvalidOperationException("Sliding-window cache is empty: append the current token's key/value before Step.");
        using var scope = torch.NewDisposeScope();
        var (keys, values) = cache.Valid();                                            // [B, H, min(count, W), D]
        return scope.MoveToOuter(nn.functional.scaled_dot_product_attention(q, keys, values)); // [B, H, 1, D]
    }

    /// <summary>One decoding step: appends k, v [B, H, 1, D] to the cache, then attends with q [B, H, 1, D].</summary>
    public static Tensor Step(Tensor q, Tensor k, Tensor v, SlidingWindowCache cache)
    {
        cache.Append(k, v);
        return Step(q, cache);
    }

    /// <summary>
    /// Prefill of T tokens into an empty cache: returns <see cref="Masked"/> over them (window = the cache's) and
    /// keeps their last `window` keys/values in the cache.
    /// </summary>
    public static Tensor Prefill(Tensor q, Tensor k, Tensor v, SlidingWindowCache cache)
    {
        if (cache.Count != 0) throw new InvalidOperationException($"Prefill needs an empty sliding-window cache (it holds {cache.Count} tokens); call Reset first.");
        var output = Masked(q, k, v, cache.Window);
        cache.Append(k, v);
        return output;
    }

    static (long Batch, long Heads, long Tokens, long HeadDim) CheckShapes(Tensor q, Tensor k, Tensor v, int window)
    {
        if (window < 1) throw new ArgumentOutOfRangeException(nameof(window), window, "Sliding window must be at least 1.");
        if (q.dim() != 4 || !k.shape.SequenceEqual(q.shape) || !v.shape.SequenceEqual(q.shape))
            throw new ArgumentException($"Sliding-window attention expects q, k, v of one shape [B, H, T, D]; got q [{string.Join(", ", q.shape)}], k [{string.Join(", ", k.shape)}], v [{string.Join(", ", v.shape)}].");
        if (q.shape[2] < 1) throw new ArgumentException("Sliding-window attention needs at least one token (T = 0).");
        return (q.shape[0], q.shape[1], q.shape[2], q.shape[3]);
    }
}

/// <summary>
/// Ring-buffer KV cache of sliding-window attention: keys and values [B, H, window, D] of the last `window` tokens,
/// token p in slot p % window. Owns its tensors (outside any dispose scope); dispose it when decoding ends.
/// Inference only: appends run without autograd.
/// </summary>
public sealed class SlidingWindowCache : IDisposable
{
    readonly Tensor keys;   // [B, H, W, D]
    readonly Tensor values; // [B, H, W, D]
    bool disposed;

    public SlidingWindowCache(long batch, long heads, int window, long headDim, ScalarType dtype = ScalarType.Float32, Device? device = null)
    {
        if (window < 1) throw new ArgumentOutOfRangeException(nameof(window), window, "Sliding window must be at least 1.");
        if (batch < 1 || heads < 1 || headDim < 1) throw new ArgumentException($"Cache dimensions must be positive: batch {batch}, heads {heads}, headDim {headDim}.");
        Batch = batch; Heads = heads; Window = window; HeadDim = headDim;
        keys = torch.zeros(new[] { batch, heads, window, headDim }, dtype: dtype, device: device).DetachFromDisposeScope();
        values = torch.zeros(new[] { batch, heads, window, headDim }, dtype: dtype, device: device).DetachFromDisposeScope();
    }

    public long Batch { get; }
    public long Heads { get; }
    public int Window { get; }
    public long HeadDim { get; }

    /// <summary>Tokens appended so far (since construction or <see cref="Reset"/>).</summary>
    public long Count { get; private set; }

    /// <summary>Valid ring entries: min(Count, Window).</summary>
    public long Length => Math.Min(Count, Window);

    /// <summary>Memory held by the key and value buffers.</summary>
    public long Bytes => 2 * keys.NumberOfElements * keys.ElementSize;

    /// <summary>Appends n >= 1 tokens' keys and values [B, H, n, D]; only the last `window` of them are kept.</summary>
    public void Append(Tensor k, Tensor v)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        if (k.dim() != 4 || k.shape[0] != Batch || k.shape[1] != Heads || k.shape[3] != HeadDim || k.shape[2] < 1 || !v.shape.SequenceEqual(k.shape))
            throw new ArgumentException($"Cache append expects k, v [{Batch}, {Heads}, n, {HeadDim}]; got k [{string.Join(", ", k.shape)}], v [{string.Join(", ", v.shape)}].");
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        long tokens = k.shape[2], kept = Math.Min(tokens, Window);
        var slots = torch.arange(Count + tokens - kept, Count + tokens, dtype: ScalarType.Int64, device: keys.device)
            .remainder(Window);                                                          // positions -> ring slots [kept]
        keys.index_copy_(2, slots, k.narrow(2, tokens - kept, kept));                     // [B, H, kept, D] into [B, H, W, D]
        values.index_copy_(2, slots, v.narrow(2, tokens - kept, kept));
        Count += tokens;
    }

    /// <summary>Views [B, H, Length, D] of the valid keys and values (in ring order, not token order).</summary>
    public (Tensor Keys, Tensor Values) Valid()
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        return (keys.narrow(2, 0, Length), values.narrow(2, 0, Length));
    }

    /// <summary>Forgets every token (the buffers are reused).</summary>
    public void Reset() => Count = 0;

    public void Dispose()
    {
        if (disposed) return;
        disposed = true;
        keys.Dispose();
        values.Dispose();
    }
}
