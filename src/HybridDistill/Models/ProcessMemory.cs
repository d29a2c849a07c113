using System.Runtime.InteropServices;

namespace HybridDistill.Models;

/// <summary>This process's memory, as training logs it (rss_mb) and the memory benchmark measures it, and the policy of
/// the C library's allocator under libtorch.</summary>
public static class ProcessMemory
{
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

    // glibc's mallopt parameters (malloc.h).
    const int TrimThreshold = -1, MmapMax = -4;

    /// <summary>
    /// Makes glibc's malloc, which libtorch's CPU tensors come from, keep freed memory for the next allocations instead
    /// of returning it to the kernel: large blocks come from the heap instead of each being mmapped and unmapped again
    /// (M_MMAP_MAX = 0), and the heap's free top is not trimmed (M_TRIM_THRESHOLD = 2 GiB). By default glibc maps a
    /// fresh region for every block above its (moving) mmap threshold and unmaps it on free, so a training step or a
    /// chunked GDN call that frees and re-allocates the same tensors pays a page fault per 4 KB of them every time:
    /// at T=8192 one GDN forward+backward took 16-17K faults and 344-700 ms (scratch trace, 12 calls), with this policy
    /// 0-70 faults and 257-293 ms. Resident memory then stays at the run's high-water mark rather than following each
    /// step's ups and downs (flat over a training run). Threads other than the main one allocate from glibc arenas
    /// whose heaps hold at most 64 MiB, and glibc still maps a block larger than that for them. Linux with glibc only;
    /// a no-op elsewhere, and when the user set glibc's own variables (MALLOC_MMAP_MAX_, MALLOC_TRIM_THRESHOLD_ or a
    /// GLIBC_TUNABLES malloc setting), which win. Returns what is in effect, for logs.
    /// </summary>
    public static string KeepFreedMemory()
    {
        const string defaults = "the platform's allocator defaults";
        if (!OperatingSystem.IsLinux()) return defaults;
        if (Environment.GetEnvironmentVariable("MALLOC_MMAP_MAX_") is not null
            || Environment.GetEnvironmentVariable("MALLOC_TRIM_THRESHOLD_") is not null
            || (Environment.GetEnvironmentVariable("GLIBC_TUNABLES")?.Contains("glibc.malloc.") ?? false))
            return "glibc malloc settings from the environment (set by the user)";
        try
        {
            if (SetMallocOption(MmapMax, 0) == 1 && SetMallocOption(TrimThreshold, int.MaxValue) == 1)
                return "glibc malloc keeps freed memory (M_MMAP_MAX=0, M_TRIM_THRESHOLD=2 GiB)";
        }
        catch (DllNotFoundException) { }
        catch (EntryPointNotFoundException) { }
        return defaults;
    }

    [DllImport("libc", EntryPoint = "mallopt")]
    static extern int SetMallocOption(int parameter, int value);
}
