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
// Layouts: WeightLayout stores Linear weights W [out, in] column-major, i.e. W^T [in, out] row-major in memory;
// then y[r, :] = sum_i x[r, i] W^T[i, :] is a run of axpys over contiguous rows of W^T. The cores split the input
// channels, so each reads one contiguous stretch of every weight (whole rows of W^T: a split of the outputs would
// read short runs of every row, 1 KB for a 512-wide o_proj, which streams from memory at a fraction of the rate);
// each part sums into its own accumulators, added at the end. The split is fixed by the thread count, so results
// do not depend on timing. A row-major W (tied embeddings as the LM head, modules built outside a model) takes
// dot products, its output rows split between the cores. Anything else (other devices or dtypes, autograd, no
// SIMD, many rows) takes the tensor path, which is the reference the tests compare this with.

/// <summary>Matrix-vector products for one decoding token over raw fp32 CPU memory, several linears per pass.</summary>
public static class DecodeKernels
{
    /// <summary>Rows (batch x tokens) up to which the raw path runs; beyond it the weights are reused often enough for libtorch's GEMM.</summary>
    public const int MaxRows = 4;

    /// <summary>
    /// Outputs per block of the column-major kernel: whole rows of W^T up to 16384 outputs (every layer's weights of the
    /// d=512 model), 64 KB runs of the LM head's. Under load, the LM head (32000 x 512) took 8 ms with 1024-output blocks
    /// (4 KB runs) and 3.5-3.9 ms with 8192 or 16384 (best of 40, outputs split; before the split moved to the inputs).
    /// </summary>
    const int Block = 16384;

    /// <summary>Below this many multiply-adds (1 MB of weights) a call is not split between cores: the fork costs tens of us on a busy machine.</summary>
    internal const long ParallelThreshold = 1L << 18;

