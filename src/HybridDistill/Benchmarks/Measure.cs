using System.Diagnostics;

namespace HybridDistill.Benchmarks;

/// <summary>Timing readings shared by the benchmarks (the process's memory: <see cref="Models.ProcessMemory"/>).</summary>
public static class Measure
{
    /// <summary>Median milliseconds of <paramref name="repeats"/> runs after <paramref name="warmup"/> untimed ones. On a CUDA
    /// <paramref name="device"/> the queue is drained before the clock starts and before it is read (<see cref="Synchronize"/>).</summary>
    public static double MedianMs(Action action, int repeats = 3, int warmup = 1, TorchSharp.torch.Device? device = null)
    {
        for (int i = 0; i < warmup; i++) action();
        var times = new double[repeats];
        for (int i = 0; i < repeats; i++)
        {
            Synchronize(device);
            var sw = Stopwatch.StartNew();
            action();
            Synchronize(device);
            times[i] = sw.Elapsed.TotalMilliseconds;
        }
        return Median(times);
    }

    /// <summary>The middle value of <paramref name="values"/> (the upper one of the two middle values for an even count).</summary>
    public static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted[sorted.Length / 2];
    }

    /// <summary>
    /// Waits until a CUDA device has run every kernel queued so far (torch.cuda.synchronize), so that a clock read
    /// afterwards covers them: CUDA launches return before the work is done. A no-op on the CPU and for null.
    /// </summary>
    public static void Synchronize(TorchSharp.torch.Device? device)
    {
        if (device is not null && device.type == TorchSharp.DeviceType.CUDA) TorchSharp.torch.cuda.synchronize(device);
    }

    /// <summary>fp32 matmul GFLOP/s of [m, k] x [k, n] on <paramref name="device"/> (default: the CPU), measured now.</summary>
    public static double MatmulGflops(long m, long k, long n, int repeats = 5, TorchSharp.torch.Device? device = null)
    {
        using var scope = TorchSharp.torch.NewDisposeScope();
        var a = TorchSharp.torch.randn(m, k, device: device);
        var b = TorchSharp.torch.randn(k, n, device: device);
        double ms = MedianMs(() => { using var c = TorchSharp.torch.matmul(a, b); }, repeats, warmup: 2, device);
        return 2.0 * m * k * n / (ms * 1e-3) / 1e9;
    }
}
