// The two ceilings every benchmark divides by, measured in the same run as the benchmark itself:
//   sgemm peak       fp32 GFLOP/s of a large square product C = A B (n = 2048, C preallocated, best of several
//                    runs): what this machine's best matrix multiply does when shapes and allocation are not in
//                    the way. Model-shaped products are a separate, named figure (Measure.MatmulGflops).
//   read bandwidth   GB/s of reading 1 GiB of fp32 that is already resident (no page faults), best of several
//                    passes, with every torch thread reading its own contiguous slice; the faster of two readers
//                    (torch's sum and a vectorised sum over raw memory) is kept, so neither reader's overheads
//                    lower the ceiling.
// "Best of" rather than median: a ceiling is what the machine can do, and the shared machine only ever slows a
// run down.
using System.Diagnostics;
using System.Numerics;
using System.Runtime.InteropServices;
using System.Text.Json.Serialization;
using HybridDistill.Artifacts;
using HybridDistill.Modules;
using static TorchSharp.torch;

namespace HybridDistill.Benchmarks;

/// <summary>This machine's fp32 sgemm peak and main-memory read bandwidth, measured now with <see cref="Threads"/> threads.</summary>
public sealed record MachineLimits(double SgemmPeakGflops, int SgemmSize,
    [property: JsonPropertyName("read_bandwidth_gbps")] double ReadBandwidthGBps, long ReadBytes, int Threads)
{
    /// <summary>Time to read <paramref name="bytes"/> once at <see cref="ReadBandwidthGBps"/>, in milliseconds.</summary>
    public double ReadMs(double bytes) => bytes / (ReadBandwidthGBps * 1e9) * 1e3;

    /// <summary>Measures both ceilings on <paramref name="device"/> (default the CPU; on another device only the sgemm
    /// peak is measured there, and the read bandwidth is the host's).</summary>
    public static MachineLimits Measure(Device? device = null, int sgemmSize = 2048, long readBytes = 1L << 30, int repeats = 5)
    {
        double sgemm = MeasureSgemmPeak(sgemmSize, repeats, device);
        double bandwidth = MeasureReadBandwidth(readBytes, repeats + 1);
        return new MachineLimits(sgemm, sgemmSize, bandwidth, readBytes, get_num_threads());
    }

    /// <summary>Best fp32 GFLOP/s of [n, n] x [n, n] into a preallocated output (two untimed warm-up runs).</summary>
    public static double MeasureSgemmPeak(int n, int repeats, Device? device = null)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var a = randn(n, n, device: device);
        var b = randn(n, n, device: device);
        var c = empty(n, n, device: device);
        double best = double.MaxValue;
        for (int i = 0; i < repeats + 2; i++)
        {
            Benchmarks.Measure.Synchronize(device);
            var sw = Stopwatch.StartNew();
            c.addmm_(a, b, beta: 0, alpha: 1);                                   // c = a b, no allocation
            Benchmarks.Measure.Synchronize(device);
            if (i >= 2) best = Math.Min(best, sw.Elapsed.TotalSeconds);
        }
        return 2.0 * n * n * n / best / 1e9;
    }

    /// <summary>Best GB/s of reading <paramref name="bytes"/> of resident fp32 memory (torch's sum and <see cref="SumSlices"/>).</summary>
    public static double MeasureReadBandwidth(long bytes, int repeats)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var data = ones(bytes / sizeof(float));                                  // written once: every page resident
        double best = double.MaxValue;
        for (int i = 0; i < repeats; i++)
        {
            var sw = Stopwatch.StartNew();
            using (var s = data.sum()) s.item<float>();
            best = Math.Min(best, sw.Elapsed.TotalSeconds);
            sw.Restart();
            SumSlices(data, Math.Max(1, get_num_threads()));
            best = Math.Min(best, sw.Elapsed.TotalSeconds);
        }
        return bytes / best / 1e9;
    }

    /// <summary>Sum of a contiguous fp32 CPU tensor (at most 2 GiB), each of <paramref name="threads"/> threads reading one
    /// contiguous slice with the widest vectors the CPU has.</summary>
    public static double SumSlices(Tensor data, int threads)
    {
        if (!RawFloats.IsCpuFloat(data) || !data.is_contiguous())
            throw new ArgumentException("SumSlices reads contiguous fp32 CPU tensors.", nameof(data));
        int n = checked((int)data.numel());
        var partial = new double[threads];
        Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, t =>
        {
            int from = (int)((long)n * t / threads), to = (int)((long)n * (t + 1) / threads);
            partial[t] = SumSpan(RawFloats.Of(data).Slice(from, to - from));
        });
        return partial.Sum();
    }

    static double SumSpan(ReadOnlySpan<float> x)
    {
        var vectors = MemoryMarshal.Cast<float, Vector<float>>(x);
        Vector<float> acc0 = Vector<float>.Zero, acc1 = Vector<float>.Zero, acc2 = Vector<float>.Zero, acc3 = Vector<float>.Zero;
        int i = 0;
        for (; i + 4 <= vectors.Length; i += 4)                                  // four independent chains hide the add latency
        {
            acc0 += vectors[i];
            acc1 += vectors[i + 1];
            acc2 += vectors[i + 2];
            acc3 += vectors[i + 3];
        }
        for (; i < vectors.Length; i++) acc0 += vectors[i];
        double sum = Vector.Sum(acc0 + acc1 + acc2 + acc3);
        for (int j = vectors.Length * Vector<float>.Count; j < x.Length; j++) sum += x[j];
        return sum;
    }
}
