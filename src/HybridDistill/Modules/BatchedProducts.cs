using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using TorchSharp;
using static TorchSharp.torch;

namespace HybridDistill.Modules;

/// <summary>
/// Batched products of small matrices (the 64 x 64 to 64 x 128 per-chunk matrices of the chunked linear
/// attentions) over raw memory: C[i] = A[i] B[i] for every batch index i, with A [.., M, K] and B [.., K, N] any
/// strided views (transposes and narrows need no copy), optionally added into an existing C. libtorch sends these
/// shapes to MKL's batched sgemm, which packs both operands of every 64 x 64 product, first writes the output's
/// zeros and allocates a fresh output per call. Measured here with 2 threads, [256, 64, 64] x [64, 64]: 82-87 GFLOP/s
/// through torch.matmul, 200 GFLOP/s (the machine's sgemm peak) for this kernel's loop into a preallocated output;
/// x [64, 128]: 63-79 against 102-126 GFLOP/s.
/// Each core takes a contiguous share of the batch. Per batch the kernel streams rows of A four at a time against a
/// column panel of 64 of B, holding the 4 x 64 block of C in 16 vector registers (AVX-512). A row-major B whose columns
/// fill whole panels is read in place (each panel row is 64 contiguous floats); any other B is first packed into panels
/// ([N/64][K][64], zero-padded), a transposed view (B = X^T with X row-major, as the backward's products take) through
/// 8 x 8 register transposes. Packing every B was a third of the products' time in the GDN forward+backward at
/// T=2048 (perf: FourRows 40%, packing 17% of the samples, two thirds of it the transposed gather). The loops are
/// compiled fully optimised on first use (AggressiveOptimization): under tiered compilation their first calls ran
/// unoptimised code, and a GDN forward timed over 5 calls took 3x longer. Where the shapes, dtype or device do not fit (fp64, CUDA, no 512-bit SIMD, autograd wanted, batch dims
/// that broadcast) it is torch.matmul, which the tests use as the reference.
/// </summary>
internal static class BatchedProducts
{
    const int Panel = 64;                        // columns of C per register block: 4 vectors of 16 floats

    /// <summary>A [.., M, K] @ B [.., K, N] -> a new contiguous [.., M, N].</summary>
    public static Tensor Product(Tensor a, Tensor b)
    {
        if (!Fits(a, b)) return a.matmul(b);
        var shape = a.shape.ToArray();
        shape[^1] = b.shape[^1];
        var c = empty(shape, dtype: a.dtype, device: a.device);
        Run(a, b, c, accumulate: false);
        return c;
    }

    /// <summary>C += A [.., M, K] @ B [.., K, N], in place; C [.., M, N] may be a view whose rows are contiguous, and
    /// must not share memory with A or B.</summary>
    public static void AddProduct(Tensor a, Tensor b, Tensor c)
    {
        if (FitsInto(a, b, c)) Run(a, b, c, accumulate: true);
        else c.add_(a.matmul(b));
    }

    /// <summary>C = A [.., M, K] @ B [.., K, N], written into C [.., M, N] (a view whose rows are contiguous, not
    /// sharing memory with A or B): one product into part of a wider tensor instead of a fresh output and a copy.</summary>
    public static void ProductInto(Tensor a, Tensor b, Tensor c)
    {
        if (FitsInto(a, b, c)) Run(a, b, c, accumulate: false);
        else c.copy_(a.matmul(b));
    }

    static bool FitsInto(Tensor a, Tensor b, Tensor c) =>
        Fits(a, b) && !(is_grad_enabled() && c.requires_grad) && c.dtype == ScalarType.Float32 && c.device_type == DeviceType.CPU
        && c.stride(-1) == 1 && c.shape.SequenceEqual(a.shape.SkipLast(1).Append(b.shape[^1]));

    /// <summary>Whether A B runs in this kernel (otherwise torch.matmul). The raw-memory product records no
    /// autograd history, so it only runs where none is wanted.</summary>
    public static bool Fits(Tensor a, Tensor b) =>
        Vector512.IsHardwareAccelerated && !(is_grad_enabled() && (a.requires_grad || b.requires_grad))
        && a.dtype == ScalarType.Float32 && b.dtype == ScalarType.Float32
        && a.device_type == DeviceType.CPU && b.device_type == DeviceType.CPU
        && a.dim() >= 2 && a.dim() == b.dim() && a.shape[^1] == b.shape[^2]
        && a.shape.SkipLast(2).SequenceEqual(b.shape.SkipLast(2));

