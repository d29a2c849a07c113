using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using HybridDistill.Modules;
using TorchSharp;
using static TorchSharp.torch;

namespace HybridDistill.Attention;

// Gated DeltaNet decoding on raw fp32 memory. One token costs a GDN layer about 3 x H x Dk x Dv multiply-adds
// (98k for H = 8, D = 64) besides its projections; as some 45 separate tensor operations that work is dwarfed
// by their per-call overhead (about 8 us each through TorchSharp, i.e. ~0.4 ms per layer and token), so the
// token path does everything between the projections in one pass over plain spans: SiLU features (or the
// short convolution, its caches advanced in place), L2 norms,
// gates, the state update of Step (in place) and the gated RMSNorm of the output. Step (tensor ops) is the
// reference this is tested against; the chunked path still serves prefill.

public sealed partial class GatedDeltaNet
{
    /// <summary>
    /// <see cref="Step"/> computed in place: q, k [B, H, Dk] (L2-normalised, q scaled), v [B, H, Dv], beta, g [B, H],
    /// state [B, H, Dk, Dv] (contiguous fp32 on the CPU, overwritten by the new state). Returns o [B, H, Dv].
    /// </summary>
    internal static Tensor StepInPlace(Tensor q, Tensor k, Tensor v, Tensor beta, Tensor g, Tensor state)
    {
        CheckStepShapes(q, k, v, beta, g, state);
        RequireRawFp32(state, nameof(state));
        int batchHeads = checked((int)(q.size(0) * q.size(1))), dk = (int)q.size(2), dv = (int)v.size(2);
        using var qc = q.contiguous(); using var kc = k.contiguous(); using var vc = v.contiguous();
        using var betac = beta.contiguous(); using var alpha = g.exp();
        var output = empty(q.size(0), q.size(1), dv);
        ReadOnlySpan<float> qs = Floats(qc), ks = Floats(kc), vs = Floats(vc), bs = Floats(betac), al = Floats(alpha);
        Span<float> s = Floats(state), o = Floats(output);
        Span<float> scratch = stackalloc float[dv];
        for (int bh = 0; bh < batchHeads; bh++)
            StepHead(qs.Slice(bh * dk, dk), ks.Slice(bh * dk, dk), vs.Slice(bh * dv, dv), bs[bh], al[bh],
                s.Slice(bh * dk * dv, dk * dv), o.Slice(bh * dv, dv), scratch);
        return output;
    }

    /// <summary>
    /// One head, one token: S &lt;- alpha S; u = beta (v - S^T k); S &lt;- S + k u^T; o = S^T q. S is [Dk, Dv] row-major,
    /// updated in place; <paramref name="scratch"/> holds Dv floats.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]   // SIMD loops of every decoding token: no unoptimised first tier
    static void StepHead(ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, float beta, float alpha,
        Span<float> s, Span<float> o, Span<float> scratch)
    {
        int dk = k.Length, dv = v.Length;
        var recalled = scratch;                                   // (alpha S)^T k  [Dv]
        recalled.Clear();
        for (int i = 0; i < dk; i++) AddScaled(recalled, alpha * k[i], s.Slice(i * dv, dv));
        for (int j = 0; j < dv; j++) recalled[j] = beta * (v[j] - recalled[j]);   // now u
        o.Clear();
        for (int i = 0; i < dk; i++)
        {
            var row = s.Slice(i * dv, dv);
            ScaleAddScaled(row, alpha, k[i], recalled);           // row = alpha row + k_i u
            AddScaled(o, q[i], row);
        }
    }

