using System.Text.Json.Nodes;
using HybridDistill.Config;
using HybridDistill.Models;
using HybridDistill.Modules;
using HybridDistill.Tests.Attention;
using static TorchSharp.torch;

namespace HybridDistill.Tests.Modules;

/// <summary>The raw-memory decoding products against libtorch's linear, and the decoding path they serve against the tensor path.</summary>
public class DecodeKernelsTests
{
    // Sizes not multiples of the SIMD width (8 or 16 floats) or of the 4-vector unroll; those of 2^18 multiply-adds or
    // more are split between the cores (output rows), one with fewer rows than cores so that a part gets none.
    public static TheoryData<int, int[], int, bool> Shapes => new()
    {
        { 1, [1], 1, false },
        { 7, [13], 1, true },
        { 37, [7100], 1, false },              // split between cores
        { 37, [7100], 3, true },
        { 4096, [64, 1], 1, true },            // split; the one-row weight: the first core gets none of it
        { 3, [90001], 2, true },
        { 64, [29, 1031, 5, 3100], 2, true },  // four weights in one pass
        { 66, [4000, 1, 3], 4, false },
        { 513, [530], 1, true },
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Project_EqualsLinear(int inDim, int[] outDims, int rows, bool withBias)
    {
        using var scope = NewDisposeScope();
        var generator = new Generator(17);
        var weights = outDims.Select(o => randn([o, inDim], generator: generator)).ToArray();    // W_m [out_m, in]
        var biases = outDims.Select(o => withBias ? (Tensor?)randn([o], generator: generator) : null).ToArray();
        var x = randn([rows, 1, inDim], generator: generator);                                 // [B, 1, in]
        using var _ = no_grad();
        Assert.True(DecodeKernels.CanProject(x, weights, biases));
        var fast = DecodeKernels.Project(x, weights, biases);
        for (int m = 0; m < weights.Length; m++)
        {
            var reference = nn.functional.linear(x, weights[m], biases[m]);                   // [B, 1, out_m]
            KernelAssert.Close(fast[m], reference, $"weight {m} ({outDims[m]} x {inDim}, {rows} rows)", tolerance: 1e-5);
        }
    }

    [Fact]
    public void Project_SeesWeightsChangedInPlace()
    {
        using var scope = NewDisposeScope();
        var generator = new Generator(3);
        var w = randn([40, 24], generator: generator);
        var x = randn([1, 24], generator: generator);
        using var _ = no_grad();
        var before = DecodeKernels.Project(x, [w])[0];
        w.mul_(2);                                                                            // as an optimizer step or a load would
        var after = DecodeKernels.Project(x, [w])[0];
        KernelAssert.Close(after, before * 2, "after the weights doubled", tolerance: 1e-6);
    }

    [Fact]
    public void TensorPath_ServesWhatTheKernelCannot()
    {
        using var scope = NewDisposeScope();
        var generator = new Generator(5);
        var w = randn([16, 8], generator: generator);
        var x = randn([1, 1, 8], generator: generator);
        Assert.False(DecodeKernels.CanProject(x, [w]), "autograd on: the tensor path must serve");
        using var _ = no_grad();
        Assert.True(DecodeKernels.CanProject(x, [w]));
        Assert.False(DecodeKernels.CanProject(x.to(float64), [w]), "fp64 input");
        Assert.False(DecodeKernels.CanProject(randn([DecodeKernels.MaxRows + 1, 8]), [w]), "too many rows");
        Assert.False(DecodeKernels.CanProject(x, [randn([16, 16]).narrow(1, 0, 8)]), "strided weight");
        Assert.False(DecodeKernels.CanProject(x, [randn([8, 16]).t()]), "column-major weight");
        Assert.False(DecodeKernels.CanProject(x, [randn([16, 9])]), "input size mismatch");
    }

    [Fact]
    public void RmsNormAndRotary_EqualTheirTensorForms()
    {
        using var scope = NewDisposeScope();
        var generator = new Generator(8);
        var hidden = randn([3, 1, 14], generator: generator);                                  // [B, 1, d]
        var weight = randn([14], generator: generator);
        var reference = hidden * rsqrt(hidden.pow(2).mean([-1L], keepdim: true) + 1e-6) * weight;
        using (no_grad())
        {
            Assert.True(DecodeKernels.CanNormalize(hidden, weight));
            Assert.False(DecodeKernels.CanNormalize(randn([3, 2, 14]), weight), "a sequence keeps libtorch's reduction");
            KernelAssert.Close(DecodeKernels.RmsNorm(hidden, weight, 1e-6), reference, "RMSNorm", tolerance: 1e-6);
        }

        var x = randn([2, 1, 3, 14], generator: generator);                                    // [B, 1, H, D], D/2 odd

        var config = ModelConfig.FromJson(new JsonObject
        {
            ["model_type"] = "llama", ["hidden_size"] = 42, ["intermediate_size"] = 8, ["num_hidden_layers"] = 1,
            ["num_attention_heads"] = 3, ["num_key_value_heads"] = 3, ["vocab_size"] = 8, ["max_position_embeddings"] = 64,
        });
        var tables = new Rotary(config).Tables(37, 1, x.device);                                // position 37, [1, D]
        var rotated = Rotary.Apply(x.transpose(1, 2), tables).transpose(1, 2);                  // [B, 1, H, D]
        var inPlace = x.clone();
        using (no_grad())
        {
            Assert.True(DecodeKernels.CanRotateInPlace(inPlace, tables));
            DecodeKernels.RotateInPlace(inPlace, tables);
        }
        KernelAssert.Close(inPlace, rotated, "RoPE", tolerance: 1e-6);
    }

    /// <summary>Odd sizes on purpose: hidden 72, MLP 1900, vocabulary 3700 (gate/up and the LM head split between cores), head dim 12, GQA 6:2.</summary>
    static ModelConfig OddConfig(bool tied) => ModelConfig.FromJson(new JsonObject
    {
        ["model_type"] = "llama", ["hidden_size"] = 72, ["intermediate_size"] = 1900, ["num_hidden_layers"] = 4,
        ["num_attention_heads"] = 6, ["num_key_value_heads"] = 2, ["vocab_size"] = 3700, ["max_position_embeddings"] = 128,
        ["rms_norm_eps"] = 1e-5, ["tie_word_embeddings"] = tied, ["attention_bias"] = true,
    });

    public static TheoryData<string, bool> Layouts => new()
    {
        { "softmax,softmax,softmax,softmax", false },
        { "gdn,gdn,gdn,gdn", true },
        { "gla,gla,gla,gla", false },
        { "swa,swa,swa,swa", true },
        { "softmax,gdn,gla,swa", false },
        { "gdn,softmax,swa,gla", true },
    };

    /// <summary>
    /// Decoding token by token with the raw-memory products (no autograd) against the tensor path (autograd on) from the
    /// same prefill: logits equal to fp32 rounding at every step, and both equal to the full forward. Tied embeddings are the
    /// LM head in some cases, a separate linear in the others.
    /// </summary>
    [Theory]
    [MemberData(nameof(Layouts))]
    public void DecodingWithTheKernels_EqualsTheTensorPath(string layout, bool tied)
    {
        var config = OddConfig(tied);
        manual_seed(21);
        using var teacher = new HybridCausalLM(config);
        teacher.InitializeWeights(seed: 9, std: 0.1);
        using (no_grad())
            foreach (var (n, p) in teacher.named_parameters())
                if (n.EndsWith(".bias")) p.uniform_(-0.3, 0.3);
        var options = new LinearAttentionOptions
        {
            Gdn = new GdnOptions(ChunkSize: 16, UseShortConv: true),
            Gla = new GlaOptions(ChunkSize: 16),
            Swa = new SwaOptions(Window: 12),
        };
        using var model = StudentBuilder.Build(teacher, layout.Split(','), options: options);
        Assert.All(model.modules().OfType<TorchSharp.Modules.Linear>(), l => Assert.True(l.weight!.is_contiguous(), "row-major: the kernels serve it"));
        using var scope = NewDisposeScope();
        var ids = randint(0, config.VocabSize, [2, 30], dtype: int64);
        Tensor full;
        using (no_grad()) full = model.forward(ids);                                          // [2, 30, V], sequence path

        using var fastState = model.CreateState(2, 40);
        using var tensorState = model.CreateState(2, 40);
        using (no_grad())
        {
            model.Forward(ids.narrow(1, 0, 20), fastState);
            model.Forward(ids.narrow(1, 0, 20), tensorState);
        }
        for (int t = 20; t < 30; t++)
        {
            var token = ids.narrow(1, t, 1);                                                  // [2, 1]
            Tensor fast, reference;
            using (no_grad()) fast = model.Forward(token, fastState);                           // [2, 1, V]
            using (enable_grad()) reference = model.Forward(token, tensorState).detach();
            KernelAssert.Close(fast, reference, $"{layout} step {t}: kernels vs tensor path", tolerance: 1e-5);
            KernelAssert.Close(fast, full.narrow(1, t, 1), $"{layout} step {t}: decoding vs full forward", tolerance: 1e-4);
        }
        Assert.True(full.abs().max().item<float>() > 0.1, "logits should not be trivially small");
    }
}