    static unsafe void Run(Tensor a, Tensor b, Tensor c, bool accumulate)
    {
        int m = (int)a.shape[^2], k = (int)a.shape[^1], n = (int)b.shape[^1];
        long[] aAt = BatchOffsets(a), bAt = BatchOffsets(b), cAt = BatchOffsets(c);
        if (m == 0 || n == 0 || aAt.Length == 0) return;
        float* pa = Address(a), pb = Address(b), pc = Address(c);
        long aRow = a.stride(-2), aCol = a.stride(-1), bRow = b.stride(-2), bCol = b.stride(-1), cRow = c.stride(-2);
        int panels = (n + Panel - 1) / Panel, batches = aAt.Length;
        bool inPlace = bCol == 1 && n % Panel == 0;                             // B's panel rows are already contiguous
        int parts = ForkJoin.PartsFor(batches);
        // Parallel.For, not ForkJoin: these products alternate with libtorch's own parallel ops, and ForkJoin's
        // helper spinning after each job competes with libtorch's OpenMP threads for the same cores (GDN no-grad
        // forward at T=2048, 2 runs: 51-61 ms median with ForkJoin, 41-43 ms with Parallel.For).
        Parallel.For(0, parts, p =>
        {
            var (start, end) = ForkJoin.Share(batches, parts, p);
            if (inPlace)
            {
                for (int i = start; i < end; i++)
                    Multiply(pa + aAt[i], aRow, aCol, pb + bAt[i], Panel, bRow, m, k, n, pc + cAt[i], cRow, accumulate);
                return;
            }
            var packed = ArrayPool<float>.Shared.Rent(panels * k * Panel);
            try
            {
                fixed (float* bp = packed)
                    for (int i = start; i < end; i++)
                    {
                        PackB(pb + bAt[i], bRow, bCol, k, n, bp);
                        Multiply(pa + aAt[i], aRow, aCol, bp, (long)k * Panel, Panel, m, k, n, pc + cAt[i], cRow, accumulate);
                    }
            }
            finally { ArrayPool<float>.Shared.Return(packed); }
        });
    }

    // Element offsets of every matrix of a batched tensor [.., R, C], in row-major order of the batch dims.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static long[] BatchOffsets(Tensor t)
    {
        long[] shape = t.shape, strides = t.stride();                          // read once: each is a native call
        int dims = shape.Length - 2;
        long count = 1;
        for (int d = 0; d < dims; d++) count *= shape[d];
        var offsets = new long[count];
        for (long i = 0; i < count; i++)
        {
            long rest = i, offset = 0;
            for (int d = dims - 1; d >= 0; d--)
            {
                offset += rest % shape[d] * strides[d];
                rest /= shape[d];
            }
            offsets[i] = offset;
        }
        return offsets;
    }

    static unsafe float* Address(Tensor t) => (float*)RawFloats.Address(t);

    // B (K x N, strides bRow, bCol) -> panels [N/64][K][64], the columns past N zero.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static unsafe void PackB(float* b, long bRow, long bCol, int k, int n, float* packed)
    {
        for (int j0 = 0, panel = 0; j0 < n; j0 += Panel, panel++)
        {
            int width = Math.Min(Panel, n - j0);
            float* dst = packed + (long)panel * k * Panel;
            if (bRow == 1 && k % 8 == 0 && width % 8 == 0 && Avx.IsSupported)
            {
                PackTransposed(b + j0 * bCol, bCol, k, width, dst);
                if (width < Panel)
                    for (int p = 0; p < k; p++) new Span<float>(dst + p * Panel + width, Panel - width).Clear();
                continue;
            }
            for (int p = 0; p < k; p++, dst += Panel)
            {
                float* src = b + p * bRow + j0 * bCol;
                if (bCol == 1) new ReadOnlySpan<float>(src, width).CopyTo(new Span<float>(dst, width));
                else for (int x = 0; x < width; x++) dst[x] = src[x * bCol];
                if (width < Panel) new Span<float>(dst + width, Panel - width).Clear();
            }
        }
    }