    /// <summary>
    /// The whole layer between its projections for one token, per batch row and head: features (SiLU, or the short
    /// convolution + SiLU with its caches advanced in place), gates, the step (state updated in place) and
    /// o_norm(o) * silu(g). Inputs are the raw projections [B, H*D] (a, b: [B, H]); returns y [B, 1, H*D] for o_proj.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    Tensor DecodeProjected(Tensor qRaw, Tensor kRaw, Tensor vRaw, Tensor gateRaw, Tensor aRaw, Tensor bRaw, RecurrentState state)
    {
        int batch = (int)qRaw.size(0), d = headDim, channels = heads * headDim;
        int kernel = q_conv1d?.KernelSize ?? 1, taps = kernel - 1;
        var y = empty(batch, 1, channels);
        ReadOnlySpan<float> qs = Floats(qRaw), ks = Floats(kRaw), vs = Floats(vRaw), gs = Floats(gateRaw), As = Floats(aRaw), bs = Floats(bRaw);
        ReadOnlySpan<float> aLog = Floats(A_log), dtBias = Floats(dt_bias), normWeight = Floats(o_norm.Weight);
        bool conv = q_conv1d is not null;
        ReadOnlySpan<float> qConvW = conv ? Floats(q_conv1d!.Weight) : default, kConvW = conv ? Floats(k_conv1d!.Weight) : default,
            vConvW = conv ? Floats(v_conv1d!.Weight) : default;                                  // [C, 1, K]
        Span<float> qCache = conv ? Floats(state.QConv!) : default, kCache = conv ? Floats(state.KConv!) : default,
            vCache = conv ? Floats(state.VConv!) : default;                                      // [B, C, K-1]
        Span<float> s = Floats(state.S), ys = Floats(y);
        Span<float> scratch = stackalloc float[4 * d];
        var q = scratch.Slice(0, d); var k = scratch.Slice(d, d); var v = scratch.Slice(2 * d, d); var recall = scratch.Slice(3 * d, d);
        float qScale = 1f / MathF.Sqrt(d);
        for (int b = 0; b < batch; b++)
            for (int h = 0; h < heads; h++)
            {
                int row = b * heads + h, at = row * d;
                if (conv)
                {
                    int weightAt = h * d * kernel, cacheAt = (b * channels + h * d) * taps;
                    ConvSilu(qs.Slice(at, d), q, qConvW.Slice(weightAt, d * kernel), qCache.Slice(cacheAt, d * taps), kernel);
                    ConvSilu(ks.Slice(at, d), k, kConvW.Slice(weightAt, d * kernel), kCache.Slice(cacheAt, d * taps), kernel);
                    ConvSilu(vs.Slice(at, d), v, vConvW.Slice(weightAt, d * kernel), vCache.Slice(cacheAt, d * taps), kernel);
                }
                else
                {
                    Silu(qs.Slice(at, d), q); Silu(ks.Slice(at, d), k); Silu(vs.Slice(at, d), v);
                }
                Scale(q, qScale / MathF.Sqrt(SumOfSquares(q) + 1e-6f));
                Scale(k, 1f / MathF.Sqrt(SumOfSquares(k) + 1e-6f));
                float beta = 1f / (1f + MathF.Exp(-bs[row]));
                float alpha = MathF.Exp(-MathF.Exp(aLog[h]) * Softplus(As[row] + dtBias[h]));
                var o = ys.Slice(at, d);
                StepHead(q, k, v, beta, alpha, s.Slice(row * d * d, d * d), o, recall);
                // gated RMSNorm: o / sqrt(mean(o^2) + eps) * w * silu(g)
                float inv = 1f / MathF.Sqrt(SumOfSquares(o) / d + (float)o_norm.Eps);
                var gate = gs.Slice(at, d);
                for (int j = 0; j < d; j++) o[j] = o[j] * inv * normWeight[j] * SiluOf(gate[j]);
            }
        return y;
    }

