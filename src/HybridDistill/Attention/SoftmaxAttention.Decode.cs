using System.Buffers;
using System.Numerics;
using System.Runtime.CompilerServices;
using HybridDistill.Modules;
using static TorchSharp.torch;

namespace HybridDistill.Attention;

// Softmax attention of one decoding token over the raw KV cache. Through libtorch the token's attention is a cache
// append (two narrows, two copies) and a scaled_dot_product_attention call whose fixed cost dominates at decoding
// sizes: 0.45 ms per layer at context 512 on the loaded 2-core machine, for 1 MB of keys and values (20 us of reading).
// Here the token's k, v are copied into the cache's stores and each query head reads its KV head's keys and values
// in place, [L, D] contiguous each: scores s_j = q . k_j / sqrt(D), p = softmax(s), o = sum_j p_j v_j. The cores split
// the (batch, head) pairs, a fixed split, so results do not depend on timing. Attend (SDPA) is the reference the
// tests compare this with.

public partial class SoftmaxAttention
{
    /// <summary>
    /// Whether <see cref="AttendToken"/> serves q [B, H, 1, D] with k, v [B, H_kv, 1, D] on <paramref name="cache"/>:
    /// SIMD available, no autograd, contiguous fp32 CPU tensors, a free cache position.
    /// </summary>
    internal static bool CanAttendToken(Tensor q, Tensor k, Tensor v, KvCache cache) =>
        Vector.IsHardwareAccelerated && !is_grad_enabled() && q.shape[2] == 1 && k.shape[2] == 1 && cache.CanAppendToken
        && RawFloats.IsCpuFloat(q) && RawFloats.IsCpuFloat(k) && RawFloats.IsCpuFloat(v)
        && q.is_contiguous() && k.is_contiguous() && v.is_contiguous();

    /// <summary>
    /// One decoding token: appends k, v [B, H_kv, 1, D] to <paramref name="cache"/> and attends q [B, H, 1, D] over all
    /// cached positions -> o [B, H, 1, D] (query head h reads KV head h / (H / H_kv)); equal to
    /// <c>Append</c> then <see cref="Attend"/> up to fp32 rounding.
    /// </summary>
    internal static Tensor AttendToken(Tensor q, Tensor k, Tensor v, KvCache cache)
    {
        cache.AppendToken(RawFloats.Of(k), RawFloats.Of(v));
        int batch = (int)q.shape[0], heads = (int)q.shape[1], d = (int)q.shape[3];
        int kvHeads = (int)k.shape[1], length = checked((int)cache.Length), capacity = checked((int)cache.Capacity);
        var o = empty(q.shape);                                                                // [B, H, 1, D]
        var (keys, values) = cache.Stores;                                                     // [B, Hkv, capacity, D] each
        var job = new TokenAttention(q, keys, values, o, heads, kvHeads, d, length, capacity);
        int pairs = batch * heads;
        long work = 2L * pairs * length * d;
        int parts = work >= DecodeKernels.ParallelThreshold ? Math.Clamp(get_num_threads(), 1, Math.Min(pairs, Environment.ProcessorCount)) : 1;
        ForkJoin.Run(parts, p => job.Run((int)((long)pairs * p / parts), (int)((long)pairs * (p + 1) / parts)));
        return o;
    }

    /// <summary>One token's attention over a cache: the tensors and sizes each part reads.</summary>
    sealed record TokenAttention(Tensor Q, Tensor Keys, Tensor Values, Tensor O, int Heads, int KvHeads, int D, int Length, int Capacity)
    {
        /// <summary>The (batch, head) pairs [p0, p1): o = softmax(q K^T / sqrt(D)) V over the first <see cref="Length"/> positions.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]   // every decoding token's loop: no unoptimised first tier
        public void Run(int p0, int p1)
        {
            ReadOnlySpan<float> q = RawFloats.Of(Q), keys = RawFloats.Of(Keys), values = RawFloats.Of(Values);
            Span<float> o = RawFloats.Of(O);
            int groups = Heads / KvHeads;
            float scale = 1f / MathF.Sqrt(D);
            var rented = ArrayPool<float>.Shared.Rent(Length);
            var scores = rented.AsSpan(0, Length);                                             // [L]
            for (int pair = p0; pair < p1; pair++)
            {
                int b = pair / Heads, kvRow = b * KvHeads + pair % Heads / groups;
                var qh = q.Slice(pair * D, D);
                var kh = keys.Slice(kvRow * Capacity * D, Length * D);                          // [L, D]
                var vh = values.Slice(kvRow * Capacity * D, Length * D);                        // [L, D]
                float max = float.NegativeInfinity;
                for (int j = 0; j < Length; j++)
                {
                    scores[j] = DecodeKernels.Dot(qh, kh.Slice(j * D, D)) * scale;
                    max = MathF.Max(max, scores[j]);
                }
                float sum = 0;
                for (int j = 0; j < Length; j++) sum += scores[j] = MathF.Exp(scores[j] - max);
                var oh = o.Slice(pair * D, D);                                                  // [D]
                oh.Clear();
                for (int j = 0; j < Length; j++) DecodeKernels.AddScaled(oh, scores[j], vh.Slice(j * D, D));
                float inv = 1f / sum;
                for (int i = 0; i < D; i++) oh[i] *= inv;
            }
            ArrayPool<float>.Shared.Return(rented);
        }
    }
}
