using System.Text.Json.Nodes;
using HybridDistill.Attention;
using HybridDistill.Checkpoints;
using HybridDistill.Config;
using HybridDistill.Models;
using HybridDistill.Tokenization;
using static TorchSharp.torch;

namespace HybridDistill.Tests.Checkpoints;

public class FlaFormatTests
{
    /// <summary>hidden 8, 2 heads of 4, 1 KV head, MLP 12, vocab 16, untied; layers gdn, softmax, gdn with a short conv of 3.</summary>
    static ModelConfig TinyHybrid(double eps = 1e-5, string[]? kinds = null, int? swaWindow = null) => ModelConfig.FromJson(new JsonObject
    {
        ["model_type"] = "llama", ["hidden_size"] = 8, ["intermediate_size"] = 12, ["num_hidden_layers"] = 3,
        ["num_attention_heads"] = 2, ["num_key_value_heads"] = 1, ["vocab_size"] = 16, ["max_position_embeddings"] = 32,
        ["rms_norm_eps"] = eps, ["rope_theta"] = 500.0, ["tie_word_embeddings"] = false, ["bos_token_id"] = 1, ["eos_token_id"] = 2,
        ["layer_types"] = new JsonArray((kinds ?? ["gdn", "softmax", "gdn"]).Select(k => (JsonNode)k).ToArray()),
        ["linear_attention"] = new JsonObject
        {
            ["gdn"] = new JsonObject { ["use_short_conv"] = true, ["conv_size"] = 3 },
            ["swa"] = swaWindow is int w ? new JsonObject { ["window"] = w } : new JsonObject(),
        },
    });

    static HybridCausalLM RandomModel(ModelConfig config, long seed = 5)
    {
        manual_seed(seed);
        var model = new HybridCausalLM(config);
        model.InitializeWeights(seed, std: 0.3);
        using (no_grad())
            foreach (var (name, p) in model.named_parameters())
                if (p.dim() == 1) p.uniform_(0.5, 1.5);    // norms, A_log, dt_bias away from their init values
        return model;
    }

    static HybridCausalLM Stories260KHybrid(string softmaxLayers)
    {
        using var teacher = HfCheckpoint.Load(TestPaths.Assets("stories260K"));
        var kinds = Enumerable.Range(0, 5).Select(i => softmaxLayers.Split(',').Contains(i.ToString()) ? "softmax" : "gdn").ToArray();
        var options = teacher.Config.LinearAttention with { Gdn = teacher.Config.LinearAttention.Gdn with { UseShortConv = true } };
        return StudentBuilder.Build(teacher, kinds, seed: 3, options: options);
    }

    static double MaxAbsLogitDifference(HybridCausalLM a, HybridCausalLM b, int vocab)
    {
        using var scope = NewDisposeScope();
        using var _ = inference_mode();
        var ids = randint(0, vocab, [2, 40], dtype: int64, generator: new Generator(9));   // [2, 40]
        return (a.forward(ids) - b.forward(ids)).abs().max().item<float>();
    }

