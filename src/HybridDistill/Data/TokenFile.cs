using System.IO.MemoryMappedFiles;
using static TorchSharp.torch;

namespace HybridDistill.Data;

/// <summary>
/// A packed uint32 little-endian token file read through a memory map, cut into fixed-length windows:
/// window i covers tokens [i*T, i*T + T + 1) (T inputs plus the next token of each as target), so
/// consecutive windows share one token and the count is (N - 1) / T.
/// </summary>
public sealed class TokenFile : IDisposable
{
    private readonly MemoryMappedFile? map;
    private readonly MemoryMappedViewAccessor? view;

    public TokenFile(string path)
    {
        Path = path;
        if (!File.Exists(path)) throw new InputException($"{path}: token file not found (re-run `hybrid tokenize`).");
        long bytes = new FileInfo(path).Length;
        if (bytes % sizeof(uint) != 0)
            throw new InputException($"{path}: {bytes} bytes is not a whole number of uint32 tokens: the file is corrupt; re-run `hybrid tokenize`.");
        Length = bytes / sizeof(uint);
        if (Length > 0)
        {
            map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
            view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
        }
    }

    public string Path { get; }
    /// <summary>Tokens in the file.</summary>
    public long Length { get; }

    public long WindowCount(int seqLen) => Length < 2 ? 0 : (Length - 1) / seqLen;

    /// <summary>Token ids [start, start + count).</summary>
    public void Read(long start, uint[] destination)
    {
        if (start < 0 || start + destination.Length > Length) throw new ArgumentOutOfRangeException(nameof(start));
        view!.ReadArray(start * sizeof(uint), destination, 0, destination.Length);
    }

    /// <summary>The given windows as an int64 tensor [B, T + 1].</summary>
    public Tensor Windows(IReadOnlyList<long> windowIndices, int seqLen)
    {
        int width = seqLen + 1;
        var ids = new long[windowIndices.Count * width];
        var row = new uint[width];
        for (int b = 0; b < windowIndices.Count; b++)
        {
            Read(windowIndices[b] * seqLen, row);
            for (int j = 0; j < width; j++) ids[b * width + j] = row[j];
        }
        return tensor(ids, [windowIndices.Count, width], dtype: int64);
    }

    public void Dispose()
    {
        view?.Dispose();
        map?.Dispose();
    }
}
