using System.Text;
using HybridDistill.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace HybridDistill.Tests.Checkpoints;

/// <summary>Safetensors files assembled byte by byte here, independent of SafeTensorsWriter.</summary>
internal static class HandBuilt
{
    /// <summary>u64 LE header length + header JSON + data; headerLength overrides the length field.</summary>
    public static byte[] SafeTensors(string headerJson, byte[] data, ulong? headerLength = null)
    {
        var header = Encoding.UTF8.GetBytes(headerJson);
        var bytes = new List<byte>();
        bytes.AddRange(BitConverter.GetBytes(headerLength ?? (ulong)header.Length));
        bytes.AddRange(header);
        bytes.AddRange(data);
        return bytes.ToArray();
    }

    public static byte[] LittleEndian(params ushort[] values) => values.SelectMany(v => new[] { (byte)v, (byte)(v >> 8) }).ToArray();

    public static byte[] LittleEndian(params float[] values) => values.SelectMany(BitConverter.GetBytes).ToArray();

    public static string WriteFile(string dir, string name, byte[] bytes)
    {
        var path = Path.Combine(dir, name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    public static InputException AssertInputError(Action action, params string[] fragments)
    {
        var e = Assert.Throws<InputException>(action);
        foreach (var f in fragments) Assert.Contains(f, e.Message);
        return e;
    }
}

public class SafeTensorsReaderTests
{
    [Fact]
    public void HandBuiltF32F16AndBf16_AreReadAsFp32()
    {
        var dir = TestPaths.NewTempDir("st-dtypes");
        // F32 [2, 2] = [[1.5, -2], [0.25, 3e-8]]
        var f32 = HandBuilt.LittleEndian(1.5f, -2f, 0.25f, 3e-8f);
        // F16 [3]: 1.0 (0x3C00), -2.0 (0xC000), 65504 (0x7BFF, largest half); [1]: 2^-24 (0x0001, smallest subnormal)
        var f16 = HandBuilt.LittleEndian(0x3C00, 0xC000, 0x7BFF, 0x0001);
        // BF16 [2]: 1.0 (0x3F80), 3.140625 (0x4049); then -2.5 (0xC020) as [1, 1]
        var bf16 = HandBuilt.LittleEndian(0x3F80, 0x4049, 0xC020);
        var data = f32.Concat(f16).Concat(bf16).ToArray();
        string header = """
            {"__metadata__":{"format":"pt","note":"hand built"},
             "b.bf16":{"dtype":"BF16","shape":[2],"data_offsets":[24,28]},
             "a.f32":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},
             "c.f16":{"dtype":"F16","shape":[3],"data_offsets":[16,22]},
             "d.f16":{"dtype":"F16","shape":[1],"data_offsets":[22,24]},
             "e.bf16":{"dtype":"BF16","shape":[1,1],"data_offsets":[28,30]}}
            """;
        var path = HandBuilt.WriteFile(dir, "dtypes.safetensors", HandBuilt.SafeTensors(header, data));

        using var reader = SafeTensorsReader.Open(path);
        Assert.Equal(["a.f32", "c.f16", "d.f16", "b.bf16", "e.bf16"], reader.Entries.Select(e => e.Name)); // data order
        Assert.Equal("hand built", reader.Metadata["note"]);
        Assert.Equal(8 + Encoding.UTF8.GetByteCount(header), reader.DataStart);
        var c = reader.GetEntry("c.f16");
        Assert.Equal(("F16", 16L, 22L), (c.DType, c.Begin, c.End));
        Assert.Equal(new long[] { 3 }, c.Shape);

        using var a = reader.ReadTensor("a.f32");
        Assert.Equal(float32, a.dtype);
        Assert.Equal(new long[] { 2, 2 }, a.shape);
        Assert.Equal(new[] { 1.5f, -2f, 0.25f, 3e-8f }, a.data<float>().ToArray());
        using var half = reader.ReadTensor("c.f16");
        Assert.Equal(float32, half.dtype);
        Assert.Equal(new[] { 1f, -2f, 65504f }, half.data<float>().ToArray());
        using var tiny = reader.ReadTensor("d.f16");
        Assert.Equal(MathF.Pow(2, -24), tiny.data<float>()[0]);
        using var brain = reader.ReadTensor("b.bf16");
        Assert.Equal(new[] { 1f, 3.140625f }, brain.data<float>().ToArray());
        using var brain2 = reader.ReadTensor("e.bf16");
        Assert.Equal(new long[] { 1, 1 }, brain2.shape);
        Assert.Equal(-2.5f, brain2.data<float>()[0]);
    }

    [Fact]
    public void F64_IsRead_AndIntegerDTypeIsRejectedForWeights()
    {
        var dir = TestPaths.NewTempDir("st-f64");
        var data = BitConverter.GetBytes(0.1).Concat(BitConverter.GetBytes(-7.0)).Concat(BitConverter.GetBytes(5L)).ToArray();
        var path = HandBuilt.WriteFile(dir, "f64.safetensors", HandBuilt.SafeTensors(
            """{"x":{"dtype":"F64","shape":[2],"data_offsets":[0,16]},"n":{"dtype":"I64","shape":[],"data_offsets":[16,24]}}""", data));
        using var reader = SafeTensorsReader.Open(path);
        using var x = reader.ReadTensor("x");
        Assert.Equal(new[] { 0.1f, -7f }, x.data<float>().ToArray());
        HandBuilt.AssertInputError(() => reader.ReadTensor("n"), path, "'n'", "I64");
        HandBuilt.AssertInputError(() => reader.ReadTensor("absent"), path, "'absent'");
    }

    [Fact]
    public void FileShorterThanEightBytes_IsRejected()
    {
        var path = HandBuilt.WriteFile(TestPaths.NewTempDir("st-short"), "short.safetensors", [1, 2, 3]);
        HandBuilt.AssertInputError(() => SafeTensorsReader.Open(path), path, "3 bytes");
    }

    [Fact]
    public void HeaderLengthBeyondFile_IsRejected()
    {
        var bytes = HandBuilt.SafeTensors("""{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""", new byte[4], headerLength: 1000);
        var path = HandBuilt.WriteFile(TestPaths.NewTempDir("st-hlen"), "hlen.safetensors", bytes);
        HandBuilt.AssertInputError(() => SafeTensorsReader.Open(path), path, "header length", "1000");
    }

    [Fact]
    public void HeaderThatIsNotJson_IsRejected()
    {
        var bytes = HandBuilt.SafeTensors("""{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]""", new byte[4]);
        var path = HandBuilt.WriteFile(TestPaths.NewTempDir("st-json"), "badjson.safetensors", bytes);
        HandBuilt.AssertInputError(() => SafeTensorsReader.Open(path), path, "not valid JSON");
    }

    [Fact]
    public void OffsetsInconsistentWithShape_AreRejected()
    {
        // [2, 3] F32 needs 24 bytes but the offsets span 20.
        var bytes = HandBuilt.SafeTensors("""{"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}}""", new byte[24]);
        var path = HandBuilt.WriteFile(TestPaths.NewTempDir("st-span"), "span.safetensors", bytes);
        HandBuilt.AssertInputError(() => SafeTensorsReader.Open(path), path, "'w'", "20 bytes", "24 bytes");
    }

    [Fact]
    public void UnknownDTypeAndOverlappingTensors_AreRejected()
    {
        var dir = TestPaths.NewTempDir("st-misc");
        var unknown = HandBuilt.WriteFile(dir, "unknown.safetensors",
            HandBuilt.SafeTensors("""{"w":{"dtype":"Q4","shape":[2],"data_offsets":[0,1]}}""", new byte[1]));
        HandBuilt.AssertInputError(() => SafeTensorsReader.Open(unknown), unknown, "'w'", "Q4");
        var overlap = HandBuilt.WriteFile(dir, "overlap.safetensors", HandBuilt.SafeTensors(
            """{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}""", new byte[12]));
        HandBuilt.AssertInputError(() => SafeTensorsReader.Open(overlap), overlap, "'a'", "'b'", "overlap");
    }

    [Fact]
    public void TruncatedData_IsRejectedNamingFileAndTensor()
    {
        var full = HandBuilt.SafeTensors(
            """{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}}""",
            HandBuilt.LittleEndian(1f, 2f, 3f, 4f, 5f, 6f));
        var path = HandBuilt.WriteFile(TestPaths.NewTempDir("st-trunc"), "trunc.safetensors", full[..^5]);
        HandBuilt.AssertInputError(() => SafeTensorsReader.Open(path), path, "'b'", "truncated", "19 data bytes");
    }

    [Fact]
    public void RealStories260K_IsReadAndMatchesTheLlama2cBin()
    {
        var path = TestPaths.Assets("stories260K", "model.safetensors");
        using var reader = SafeTensorsReader.Open(path);
        Assert.Equal(48, reader.Entries.Count); // 5 layers x 9 + embed, norm, lm_head
        Assert.Equal(new long[] { 512, 64 }, reader.GetEntry("model.embed_tokens.weight").Shape);
        Assert.Equal(new long[] { 32, 64 }, reader.GetEntry("model.layers.4.self_attn.k_proj.weight").Shape);
        Assert.Equal(new long[] { 64, 172 }, reader.GetEntry("model.layers.0.mlp.down_proj.weight").Shape);
        Assert.Equal("pt", reader.Metadata["format"]);

        // Raw floats straight from the llama2.c file: tok_emb starts after the 28-byte header; rms_final sits just
        // before the two RoPE tables at the end (seq_len 512 x head_size 8 floats) of the shared-classifier file.
        var bin = File.ReadAllBytes(TestPaths.Assets("stories260K", "stories260K.bin"));
        float BinFloat(long index) => BitConverter.ToSingle(bin, (int)(28 + 4 * index));
        using var embed = reader.ReadTensor("model.embed_tokens.weight");
        Assert.Equal(BinFloat(0), embed[0, 0].item<float>());
        Assert.Equal(BinFloat(511 * 64 + 63), embed[511, 63].item<float>());
        using var norm = reader.ReadTensor("model.norm.weight");
        long normStart = (bin.Length - 28) / 4 - 512 * 8 - 64;
        for (int i = 0; i < 64; i++) Assert.Equal(BinFloat(normStart + i), norm[i].item<float>());
    }
}
