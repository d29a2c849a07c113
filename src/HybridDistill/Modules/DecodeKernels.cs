using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace HybridDistill.Modules;

// One-token decoding's matrix-vector products over raw fp32 memory.
//
// A decode step reads every weight once and does two flops per weight, so it is bound by memory bandwidth:
// the d=512, 8-layer, 32000-vocabulary model reads 167 MB per token. Through libtorch each product is a
// separate call (~8 us of TorchSharp overhead each, plus a thread-pool fork per call) and the products of one
// input (q/k/v, gate/up) each re-dispatch. Here the linears that share an input are done in one pass, reading
// the parameters' own buffers: nothing is copied or cached, so weights changed by training or loading are seen
// at the next call.
//
// The loops are compiled fully optimised on first use (AggressiveOptimization): under tiered compilation their first
// calls ran unoptimised code, and a short decode (bench forward's first 16 tokens) took 55 ms/token instead of ~20.
//
// Layout: Linear weights W [out, in] are row-major, so y[r, j] = W[j, :] . x[r, :] reads each weight row as one
// contiguous run while x stays in L1. The cores split the output rows of every weight: each reads one contiguous
// stretch of the weight's memory, one stream, and writes its own outputs (no partial sums to add). Measured on the
// project's 2-core machine (scratch benchmark, interleaved rounds, medians; the LM head 32000 x 512 from DRAM): this
// dot form streams at the rate of a plain read of the same bytes (27-31 GB/s against 28-30 in that run), where the
// axpy form over a column-major W^T [in, out] (the layout before) reached 15-16 GB/s, and 19-25 with four input
// channels per pass. The split is fixed by the thread count, so results do not depend on timing. Anything else (other
// devices or dtypes, autograd, no SIMD, many rows, a strided weight) takes the tensor path, which is the reference the
// tests compare this with.

/// <summary>Matrix-vector products for one decoding token over raw fp32 CPU memory, several linears per pass.</summary>
public static class DecodeKernels
{
    /// <summary>Rows (batch x tokens) up to which the raw path runs; beyond it the weights are reused often enough for libtorch's GEMM.</summary>
    public const int MaxRows = 4;

    /// <summary>Below this many multiply-adds (1 MB of weights) a call is not split between cores: the fork costs tens of us on a busy machine.</summary>
    internal const long ParallelThreshold = 1L << 18;

    /// <summary>
    /// Whether <see cref="Project(Tensor, Tensor[], Tensor?[])"/> can serve input <paramref name="x"/> [..., in] with these
    /// weights [out, in] (biases [out] or null): SIMD available, no autograd, fp32 CPU everywhere, at most
    /// <see cref="MaxRows"/> rows, every weight contiguous (row-major).
    /// </summary>
    public static bool CanProject(Tensor x, ReadOnlySpan<Tensor> weights, ReadOnlySpan<Tensor?> biases = default)
    {
        if (!Vector.IsHardwareAccelerated || is_grad_enabled() || !RawFloats.IsCpuFloat(x)) return false;
        long inDim = x.size(-1);
        if (inDim == 0 || x.numel() / inDim > MaxRows) return false;
        foreach (var w in weights)
            if (!RawFloats.IsCpuFloat(w) || w.dim() != 2 || w.size(1) != inDim || w.numel() > int.MaxValue / sizeof(float) || !w.is_contiguous())
                return false;
        foreach (var b in biases)
            if (b is not null && (!RawFloats.IsCpuFloat(b) || !b.is_contiguous())) return false;
        return true;
    }

    /// <summary><see cref="CanProject(Tensor, ReadOnlySpan{Tensor}, ReadOnlySpan{Tensor?})"/> for linear modules.</summary>
    public static bool CanProject(Tensor x, params Linear[] linears) =>
        CanProject(x, linears.Select(l => l.weight!).ToArray(), linears.Select(l => (Tensor?)l.bias).ToArray());

    /// <summary>x [..., in] -> x W_m^T + b_m [..., out_m] for each linear, in one pass (see <see cref="CanProject(Tensor, Linear[])"/>).</summary>
    public static Tensor[] Project(Tensor x, params Linear[] linears) =>
        Project(x, linears.Select(l => l.weight!).ToArray(), linears.Select(l => (Tensor?)l.bias).ToArray());

