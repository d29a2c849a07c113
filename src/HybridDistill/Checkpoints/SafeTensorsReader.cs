// Streaming reader for the safetensors format (https://huggingface.co/docs/safetensors):
//   [u64 little-endian N] [N bytes of UTF-8 JSON header, space padded] [data section]
//   header = { "__metadata__": {str: str} (optional),
//              NAME: { "dtype": "F32", "shape": [d0, d1, ...], "data_offsets": [begin, end] }, ... }
//   offsets are relative to the start of the data section; end - begin = prod(shape) * sizeof(dtype).
// The header is read and validated when the file is opened; tensor data is read one tensor at a time, straight
// from the file into an fp32 tensor, with long offsets (files over 2 GB work).
using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace HybridDistill.Checkpoints;

/// <summary>One tensor's header entry. Begin and End are byte offsets relative to the data section.</summary>
public sealed record SafeTensorsEntry(string Name, string DType, long[] Shape, long Begin, long End)
{
    public long ElementCount => Shape.Aggregate(1L, (a, b) => a * b);
    public long ByteLength => End - Begin;
    public string ShapeText => FormatShape(Shape);

    internal static string FormatShape(IEnumerable<long> shape) => "[" + string.Join(", ", shape) + "]";
}

public sealed class SafeTensorsReader : IDisposable
{
    /// <summary>The safetensors reference implementation refuses headers over 100 MB; so do we.</summary>
    public const long MaxHeaderBytes = 100_000_000;
    public const string MetadataKey = "__metadata__";

    readonly FileStream _file;
    readonly Dictionary<string, SafeTensorsEntry> _byName;

    /// <summary>Full path of the file.</summary>
    public string FilePath { get; }
    /// <summary>Tensor entries in data-offset order.</summary>
    public IReadOnlyList<SafeTensorsEntry> Entries { get; }
    /// <summary>The optional <c>__metadata__</c> map (empty when absent).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }
    /// <summary>Absolute file offset of the data section (8 + header length).</summary>
    public long DataStart { get; }

    SafeTensorsReader(string path, FileStream file, List<SafeTensorsEntry> entries, Dictionary<string, string> metadata, long dataStart)
    {
        FilePath = path;
        _file = file;
        Entries = entries;
        _byName = entries.ToDictionary(e => e.Name, StringComparer.Ordinal);
        Metadata = metadata;
        DataStart = dataStart;
    }

    /// <summary>Opens the file and validates its header. Throws <see cref="InputException"/> on a bad file.</summary>
    public static SafeTensorsReader Open(string path)
    {
        var full = Path.GetFullPath(path);
        if (!File.Exists(full))
            throw new InputException($"{full}: safetensors file not found.");
        var file = new FileStream(full, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1, FileOptions.RandomAccess);
        try
        {
            var (entries, metadata, dataStart) = ReadHeader(full, file);
            return new SafeTensorsReader(full, file, entries, metadata, dataStart);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    public bool Contains(string name) => _byName.ContainsKey(name);

    public bool TryGetEntry(string name, out SafeTensorsEntry entry) => _byName.TryGetValue(name, out entry!);

    public SafeTensorsEntry GetEntry(string name) =>
        _byName.TryGetValue(name, out var entry)
            ? entry
            : throw new InputException($"{FilePath}: no tensor named '{name}' in this file.");

    /// <summary>Reads one tensor as a new fp32 CPU tensor (the caller owns it). F16, BF16 and F64 are converted.</summary>
    public Tensor ReadTensor(string name) => ReadTensor(GetEntry(name));

    public Tensor ReadTensor(SafeTensorsEntry entry)
    {
        if (!_byName.TryGetValue(entry.Name, out var own) || !ReferenceEquals(own, entry))
            throw new ArgumentException($"entry '{entry.Name}' does not belong to {FilePath}", nameof(entry));
        if (!TensorBytes.IsFloatWeightDType(entry.DType))
            throw new InputException(
                $"{FilePath}: tensor '{entry.Name}' has dtype {entry.DType}; only F32, F16, BF16 and F64 tensors can be loaded as weights.");
        var result = torch.empty(entry.Shape, dtype: float32);
        try
        {
            if (!TensorBytes.ReadInto(_file.SafeFileHandle, DataStart + entry.Begin, entry.DType, result))
                throw new InputException(
                    $"{FilePath}: tensor '{entry.Name}' could not be read in full: the file ended early (was it truncated while open?).");
        }
        catch
        {
            result.Dispose();
            throw;
        }
        return result;
    }

    /// <summary>Lazily reads every tensor in data-offset order; the caller owns (and should dispose) each tensor.</summary>
    public IEnumerable<KeyValuePair<string, Tensor>> ReadAll()
    {
        foreach (var entry in Entries)
            yield return new(entry.Name, ReadTensor(entry));
    }

    public void Dispose() => _file.Dispose();

    static (List<SafeTensorsEntry>, Dictionary<string, string>, long) ReadHeader(string path, FileStream file)
    {
        long fileLength = file.Length;
        if (fileLength < 8)
            throw new InputException(
                $"{path}: the file has {fileLength} bytes, fewer than the 8-byte header length of a safetensors file: it is empty, truncated or not a safetensors file.");
        Span<byte> lengthBytes = stackalloc byte[8];
        file.ReadExactly(lengthBytes);
        ulong headerLength = BitConverter.ToUInt64(lengthBytes);
        if (headerLength > (ulong)(fileLength - 8))
            throw new InputException(
                $"{path}: the header length field says {headerLength} bytes but only {fileLength - 8} bytes follow it: the file is truncated or not a safetensors file.");
        if ((long)headerLength > MaxHeaderBytes)
            throw new InputException($"{path}: the header is {headerLength} bytes, over the {MaxHeaderBytes}-byte limit: not a safetensors file.");
        var headerBytes = new byte[(int)headerLength];
        file.ReadExactly(headerBytes);
        long dataStart = 8 + (long)headerLength;
        long dataLength = fileLength - dataStart;

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(headerBytes);
        }
        catch (JsonException e)
        {
            throw new InputException($"{path}: the header is not valid JSON ({e.Message}): the file is corrupt or not a safetensors file.", e);
        }

        var entries = new List<SafeTensorsEntry>();
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
                throw new InputException($"{path}: the header must be a JSON object of tensor entries, found {document.RootElement.ValueKind}.");
            foreach (var property in document.RootElement.EnumerateObject())
            {
                if (!seen.Add(property.Name))
                    throw new InputException($"{path}: the header names '{property.Name}' twice.");
                if (property.Name == MetadataKey)
                    ReadMetadata(path, property.Value, metadata);
                else
                    entries.Add(ReadEntry(path, property.Name, property.Value, dataLength));
            }
        }

        entries.Sort((a, b) => a.Begin != b.Begin ? a.Begin.CompareTo(b.Begin) : a.End.CompareTo(b.End));
        for (int i = 1; i < entries.Count; i++)
            if (entries[i].Begin < entries[i - 1].End)
                throw new InputException(
                    $"{path}: tensors '{entries[i - 1].Name}' and '{entries[i].Name}' overlap in the data section: the header is corrupt.");
        return (entries, metadata, dataStart);
    }

