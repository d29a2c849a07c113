// Moves raw little-endian bytes between files and fp32 CPU tensors in bounded chunks, so a tensor of any size
// (including over 2 GB, beyond what a Span or byte[] can address) is read or written without a whole-tensor
// byte buffer. Used by SafeTensorsReader, SafeTensorsWriter and Llama2cImporter.
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using TorchSharp;
using static TorchSharp.torch;

namespace HybridDistill.Checkpoints;

internal static class TensorBytes
{
    /// <summary>Elements moved per chunk: 4 Mi elements (16 MB of fp32).</summary>
    internal const long ChunkElements = 1L << 22;

    /// <summary>Element size in bytes of a safetensors dtype string, or null when the dtype is unknown.</summary>
    internal static int? DTypeSize(string dtype) => dtype switch
    {
        "F64" or "I64" or "U64" => 8,
        "F32" or "I32" or "U32" => 4,
        "F16" or "BF16" or "I16" or "U16" => 2,
        "I8" or "U8" or "BOOL" or "F8_E4M3" or "F8_E5M2" => 1,
        _ => null,
    };

    /// <summary>The dtypes that can be loaded as fp32 weights.</summary>
    internal static bool IsFloatWeightDType(string dtype) => dtype is "F32" or "F16" or "BF16" or "F64";

    internal static void EnsureLittleEndianHost()
    {
        if (!BitConverter.IsLittleEndian)
            throw new PlatformNotSupportedException("Checkpoint I/O assumes a little-endian host.");
    }

    /// <summary>
    /// Fills the contiguous fp32 CPU tensor <paramref name="target"/> with numel elements of <paramref name="dtype"/>
    /// stored at <paramref name="fileOffset"/>, converting F16/BF16/F64 to fp32. Returns false when the file ends early.
    /// </summary>
    internal static bool ReadInto(SafeFileHandle file, long fileOffset, string dtype, Tensor target)
    {
        EnsureLittleEndianHost();
        long count = target.numel();
        if (count == 0) return true;
        int elementSize = DTypeSize(dtype) ?? throw new ArgumentException("unknown dtype " + dtype);
        using var flat = target.view(-1); // [*shape] -> [numel]
        byte[]? staging = dtype == "F32" ? null : new byte[checked((int)(Math.Min(count, ChunkElements) * elementSize))];
        float[]? converted = dtype == "F32" ? null : new float[Math.Min(count, ChunkElements)];
        for (long start = 0; start < count; start += ChunkElements)
        {
            int n = (int)Math.Min(ChunkElements, count - start);
            long offset = fileOffset + start * elementSize;
            using var part = flat.narrow(0, start, n);
            Span<byte> destination = part.bytes;
            if (dtype == "F32")
            {
                if (!ReadExactly(file, destination, offset)) return false;
                continue;
            }
            var source = staging.AsSpan(0, n * elementSize);
            if (!ReadExactly(file, source, offset)) return false;
            var values = converted.AsSpan(0, n);
            switch (dtype)
            {
                case "F16":
                    var halves = MemoryMarshal.Cast<byte, Half>(source);
                    for (int i = 0; i < n; i++) values[i] = (float)halves[i];
                    break;
                case "BF16":
                    // bf16 is the top 16 bits of an fp32: widening is exact.
                    var raw = MemoryMarshal.Cast<byte, ushort>(source);
                    for (int i = 0; i < n; i++) values[i] = BitConverter.Int32BitsToSingle(raw[i] << 16);
                    break;
                case "F64":
                    var doubles = MemoryMarshal.Cast<byte, double>(source);
                    for (int i = 0; i < n; i++) values[i] = (float)doubles[i];
                    break;
                default:
                    throw new ArgumentException("cannot convert dtype " + dtype + " to fp32");
            }
            MemoryMarshal.AsBytes(values).CopyTo(destination);
        }
        return true;
    }

    /// <summary>Writes the elements of a contiguous fp32 CPU tensor as little-endian bytes.</summary>
    internal static void WriteFrom(Stream stream, Tensor source)
    {
        EnsureLittleEndianHost();
        long count = source.numel();
        if (count == 0) return;
        using var flat = source.view(-1); // [*shape] -> [numel]
        for (long start = 0; start < count; start += ChunkElements)
        {
            int n = (int)Math.Min(ChunkElements, count - start);
            using var part = flat.narrow(0, start, n);
            stream.Write(part.bytes);
        }
    }

    /// <summary>Writes the elements of a contiguous fp32 CPU tensor as little-endian bf16, rounded to nearest even.</summary>
    internal static void WriteBFloat16From(Stream stream, Tensor source)
    {
        EnsureLittleEndianHost();
        long count = source.numel();
        if (count == 0) return;
        using var flat = source.view(-1); // [*shape] -> [numel]
        var staging = new ushort[Math.Min(count, ChunkElements)];
        for (long start = 0; start < count; start += ChunkElements)
        {
            int n = (int)Math.Min(ChunkElements, count - start);
            using var part = flat.narrow(0, start, n);
            var values = MemoryMarshal.Cast<byte, float>(part.bytes);
            for (int i = 0; i < n; i++) staging[i] = StoredDTypes.ToBFloat16Bits(values[i]);
            stream.Write(MemoryMarshal.AsBytes(staging.AsSpan(0, n)));
        }
    }

    static bool ReadExactly(SafeFileHandle file, Span<byte> buffer, long offset)
    {
        while (buffer.Length > 0)
        {
            int read = RandomAccess.Read(file, buffer, offset);
            if (read <= 0) return false;
            buffer = buffer[read..];
            offset += read;
        }
        return true;
    }
}
