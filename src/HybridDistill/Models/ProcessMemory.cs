namespace HybridDistill.Models;

/// <summary>This process's memory, as training logs it (rss_mb) and the memory benchmark measures it.</summary>
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
}