    static void ReadMetadata(string path, JsonElement value, Dictionary<string, string> metadata)
    {
        if (value.ValueKind != JsonValueKind.Object)
            throw new InputException($"{path}: '{MetadataKey}' must be a JSON object of strings.");
        foreach (var item in value.EnumerateObject())
        {
            if (item.Value.ValueKind != JsonValueKind.String)
                throw new InputException($"{path}: '{MetadataKey}' entry '{item.Name}' must be a string, found {item.Value.ValueKind}.");
            metadata[item.Name] = item.Value.GetString()!;
        }
    }

    static SafeTensorsEntry ReadEntry(string path, string name, JsonElement value, long dataLength)
    {
        string where = $"{path}: tensor '{name}'";
        if (value.ValueKind != JsonValueKind.Object)
            throw new InputException($"{where}: header entry must be a JSON object with dtype, shape and data_offsets.");
        if (!value.TryGetProperty("dtype", out var dtypeElement) || dtypeElement.ValueKind != JsonValueKind.String)
            throw new InputException($"{where}: header entry has no string 'dtype'.");
        string dtype = dtypeElement.GetString()!;
        int elementSize = TensorBytes.DTypeSize(dtype)
            ?? throw new InputException($"{where}: unknown dtype '{dtype}'.");
        long[] shape = ReadLongArray(where, value, "shape");
        long[] offsets = ReadLongArray(where, value, "data_offsets");
        if (offsets.Length != 2)
            throw new InputException($"{where}: 'data_offsets' must be [begin, end], found {offsets.Length} numbers.");
        long begin = offsets[0], end = offsets[1];
        if (end < begin)
            throw new InputException($"{where}: data_offsets [{begin}, {end}] end before they begin: the header is corrupt.");
        long expectedBytes;
        try
        {
            expectedBytes = checked(shape.Aggregate(1L, (a, b) => checked(a * b)) * elementSize);
        }
        catch (OverflowException)
        {
            throw new InputException($"{where}: shape {SafeTensorsEntry.FormatShape(shape)} is too large: the header is corrupt.");
        }
        if (end - begin != expectedBytes)
            throw new InputException(
                $"{where}: data_offsets [{begin}, {end}] span {end - begin} bytes but dtype {dtype} with shape {SafeTensorsEntry.FormatShape(shape)} needs {expectedBytes} bytes: the header is corrupt.");
        if (end > dataLength)
            throw new InputException(
                $"{where}: data ends at byte {end} of the data section but the file holds only {dataLength} data bytes: the file is truncated (re-download or re-export it).");
        return new SafeTensorsEntry(name, dtype, shape, begin, end);
    }

    static long[] ReadLongArray(string where, JsonElement entry, string key)
    {
        if (!entry.TryGetProperty(key, out var array) || array.ValueKind != JsonValueKind.Array)
            throw new InputException($"{where}: header entry has no '{key}' array.");
        var values = new long[array.GetArrayLength()];
        int i = 0;
        foreach (var item in array.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt64(out long v) || v < 0)
                throw new InputException($"{where}: '{key}' must hold non-negative integers, found {item.GetRawText()}.");
            values[i++] = v;
        }
        return values;
    }
}
