using HybridDistill.Attention;
using HybridDistill.Checkpoints;
using HybridDistill.Config;
using HybridDistill.Models;
using static TorchSharp.torch;

namespace HybridDistill.Tests.Models;

public class HybridModelTests
{
    static HybridCausalLM Teacher(ModelConfig config, long seed = 11)
    {
        var teacher = new HybridCausalLM(config);
        teacher.InitializeWeights(seed, std: 0.2);
        using (no_grad())
            foreach (var (n, p) in teacher.named_parameters())
                if (n.EndsWith(".bias")) p.uniform_(-0.3, 0.3);
        return teacher;
    }

    static double MaxAbs(Tensor a, Tensor b) => (a - b).abs().max().item<float>();

    [Fact]
    public void AllSoftmaxConversion_ReproducesTheTeacherExactly()
    {
        using var teacher = HfCheckpoint.Load(TestPaths.Assets("stories260K"));
        using var student = StudentBuilder.Build(teacher, Enumerable.Repeat("softmax", 5).ToArray());
        manual_seed(1);
        using var ids = randint(0, 512, [2, 50], dtype: int64);
        using var a = teacher.forward(ids);
        using var b = student.forward(ids);
        Assert.Equal(0.0, MaxAbs(a, b));
    }

    [Theory]
    [InlineData(KvExpansion.Heads)]
    [InlineData(KvExpansion.Rows)]
    public void GdnKeyValueRows_ComeFromTheMatchingKvHead(KvExpansion mode)
    {
        using var teacher = Teacher(TinyConfigs.Qwen2WithBias());   // 4 query heads, 2 KV heads, head dim 8
        using var student = StudentBuilder.Build(teacher, ["gdn", "softmax"], kvExpansion: mode);
        var t = (SoftmaxAttention)teacher.Layers[0].Attention;
        var s = (GatedDeltaNet)student.Layers[0].Attention;
        int d = t.HeadDim, groups = t.Heads / t.KvHeads;
        for (int i = 0; i < t.Heads; i++)
            for (int r = 0; r < d; r++)
            {
                long studentRow = i * d + r;
                // heads: query head i reads KV head i / G; rows: student row j is teacher row j / G
                long teacherRow = mode == KvExpansion.Heads ? (i / groups) * d + r : studentRow / groups;
                Assert.Equal(0.0, MaxAbs(s.KProj.weight![studentRow], t.KProj.weight![teacherRow]));
                Assert.Equal(0.0, MaxAbs(s.VProj.weight![studentRow], t.VProj.weight![teacherRow]));
                Assert.Equal(t.KProj.bias![teacherRow].item<float>(), s.KProj.bias![studentRow].item<float>());
            }
        // the softmax layer and everything outside attention are the teacher's
        Assert.Equal(0.0, MaxAbs(student.Layers[1].Attention.parameters().First(), teacher.Layers[1].Attention.parameters().First()));
        Assert.Equal(0.0, MaxAbs(student.Layers[0].Mlp.parameters().First(), teacher.Layers[0].Mlp.parameters().First()));
    }

    public static TheoryData<string, bool> Layouts => new()
    {
        { "gdn,softmax,gdn", false },
        { "gdn,gdn,softmax", true },
        { "softmax,gdn,gdn", false },
        { "gla,softmax,gla", false },
        { "swa,gdn,gla", false },
        { "gdn,swa,softmax", true },
    };

    [Theory]
    [MemberData(nameof(Layouts))]
    public void PrefillThenDecodingOfAMixedLayout_EqualsTheFullForward(string layout, bool shortConv)
    {
        using var teacher = Teacher(TinyConfigs.Llama(layers: 3));
        var options = new LinearAttentionOptions
        {
            Gdn = new GdnOptions(ChunkSize: 16, UseShortConv: shortConv),
            Gla = new GlaOptions(ChunkSize: 16),
            Swa = new SwaOptions(Window: 24),
        };
        using var hybrid = StudentBuilder.Build(teacher, layout.Split(','), options: options);
        manual_seed(5);
        using var ids = randint(0, 50, [2, 70], dtype: int64);
        using var full = hybrid.forward(ids);
        // with autograd on (the generic per-token path) and off (the decoding fast paths generation uses)
        foreach (bool autograd in new[] { true, false })
        {
            using var mode = autograd ? enable_grad() : no_grad();
            using var state = hybrid.CreateState(2, 80);
            var pieces = new List<Tensor> { hybrid.Forward(ids.narrow(1, 0, 37), state) };   // prefill across two chunks + a partial one
            for (int t = 37; t < 70; t++) pieces.Add(hybrid.Forward(ids.narrow(1, t, 1), state));
            using var cached = cat(pieces, 1);
            pieces.ForEach(p => p.Dispose());
            double err = MaxAbs(cached, full);
            Assert.True(err <= 1e-4, $"{layout} (autograd {autograd}): cached decoding differs by {err}");
        }
    }

