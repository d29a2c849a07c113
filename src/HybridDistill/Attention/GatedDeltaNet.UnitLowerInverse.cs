using System.Numerics;
using System.Runtime.CompilerServices;
using HybridDistill.Modules;
using TorchSharp;
using static TorchSharp.torch;

namespace HybridDistill.Attention;

// Step 3 of the chunked form: A = (I + M)^-1 for every chunk's strictly lower-triangular M [c, c]. libtorch's batched
// triangular solve (LAPACK trsm against the identity, one small call per matrix) took 3.4-4.3 ms for the 256 matrices of
// 64 x 64 at T=2048 (B=1, H=8) on the quiet 2-core machine, and 23-27 ms with a `hybrid run` beside it. Forward
// substitution over raw memory does the same arithmetic in one pass (1.4-2.7 ms quiet): row i of A is
// e_i - sum_{k<i} M[i, k] (row k of A), where row k is zero beyond column k, so each step is an axpy over the first
// k + 1 columns (rounded up to the SIMD width, still within the row's zeros); the cores split the matrices, through
// Parallel.For rather than ForkJoin: this runs in training, between libtorch's OpenMP regions, where helpers spinning
// after the job would take the cores those regions need.

public sealed partial class GatedDeltaNet
{
    /// <summary>
    /// (I + M)^-1 for strictly lower-triangular M [..., c, c] (a unit-lower-triangular matrix), batched over the leading
    /// dimensions: by forward substitution over raw memory for contiguous fp32 CPU tensors outside autograd, otherwise
    /// by <see cref="InvertUnitLowerBySolve"/>, the reference the tests compare it with.
    /// </summary>
    internal static Tensor InvertUnitLower(Tensor m)
    {
        if (!Vector.IsHardwareAccelerated || (is_grad_enabled() && m.requires_grad) || !RawFloats.IsCpuFloat(m) || !m.is_contiguous()
            || m.numel() > int.MaxValue / sizeof(float))
            return InvertUnitLowerBySolve(m);
        int c = (int)m.shape[^1];
        int count = c == 0 ? 0 : (int)(m.numel() / ((long)c * c));
        var inverse = zeros_like(m);                                                          // [..., c, c]
        int parts = ForkJoin.PartsFor(count);
        void Part(int p)
        {
            ReadOnlySpan<float> ms = RawFloats.Of(m);
            Span<float> inv = RawFloats.Of(inverse);
            var (first, end) = ForkJoin.Share(count, parts, p);
            for (int i = first; i < end; i++)
                InvertOne(ms.Slice(i * c * c, c * c), inv.Slice(i * c * c, c * c), c);
        }
        if (parts == 1) Part(0);
        else Parallel.For(0, parts, new ParallelOptions { MaxDegreeOfParallelism = parts }, Part);
        return inverse;
    }

    /// <summary>(I + M)^-1 by <c>torch.linalg.solve_triangular</c> against the identity (any device, dtype or autograd).</summary>
    internal static Tensor InvertUnitLowerBySolve(Tensor m)
    {
        using var scope = NewDisposeScope();
        long c = m.shape[^1];
        var eye = torch.eye(c, dtype: m.dtype, device: m.device);                              // [c, c]
        return scope.MoveToOuter(linalg.solve_triangular(m + eye, eye.expand_as(m), upper: false, unitriangular: true));
    }

    /// <summary>a [c, c] (zeros on entry) = (I + m)^-1 for strictly lower-triangular m [c, c], row-major.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void InvertOne(ReadOnlySpan<float> m, Span<float> a, int c)
    {
        int width = Vector<float>.Count;
        for (int i = 0; i < c; i++)
        {
            var row = a.Slice(i * c, c);
            row[i] = 1f;
            for (int k = 0; k < i; k++)
            {
                float factor = -m[i * c + k];
                if (factor == 0f) continue;
                int length = Math.Min(c, (k + width) / width * width);                         // row k is zero beyond column k
                DecodeKernels.AddScaled(row.Slice(0, length), factor, a.Slice(k * c, length));
            }
        }
    }
}
