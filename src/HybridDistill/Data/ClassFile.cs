using System.IO.MemoryMappedFiles;
using static TorchSharp.torch;

namespace HybridDistill.Data;

/// <summary>
/// The loss classes of a token file (<see cref="LossClasses"/>): one byte per token, read through a memory map and
/// cut into the same windows as its <see cref="TokenFile"/> (window i covers tokens [i*T, i*T + T + 1)).
/// </summary>
public sealed class ClassFile : IDisposable
{
    private readonly MemoryMappedFile? map;
    private readonly MemoryMappedViewAccessor? view;

    public ClassFile(string path, long expectedLength)
    {
        Path = path;
        if (!File.Exists(path)) throw new InputException($"{path}: loss-class file not found: the corpus is incomplete; re-run `hybrid corpus synth`.");
        Length = new FileInfo(path).Length;
        if (Length != expectedLength)
            throw new InputException($"{path}: {Length} classes for {expectedLength} tokens: the corpus is corrupt; re-run `hybrid corpus synth`.");
        if (Length > 0)
        {
            map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
            view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
        }
    }

    public string Path { get; }
    public long Length { get; }

    /// <summary>The classes of the given windows as a uint8 tensor [B, T + 1].</summary>
    public Tensor Windows(IReadOnlyList<long> windowIndices, int seqLen)
    {
        int width = seqLen + 1;
        var codes = new byte[windowIndices.Count * width];
        for (int b = 0; b < windowIndices.Count; b++)
        {
            long start = windowIndices[b] * seqLen;
            if (start < 0 || start + width > Length) throw new ArgumentOutOfRangeException(nameof(windowIndices));
            view!.ReadArray(start, codes, b * width, width);
        }
        return tensor(codes, [windowIndices.Count, width], dtype: uint8);
    }

    public void Dispose()
    {
        view?.Dispose();
        map?.Dispose();
    }
}