    [Fact]
    public void HybridCheckpoint_RoundTripsExactly()
    {
        using var teacher = Teacher(TinyConfigs.Qwen3WithQkNorm());
        var options = new LinearAttentionOptions { Gdn = new GdnOptions(UseShortConv: true) };
        using var hybrid = StudentBuilder.Build(teacher, ["gdn", "softmax"], options: options);
        var dir = TestPaths.NewTempDir("hybrid-roundtrip");
        HfCheckpoint.Save(hybrid, dir);
        using var loaded = HfCheckpoint.Load(dir);
        Assert.Equal(["gdn", "softmax"], loaded.Config.LayerTypes);
        Assert.True(loaded.Config.LinearAttention.Gdn.UseShortConv);
        var names = loaded.state_dict().Keys.ToHashSet();
        foreach (var n in new[] { "q_proj.weight", "a_proj.weight", "b_proj.weight", "g_proj.weight", "A_log", "dt_bias", "o_norm.weight", "o_proj.weight", "q_conv1d.weight" })
            Assert.Contains("model.layers.0.self_attn." + n, names);
        var original = hybrid.state_dict();
        foreach (var (name, value) in loaded.state_dict())
            Assert.Equal(0.0, MaxAbs(value, original[name]));
        manual_seed(2);
        using var ids = randint(0, 50, [1, 20], dtype: int64);
        using var a = hybrid.forward(ids);
        using var b = loaded.forward(ids);
        Assert.Equal(0.0, MaxAbs(a, b));
    }

    [Fact]
    public void SlidingWindowWiderThanTheSequence_EqualsTheTeacher()
    {
        using var teacher = Teacher(TinyConfigs.Qwen2WithBias());
        var options = new LinearAttentionOptions { Swa = new SwaOptions(Window: 64) };
        using var hybrid = StudentBuilder.Build(teacher, ["swa", "swa"], options: options);
        manual_seed(4);
        using var ids = randint(0, 50, [2, 64], dtype: int64);
        using var a = teacher.forward(ids);
        using var b = hybrid.forward(ids);
        Assert.True(MaxAbs(a, b) <= 1e-5, $"swa with window >= T differs from softmax by {MaxAbs(a, b)}");

        var narrow = new LinearAttentionOptions { Swa = new SwaOptions(Window: 8) };
        using var windowed = StudentBuilder.Build(teacher, ["swa", "swa"], options: narrow);
        using var c = windowed.forward(ids);
        Assert.True(MaxAbs(a.narrow(1, 0, 8), c.narrow(1, 0, 8)) <= 1e-5, "the first window positions see the whole prefix");
        Assert.True(MaxAbs(a, c) > 1e-3, "a narrow window must change later positions");
    }

    [Fact]
    public void StudentBuilder_RefusesWhatItCannotBuildNamingTheFix()
    {
        using var teacher = Teacher(TinyConfigs.Llama());
        // Llama's config has no sliding_window: swa layers need one given
        var e = Assert.Throws<InputException>(() => StudentBuilder.Build(teacher, ["swa", "softmax"]));
        Assert.Equal("sliding-window layers need a window: set linear_attention.swa.window in the teacher's config.json, " +
            "pass --swa-window N to convert, or use --from a converted model.", e.Message);

        using var hybrid = StudentBuilder.Build(teacher, ["gdn", "softmax"]);
        var notSoftmax = Assert.Throws<InputException>(() => StudentBuilder.Build(hybrid, ["gla", "softmax"]));
        Assert.StartsWith("teacher layer 0 is gdn:", notSoftmax.Message);
        Assert.Contains("all-softmax teacher", notSoftmax.Message);
    }

    [Fact]
    public void GlaLayer_UsesFlashLinearAttentionNames()
    {
        using var teacher = Teacher(TinyConfigs.Llama());
        using var hybrid = StudentBuilder.Build(teacher, ["gla", "softmax"]);
        var names = hybrid.state_dict().Keys.ToHashSet();
        foreach (var n in new[] { "q_proj.weight", "k_proj.weight", "v_proj.weight", "gk_proj.0.weight", "gk_proj.1.weight", "gk_proj.1.bias", "g_proj.weight", "o_norm.weight", "o_proj.weight" })
            Assert.Contains("model.layers.0.self_attn." + n, names);
    }
}