    /// <summary>
    /// x [..., in] -> x W_m^T (+ b_m) [..., out_m] for each weight W_m [out_m, in], reading x once and splitting every
    /// weight's rows between the cores. Callers check <see cref="CanProject(Tensor, ReadOnlySpan{Tensor}, ReadOnlySpan{Tensor?})"/> first.
    /// </summary>
    public static Tensor[] Project(Tensor x, Tensor[] weights, Tensor?[]? biases = null)
    {
        // Sizes are read one dimension at a time (size(i)): TorchSharp's shape allocates and pins a managed array per call,
        // which made up about a third of a small Project call's fixed cost (~23 us per call before, scratch benchmark).
        int dims = (int)x.dim();
        int inDim = (int)x.size(dims - 1);
        using var copy = x.is_contiguous() ? null : x.contiguous();
        var input = copy ?? x;
        int rows = (int)(input.numel() / inDim);
        var outShape = new long[dims];                                                                // [..., out_m]
        for (int i = 0; i < dims - 1; i++) outShape[i] = x.size(i);
        var outputs = new Tensor[weights.Length];
        var outDims = new int[weights.Length];
        long total = 0;
        for (int m = 0; m < weights.Length; m++)
        {
            outDims[m] = (int)weights[m].size(0);
            outShape[dims - 1] = outDims[m];
            outputs[m] = empty(outShape);
            total += outDims[m];
        }
        int parts = total * inDim >= ParallelThreshold ? ForkJoin.PartsFor(total) : 1;
        void RunPart(int p)
        {
            ReadOnlySpan<float> xs = RawFloats.Of(input);                                               // [rows, in]
            for (int m = 0; m < weights.Length; m++)
            {
                var bias = biases?[m] is { } b ? RawFloats.Of(b) : default;
                var (j0, j1) = ForkJoin.Share(outDims[m], parts, p);
                RowMajorRange(RawFloats.Of(weights[m]), xs, bias, RawFloats.Of(outputs[m]), rows, inDim, outDims[m], j0, j1);
            }
        }
        ForkJoin.Run(parts, RunPart);
        return outputs;
    }

    /// <summary>acc += x.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void Add(Span<float> acc, ReadOnlySpan<float> x)
    {
        var accV = MemoryMarshal.Cast<float, Vector<float>>(acc);
        var xV = MemoryMarshal.Cast<float, Vector<float>>(x);
        for (int v = 0; v < accV.Length; v++) accV[v] += xV[v];
        for (int i = accV.Length * Vector<float>.Count; i < acc.Length; i++) acc[i] += x[i];
    }

