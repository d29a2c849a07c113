using System.Runtime.InteropServices;
using HybridDistill.Models;
using static TorchSharp.torch;

namespace HybridDistill.Tests.Models;

public class ProcessMemoryTests
{
    // glibc's mallinfo2 (malloc.h): hblkhd is the bytes of all blocks malloc has mmapped and not yet unmapped.
    [StructLayout(LayoutKind.Sequential)]
    struct MallocInfo
    {
        public nuint Arena, OrdinaryBlocks, SmallBlocks, MappedBlocks, MappedBytes, UnusedMax, FastBytes, UsedBytes, FreeBytes, KeepCost;
    }

    [DllImport("libc", EntryPoint = "mallinfo2")]
    static extern MallocInfo MallocStatistics();

    [Fact]
    public void KeepFreedMemory_ServesLargeTensorsFromTheHeap_NotFromFreshMappings()
    {
        Assert.True(OperatingSystem.IsLinux(), "the suite runs on linux-x64 with glibc");
        string policy = ProcessMemory.KeepFreedMemory();
        if (policy.EndsWith("(set by the user)")) return;                  // the user's MALLOC_* settings are left alone
        Assert.Equal("glibc malloc keeps freed memory (M_MMAP_MAX=0, M_TRIM_THRESHOLD=2 GiB)", policy);

        // 64 MiB is far above glibc's default mmap threshold (128 KiB, moving up to at most 32 MiB): by default this
        // tensor is a fresh mapping and raises the mapped bytes by 64 MiB; under the policy it comes from the heap.
        // (Tests running beside this one cannot map blocks either once the policy is set, only unmap old ones.)
        const long bytes = 64L << 20;
        ulong mappedBefore = MallocStatistics().MappedBytes;
        using (var big = empty(bytes / sizeof(float)))
        {
            big.fill_(1f);
            ulong mappedWith = MallocStatistics().MappedBytes;
            Assert.True(mappedWith < mappedBefore + (ulong)bytes,
                $"a 64 MiB tensor was mmapped: mapped bytes {mappedBefore} -> {mappedWith}");
            Assert.Equal(bytes / sizeof(float), big.sum().item<float>());
        }
    }
}