    [Fact]
    public void TinyHybrid_HasFlasConfigKeysAndTensorNames()
    {
        using var model = RandomModel(TinyHybrid());
        var dir = Path.Combine(TestPaths.NewTempDir("fla-tiny"), "fla");
        FlaFormat.Export(model, dir, tokenizerSource: null);

        // Every value worked out by hand from the tiny config above.
        var expected = new Dictionary<string, string>
        {
            ["model_type"] = "\"gated_deltanet\"", ["architectures"] = "[\"GatedDeltaNetForCausalLM\"]", ["hidden_size"] = "8",
            ["num_hidden_layers"] = "3", ["num_heads"] = "2", ["num_v_heads"] = "2", ["head_dim"] = "4", ["expand_v"] = "1",
            ["use_short_conv"] = "true", ["conv_size"] = "3", ["use_gate"] = "true", ["allow_neg_eigval"] = "false",
            ["norm_eps"] = "1E-05", ["intermediate_size"] = "12", ["hidden_act"] = "\"swish\"", ["vocab_size"] = "16",
            ["max_position_embeddings"] = "32", ["tie_word_embeddings"] = "false",
            ["attn"] = "{\"layers\":[1],\"num_heads\":2,\"num_kv_heads\":1,\"qkv_bias\":false,\"window_size\":null,\"rope_theta\":500}",
            ["bos_token_id"] = "1", ["eos_token_id"] = "2", ["pad_token_id"] = "null", ["torch_dtype"] = "\"float32\"",
        };
        var config = (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "config.json")))!;
        Assert.Equal(expected.Keys.Order(), config.Select(p => p.Key).Order());
        foreach (var (key, value) in expected)
            Assert.Equal(value, config[key]?.ToJsonString() ?? "null");

        // fla's names and shapes (docs/fla-format.md): key_dim = value_dim = 2 * 4 = 8, 1 KV head of 4 in the attention layer.
        var shapes = new Dictionary<string, long[]>
        {
            ["model.embeddings.weight"] = [16, 8], ["model.norm.weight"] = [8], ["lm_head.weight"] = [16, 8],
            ["model.layers.1.attn.q_proj.weight"] = [8, 8], ["model.layers.1.attn.k_proj.weight"] = [4, 8],
            ["model.layers.1.attn.v_proj.weight"] = [4, 8], ["model.layers.1.attn.o_proj.weight"] = [8, 8],
        };
        foreach (int layer in new[] { 0, 1, 2 })
        {
            var p = $"model.layers.{layer}.";
            shapes[p + "attn_norm.weight"] = [8];
            shapes[p + "mlp_norm.weight"] = [8];
            shapes[p + "mlp.gate_proj.weight"] = [12, 8];
            shapes[p + "mlp.up_proj.weight"] = [12, 8];
            shapes[p + "mlp.down_proj.weight"] = [8, 12];
        }
        foreach (int layer in new[] { 0, 2 })
        {
            var a = $"model.layers.{layer}.attn.";
            foreach (var proj in new[] { "q_proj", "k_proj", "v_proj", "g_proj", "o_proj" }) shapes[a + proj + ".weight"] = [8, 8];
            foreach (var conv in new[] { "q_conv1d", "k_conv1d", "v_conv1d" }) shapes[a + conv + ".weight"] = [8, 1, 3];
            shapes[a + "a_proj.weight"] = [2, 8];
            shapes[a + "b_proj.weight"] = [2, 8];
            shapes[a + "A_log"] = [2];
            shapes[a + "dt_bias"] = [2];
            shapes[a + "o_norm.weight"] = [4];
        }
        var written = ModelWeights.ListTensors(dir);
        Assert.Equal(shapes.Keys.Order(StringComparer.Ordinal), written.Select(w => w.Name).Order(StringComparer.Ordinal));
        foreach (var w in written) Assert.Equal(shapes[w.Name], w.Shape);

        // Values: each tensor is the parameter it was renamed from, bit for bit.
        var ours = model.state_dict();
        foreach (var (name, tensor) in ModelWeights.ReadDirectory(dir))
            using (tensor)
            {
                var source = ours[FlaFormat.FromFlaName(name)!];
                Assert.Equal(source.contiguous().data<float>().ToArray(), tensor.data<float>().ToArray());
            }
        Assert.Equal("model.layers.0.attn.k_proj.weight", FlaFormat.ToFlaName("model.layers.0.self_attn.k_proj.weight"));
        Assert.Equal("model.layers.2.mlp_norm.weight", FlaFormat.ToFlaName("model.layers.2.post_attention_layernorm.weight"));
        Assert.Equal("model.embeddings.weight", FlaFormat.ToFlaName("model.embed_tokens.weight"));
        Assert.Null(FlaFormat.FromFlaName("model.layers.0.mixer.weight"));
        Assert.Null(FlaFormat.FromFlaName("embeddings.weight"));

        // And back: the same model.
        using var back = FlaFormat.Load(dir);
        Assert.Equal((model.Config with { Source = null }).ToJson().ToJsonString(), (back.Config with { Source = null }).ToJson().ToJsonString());
        Assert.Equal(0.0, MaxAbsLogitDifference(model, back, 16));
    }

    [Theory]
    [InlineData("2")]        // the acceptance layout: one softmax layer, four GDN
    [InlineData("")]         // all GDN: attn is null
    public void Stories260KHybrid_RoundTripsExactly(string softmaxLayers)
    {
        using var model = Stories260KHybrid(softmaxLayers);
        var root = TestPaths.NewTempDir("fla-roundtrip");
        var fla = Path.Combine(root, "fla");
        FlaFormat.Export(model, fla, tokenizerSource: TestPaths.Assets("stories260K"));
        var config = (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(fla, "config.json")))!;
        Assert.Equal(softmaxLayers == "" ? "null" : "{\"layers\":[2],\"num_heads\":8,\"num_kv_heads\":4,\"qkv_bias\":false,\"window_size\":null,\"rope_theta\":10000}",
            config["attn"]?.ToJsonString() ?? "null");
        Assert.DoesNotContain(ModelWeights.ListTensors(fla), w => w.Name == "lm_head.weight");   // tied: fla reads the embeddings

        using var back = FlaFormat.Load(fla);
        Assert.Equal(0.0, MaxAbsLogitDifference(model, back, 512));
        var comparison = FlaFormat.Compare(model, back, probeTokens: 64, greedyTokens: 40);
        Assert.Equal(0.0, comparison.MaxAbsLogitDifference);
        Assert.Equal(40, comparison.GreedyTokens);
        Assert.True(comparison.GreedyIdentical);
        var original = model.state_dict();
        foreach (var (name, p) in back.state_dict())
            Assert.Equal(original[name].contiguous().data<float>().ToArray(), p.contiguous().data<float>().ToArray());

        // The tokenizer loads from the exported directory and is the teacher's; tokenizer_config.json names it for transformers.
        var expectedIds = TokenizerLoader.Load(TestPaths.Assets("stories260K")).EncodeWithSpecialTokens("Once upon a time");
        Assert.Equal(expectedIds, TokenizerLoader.Load(fla).EncodeWithSpecialTokens("Once upon a time"));
        var tokenizerConfig = (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(fla, FlaFormat.TokenizerConfigFile)))!;
        Assert.Equal("LlamaTokenizer", tokenizerConfig["tokenizer_class"]!.GetValue<string>());
        Assert.Equal("<s>", tokenizerConfig["bos_token"]!.GetValue<string>());
        Assert.Equal("</s>", tokenizerConfig["eos_token"]!.GetValue<string>());
        Assert.True(tokenizerConfig["add_bos_token"]!.GetValue<bool>());

        // Saved as this project's model directory, it is the original model again.
        var ours = Path.Combine(root, "ours");
        HfCheckpoint.Save(back, ours, tokenizerSource: fla);
        using var reloaded = HfCheckpoint.Load(ours);
        Assert.Equal(0.0, MaxAbsLogitDifference(model, reloaded, 512));
        Assert.Equal(model.Config.LayerTypes, reloaded.Config.LayerTypes);
    }

    [Fact]
    public void FlasOneNormEps_IsRepresentedByTheGdnOutputNormEps()
    {
        // fla's default norm_eps 1e-6 applies to the GDN o_norm too: linear_attention.gdn.norm_eps carries it here.
        var config = TinyHybrid(eps: 1e-6) with { LinearAttention = new LinearAttentionOptions { Gdn = new GdnOptions(UseShortConv: true, ConvSize: 3, NormEps: 1e-6) } };
        using var model = RandomModel(config);
        var root = TestPaths.NewTempDir("fla-eps");
        var fla = Path.Combine(root, "fla");
        FlaFormat.Export(model, fla, tokenizerSource: null);
        Assert.Equal("1E-06", JsonNode.Parse(File.ReadAllText(Path.Combine(fla, "config.json")))!["norm_eps"]!.ToJsonString());

        using var back = FlaFormat.Load(fla);
        Assert.Equal(1e-6, back.Config.RmsNormEps);
        Assert.Equal(1e-6, back.Config.LinearAttention.Gdn.NormEps);
        Assert.Equal(0.0, MaxAbsLogitDifference(model, back, 16));
        var ours = Path.Combine(root, "ours");
        HfCheckpoint.Save(back, ours);
        var saved = JsonNode.Parse(File.ReadAllText(Path.Combine(ours, "config.json")))!;
        Assert.Equal("1E-06", saved["linear_attention"]!["gdn"]!["norm_eps"]!.ToJsonString());
        using var reloaded = HfCheckpoint.Load(ours);
        Assert.Equal(0.0, MaxAbsLogitDifference(model, reloaded, 16));

        // The eps is used: the same weights with the o_norm eps at its default give other logits.
        using var defaultEps = new HybridCausalLM(config with { LinearAttention = new LinearAttentionOptions { Gdn = new GdnOptions(UseShortConv: true, ConvSize: 3) } });
        using (no_grad())
            foreach (var (name, p) in defaultEps.state_dict()) p.copy_(model.state_dict()[name]);
        Assert.True(MaxAbsLogitDifference(model, defaultEps, 16) > 0);
    }

    [Fact]
    public void LargeModels_AreShardedWithAnIndex()
    {
        using var model = Stories260KHybrid("2");
        var fla = Path.Combine(TestPaths.NewTempDir("fla-shards"), "fla");
        FlaFormat.Export(model, fla, tokenizerSource: null, maxShardBytes: 300_000);   // 1.05 MB of weights
        Assert.False(File.Exists(Path.Combine(fla, ModelWeights.SingleFileName)));
        var index = (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(fla, ModelWeights.IndexFileName)))!;
        var shards = index["weight_map"]!.AsObject().Select(p => p.Value!.GetValue<string>()).Distinct().ToList();
        Assert.True(shards.Count >= 4, $"{shards.Count} shards");
        Assert.Contains("model.layers.2.attn.k_proj.weight", index["weight_map"]!.AsObject().Select(p => p.Key));
        using var back = FlaFormat.Load(fla);
        Assert.Equal(0.0, MaxAbsLogitDifference(model, back, 512));
    }

    public static TheoryData<string, string[]> Unrepresentable => new()
    {
        { "gla", ["gla layers (Gated Linear Attention, layers 1)"] },
        { "swa", ["swa layers (sliding-window attention, layers 1)"] },
        { "eps", ["rms_norm_eps 1E-06", "GDN output norm's eps 1E-05", "one norm_eps for every RMSNorm"] },
        { "qwen2", ["q/k/v biases in the GDN layers"] },
        { "qwen3", ["q/k RMSNorm in the softmax layers", "fla's attention head size is hidden_size / num_heads = 8"] },
        { "rope", ["rope_scaling (llama3)"] },
    };

    [Theory]
    [MemberData(nameof(Unrepresentable))]
    public void Export_RefusesWhatFlaCannotRepresentAndWritesNothing(string what, string[] named)
    {
        var config = what switch
        {
            "gla" => TinyHybrid(kinds: ["gdn", "gla", "softmax"]),
            "swa" => TinyHybrid(kinds: ["gdn", "swa", "softmax"], swaWindow: 4),
            "eps" => TinyHybrid(eps: 1e-6),
            "qwen2" => Models.TinyConfigs.Qwen2WithBias().WithLayerTypes(["gdn", "softmax"]) with { RmsNormEps = 1e-5 },
            "qwen3" => Models.TinyConfigs.Qwen3WithQkNorm().WithLayerTypes(["softmax", "softmax"]),
            _ => Models.TinyConfigs.LlamaWithLlama3RopeScaling().WithLayerTypes(["gdn", "softmax"]),
        };
        using var model = new HybridCausalLM(config);
        var dir = Path.Combine(TestPaths.NewTempDir("fla-refused"), "fla");
        var e = Assert.Throws<InputException>(() => FlaFormat.Export(model, dir, tokenizerSource: null));
        foreach (var part in named) Assert.Contains(part, e.Message);
        Assert.False(Directory.Exists(dir));
    }

    [Theory]
    [InlineData("expand_v", "2", "expand_v 2")]
    [InlineData("hidden_act", "\"powlu\"", "hidden_act \"powlu\"")]
    [InlineData("num_v_heads", "4", "grouped value heads (GVA)")]
    [InlineData("allow_neg_eigval", "true", "allow_neg_eigval true")]
    [InlineData("use_gate", "false", "use_gate false")]
    [InlineData("attn", "{\"layers\":[1],\"num_heads\":2,\"window_size\":16}", "attn.window_size")]
    [InlineData("attn", "{\"layers\":[1],\"num_heads\":4}", "attn.num_heads 4 differs from num_heads 2")]
    [InlineData("model_type", "\"gla\"", "not fla's \"gated_deltanet\"")]
    public void Import_RefusesWhatWeCannotRepresentNamingTheKey(string key, string value, string named)
    {
        using var model = RandomModel(TinyHybrid());
        var dir = Path.Combine(TestPaths.NewTempDir("fla-import"), "fla");
        FlaFormat.Export(model, dir, tokenizerSource: null);
        var configPath = Path.Combine(dir, "config.json");
        var config = (JsonObject)JsonNode.Parse(File.ReadAllText(configPath))!;
        config[key] = JsonNode.Parse(value);
        File.WriteAllText(configPath, config.ToJsonString());
        var e = Assert.Throws<InputException>(() => FlaFormat.Load(dir));
        Assert.StartsWith(configPath, e.Message);
        Assert.Contains(named, e.Message);
    }

    [Fact]
    public void FlaDefaults_ApplyToKeysTheConfigLeavesOut()
    {
        // A minimal fla config: head_dim 256, expand_v 2 and norm_eps 1e-6 are fla's defaults, so expand_v must be given.
        var json = new FlaConfigFile { ModelType = "gated_deltanet", HiddenSize = 64, NumHiddenLayers = 2, NumHeads = 2, ExpandV = 1, NormEps = 1e-5, VocabSize = 100 };
        var config = FlaFormat.FromFlaConfig(json);
        Assert.Equal(256, config.HeadDim);
        Assert.Equal(256, config.IntermediateSize);   // 256 * ceil(int(64 * 4 * 2/3) / 256) = 256 * ceil(170 / 256)
        Assert.True(config.LinearAttention.Gdn.UseShortConv);
        Assert.Equal(4, config.LinearAttention.Gdn.ConvSize);
        Assert.False(config.TieWordEmbeddings);
        Assert.Equal(new[] { "gdn", "gdn" }, config.LayerTypes);
        Assert.Equal(2048, config.MaxPositionEmbeddings);
        Assert.Equal(1, config.BosTokenId);
        Assert.Equal(new[] { 2 }, config.EosTokenIds);
    }
}
