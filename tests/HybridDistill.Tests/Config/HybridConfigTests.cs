using System.Text.Json.Nodes;
using HybridDistill.Checkpoints;
using HybridDistill.Config;
using HybridDistill.Models;

namespace HybridDistill.Tests.Config;

/// <summary>config.json of hybrids (issue 13, section 1): a form no stock class loads, a lossless round trip, the
/// older form still read, and a teacher's config written back unchanged.</summary>
public class HybridConfigTests
{
    /// <summary>model_type values that Hugging Face transformers (CONFIG_MAPPING_NAMES in models/auto/configuration_auto.py)
    /// or flash-linear-attention (every model in fla/models/__init__.py at 0315a70) register, for the teacher families
    /// and the hybrid, recurrent and linear-attention models near this project's. The README lists the same names.
    /// Neither "hybrid_distill" nor "HybridDistillForCausalLM" occurs in either library's source.</summary>
    public static readonly string[] RegisteredModelTypes =
    [
        // transformers: the teacher families and their relatives
        "llama", "llama4", "mistral", "mixtral", "ministral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "qwen3_next",
        "gemma", "gemma2", "gemma3", "gemma3n", "phi", "phi3", "gpt2", "gpt_neox", "falcon", "olmo", "olmo2", "deepseek_v3",
        // transformers: hybrid and recurrent models
        "mamba", "mamba2", "falcon_mamba", "falcon_h1", "jamba", "bamba", "zamba", "zamba2", "granitemoehybrid", "nemotron_h",
        "recurrent_gemma", "rwkv", "lfm2", "minimax",
        // flash-linear-attention
        "gated_deltanet", "gated_deltaproduct", "delta_net", "gla", "gsa", "hgrn", "hgrn2", "lightnet", "linear_attn",
        "retnet", "rwkv6", "rwkv7", "samba", "abc", "bitnet", "forgetting_transformer", "nsa", "mesa_net", "path_attn",
        "comba", "mla", "mom", "rodimus", "transformer", "log_linear_mamba2", "deltaformer",
    ];

    /// <summary>The *ForCausalLM class names of the same models.</summary>
    public static readonly string[] RegisteredArchitectures =
    [
        "LlamaForCausalLM", "Llama4ForCausalLM", "MistralForCausalLM", "MixtralForCausalLM", "MinistralForCausalLM",
        "Qwen2ForCausalLM", "Qwen2MoeForCausalLM", "Qwen3ForCausalLM", "Qwen3MoeForCausalLM", "Qwen3NextForCausalLM",
        "GemmaForCausalLM", "Gemma2ForCausalLM", "Gemma3ForCausalLM", "Gemma3nForCausalLM", "PhiForCausalLM", "Phi3ForCausalLM",
        "GPT2LMHeadModel", "GPTNeoXForCausalLM", "FalconForCausalLM", "OlmoForCausalLM", "Olmo2ForCausalLM", "DeepseekV3ForCausalLM",
        "MambaForCausalLM", "Mamba2ForCausalLM", "FalconMambaForCausalLM", "FalconH1ForCausalLM", "JambaForCausalLM",
        "BambaForCausalLM", "ZambaForCausalLM", "Zamba2ForCausalLM", "GraniteMoeHybridForCausalLM", "NemotronHForCausalLM",
        "RecurrentGemmaForCausalLM", "RwkvForCausalLM", "Lfm2ForCausalLM", "MiniMaxForCausalLM",
        "GatedDeltaNetForCausalLM", "GatedDeltaProductForCausalLM", "DeltaNetForCausalLM", "GLAForCausalLM", "GSAForCausalLM",
        "HGRNForCausalLM", "HGRN2ForCausalLM", "LightNetForCausalLM", "LinearAttentionForCausalLM", "RetNetForCausalLM",
        "RWKV6ForCausalLM", "RWKV7ForCausalLM", "SambaForCausalLM", "ABCForCausalLM", "BitNetForCausalLM",
        "ForgettingTransformerForCausalLM", "NSAForCausalLM", "MesaNetForCausalLM", "PaTHAttentionForCausalLM", "CombaForCausalLM",
        "MLAForCausalLM", "MomForCausalLM", "RodimusForCausalLM", "TransformerForCausalLM", "LogLinearMamba2ForCausalLM", "DeltaFormerForCausalLM",
    ];

    static ModelConfig Stories => ModelConfig.Load(TestPaths.Assets("stories260K"));

    static readonly string[] Kinds = ["gdn", "gla", "softmax", "swa", "gdn"];

    static ModelConfig Hybrid() => Stories.WithLayerTypes(Kinds) with
    {
        LinearAttention = new LinearAttentionOptions
        {
            Gdn = new GdnOptions(ChunkSize: 32, UseShortConv: true, ConvSize: 3),
            Gla = new GlaOptions(ChunkSize: 16, GateLowRankDim: 8, GateLogitNormalizer: 12.5),
            Swa = new SwaOptions(Window: 48),
        },
    };