    /// <summary>
    /// Whether <see cref="Project(Tensor, Tensor[], Tensor?[])"/> can serve input <paramref name="x"/> [..., in] with these
    /// weights [out, in] (biases [out] or null): SIMD available, no autograd, fp32 CPU everywhere, at most
    /// <see cref="MaxRows"/> rows, every weight contiguous row- or column-major.
    /// </summary>
    public static bool CanProject(Tensor x, ReadOnlySpan<Tensor> weights, ReadOnlySpan<Tensor?> biases = default)
    {
        if (!Vector.IsHardwareAccelerated || is_grad_enabled() || !RawFloats.IsCpuFloat(x)) return false;
        long inDim = x.shape[^1];
        if (inDim == 0 || x.numel() / inDim > MaxRows) return false;
        foreach (var w in weights)
            if (!RawFloats.IsCpuFloat(w) || w.dim() != 2 || w.shape[1] != inDim || w.numel() > int.MaxValue / sizeof(float) || LayoutOf(w) is null)
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
    /// x [..., in] -> x W_m^T (+ b_m) [..., out_m] for each weight W_m [out_m, in], reading x once and splitting the
    /// weights' memory between the cores. Callers check <see cref="CanProject(Tensor, ReadOnlySpan{Tensor}, ReadOnlySpan{Tensor?})"/> first.
    /// </summary>
    public static Tensor[] Project(Tensor x, Tensor[] weights, Tensor?[]? biases = null)
    {
        using var scope = NewDisposeScope();
        int inDim = (int)x.shape[^1];
        var input = x.is_contiguous() ? x : x.contiguous();
        int rows = (int)(input.numel() / inDim);
        var lead = x.shape[..^1];
        var jobs = new Projection[weights.Length];
        var outputs = new Tensor[weights.Length];
        int total = 0;
        for (int m = 0; m < weights.Length; m++)
        {
            var w = weights[m];
            int outDim = (int)w.shape[0];
            bool columnMajor = LayoutOf(w) == true;
            outputs[m] = empty([.. lead, outDim]);                                           // [..., out_m]
            jobs[m] = new Projection(columnMajor ? w.t() : w, columnMajor, outDim, biases?[m], outputs[m], total);
            total += outDim;
        }
        int parts = (long)total * inDim >= ParallelThreshold ? Math.Clamp(get_num_threads(), 1, Environment.ProcessorCount) : 1;
        if (parts == 1) RunPart(jobs, input, rows, inDim, 0, 1, default);
        else
        {
            // parts 1.. sum their input channels into scratch [rows, total] each; part 0 writes the outputs, which get the rest added
            var scratch = new float[parts - 1][];
            for (int p = 1; p < parts; p++) scratch[p - 1] = System.Buffers.ArrayPool<float>.Shared.Rent(rows * total);
            Parallel.For(0, parts, new ParallelOptions { MaxDegreeOfParallelism = parts }, p =>
                RunPart(jobs, input, rows, inDim, p, parts, p == 0 ? default : scratch[p - 1].AsSpan(0, rows * total)));
            foreach (var job in jobs)
            {
                if (!job.ColumnMajor) continue;
                Span<float> y = RawFloats.Of(job.Output);                                           // [rows, out]
                foreach (var partial in scratch)
                    for (int r = 0; r < rows; r++)
                        Add(y.Slice(r * job.OutDim, job.OutDim), partial.AsSpan(r * total + job.Offset, job.OutDim));
            }
            foreach (var partial in scratch) System.Buffers.ArrayPool<float>.Shared.Return(partial);
        }
        foreach (var o in outputs) scope.MoveToOuter(o);
        return outputs;
    }

    /// <summary>One weight of a pass: its data (W^T [in, out] when column-major, else W [out, in]), bias, output and where its outputs start in the pass.</summary>
    sealed record Projection(Tensor Data, bool ColumnMajor, int OutDim, Tensor? Bias, Tensor Output, int Offset);

    /// <summary>Start of share <paramref name="p"/> of <paramref name="parts"/> over <paramref name="size"/> items, on a multiple of <paramref name="align"/>.</summary>
    static int Split(int size, int parts, int p, int align) => p == parts ? size : (int)((long)size * p / parts / align * align);

    /// <summary>
    /// Share <paramref name="p"/> of <paramref name="parts"/> of a pass. Each part reads a contiguous share of every weight's
    /// memory: of a column-major weight (W^T [in, out]) the rows of its share of input channels, summed into the outputs
    /// (part 0, with the bias) or into <paramref name="partial"/> [rows, total outputs] (other parts); of a row-major weight
    /// its share of output rows, written to the outputs.
    /// </summary>
    static void RunPart(Projection[] jobs, Tensor input, int rows, int inDim, int p, int parts, Span<float> partial)
    {
        ReadOnlySpan<float> x = RawFloats.Of(input);                                                // [rows, in]
        int i0 = Split(inDim, parts, p, 4), i1 = Split(inDim, parts, p + 1, 4);
        int total = jobs.Sum(j => j.OutDim);
        foreach (var job in jobs)
        {
            ReadOnlySpan<float> w = RawFloats.Of(job.Data), bias = job.Bias is null ? default : RawFloats.Of(job.Bias);
            Span<float> y = RawFloats.Of(job.Output);                                               // [rows, out]
            if (job.ColumnMajor)
            {
                if (p == 0) ColumnMajorRows(w, x, bias, y, job.OutDim, rows, inDim, job.OutDim, i0, i1);
                else ColumnMajorRows(w, x, default, partial.Slice(job.Offset), total, rows, inDim, job.OutDim, i0, i1);
            }
            else RowMajorRange(w, x, bias, y, rows, inDim, job.OutDim, Split(job.OutDim, parts, p, 1), Split(job.OutDim, parts, p + 1, 1));
        }
    }

    /// <summary>
    /// acc[r, :out] = b + sum over input channels i in [i0, i1) of x[r, i] W^T[i, :] with W^T [in, out] row-major (acc rows
    /// <paramref name="accStride"/> apart): per block of outputs, one axpy per channel, so the weights are read in memory
    /// order, one stream. (Four channels per pass, four streams, read the layers' weights at about half the rate: 0.3-0.5
    /// against 0.14 ms for 1536 x 512 from DRAM, one thread, on the loaded machine.)
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void ColumnMajorRows(ReadOnlySpan<float> wt, ReadOnlySpan<float> x, ReadOnlySpan<float> bias, Span<float> acc,
        int accStride, int rows, int inDim, int outDim, int i0, int i1)
    {
        for (int c0 = 0; c0 < outDim; c0 += Block)
        {
            int n = Math.Min(Block, outDim - c0);
            for (int r = 0; r < rows; r++)
            {
                var a = acc.Slice(r * accStride + c0, n);
                if (bias.IsEmpty) a.Clear(); else bias.Slice(c0, n).CopyTo(a);
            }
            for (int i = i0; i < i1; i++)
            {
                var wi = wt.Slice(i * outDim + c0, n);
                for (int r = 0; r < rows; r++) AddScaled(acc.Slice(r * accStride + c0, n), x[r * inDim + i], wi);
            }
        }
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

    /// <summary>y[r, j] = W[j] . x[r] + b[j] for j in [j0, j1), W [out, in] row-major.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void RowMajorRange(ReadOnlySpan<float> w, ReadOnlySpan<float> x, ReadOnlySpan<float> bias, Span<float> y,
        int rows, int inDim, int outDim, int j0, int j1)
    {
        for (int j = j0; j < j1; j++)
        {
            var wj = w.Slice(j * inDim, inDim);
            for (int r = 0; r < rows; r++)
                y[r * outDim + j] = Dot(wj, x.Slice(r * inDim, inDim)) + (bias.IsEmpty ? 0f : bias[j]);
        }
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

    /// <summary>a . b (two SIMD accumulators).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static float Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        var aV = MemoryMarshal.Cast<float, Vector<float>>(a);
        var bV = MemoryMarshal.Cast<float, Vector<float>>(b);
        Vector<float> s0 = Vector<float>.Zero, s1 = Vector<float>.Zero;
        int v = 0;
        for (; v + 2 <= aV.Length; v += 2)
        {
            s0 = Vector.MultiplyAddEstimate(aV[v], bV[v], s0);
            s1 = Vector.MultiplyAddEstimate(aV[v + 1], bV[v + 1], s1);
        }
        if (v < aV.Length) s0 = Vector.MultiplyAddEstimate(aV[v], bV[v], s0);
        float sum = Vector.Sum(s0 + s1);
        for (int i = aV.Length * Vector<float>.Count; i < a.Length; i++) sum = MathF.FusedMultiplyAdd(a[i], b[i], sum);
        return sum;
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
        !is_grad_enabled() && acc.dim() == 3 && acc.shape[1] == 1 && x.shape.SequenceEqual(acc.shape) && acc.numel() <= MaxNormElements
        && RawFloats.IsCpuFloat(acc) && RawFloats.IsCpuFloat(x) && acc.is_contiguous() && x.is_contiguous();

    /// <summary>Elements up to which <see cref="RmsNorm"/> runs on raw memory (a decoding token's hidden state, or its heads).</summary>
    const long MaxNormElements = 1L << 16;

    /// <summary>Whether <see cref="RmsNorm"/> can normalise x with weight [N]: a decoding token's hidden state [B, 1, N],
    /// no autograd, contiguous fp32 CPU. (Only decoding: sequences keep libtorch's reduction order, which evaluation
    /// without autograd is tested to reproduce to the last digits.)</summary>
    public static bool CanNormalize(Tensor x, Tensor weight) =>
        !is_grad_enabled() && x.dim() == 3 && x.shape[1] == 1 && RawFloats.IsCpuFloat(x) && RawFloats.IsCpuFloat(weight) && x.numel() <= MaxNormElements
        && x.is_contiguous() && weight.is_contiguous() && weight.numel() == x.shape[^1];

    /// <summary>x [..., N] -> x / sqrt(mean(x^2) + eps) * weight, row by row (as <see cref="Modules.RmsNorm"/>, one call instead of six ops).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static Tensor RmsNorm(Tensor x, Tensor weight, double eps)
    {
        var y = empty(x.shape);
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
        !is_grad_enabled() && RawFloats.IsCpuFloat(x) && x.is_contiguous() && tables.Cos.shape[0] == 1
        && RawFloats.IsCpuFloat(tables.Cos) && RawFloats.IsCpuFloat(tables.Sin) && tables.Cos.is_contiguous() && tables.Sin.is_contiguous();

    /// <summary>True when W [out, in] is stored column-major (strides [1, out]), false when row-major, null otherwise.</summary>
    static bool? LayoutOf(Tensor w) =>
        w.is_contiguous() ? false : w.dim() == 2 && w.stride(0) == 1 && w.stride(1) == w.shape[0] ? true : null;

}
