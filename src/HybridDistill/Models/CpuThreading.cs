namespace HybridDistill.Models;

/// <summary>
/// How long libtorch's OpenMP threads spin before they sleep between parallel regions. GNU OpenMP's default (about
/// 300,000 spins) keeps a waiting thread on its core; with another busy process on the machine that spinning takes the
/// core the other thread of a parallel region needs, and every region waits for its slowest thread. Measured on this
/// project's 2-core machine, bench train (d512, stage 2, seq 512, batch 1), quiet and beside `yes > /dev/null`:
///   default spinning     2,136 ms -> 5,819 ms (2.7x)
///   OMP_WAIT_POLICY=ACTIVE 2,104 -> 5,687 (2.5x);  GOMP_SPINCOUNT=10000  1,961 -> 4,957 (2.5x)
///   GOMP_SPINCOUNT=1000  1,892 -> 3,555 (1.9x)      OMP_WAIT_POLICY=PASSIVE  2,278-2,479 -> 4,016 (1.6-1.8x)
/// and on the embedded teacher's stage 1 (tiny matrices, many short regions), tokens/s quiet: default 5,900-6,300,
/// spin 1000 4,000-5,100, passive 3,200. A spin count of 1000 is the one setting that keeps a step beside a busy
/// process near its fair share without halving small models' speed. GNU OpenMP reads these variables once, when
/// libtorch loads it, so <see cref="PreferShortSpinning"/> must run before the first TorchSharp call of the process;
/// a value the user set for either variable is left as it is.
/// </summary>
public static class CpuThreading
{
    public const string SpinCountVariable = "GOMP_SPINCOUNT";
    public const string WaitPolicyVariable = "OMP_WAIT_POLICY";
    public const string DefaultSpinCount = "1000";

    /// <summary>Sets GOMP_SPINCOUNT=1000 in the process environment unless GOMP_SPINCOUNT or OMP_WAIT_POLICY is already set.
    /// Returns what is in effect, e.g. "GOMP_SPINCOUNT=1000" or "OMP_WAIT_POLICY=PASSIVE (set by the user)".</summary>
    public static string PreferShortSpinning()
    {
        foreach (var name in new[] { WaitPolicyVariable, SpinCountVariable })
            if (Environment.GetEnvironmentVariable(name) is { } value) return $"{name}={value} (set by the user)";
        NativeEnvironment.SetUnlessSet(SpinCountVariable, DefaultSpinCount);
        return $"{SpinCountVariable}={DefaultSpinCount}";
    }
}
