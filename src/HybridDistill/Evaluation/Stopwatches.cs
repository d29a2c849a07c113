using System.Diagnostics;

namespace HybridDistill.Evaluation;

/// <summary>Timing and memory readings shared by the benchmarks.</summary>
public static class Measure
{
    /// <summary>Median milliseconds of <paramref name="repeats"/> runs after <paramref name="warmup"/> untimed ones.</summary>
    public static double MedianMs(Action action, int repeats = 3, int warmup = 1)
    {
        for (int i = 0; i < warmup; i++) action();
        var times = new double[repeats];
        for (int i = 0; i < repeats; i++)
        {
            var sw = Stopwatch.StartNew();
            action();
            times[i] = sw.Elapsed.TotalMilliseconds;
        }
        Array.Sort(times);
        return times[repeats / 2];
    }

    /// <summary>Resident set size of this process in bytes (Linux /proc/self/status VmRSS).</summary>
    public static long ResidentBytes()
    {
        const string path = "/proc/self/status";
        if (!File.Exists(path)) return Environment.WorkingSet;
        foreach (var line in File.ReadLines(path))
            if (line.StartsWith("VmRSS:"))
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
        return Environment.WorkingSet;
    }

    /// <summary>fp32 matmul GFLOP/s of [m, k] x [k, n] on this machine, measured now.</summary>
    public static double MatmulGflops(long m, long k, long n, int repeats = 5)
    {
        using var scope = TorchSharp.torch.NewDisposeScope();
        var a = TorchSharp.torch.randn(m, k);
        var b = TorchSharp.torch.randn(k, n);
        double ms = MedianMs(() => { using var c = TorchSharp.torch.matmul(a, b); }, repeats, warmup: 2);
        return 2.0 * m * k * n / (ms * 1e-3) / 1e9;
    }
}
