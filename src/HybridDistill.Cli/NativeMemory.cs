using System.Runtime.InteropServices;

namespace HybridDistill.Cli;

/// <summary>
/// libtorch's CPU allocator backs allocations of 2 MB and more with transparent huge pages when the environment
/// variable THP_MEM_ALLOC_ENABLE=1 is set before its first allocation. Large tensors (logit chunks, optimizer
/// temporaries, activations) are freed and re-allocated every step, and with 4 KB pages each re-allocation pays
/// one page fault per 4 KB: measured here, copying a 65 MB tensor into a new one took 57 ms with 4 KB pages and
/// 16 ms with huge pages. .NET's Environment.SetEnvironmentVariable does not reach the native environment, so
/// this calls libc's setenv. Program calls it first thing, for every command (prefill and evaluation allocate
/// large logits too); it is a no-op elsewhere and when the variable is already set.
/// </summary>
public static class NativeMemory
{
    [DllImport("libc", EntryPoint = "setenv")]
    private static extern int SetEnv(string name, string value, int overwrite);

    public static void UseHugePagesForLargeTensors()
    {
        if (!OperatingSystem.IsLinux() || Environment.GetEnvironmentVariable("THP_MEM_ALLOC_ENABLE") is not null) return;
        try { SetEnv("THP_MEM_ALLOC_ENABLE", "1", 0); }
        catch (DllNotFoundException) { }
        catch (EntryPointNotFoundException) { }
    }
}
