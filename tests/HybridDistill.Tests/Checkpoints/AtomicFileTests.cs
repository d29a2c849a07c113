using System.Text;
using HybridDistill.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace HybridDistill.Tests.Checkpoints;

/// <summary>
/// The file-writing layer under injected faults: a write that fails part-way (a full disk, a crash) leaves the
/// previous file byte for byte, no temporary file, and says which file and how many bytes it needed.
/// </summary>
public class AtomicFileTests
{
    static readonly byte[] Old = Encoding.ASCII.GetBytes("the previous, complete file\n");

    static string[] Leftovers(string dir) => Directory.GetFiles(dir, "*.tmp", SearchOption.AllDirectories);

    [Fact]
    public void DiskFull_PartWay_KeepsThePreviousFile_AndNamesTheFileAndItsSize()
    {
        var dir = TestPaths.NewTempDir("atomic-diskfull");
        var path = Path.Combine(dir, "result.json");
        File.WriteAllBytes(path, Old);
        var bigger = new byte[10_000];
        new Random(1).NextBytes(bigger);

        DiskFullException e;
        using (AtomicFile.InjectFault(new WriteFault(WriteFaultKind.DiskFull, "result.json", AfterBytes: 4096)))
            e = Assert.Throws<DiskFullException>(() => AtomicFile.WriteAllBytes(path, bigger));

        Assert.Equal(Old, File.ReadAllBytes(path));
        Assert.Empty(Leftovers(dir));
        Assert.Equal(path, e.FilePath);
        Assert.Equal(10_000, e.BytesNeeded);
        Assert.True(e.SizeKnown);
        Assert.Equal(DiskFullException.Enospc, e.HResult);
        Assert.Contains(path, e.Message);
        Assert.Contains("10,000 bytes needed", e.Message);
        Assert.Contains("Free space", e.Message);
        // The injected failure is the one .NET raises for ENOSPC, so the real and the injected path are the same code.
        Assert.True(DiskFullException.IsDiskFull(e.InnerException!));

        // Disarmed, the same write goes through.
        AtomicFile.WriteAllBytes(path, bigger);
        Assert.Equal(bigger, File.ReadAllBytes(path));
    }

    [Fact]
    public void Crash_PartWay_KeepsThePreviousFile_AndPropagatesTheException()
    {
        var dir = TestPaths.NewTempDir("atomic-crash");
        var path = Path.Combine(dir, "model.safetensors");
        File.WriteAllBytes(path, Old);
        using (AtomicFile.InjectFault(new WriteFault(WriteFaultKind.Crash, "model.safetensors", AfterBytes: 100)))
        {
            var e = Assert.Throws<InvalidOperationException>(() => AtomicFile.WriteAllBytes(path, new byte[1000]));
            Assert.Contains("injected fault after 100 bytes", e.Message);
        }
        Assert.Equal(Old, File.ReadAllBytes(path));
        Assert.Empty(Leftovers(dir));
    }

    [Fact]
    public void Fault_HitsOnlyTheNthWriteOfItsFileName()
    {
        var dir = TestPaths.NewTempDir("atomic-nth");
        using var _ = AtomicFile.InjectFault(new WriteFault(WriteFaultKind.DiskFull, "a.bin", Occurrence: 2));
        AtomicFile.WriteAllBytes(Path.Combine(dir, "a.bin"), [1, 2, 3]);                   // 1st a.bin
        AtomicFile.WriteAllBytes(Path.Combine(dir, "b.bin"), [4]);                         // another name
        Assert.Throws<DiskFullException>(() => AtomicFile.WriteAllBytes(Path.Combine(dir, "sub", "a.bin"), [5]));   // 2nd a.bin, any folder
        AtomicFile.WriteAllBytes(Path.Combine(dir, "sub", "a.bin"), [6]);                  // 3rd goes through
        Assert.Equal(new byte[] { 1, 2, 3 }, File.ReadAllBytes(Path.Combine(dir, "a.bin")));
        Assert.Equal(new byte[] { 6 }, File.ReadAllBytes(Path.Combine(dir, "sub", "a.bin")));
    }

    [Fact]
    public void Append_ThatDoesNotFit_CutsTheFileBackToItsLastWholeLine()
    {
        var dir = TestPaths.NewTempDir("atomic-append");
        var path = Path.Combine(dir, "metrics.jsonl");
        AtomicFile.Append(path, Encoding.UTF8.GetBytes("{\"step\":0}\n"));
        AtomicFile.Append(path, Encoding.UTF8.GetBytes("{\"step\":1}\n"));
        using (AtomicFile.InjectFault(new WriteFault(WriteFaultKind.DiskFull, "metrics.jsonl", AfterBytes: 5)))
        {
            var e = Assert.Throws<DiskFullException>(() => AtomicFile.Append(path, Encoding.UTF8.GetBytes("{\"step\":2}\n")));
            Assert.Equal(11, e.BytesNeeded);
        }
        Assert.Equal("{\"step\":0}\n{\"step\":1}\n", File.ReadAllText(path));
    }

    [Fact]
    public void SafeTensors_DiskFull_ReportsTheWholeFileSize()
    {
        var dir = TestPaths.NewTempDir("atomic-safetensors");
        using var scope = NewDisposeScope();
        var tensors = new Dictionary<string, Tensor> { ["a"] = arange(1000, dtype: float32), ["b"] = ones(7, 3) };
        var complete = Path.Combine(dir, "complete.safetensors");
        SafeTensorsWriter.Write(complete, tensors);
        long size = new FileInfo(complete).Length;
        Assert.True(size > 4 * 1021);

        var path = Path.Combine(dir, "model.safetensors");
        using (AtomicFile.InjectFault(new WriteFault(WriteFaultKind.DiskFull, "model.safetensors", AfterBytes: 2000)))
        {
            var e = Assert.Throws<DiskFullException>(() => SafeTensorsWriter.Write(path, tensors));
            Assert.Equal(size, e.BytesNeeded);
            Assert.True(e.SizeKnown);
        }
        Assert.False(File.Exists(path));
        Assert.Empty(Leftovers(dir));
    }

    [Theory]
    [InlineData("disk-full:optimizer.safetensors:2:4096", WriteFaultKind.DiskFull, "optimizer.safetensors", 2, 4096)]
    [InlineData("crash:model.safetensors", WriteFaultKind.Crash, "model.safetensors", 1, 0)]
    public void WriteFault_Parses(string spec, WriteFaultKind kind, string name, int occurrence, long after) =>
        Assert.Equal(new WriteFault(kind, name, occurrence, after), WriteFault.Parse(spec, "HYBRID_INJECT_FAULT"));

    [Theory]
    [InlineData("full:x")]
    [InlineData("crash")]
    [InlineData("crash:x:0")]
    [InlineData("disk-full:x:1:-5")]
    public void WriteFault_RejectsASpecItCannotRead_NamingTheVariable(string spec)
    {
        var e = Assert.Throws<InputException>(() => WriteFault.Parse(spec, "HYBRID_INJECT_FAULT"));
        Assert.StartsWith("HYBRID_INJECT_FAULT: '" + spec + "' is not a fault", e.Message);
    }
}