    // One panel of a transposed B: B[p, j] = x[j * xRow + p] for the rows x_j of X = B^T (each contiguous over p), into
    // dst[p * 64 + j], p < k, j < width (both multiples of 8): 8 x 8 blocks, each loaded as 8 rows of X, transposed in
    // registers (unpack, shuffle, swap of 128-bit halves) and stored as 8 rows of the panel.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static unsafe void PackTransposed(float* x, long xRow, int k, int width, float* dst)
    {
        for (int j = 0; j < width; j += 8)
            for (int p = 0; p < k; p += 8)
            {
                float* src = x + j * xRow + p;
                var r0 = Avx.LoadVector256(src); var r1 = Avx.LoadVector256(src + xRow);
                var r2 = Avx.LoadVector256(src + 2 * xRow); var r3 = Avx.LoadVector256(src + 3 * xRow);
                var r4 = Avx.LoadVector256(src + 4 * xRow); var r5 = Avx.LoadVector256(src + 5 * xRow);
                var r6 = Avx.LoadVector256(src + 6 * xRow); var r7 = Avx.LoadVector256(src + 7 * xRow);
                // pairs of rows interleaved: t0 = (r0[0] r1[0] r0[1] r1[1] | r0[4] r1[4] r0[5] r1[5]), ...
                var t0 = Avx.UnpackLow(r0, r1); var t1 = Avx.UnpackHigh(r0, r1);
                var t2 = Avx.UnpackLow(r2, r3); var t3 = Avx.UnpackHigh(r2, r3);
                var t4 = Avx.UnpackLow(r4, r5); var t5 = Avx.UnpackHigh(r4, r5);
                var t6 = Avx.UnpackLow(r6, r7); var t7 = Avx.UnpackHigh(r6, r7);
                // quadruples: u0 = (r0[0] r1[0] r2[0] r3[0] | r0[4] r1[4] r2[4] r3[4]), ...
                var u0 = Avx.Shuffle(t0, t2, 0x44); var u1 = Avx.Shuffle(t0, t2, 0xEE);
                var u2 = Avx.Shuffle(t1, t3, 0x44); var u3 = Avx.Shuffle(t1, t3, 0xEE);
                var u4 = Avx.Shuffle(t4, t6, 0x44); var u5 = Avx.Shuffle(t4, t6, 0xEE);
                var u6 = Avx.Shuffle(t5, t7, 0x44); var u7 = Avx.Shuffle(t5, t7, 0xEE);
                // columns 0-3 from the low halves, 4-7 from the high halves
                float* d = dst + (long)p * Panel + j;
                Avx.Store(d, Avx.Permute2x128(u0, u4, 0x20));
                Avx.Store(d + Panel, Avx.Permute2x128(u1, u5, 0x20));
                Avx.Store(d + 2 * Panel, Avx.Permute2x128(u2, u6, 0x20));
                Avx.Store(d + 3 * Panel, Avx.Permute2x128(u3, u7, 0x20));
                Avx.Store(d + 4 * Panel, Avx.Permute2x128(u0, u4, 0x31));
                Avx.Store(d + 5 * Panel, Avx.Permute2x128(u1, u5, 0x31));
                Avx.Store(d + 6 * Panel, Avx.Permute2x128(u2, u6, 0x31));
                Avx.Store(d + 7 * Panel, Avx.Permute2x128(u3, u7, 0x31));
            }
    }

