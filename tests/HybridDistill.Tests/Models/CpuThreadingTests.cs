using System.Runtime.InteropServices;
using HybridDistill.Models;

namespace HybridDistill.Tests.Models;

public class CpuThreadingTests
{
    [DllImport("libc", EntryPoint = "getenv")]
    static extern IntPtr NativeGetEnv(string name);

    static string? Native(string name) => Marshal.PtrToStringAnsi(NativeGetEnv(name));

    [Fact]
    public void ShortSpinning_ReachesTheNativeEnvironment_AndKeepsAUsersSetting()
    {
        var policy = Environment.GetEnvironmentVariable(CpuThreading.WaitPolicyVariable);
        var spin = Environment.GetEnvironmentVariable(CpuThreading.SpinCountVariable);
        if (policy is not null || spin is not null)
        {
            // The suite itself runs under a user's setting (e.g. OMP_WAIT_POLICY=PASSIVE): it must be left alone.
            string before = $"{Native(CpuThreading.WaitPolicyVariable)}|{Native(CpuThreading.SpinCountVariable)}";
            Assert.EndsWith("(set by the user)", CpuThreading.PreferShortSpinning());
            Assert.Equal(before, $"{Native(CpuThreading.WaitPolicyVariable)}|{Native(CpuThreading.SpinCountVariable)}");
            return;
        }
        Assert.Equal("GOMP_SPINCOUNT=1000", CpuThreading.PreferShortSpinning());
        Assert.Equal("1000", Native(CpuThreading.SpinCountVariable));               // what OpenMP's loader reads
        Assert.Equal("GOMP_SPINCOUNT=1000 (set by the user)", CpuThreading.PreferShortSpinning());   // now set: kept
    }
}
