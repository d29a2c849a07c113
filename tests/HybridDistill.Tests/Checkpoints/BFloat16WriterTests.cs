using System.Text.Json.Nodes;
using HybridDistill.Checkpoints;
using HybridDistill.Tests.Training;
using HybridDistill.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace HybridDistill.Tests.Checkpoints;

public class BFloat16WriterTests
{
    [Theory]
    [InlineData(0x3F800000u, (ushort)0x3F80)]   // 1.0: exact
    [InlineData(0x3F808000u, (ushort)0x3F80)]   // 1 + 2^-8: a tie, kept bit even -> down
    [InlineData(0x3F818000u, (ushort)0x3F82)]   // 1 + 3*2^-8: a tie, kept bit odd -> up to even
    [InlineData(0x3F808001u, (ushort)0x3F81)]   // just above the tie -> up
    [InlineData(0x3F807FFFu, (ushort)0x3F80)]   // just below the tie -> down
    [InlineData(0xBF818000u, (ushort)0xBF82)]   // negative tie, as its magnitude
    [InlineData(0x80000000u, (ushort)0x8000)]   // -0 keeps its sign
    [InlineData(0x7F7FFFFFu, (ushort)0x7F80)]   // fp32 max rounds past bf16 max -> +inf
    [InlineData(0x7F800000u, (ushort)0x7F80)]   // +inf
    [InlineData(0x00000001u, (ushort)0x0000)]   // smallest subnormal -> +0
    public void ToBFloat16Bits_RoundsToNearestEven(uint fp32Bits, ushort expected) =>
        Assert.Equal(expected, StoredDTypes.ToBFloat16Bits(BitConverter.UInt32BitsToSingle(fp32Bits)));

    [Fact]
    public void ToBFloat16Bits_KeepsNaN() =>
        Assert.True(float.IsNaN(StoredDTypes.FromBFloat16Bits(StoredDTypes.ToBFloat16Bits(float.NaN))));

    [Fact]
    public void Bf16File_IsHalfTheData_AndReadsBackAsTorchsRounding()
    {
        var dir = TestPaths.NewTempDir("bf16-file");
        var generator = torch.manual_seed(7);
        var tensors = new List<KeyValuePair<string, Tensor>>
        {
            new("w", torch.randn(33, 17, generator: generator) * 100),
            new("ties", torch.tensor(new[] { BitConverter.UInt32BitsToSingle(0x3F808000u), BitConverter.UInt32BitsToSingle(0x3F818000u), -0f, 1e-40f })),
            new("empty", torch.zeros(0, 3)),
        };
        string f32 = Path.Combine(dir, "f32.safetensors"), bf16 = Path.Combine(dir, "bf16.safetensors");
        SafeTensorsWriter.Write(f32, tensors);
        SafeTensorsWriter.Write(bf16, tensors, dtype: StoredDType.BF16);

        long numel = tensors.Sum(t => t.Value.numel());
        Assert.Equal(4 * numel, DataBytes(f32));
        Assert.Equal(2 * numel, DataBytes(bf16));

        using var reader = SafeTensorsReader.Open(bf16);
        foreach (var (name, original) in tensors)
        {
            Assert.Equal("BF16", reader.GetEntry(name).DType);
            using var loaded = reader.ReadTensor(name);                                   // widened to fp32 on load
            using var reference = original.to(bfloat16).to(float32);                      // libtorch's own rounding
            Assert.Equal(ScalarType.Float32, loaded.dtype);
            Assert.True(BitEqual(loaded, reference), name);
        }
        foreach (var t in tensors) t.Value.Dispose();
    }

    /// <summary>Same shape and bit patterns (-0 is not +0); empty tensors compare by shape.</summary>
    static bool BitEqual(Tensor a, Tensor b) =>
        a.numel() == 0 ? a.shape.SequenceEqual(b.shape) : TrainingFixtures.BitEqual(a, b);

    static long DataBytes(string path)
    {
        var bytes = File.ReadAllBytes(path);
        return bytes.Length - 8 - BitConverter.ToInt64(bytes, 0);
    }

    [Fact]
    public void DistillWithBf16_FinalModelIsBf16OfTheLastCheckpoint_CheckpointStaysF32()
    {
        var run = TestPaths.NewTempDir("bf16-distill");
        DistillRun.Run(new DistillRequest
        {
            Stage = Stage.Stage3, Teacher = TrainingFixtures.StoriesTeacher, Data = TrainingFixtures.StoriesData, Out = run,
            Overrides = ["seq_len=32", "batch_size=2", "train_tokens=128", "log_every=1", "eval_every=100", "eval_tokens=64", "threads=1"],
            OutputDType = StoredDType.BF16,
        });

        var checkpoint = TrainCheckpoint.List(run)[^1];
        Assert.Equal(2, checkpoint.Step);
        Assert.All(ModelWeights.ListTensors(run), t => Assert.Equal("BF16", t.DType));
        Assert.All(ModelWeights.ListTensors(checkpoint.Path), t => Assert.Equal("F32", t.DType));
        Assert.Equal("bfloat16", JsonNode.Parse(File.ReadAllText(Path.Combine(run, "config.json")))!["torch_dtype"]!.GetValue<string>());
        Assert.Equal("float32", JsonNode.Parse(File.ReadAllText(Path.Combine(checkpoint.Path, "config.json")))!["torch_dtype"]!.GetValue<string>());
        long finalBytes = new FileInfo(Path.Combine(run, ModelWeights.SingleFileName)).Length;
        long checkpointBytes = new FileInfo(Path.Combine(checkpoint.Path, ModelWeights.SingleFileName)).Length;
        Assert.InRange(finalBytes / (double)checkpointBytes, 0.49, 0.51);

        using var final = HfCheckpoint.Load(run);
        using var trained = HfCheckpoint.Load(checkpoint.Path);
        var finalWeights = final.state_dict();
        foreach (var (name, weight) in trained.state_dict())
        {
            using var rounded = weight.to(bfloat16).to(float32);
            Assert.True(BitEqual(finalWeights[name], rounded), name);
        }
    }
}
