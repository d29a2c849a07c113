// Writes the safetensors format as Hugging Face does: [u64 LE header length] [JSON header padded with spaces to a
// multiple of 8] [tensor bytes, back to back in the given order]. Every tensor is stored as F32 (fp32, contiguous,
// little-endian), or as BF16 (rounded to nearest even) when asked: finished models only, never training checkpoints.
// The file is written through AtomicFile (a temporary name, then renamed), so a crash or a full disk never leaves a
// half-written PATH; tensor bytes are streamed one tensor at a time (in bounded chunks), never gathered into one buffer.
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace HybridDistill.Checkpoints;

public static class SafeTensorsWriter
{
    /// <summary>
    /// Writes <paramref name="tensors"/> (any dtype/device/layout; stored as <paramref name="dtype"/>) to <paramref name="path"/>.
    /// The sequence is enumerated once; its tensors stay referenced until the file is written.
    /// </summary>
    public static void Write(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors,
        IReadOnlyDictionary<string, string>? metadata = null, StoredDType dtype = StoredDType.F32)
    {
        var list = tensors.ToList();
        var header = BuildHeader(list, metadata, dtype);
        AtomicFile.Write(path, stream =>
        {
            Span<byte> length = stackalloc byte[8];
            BitConverter.TryWriteBytes(length, (ulong)header.Length);
            stream.Write(length);
            stream.Write(header);
            foreach (var (_, tensor) in list)
            {
                using var scope = torch.NewDisposeScope();
                var fp32 = tensor.detach().to(float32, CPU).contiguous();
                if (dtype == StoredDType.BF16) TensorBytes.WriteBFloat16From(stream, fp32);
                else TensorBytes.WriteFrom(stream, fp32);
            }
        }, size: 8 + header.Length + list.Sum(p => p.Value.numel() * sizeof(float)));
    }

    /// <summary>The header JSON, space padded to a multiple of 8 bytes. Tensor data follows in list order.</summary>
    internal static byte[] BuildHeader(IReadOnlyList<KeyValuePair<string, Tensor>> tensors,
        IReadOnlyDictionary<string, string>? metadata, StoredDType dtype = StoredDType.F32)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            json.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                json.WriteStartObject(SafeTensorsReader.MetadataKey);
                foreach (var (key, value) in metadata) json.WriteString(key, value);
                json.WriteEndObject();
            }
            long offset = 0;
            foreach (var (name, tensor) in tensors)
            {
                if (string.IsNullOrEmpty(name) || name == SafeTensorsReader.MetadataKey)
                    throw new ArgumentException($"invalid tensor name '{name}'", nameof(tensors));
                if (!names.Add(name))
                    throw new ArgumentException($"tensor name '{name}' appears twice", nameof(tensors));
                long bytes = checked(tensor.numel() * dtype.ElementSize());
                json.WriteStartObject(name);
                json.WriteString("dtype", dtype.SafeTensorsName());
                json.WriteStartArray("shape");
                foreach (var d in tensor.shape) json.WriteNumberValue(d);
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                json.WriteNumberValue(offset + bytes);
                json.WriteEndArray();
                json.WriteEndObject();
                offset += bytes;
            }
            json.WriteEndObject();
        }
        int padding = (int)((8 - buffer.Length % 8) % 8);
        buffer.Write(Encoding.ASCII.GetBytes(new string(' ', padding)));
        return buffer.ToArray();
    }
}