    /// <summary>y[r, j] = W[j] . x[r] + b[j] for j in [j0, j1), W [out, in] row-major: each weight row read once, in memory order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void RowMajorRange(ReadOnlySpan<float> w, ReadOnlySpan<float> x, ReadOnlySpan<float> bias, Span<float> y,
        int rows, int inDim, int outDim, int j0, int j1)
    {
        for (int j = j0; j < j1; j++)
        {
            var wj = w.Slice(j * inDim, inDim);
            float b = bias.IsEmpty ? 0f : bias[j];
            for (int r = 0; r < rows; r++)
                y[r * outDim + j] = Dot(wj, x.Slice(r * inDim, inDim)) + b;
        }
    }

    /// <summary>a . b (four SIMD accumulators, so the loads do not wait on one chain of adds).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static float Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        var aV = MemoryMarshal.Cast<float, Vector<float>>(a);
        var bV = MemoryMarshal.Cast<float, Vector<float>>(b.Slice(0, a.Length));
        Vector<float> s0 = Vector<float>.Zero, s1 = Vector<float>.Zero, s2 = Vector<float>.Zero, s3 = Vector<float>.Zero;
        int v = 0;
        for (; v + 4 <= aV.Length; v += 4)
        {
            s0 = Vector.MultiplyAddEstimate(aV[v], bV[v], s0);
            s1 = Vector.MultiplyAddEstimate(aV[v + 1], bV[v + 1], s1);
            s2 = Vector.MultiplyAddEstimate(aV[v + 2], bV[v + 2], s2);
            s3 = Vector.MultiplyAddEstimate(aV[v + 3], bV[v + 3], s3);
        }
        for (; v < aV.Length; v++) s0 = Vector.MultiplyAddEstimate(aV[v], bV[v], s0);
        float sum = Vector.Sum((s0 + s1) + (s2 + s3));
        for (int i = aV.Length * Vector<float>.Count; i < a.Length; i++) sum = MathF.FusedMultiplyAdd(a[i], b[i], sum);
        return sum;
    }

    /// <summary>acc += a w.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void AddScaled(Span<float> acc, float a, ReadOnlySpan<float> w)
    {
        var accV = MemoryMarshal.Cast<float, Vector<float>>(acc);
        var wV = MemoryMarshal.Cast<float, Vector<float>>(w);
        var aV = new Vector<float>(a);
        for (int v = 0; v < accV.Length; v++) accV[v] = Vector.MultiplyAddEstimate(aV, wV[v], accV[v]);
        for (int i = accV.Length * Vector<float>.Count; i < acc.Length; i++) acc[i] = MathF.FusedMultiplyAdd(a, w[i], acc[i]);
    }

    /// <summary>gate [..., I] &lt;- silu(gate) * up, in place (the SwiGLU between the MLP's projections).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void SiluMultiplyInPlace(Tensor gate, Tensor up)
    {
        Span<float> g = RawFloats.Of(gate);
        ReadOnlySpan<float> u = RawFloats.Of(up);
        for (int i = 0; i < g.Length; i++) g[i] = g[i] / (1f + MathF.Exp(-g[i])) * u[i];
    }

    /// <summary>Whether <see cref="Add"/> can sum one token's x [B, 1, N] into acc of the same shape in place: both
    /// contiguous fp32 CPU, no autograd (only decoding, as <see cref="CanNormalize"/>).</summary>
    public static bool CanAddInPlace(Tensor acc, Tensor x) =>
        !is_grad_enabled() && acc.dim() == 3 && acc.size(1) == 1 && x.dim() == 3 && x.size(0) == acc.size(0) && x.size(1) == 1
        && x.size(2) == acc.size(2) && acc.numel() <= MaxNormElements
        && RawFloats.IsCpuFloat(acc) && RawFloats.IsCpuFloat(x) && acc.is_contiguous() && x.is_contiguous();

    /// <summary>Elements up to which <see cref="RmsNorm"/> runs on raw memory (a decoding token's hidden state, or its heads).</summary>
    const long MaxNormElements = 1L << 16;

    /// <summary>Whether <see cref="RmsNorm"/> can normalise x with weight [N]: a decoding token's hidden state [B, 1, N],
    /// no autograd, contiguous fp32 CPU. (Only decoding: sequences keep libtorch's reduction order, which evaluation
    /// without autograd is tested to reproduce to the last digits.)</summary>
    public static bool CanNormalize(Tensor x, Tensor weight) =>
        !is_grad_enabled() && x.dim() == 3 && x.size(1) == 1 && RawFloats.IsCpuFloat(x) && RawFloats.IsCpuFloat(weight) && x.numel() <= MaxNormElements
        && x.is_contiguous() && weight.is_contiguous() && weight.numel() == x.size(-1);

    /// <summary>x [..., N] -> x / sqrt(mean(x^2) + eps) * weight, row by row (as <see cref="Modules.RmsNorm"/>, one call instead of six ops).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static Tensor RmsNorm(Tensor x, Tensor weight, double eps)
    {
        var y = empty_like(x);
        ReadOnlySpan<float> xs = RawFloats.Of(x), w = RawFloats.Of(weight);
        Span<float> ys = RawFloats.Of(y);
        int n = w.Length;
        for (int at = 0; at < xs.Length; at += n)
        {
            var row = xs.Slice(at, n);
            float inv = 1f / MathF.Sqrt(Dot(row, row) / n + (float)eps);
            var outRow = ys.Slice(at, n);
            for (int i = 0; i < n; i++) outRow[i] = row[i] * inv * w[i];
        }
        return y;
    }

    /// <summary>
    /// RoPE in place on one token's heads x [B, 1, H, D] (contiguous) with the tables cos, sin [1, D] (rotate-half, as
    /// <see cref="Rotary.Apply"/>): x_i &lt;- x_i cos_i - x_{i+D/2} sin_i, x_{i+D/2} &lt;- x_{i+D/2} cos_{i+D/2} + x_i sin_{i+D/2}.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void RotateInPlace(Tensor x, RotaryTables tables)
    {
        Span<float> xs = RawFloats.Of(x);
        ReadOnlySpan<float> cos = RawFloats.Of(tables.Cos), sin = RawFloats.Of(tables.Sin);
        int d = cos.Length, half = d / 2;
        for (int at = 0; at < xs.Length; at += d)
        {
            var head = xs.Slice(at, d);
            for (int i = 0; i < half; i++)
            {
                float x1 = head[i], x2 = head[i + half];
                head[i] = x1 * cos[i] + -x2 * sin[i];
                head[i + half] = x2 * cos[i + half] + x1 * sin[i + half];
            }
        }
    }

    /// <summary>Whether <see cref="RotateInPlace"/> applies: one position's tables, contiguous fp32 CPU heads, no autograd.</summary>
    public static bool CanRotateInPlace(Tensor x, RotaryTables tables) =>
        !is_grad_enabled() && RawFloats.IsCpuFloat(x) && x.is_contiguous() && tables.Cos.size(0) == 1
        && RawFloats.IsCpuFloat(tables.Cos) && RawFloats.IsCpuFloat(tables.Sin) && tables.Cos.is_contiguous() && tables.Sin.is_contiguous();
}