    [Fact]
    public void HybridConfig_HasItsOwnTypeAndHfLayerWords_AndRoundTrips()
    {
        var config = Hybrid();
        Assert.True(config.IsHybrid);
        var json = config.ToJson();
        Assert.Equal("hybrid_distill", (string?)json["model_type"]);
        Assert.Equal("llama", (string?)json["base_model_type"]);
        Assert.Equal(["HybridDistillForCausalLM"], json["architectures"]!.AsArray().Select(a => (string?)a));
        Assert.Equal(["linear_attention", "linear_attention", "full_attention", "sliding_attention", "linear_attention"],
                     json["layer_types"]!.AsArray().Select(a => (string?)a));
        Assert.Equal(Kinds, json["linear_attention"]!["layer_kinds"]!.AsArray().Select(a => (string?)a));
        Assert.Equal(32, (int)json["linear_attention"]!["gdn"]!["chunk_size"]!);
        Assert.Equal(48, (int)json["linear_attention"]!["swa"]!["window"]!);

        var dir = TestPaths.NewTempDir("hybrid-config");
        config.Save(dir);
        var loaded = ModelConfig.Load(dir);
        Assert.Equal(Kinds, loaded.LayerTypes);
        Assert.Equal(config.LinearAttention, loaded.LinearAttention);
        Assert.Equal("llama", loaded.ModelType);
        Assert.True(loaded.IsHybrid);
        Assert.Equal(config with { Source = null, LayerTypes = [], EosTokenIds = [] }, loaded with { Source = null, LayerTypes = [], EosTokenIds = [] });
        Assert.Equal(config.EosTokenIds, loaded.EosTokenIds);
        // Saving the loaded config again writes the same JSON.
        Assert.True(JsonNode.DeepEquals(json, loaded.ToJson()), loaded.ToJson().ToJsonString());
    }

    [Fact]
    public void HybridConfig_NamesNoRegisteredModelTypeOrArchitecture()
    {
        foreach (var config in new[] { Hybrid(), Stories.WithLayerTypes(["gdn", "gdn", "softmax", "gdn", "gdn"]) })
        {
            var json = config.ToJson();
            string modelType = (string)json["model_type"]!;
            Assert.DoesNotContain(modelType, RegisteredModelTypes);
            Assert.DoesNotContain((string)json["base_model_type"]!, new[] { modelType });
            foreach (var a in json["architectures"]!.AsArray()) Assert.DoesNotContain((string)a!, RegisteredArchitectures);
            Assert.Null(json["auto_map"]);
        }
        // The lists hold what the teacher's own config names, so the check is not vacuous.
        Assert.Contains((string)Stories.ToJson()["model_type"]!, RegisteredModelTypes);
        Assert.Contains((string)Stories.ToJson()["architectures"]![0]!, RegisteredArchitectures);
    }

    [Fact]
    public void HybridConfig_DropsTheTeachersRemoteCodeMap()
    {
        var source = JsonNode.Parse(File.ReadAllText(TestPaths.Assets("stories260K", "config.json")))!.AsObject();
        source["auto_map"] = new JsonObject { ["AutoModelForCausalLM"] = "modeling_x.XForCausalLM" };
        var hybrid = ModelConfig.FromJson(source).WithLayerTypes(["gdn", "gdn", "softmax", "gdn", "gdn"]);
        Assert.Null(hybrid.ToJson()["auto_map"]);
    }

    [Fact]
    public void OldStyleHybridConfig_StillLoads_AndIsRewrittenInTheNewForm()
    {
        var old = JsonNode.Parse(File.ReadAllText(TestPaths.Assets("stories260K", "config.json")))!.AsObject();
        old["layer_types"] = new JsonArray("gdn", "gla", "softmax", "swa", "full_attention");
        old["linear_attention"] = new JsonObject
        {
            ["gdn"] = new JsonObject { ["chunk_size"] = 32, ["use_short_conv"] = true, ["conv_size"] = 3 },
            ["gla"] = new JsonObject { ["chunk_size"] = 64, ["gate_low_rank_dim"] = 16, ["gate_logit_normalizer"] = 16 },
            ["swa"] = new JsonObject { ["window"] = 8 },
        };
        var config = ModelConfig.FromJson(old);
        Assert.Equal(["gdn", "gla", "softmax", "swa", "softmax"], config.LayerTypes);
        Assert.Equal(new GdnOptions(32, true, 3), config.LinearAttention.Gdn);
        Assert.Equal(8, config.LinearAttention.Swa.Window);
        Assert.Equal("llama", config.ModelType);
        var json = config.ToJson();
        Assert.Equal("hybrid_distill", (string?)json["model_type"]);
        Assert.Equal(["gdn", "gla", "softmax", "swa", "softmax"], json["linear_attention"]!["layer_kinds"]!.AsArray().Select(a => (string?)a));
    }