    /// <summary>
    /// The short convolution's last output for one new input per channel, then SiLU: y_c = silu(sum_{j<K-1} w[c, j] h[c, j]
    /// + w[c, K-1] x_c), and the history h [C, K-1] shifted left with x_c appended (as <see cref="ShortConvolution"/> with a cache).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void ConvSilu(ReadOnlySpan<float> x, Span<float> y, ReadOnlySpan<float> weight, Span<float> history, int kernel)
    {
        int taps = kernel - 1;
        for (int c = 0; c < x.Length; c++)
        {
            var w = weight.Slice(c * kernel, kernel);
            var h = history.Slice(c * taps, taps);
            float sum = w[taps] * x[c];
            for (int j = 0; j < taps; j++) sum += w[j] * h[j];
            if (taps > 0)
            {
                h.Slice(1).CopyTo(h);
                h[taps - 1] = x[c];
            }
            y[c] = SiluOf(sum);
        }
    }

    /// <summary>A contiguous fp32 CPU tensor's elements, without copying.</summary>
    static Span<float> Floats(Tensor t)
    {
        RequireRawFp32(t, "tensor");
        return RawFloats.Of(t);
    }

    static void RequireRawFp32(Tensor t, string name)
    {
        if (t.dtype != ScalarType.Float32 || t.device_type != DeviceType.CPU || !t.is_contiguous())
            throw new ArgumentException($"{name} must be a contiguous fp32 CPU tensor for the in-place decoding step", name);
    }

    /// <summary>Whether the in-place token path can run on this state (the project's fp32 CPU tensors). On any other
    /// device (--device cuda) the layer takes the tensor-op <see cref="Step"/> instead, the path autograd also takes on
    /// the CPU, which is how the tests exercise it beside this one.</summary>
    static bool CanDecodeInPlace(Tensor x, RecurrentState state) =>
        x.dtype == ScalarType.Float32 && x.device_type == DeviceType.CPU
        && new[] { state.S, state.QConv, state.KConv, state.VConv }.All(t => t is null || (t.dtype == ScalarType.Float32 && t.is_contiguous()));

    static float SiluOf(float x) => x / (1f + MathF.Exp(-x));

    static void Silu(ReadOnlySpan<float> x, Span<float> y)
    {
        for (int i = 0; i < x.Length; i++) y[i] = SiluOf(x[i]);
    }

    /// <summary>log(1 + e^x), linear above 20 as torch's softplus.</summary>
    static float Softplus(float x) => x > 20f ? x : MathF.Log(1f + MathF.Exp(x));

    static float SumOfSquares(ReadOnlySpan<float> x)
    {
        float sum = 0;
        for (int i = 0; i < x.Length; i++) sum += x[i] * x[i];
        return sum;
    }

    static void Scale(Span<float> x, float factor)
    {
        for (int i = 0; i < x.Length; i++) x[i] *= factor;
    }

    /// <summary>acc += a * x.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void AddScaled(Span<float> acc, float a, ReadOnlySpan<float> x)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated && acc.Length >= Vector<float>.Count)
        {
            var av = new Vector<float>(a);
            var accV = MemoryMarshal.Cast<float, Vector<float>>(acc);
            var xV = MemoryMarshal.Cast<float, Vector<float>>(x);
            for (int n = 0; n < accV.Length; n++) accV[n] += av * xV[n];
            i = accV.Length * Vector<float>.Count;
        }
        for (; i < acc.Length; i++) acc[i] += a * x[i];
    }

    /// <summary>row = a * row + b * x.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void ScaleAddScaled(Span<float> row, float a, float b, ReadOnlySpan<float> x)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated && row.Length >= Vector<float>.Count)
        {
            var av = new Vector<float>(a);
            var bv = new Vector<float>(b);
            var rowV = MemoryMarshal.Cast<float, Vector<float>>(row);
            var xV = MemoryMarshal.Cast<float, Vector<float>>(x);
            for (int n = 0; n < rowV.Length; n++) rowV[n] = av * rowV[n] + bv * xV[n];
            i = rowV.Length * Vector<float>.Count;
        }
        for (; i < row.Length; i++) row[i] = a * row[i] + b * x[i];
    }
}
