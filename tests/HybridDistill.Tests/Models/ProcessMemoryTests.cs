using System.Runtime.InteropServices;
using HybridDistill.Models;
using HybridDistill.Modules;
using static TorchSharp.torch;

namespace HybridDistill.Tests.Models;

public class ProcessMemoryTests
{
    // glibc (malloc.c) keeps a block's size in the word before the address it hands out, with flags in the low bits:
    // IS_MMAPPED (0x2) marks a block that has its own mapping, unmapped again when freed.
    const long IsMmapped = 0x2, FlagBits = 0x7;

    [Fact]
    public void KeepFreedMemory_ServesLargeTensorsFromTheHeap_NotFromFreshMappings()
    {
        Assert.True(OperatingSystem.IsLinux(), "the suite runs on linux-x64 with glibc");
        string policy = ProcessMemory.KeepFreedMemory();
        if (policy.EndsWith("(set by the user)")) return;                  // the user's MALLOC_* settings are left alone
        Assert.Equal("glibc malloc keeps freed memory (M_MMAP_MAX=0, M_TRIM_THRESHOLD=2 GiB)", policy);

        // 48 MiB is above the largest mmap threshold glibc's default ever moves to (32 MiB): by default this tensor's
        // block is its own mapping; under the policy it comes from a heap. (Not 64 MiB or more: a thread other than the
        // main one allocates from an arena whose heaps hold at most 64 MiB, and glibc maps larger blocks there whatever
        // M_MMAP_MAX says; this test runs on a worker thread.) The block's own header is read, so tests running beside
        // this one cannot change the outcome.
        const long bytes = 48L << 20;
        using var big = empty(bytes / sizeof(float));
        big.fill_(1f);
        long header = Marshal.ReadInt64(RawFloats.Address(big) - sizeof(long));
        Assert.InRange(header & ~FlagBits, bytes, bytes + (1L << 20));        // it is the header of this block
        Assert.True((header & IsMmapped) == 0, $"the 48 MiB tensor has its own mapping (block header 0x{header:x})");
        Assert.Equal(bytes / sizeof(float), big.sum().item<float>());
    }
}
