using HybridDistill.Config;
using HybridDistill.Models;
using static TorchSharp.torch;

namespace HybridDistill.Tests.Models;

public class CachedDecodingTests
{
    public static TheoryData<string> Configs => new() { "qwen2-bias", "qwen3-qknorm", "llama3-rope-scaling", "llama-gqa" };

    static ModelConfig Pick(string name) => name switch
    {
        "qwen2-bias" => TinyConfigs.Qwen2WithBias(),
        "qwen3-qknorm" => TinyConfigs.Qwen3WithQkNorm(),
        "llama3-rope-scaling" => TinyConfigs.LlamaWithLlama3RopeScaling(),
        _ => TinyConfigs.Llama(),
    };

    [Theory]
    [MemberData(nameof(Configs))]
    public void PrefillThenStepByStep_EqualsFullForward(string name)
    {
        var config = Pick(name);
        using var model = new HybridCausalLM(config);
        model.InitializeWeights(seed: 7, std: 0.2);
        // random biases so the Qwen2 path is exercised
        using (no_grad())
            foreach (var (n, p) in model.named_parameters())
                if (n.EndsWith(".bias")) p.uniform_(-0.5, 0.5);
        manual_seed(3);
        using var ids = randint(0, config.VocabSize, [2, 40], dtype: int64);
        using var full = model.forward(ids);                                   // [2, 40, V]

        using var state = model.CreateState(batch: 2, capacity: 64);
        var pieces = new List<Tensor> { model.Forward(ids.narrow(1, 0, 17), state) };
        for (int t = 17; t < 40; t += t < 30 ? 1 : 5)
            pieces.Add(model.Forward(ids.narrow(1, t, Math.Min(t < 30 ? 1 : 5, 40 - t)), state));
        using var cached = cat(pieces, 1);
        foreach (var p in pieces) p.Dispose();

        Assert.Equal(40, state.Position);
        double maxErr = (cached - full).abs().max().item<float>();
        Assert.True(maxErr <= 1e-5, $"{name}: cached decoding differs from the full forward by {maxErr}");
        Assert.True(full.abs().max().item<float>() > 0.1, "logits should not be trivially small");
    }

    [Fact]
    public void StateDict_UsesHuggingFaceNames()
    {
        using var tied = new HybridCausalLM(TinyConfigs.Qwen3WithQkNorm());
        var names = tied.state_dict().Keys.ToHashSet();
        Assert.Contains("model.embed_tokens.weight", names);
        Assert.Contains("model.layers.1.self_attn.q_proj.weight", names);
        Assert.Contains("model.layers.1.self_attn.q_norm.weight", names);
        Assert.Contains("model.layers.0.mlp.gate_proj.weight", names);
        Assert.Contains("model.layers.0.input_layernorm.weight", names);
        Assert.Contains("model.layers.0.post_attention_layernorm.weight", names);
        Assert.Contains("model.norm.weight", names);
        Assert.DoesNotContain("lm_head.weight", names);

        using var untied = new HybridCausalLM(TinyConfigs.Qwen2WithBias());
        var untiedNames = untied.state_dict().Keys.ToHashSet();
        Assert.Contains("lm_head.weight", untiedNames);
        Assert.Contains("model.layers.0.self_attn.k_proj.bias", untiedNames);
        Assert.DoesNotContain("model.layers.0.self_attn.o_proj.bias", untiedNames);
    }

    [Fact]
    public void Llama3Scaling_KeepsHighFrequenciesAndDividesLowOnes()
    {
        var plain = HybridDistill.Modules.Rotary.InverseFrequencies(64, 500000, null);
        var scaled = HybridDistill.Modules.Rotary.InverseFrequencies(64, 500000, new RopeScaling("llama3", 8, 1, 4, 8192));
        Assert.Equal(plain[0], scaled[0]);                       // wavelength 2*pi << 8192/4: unchanged
        Assert.Equal(plain[^1] / 8, scaled[^1], 6);             // wavelength >> 8192: divided by the factor
        var linear = HybridDistill.Modules.Rotary.InverseFrequencies(64, 10000, new RopeScaling("linear", 4));
        var baseline = HybridDistill.Modules.Rotary.InverseFrequencies(64, 10000, null);
        Assert.Equal(baseline[5] / 4, linear[5], 6);
    }
}