    [Fact]
    public void FamilyDefaults_FollowBaseModelType()
    {
        JsonObject Hybrid(string family, int layers = 2) => new()
        {
            ["model_type"] = "hybrid_distill", ["base_model_type"] = family, ["hidden_size"] = 32, ["intermediate_size"] = 64,
            ["num_hidden_layers"] = layers, ["num_attention_heads"] = 4, ["num_key_value_heads"] = 2, ["vocab_size"] = 50,
            ["layer_types"] = new JsonArray("linear_attention", "full_attention"),
            ["linear_attention"] = new JsonObject { ["layer_kinds"] = new JsonArray("gdn", "softmax") },
        };
        var qwen2 = ModelConfig.FromJson(Hybrid("qwen2"));
        Assert.Equal("qwen2", qwen2.ModelType);
        Assert.True(qwen2.AttentionBias);                       // qwen2's default q/k/v bias
        Assert.False(qwen2.QkNorm);
        Assert.True(ModelConfig.FromJson(Hybrid("qwen3")).QkNorm);
        Assert.False(ModelConfig.FromJson(Hybrid("llama")).AttentionBias);
        var mistral = Hybrid("mistral");
        mistral["sliding_window"] = 16;                          // mistral uses sliding_window without use_sliding_window
        mistral["layer_types"] = new JsonArray("linear_attention", "sliding_attention");
        mistral["linear_attention"] = new JsonObject { ["layer_kinds"] = new JsonArray("gdn", "swa") };
        var m = ModelConfig.FromJson(mistral);
        Assert.Equal(["gdn", "swa"], m.LayerTypes);
        Assert.Equal(16, m.LinearAttention.Swa.Window);

        var missing = Hybrid("llama");
        missing.Remove("base_model_type");
        Assert.Contains("base_model_type", Assert.Throws<InputException>(() => ModelConfig.FromJson(missing)).Message);
        var noKinds = Hybrid("llama");
        noKinds.Remove("linear_attention");
        Assert.Contains("layer_kinds", Assert.Throws<InputException>(() => ModelConfig.FromJson(noKinds)).Message);
        var disagree = Hybrid("llama");
        disagree["linear_attention"] = new JsonObject { ["layer_kinds"] = new JsonArray("gdn", "swa") };
        Assert.Contains("layer_kinds[1]", Assert.Throws<InputException>(() => ModelConfig.FromJson(disagree)).Message);
    }

    [Fact]
    public void PureSoftmaxConfig_IsWrittenUnchanged()
    {
        // Byte for byte: stories260K's config.json is in the writer's own layout.
        string path = TestPaths.Assets("stories260K", "config.json");
        var dir = TestPaths.NewTempDir("softmax-config");
        ModelConfig.Load(path).Save(dir);
        Assert.Equal(File.ReadAllBytes(path), File.ReadAllBytes(Path.Combine(dir, "config.json")));

        // Key by key (and in the same key order) for configs in other layouts and families, and after a conversion
        // that keeps every layer softmax.
        var sources = new List<JsonObject>
        {
            JsonNode.Parse(File.ReadAllText(TestPaths.Assets("babyllama-tok105", "config.json")))!.AsObject(),
            new()
            {
                ["architectures"] = new JsonArray("Qwen2ForCausalLM"), ["model_type"] = "qwen2", ["hidden_size"] = 32,
                ["intermediate_size"] = 64, ["num_hidden_layers"] = 2, ["num_attention_heads"] = 4, ["num_key_value_heads"] = 2,
                ["vocab_size"] = 50, ["torch_dtype"] = "bfloat16", ["use_sliding_window"] = false, ["sliding_window"] = 4096,
                ["max_window_layers"] = 21, ["rope_theta"] = 1000000.0, ["transformers_version"] = "4.43.1",
            },
            new()
            {
                ["model_type"] = "mistral", ["hidden_size"] = 32, ["intermediate_size"] = 64, ["num_hidden_layers"] = 2,
                ["num_attention_heads"] = 4, ["num_key_value_heads"] = 2, ["vocab_size"] = 50, ["sliding_window"] = 16,
            },
        };
        foreach (var source in sources)
        {
            var config = ModelConfig.FromJson(source);
            Assert.False(config.IsHybrid);
            var written = config.ToJson();
            Assert.True(JsonNode.DeepEquals(source, written), written.ToJsonString());
            Assert.Equal(source.Select(p => p.Key), written.Select(p => p.Key));
        }

        using var teacher = HfCheckpoint.Load(TestPaths.Assets("stories260K"));
        using var same = StudentBuilder.Build(teacher, Enumerable.Repeat("softmax", 5).ToArray());
        var outDir = TestPaths.NewTempDir("softmax-convert");
        HfCheckpoint.Save(same, outDir);
        Assert.Equal(File.ReadAllBytes(path), File.ReadAllBytes(Path.Combine(outDir, "config.json")));
    }

    [Fact]
    public void ChangedSoftmaxConfig_IsWrittenInTheFamilysForm()
    {
        // A config changed in code is written with its changes, still as the family (no hybrid keys, no project words).
        var changed = Stories with { VocabSize = 600 };
        var json = changed.ToJson();
        Assert.Equal("llama", (string?)json["model_type"]);
        Assert.Equal(600, (int)json["vocab_size"]!);
        Assert.Null(json["layer_types"]);
        Assert.Null(json["linear_attention"]);
        Assert.Null(json["base_model_type"]);
    }
}
