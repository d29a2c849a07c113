using System.Runtime.InteropServices;

namespace HybridDistill.Models;

/// <summary>
/// The process environment as native libraries read it. Environment.SetEnvironmentVariable changes only .NET's copy;
/// libtorch, its allocator and GNU OpenMP read the C library's, once, when they load, so defaults for them are set here
/// before the first TorchSharp call.
/// </summary>
public static class NativeEnvironment
{
    /// <summary>Sets <paramref name="name"/>=<paramref name="value"/> for .NET and native code unless the variable is already
    /// set, even to nothing (the user's choice wins); true when it was set. A no-op returning false where there is no libc setenv.</summary>
    public static bool SetUnlessSet(string name, string value)
    {
        if (Environment.GetEnvironmentVariable(name) is not null) return false;
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS()) return false;
        try
        {
            if (SetNative(name, value, overwrite: 0) != 0) return false;
        }
        catch (DllNotFoundException) { return false; }
        catch (EntryPointNotFoundException) { return false; }
        Environment.SetEnvironmentVariable(name, value);
        return true;
    }

    [DllImport("libc", EntryPoint = "setenv")]
    static extern int SetNative([MarshalAs(UnmanagedType.LPStr)] string name, [MarshalAs(UnmanagedType.LPStr)] string value, int overwrite);
}
