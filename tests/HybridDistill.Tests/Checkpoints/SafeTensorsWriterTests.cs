using System.Text;
using System.Text.Json;
using HybridDistill.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace HybridDistill.Tests.Checkpoints;

public class SafeTensorsWriterTests
{
    static List<KeyValuePair<string, Tensor>> SampleTensors()
    {
        var generator = torch.manual_seed(1234);
        return new()
        {
            new("model.embed_tokens.weight", torch.randn(7, 5, generator: generator)),
            new("scalar", torch.tensor(-3.25f)),
            new("empty", torch.zeros(0, 3)),
            new("a.bias", torch.randn(5, generator: generator)),
            new("names with ünïcode+\"quotes\"", torch.randn(2, 3, 4, generator: generator)),
        };
    }

    // TensorAccessor.ToArray throws on an empty tensor.
    static float[] Values(Tensor t) => t.numel() == 0 ? [] : t.data<float>().ToArray();

    [Fact]
    public void WriterThenReaderRoundTrip_IsExact()
    {
        var path = Path.Combine(TestPaths.NewTempDir("st-roundtrip"), "model.safetensors");
        var tensors = SampleTensors();
        var metadata = new Dictionary<string, string> { ["format"] = "pt", ["step"] = "42" };
        SafeTensorsWriter.Write(path, tensors, metadata);

        Assert.Empty(Directory.GetFiles(Path.GetDirectoryName(path)!, "*.tmp"));
        using var reader = SafeTensorsReader.Open(path);
        Assert.Equal(tensors.Select(t => t.Key), reader.Entries.Select(e => e.Name)); // given order
        Assert.Equal("42", reader.Metadata["step"]);
        foreach (var (name, expected) in tensors)
        {
            Assert.Equal("F32", reader.GetEntry(name).DType);
            using var actual = reader.ReadTensor(name);
            Assert.Equal(expected.shape, actual.shape);
            Assert.Equal(Values(expected), Values(actual)); // bit-exact
        }
    }

    [Fact]
    public void Layout_IsSpacePaddedHeaderThenLittleEndianDataInOrder()
    {
        var path = Path.Combine(TestPaths.NewTempDir("st-layout"), "layout.safetensors");
        using var a = torch.tensor(new[] { 1f, -2f, 3.5f });
        using var b = torch.tensor(new[] { 0.125f });
        SafeTensorsWriter.Write(path, [new("a", a), new("b", b)]);

        // Parse the bytes by hand, without the reader.
        var bytes = File.ReadAllBytes(path);
        long n = BitConverter.ToInt64(bytes, 0);
        Assert.Equal(0, n % 8);
        var header = Encoding.UTF8.GetString(bytes, 8, (int)n);
        Assert.Matches("^\\{.*\\} *$", header);
        using var json = JsonDocument.Parse(header);
        var entryB = json.RootElement.GetProperty("b");
        Assert.Equal("F32", entryB.GetProperty("dtype").GetString());
        Assert.Equal([12L, 16L], entryB.GetProperty("data_offsets").EnumerateArray().Select(x => x.GetInt64()));
        Assert.Equal(8 + n + 16, bytes.Length);
        Assert.Equal(HandBuilt.LittleEndian(1f, -2f, 3.5f, 0.125f), bytes[(int)(8 + n)..]);
    }

    [Fact]
    public void NonFp32AndNonContiguousInputs_AreStoredAsFp32Values()
    {
        var path = Path.Combine(TestPaths.NewTempDir("st-convert"), "convert.safetensors");
        using var doubles = torch.tensor(new[] { 0.1, 2.0 });
        using var matrix = torch.arange(6, dtype: float32).view(2, 3); // [[0, 1, 2], [3, 4, 5]]
        using var transposed = matrix.t();                             // [[0, 3], [1, 4], [2, 5]], not contiguous
        using var parameter = torch.ones(2, requires_grad: true);
        SafeTensorsWriter.Write(path, [new("d", doubles), new("t", transposed), new("p", parameter)]);

        using var reader = SafeTensorsReader.Open(path);
        using var d = reader.ReadTensor("d");
        Assert.Equal(new[] { 0.1f, 2f }, d.data<float>().ToArray());
        using var t = reader.ReadTensor("t");
        Assert.Equal(new long[] { 3, 2 }, t.shape);
        Assert.Equal(new[] { 0f, 3f, 1f, 4f, 2f, 5f }, t.data<float>().ToArray());
        using var p = reader.ReadTensor("p");
        Assert.Equal(new[] { 1f, 1f }, p.data<float>().ToArray());
    }

    [Fact]
    public void Rewrite_ReplacesTheFile_AndDuplicateNamesAreRefused()
    {
        var path = Path.Combine(TestPaths.NewTempDir("st-rewrite"), "w.safetensors");
        using var first = torch.ones(4);
        using var second = torch.full(2, 7f);
        SafeTensorsWriter.Write(path, [new("x", first)]);
        SafeTensorsWriter.Write(path, [new("x", second)]);
        using (var reader = SafeTensorsReader.Open(path))
        using (var x = reader.ReadTensor("x"))
            Assert.Equal(new[] { 7f, 7f }, x.data<float>().ToArray());

        Assert.Throws<ArgumentException>(() => SafeTensorsWriter.Write(path, [new("x", first), new("x", second)]));
        Assert.Empty(Directory.GetFiles(Path.GetDirectoryName(path)!, "*.tmp"));
        using (var reader = SafeTensorsReader.Open(path)) // the failed write left the previous file intact
            Assert.Equal(new long[] { 2 }, reader.GetEntry("x").Shape);
    }
}
