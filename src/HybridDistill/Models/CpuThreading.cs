using System.Runtime.InteropServices;

namespace HybridDistill.Models;

/// <summary>
/// How libtorch's OpenMP threads wait between parallel regions. By default (GNU OpenMP's OMP_WAIT_POLICY unset) an idle
/// thread spins for a while before it sleeps; on a machine whose cores are shared with another busy process that
/// spinning takes the core the other thread of a parallel region needs, and every region waits for its slowest
/// thread. Measured on 2 cores with `yes > /dev/null` beside it (bench train, d512 stage 2, seq 512): spinning made
/// the step 3.4x its quiet time, passive waiting about 2x, a fair share of the cores; see issue 14's note for the
/// quiet cost. GNU OpenMP reads the variable once, when libtorch loads it, so <see cref="PreferPassiveWaiting"/>
/// must run before the first TorchSharp call of the process; a value the user set is left as it is.
/// </summary>
public static class CpuThreading
{
    public const string WaitPolicyVariable = "OMP_WAIT_POLICY";

    /// <summary>Sets OMP_WAIT_POLICY=PASSIVE in the process environment unless it is already set. Returns the policy in effect.</summary>
    public static string PreferPassiveWaiting()
    {
        var current = Environment.GetEnvironmentVariable(WaitPolicyVariable);
        if (!string.IsNullOrEmpty(current)) return current;
        // Environment.SetEnvironmentVariable changes only .NET's copy; native libraries read the C library's.
        if (OperatingSystem.IsLinux() || OperatingSystem.IsMacOS()) SetNative(WaitPolicyVariable, "PASSIVE", overwrite: 0);
        Environment.SetEnvironmentVariable(WaitPolicyVariable, "PASSIVE");
        return "PASSIVE";
    }

    [DllImport("libc", EntryPoint = "setenv", SetLastError = true)]
    static extern int SetNative([MarshalAs(UnmanagedType.LPStr)] string name, [MarshalAs(UnmanagedType.LPStr)] string value, int overwrite);
}
