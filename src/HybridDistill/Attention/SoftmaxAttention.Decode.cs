using System.Buffers;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
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
        Vector.IsHardwareAccelerated && !is_grad_enabled() && q.size(2) == 1 && k.size(2) == 1 && cache.CanAppendToken
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
        int batch = (int)q.size(0), heads = (int)q.size(1), d = (int)q.size(3);
        int kvHeads = (int)k.size(1), length = checked((int)cache.Length), capacity = checked((int)cache.Capacity);
        var o = empty(batch, heads, 1, d);                                                     // [B, H, 1, D]
        var (keys, values) = cache.Stores;                                                     // [B, Hkv, capacity, D] each
        var job = new TokenAttention(q, keys, values, o, heads, kvHeads, d, length, capacity);
        int pairs = batch * heads;
        long work = 2L * pairs * length * d;
        int parts = work >= DecodeKernels.ParallelThreshold ? ForkJoin.PartsFor(pairs) : 1;
        ForkJoin.Run(parts, p => job.Run(ForkJoin.Share(pairs, parts, p)));
        return o;
    }

    /// <summary>
    /// o [D] = sum_j p_j v_j over rows v_j of <paramref name="v"/> [L, D]: o is held in registers across all rows, in
    /// strips of eight vectors (a head of 64 floats is one with 256-bit vectors), then of four, so each row costs loads and
    /// multiply-adds only, not a load and store of o per row as an axpy per row would. (Scratch benchmark, one thread,
    /// 16.8 MB of values from DRAM at L=512, D=64: axpy per row 0.55 ms, strips of four 0.48, of eight 0.39.)
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void WeightedSum(ReadOnlySpan<float> p, ReadOnlySpan<float> v, Span<float> o, int d)
    {
        int width = Vector<float>.Count, vectors = d / width, strip = 0;
        if (d % width == 0)
        {
            var vV = MemoryMarshal.Cast<float, Vector<float>>(v);                               // rows of d / width vectors
            var oV = MemoryMarshal.Cast<float, Vector<float>>(o);
            for (; strip + 8 <= vectors; strip += 8)
            {
                Vector<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
                for (int j = 0, at = strip; j < p.Length; j++, at += vectors)
                {
                    var pj = new Vector<float>(p[j]);
                    a0 = Vector.MultiplyAddEstimate(pj, vV[at], a0);
                    a1 = Vector.MultiplyAddEstimate(pj, vV[at + 1], a1);
                    a2 = Vector.MultiplyAddEstimate(pj, vV[at + 2], a2);
                    a3 = Vector.MultiplyAddEstimate(pj, vV[at + 3], a3);
                    a4 = Vector.MultiplyAddEstimate(pj, vV[at + 4], a4);
                    a5 = Vector.MultiplyAddEstimate(pj, vV[at + 5], a5);
                    a6 = Vector.MultiplyAddEstimate(pj, vV[at + 6], a6);
                    a7 = Vector.MultiplyAddEstimate(pj, vV[at + 7], a7);
                }
                oV[strip] = a0; oV[strip + 1] = a1; oV[strip + 2] = a2; oV[strip + 3] = a3;
                oV[strip + 4] = a4; oV[strip + 5] = a5; oV[strip + 6] = a6; oV[strip + 7] = a7;
            }
            for (; strip + 4 <= vectors; strip += 4)
            {
                Vector<float> a0 = default, a1 = default, a2 = default, a3 = default;
                for (int j = 0, at = strip; j < p.Length; j++, at += vectors)
                {
                    var pj = new Vector<float>(p[j]);
                    a0 = Vector.MultiplyAddEstimate(pj, vV[at], a0);
                    a1 = Vector.MultiplyAddEstimate(pj, vV[at + 1], a1);
                    a2 = Vector.MultiplyAddEstimate(pj, vV[at + 2], a2);
                    a3 = Vector.MultiplyAddEstimate(pj, vV[at + 3], a3);
                }
                oV[strip] = a0; oV[strip + 1] = a1; oV[strip + 2] = a2; oV[strip + 3] = a3;
            }
        }
        int done = strip * width;                                                               // the rest: one axpy per row
        if (done == d) return;
        var rest = o.Slice(done);
        rest.Clear();
        for (int j = 0; j < p.Length; j++) DecodeKernels.AddScaled(rest, p[j], v.Slice(j * d + done, d - done));
    }

    /// <summary>s_j &lt;- exp(s_j - max) in place, vectorised (Vector.Exp, within an ulp or two of MathF.Exp); returns the sum.
    /// One exp per cached key per head was a scalar call each before: about a fifth of the token's attention at L=512.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static float ExpShiftedInPlace(Span<float> scores, float max)
    {
        var sV = MemoryMarshal.Cast<float, Vector<float>>(scores);
        var shift = new Vector<float>(max);
        var total = Vector<float>.Zero;
        for (int i = 0; i < sV.Length; i++) total += sV[i] = Vector.Exp(sV[i] - shift);
        float sum = Vector.Sum(total);
        for (int j = sV.Length * Vector<float>.Count; j < scores.Length; j++) sum += scores[j] = MathF.Exp(scores[j] - max);
        return sum;
    }

    /// <summary>One token's attention over a cache: the tensors and sizes each part reads.</summary>
    sealed record TokenAttention(Tensor Q, Tensor Keys, Tensor Values, Tensor O, int Heads, int KvHeads, int D, int Length, int Capacity)
    {
        /// <summary>The (batch, head) pairs [p0, p1): o = softmax(q K^T / sqrt(D)) V over the first <see cref="Length"/> positions.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]   // every decoding token's loop: no unoptimised first tier
        public void Run((int Start, int End) pairs)
        {
            var (p0, p1) = pairs;
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
                float sum = ExpShiftedInPlace(scores, max);                                     // p_j = exp(s_j - max), their sum
                var oh = o.Slice(pair * D, D);                                                  // [D]
                WeightedSum(scores, vh, oh, D);
                float inv = 1f / sum;
                for (int i = 0; i < D; i++) oh[i] *= inv;
            }
            ArrayPool<float>.Shared.Return(rented);
        }
    }
}