    // C (M x N, row stride cRow) (+)= A (M x K, strides aRow, aCol) times B in panels: panel q's row p at
    // b + q * panelStride + p * rowStep (packed: panelStride K * 64, rowStep 64; in place: 64 and B's row stride).
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static unsafe void Multiply(float* a, long aRow, long aCol, float* b, long panelStride, long rowStep, int m, int k, int n, float* c, long cRow, bool accumulate)
    {
        float* spill = stackalloc float[4 * Panel];
        for (int j0 = 0, panel = 0; j0 < n; j0 += Panel, panel++)
        {
            int width = Math.Min(Panel, n - j0);
            float* bp = b + panel * panelStride;
            int r = 0;
            for (; r + 4 <= m; r += 4)
            {
                float* rows = width == Panel ? c + r * cRow + j0 : spill;
                long rowStride = width == Panel ? cRow : Panel;
                FourRows(a + r * aRow, aRow, aCol, bp, rowStep, k, rows, rowStride, accumulate && width == Panel);
                if (width < Panel) Unspill(spill, 4, width, c + r * cRow + j0, cRow, accumulate);
            }
            for (; r < m; r++)
            {
                float* row = width == Panel ? c + r * cRow + j0 : spill;
                OneRow(a + r * aRow, aCol, bp, rowStep, k, row, accumulate && width == Panel);
                if (width < Panel) Unspill(spill, 1, width, c + r * cRow + j0, cRow, accumulate);
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static unsafe void Unspill(float* spill, int rows, int width, float* c, long cRow, bool accumulate)
    {
        for (int r = 0; r < rows; r++)
        {
            float* src = spill + r * Panel, dst = c + r * cRow;
            for (int x = 0; x < width; x++) dst[x] = accumulate ? dst[x] + src[x] : src[x];
        }
    }

    // Rows r..r+3 of C against one 64-column panel: 16 accumulators, one broadcast of A per row and step of K.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static unsafe void FourRows(float* a, long aRow, long aCol, float* bp, long bStep, int k, float* c, long cRow, bool accumulate)
    {
        Vector512<float> c00 = default, c01 = default, c02 = default, c03 = default;
        Vector512<float> c10 = default, c11 = default, c12 = default, c13 = default;
        Vector512<float> c20 = default, c21 = default, c22 = default, c23 = default;
        Vector512<float> c30 = default, c31 = default, c32 = default, c33 = default;
        float* a0 = a, a1 = a + aRow, a2 = a1 + aRow, a3 = a2 + aRow;
        for (int p = 0; p < k; p++, bp += bStep)
        {
            var b0 = Vector512.Load(bp); var b1 = Vector512.Load(bp + 16); var b2 = Vector512.Load(bp + 32); var b3 = Vector512.Load(bp + 48);
            long at = p * aCol;
            var x = Vector512.Create(a0[at]);
            c00 = Vector512.FusedMultiplyAdd(x, b0, c00); c01 = Vector512.FusedMultiplyAdd(x, b1, c01);
            c02 = Vector512.FusedMultiplyAdd(x, b2, c02); c03 = Vector512.FusedMultiplyAdd(x, b3, c03);
            x = Vector512.Create(a1[at]);
            c10 = Vector512.FusedMultiplyAdd(x, b0, c10); c11 = Vector512.FusedMultiplyAdd(x, b1, c11);
            c12 = Vector512.FusedMultiplyAdd(x, b2, c12); c13 = Vector512.FusedMultiplyAdd(x, b3, c13);
            x = Vector512.Create(a2[at]);
            c20 = Vector512.FusedMultiplyAdd(x, b0, c20); c21 = Vector512.FusedMultiplyAdd(x, b1, c21);
            c22 = Vector512.FusedMultiplyAdd(x, b2, c22); c23 = Vector512.FusedMultiplyAdd(x, b3, c23);
            x = Vector512.Create(a3[at]);
            c30 = Vector512.FusedMultiplyAdd(x, b0, c30); c31 = Vector512.FusedMultiplyAdd(x, b1, c31);
            c32 = Vector512.FusedMultiplyAdd(x, b2, c32); c33 = Vector512.FusedMultiplyAdd(x, b3, c33);
        }
        StoreRow(c, c00, c01, c02, c03, accumulate);
        StoreRow(c + cRow, c10, c11, c12, c13, accumulate);
        StoreRow(c + 2 * cRow, c20, c21, c22, c23, accumulate);
        StoreRow(c + 3 * cRow, c30, c31, c32, c33, accumulate);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static unsafe void OneRow(float* a, long aCol, float* bp, long bStep, int k, float* c, bool accumulate)
    {
        Vector512<float> c0 = default, c1 = default, c2 = default, c3 = default;
        for (int p = 0; p < k; p++, bp += bStep)
        {
            var x = Vector512.Create(a[p * aCol]);
            c0 = Vector512.FusedMultiplyAdd(x, Vector512.Load(bp), c0);
            c1 = Vector512.FusedMultiplyAdd(x, Vector512.Load(bp + 16), c1);
            c2 = Vector512.FusedMultiplyAdd(x, Vector512.Load(bp + 32), c2);
            c3 = Vector512.FusedMultiplyAdd(x, Vector512.Load(bp + 48), c3);
        }
        StoreRow(c, c0, c1, c2, c3, accumulate);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static unsafe void StoreRow(float* c, Vector512<float> v0, Vector512<float> v1, Vector512<float> v2, Vector512<float> v3, bool accumulate)
    {
        if (accumulate)
        {
            v0 += Vector512.Load(c); v1 += Vector512.Load(c + 16); v2 += Vector512.Load(c + 32); v3 += Vector512.Load(c + 48);
        }
        v0.Store(c); v1.Store(c + 16); v2.Store(c + 32); v3.Store(c + 48);
    }
}
