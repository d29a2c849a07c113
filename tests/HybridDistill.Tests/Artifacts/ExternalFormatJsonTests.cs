using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using HybridDistill.Artifacts;
using HybridDistill.Checkpoints;
using HybridDistill.Config;
using HybridDistill.Tests.Checkpoints;
using static TorchSharp.torch;

namespace HybridDistill.Tests.Artifacts;

/// <summary>
/// Files of other tools' formats written and read through typed records in ArtifactJsonContext: the written text is
/// the format's, key for key and number for number (the references below are fla's, Hugging Face's and our own
/// layout files written out by hand), and what the formats allow on reading (Python floats for whole numbers, an id
/// or a list of ids, fla's attn as an object or a list of one) still reads.
/// </summary>
public class ExternalFormatJsonTests
{
    /// <summary>hidden 8, 2 heads of 4, 1 KV head, layers gdn, softmax, gdn; two EOS ids.</summary>
    static ModelConfig TinyHybrid() => ModelConfig.FromJson(new JsonObject
    {
        ["model_type"] = "llama", ["hidden_size"] = 8, ["intermediate_size"] = 12, ["num_hidden_layers"] = 3,
        ["num_attention_heads"] = 2, ["num_key_value_heads"] = 1, ["vocab_size"] = 16, ["max_position_embeddings"] = 32,
        ["rms_norm_eps"] = 1e-5, ["rope_theta"] = 500.0, ["bos_token_id"] = 1, ["eos_token_id"] = new JsonArray(2, 3),
        ["layer_types"] = new JsonArray("gdn", "softmax", "gdn"),
        ["linear_attention"] = new JsonObject { ["gdn"] = new JsonObject { ["use_short_conv"] = true, ["conv_size"] = 3 } },
    });

    static string Text(byte[] bytes) => Encoding.UTF8.GetString(bytes);

    [Fact]
    public void FlaConfig_WritesFlasKeysInOrder_EosListAsList()
    {
        const string expected = """
            {
              "model_type": "gated_deltanet",
              "architectures": [
                "GatedDeltaNetForCausalLM"
              ],
              "hidden_size": 8,
              "num_hidden_layers": 3,
              "num_heads": 2,
              "num_v_heads": 2,
              "head_dim": 4,
              "expand_v": 1,
              "use_short_conv": true,
              "conv_size": 3,
              "use_gate": true,
              "allow_neg_eigval": false,
              "norm_eps": 1E-05,
              "intermediate_size": 12,
              "hidden_act": "swish",
              "vocab_size": 16,
              "max_position_embeddings": 32,
              "tie_word_embeddings": false,
              "attn": {
                "layers": [
                  1
                ],
                "num_heads": 2,
                "num_kv_heads": 1,
                "qkv_bias": false,
                "window_size": null,
                "rope_theta": 500
              },
              "bos_token_id": 1,
              "eos_token_id": [
                2,
                3
              ],
              "pad_token_id": null,
              "torch_dtype": "float32"
            }

            """;
        Assert.Equal(expected, Text(ArtifactJson.ExternalBytes(FlaFormat.ToFlaConfig(TinyHybrid()), ArtifactJson.Types.FlaConfigFile)));
    }

    [Fact]
    public void FlaConfig_ReadsPythonFloats_AttnList_EosList_AndNullBos()
    {
        const string json = """
            {"model_type": "gated_deltanet", "hidden_size": 8.0, "num_hidden_layers": 3, "num_heads": 2, "head_dim": 4,
             "expand_v": 1.0, "norm_eps": 1e-05, "vocab_size": 16, "intermediate_size": 12, "fuse_cross_entropy": true,
             "attn": [{"layers": [1], "num_heads": 2, "num_kv_heads": 1, "rope_theta": 500.0}],
             "bos_token_id": null, "eos_token_id": [2, 3]}
            """;
        var config = FlaFormat.FromFlaConfig(JsonSerializer.Deserialize(json, ArtifactJson.Types.FlaConfigFile)!);

        Assert.Equal(8, config.HiddenSize);
        Assert.Equal(["gdn", "softmax", "gdn"], config.LayerTypes);
        Assert.Equal(1, config.NumKeyValueHeads);
        Assert.Equal(500.0, config.RopeTheta);
        Assert.Null(config.BosTokenId);                 // an explicit null, not fla's default 1
        Assert.Equal([2, 3], config.EosTokenIds);

        var twoGroups = json.Replace("\"attn\": [{", "\"attn\": [{\"layers\": [0], \"num_heads\": 2}, {");
        var e = Assert.Throws<InputException>(() => FlaFormat.FromFlaConfig(JsonSerializer.Deserialize(twoGroups, ArtifactJson.Types.FlaConfigFile)!));
        Assert.Contains("attn is a list of 2 attention groups", e.Message);
    }

    [Fact]
    public void ShardIndex_WritesHfLayout_NamesUnescaped()
    {
        var dir = TestPaths.NewTempDir("ext-index");
        using var a = ones(4);
        using var b = ones(4);
        // 16-byte shards: one tensor each. '+' is written as itself, as Python's json.dump does.
        ModelWeights.SaveDirectory(dir, [new("w+a", a), new("w+b", b)], maxShardBytes: 16);
        const string expected = """
            {
              "metadata": {
                "total_size": 32
              },
              "weight_map": {
                "w+a": "model-00001-of-00002.safetensors",
                "w+b": "model-00002-of-00002.safetensors"
              }
            }

            """;
        Assert.Equal(expected, File.ReadAllText(Path.Combine(dir, ModelWeights.IndexFileName)));
        Assert.Equal(["w+a", "w+b"], ModelWeights.ListTensors(dir).Select(t => t.Name));
    }

    [Fact]
    public void ShardIndex_TensorListedTwice_IsRefusedNamingTheFile()
    {
        var dir = TestPaths.NewTempDir("ext-index-twice");
        using var w = ones(2);
        SafeTensorsWriter.Write(Path.Combine(dir, "part.safetensors"), [new("a", w)]);
        var index = Path.Combine(dir, ModelWeights.IndexFileName);
        File.WriteAllText(index, """{"metadata": {}, "weight_map": {"a": "part.safetensors", "a": "other.safetensors"}}""");
        HandBuilt.AssertInputError(() => ModelWeights.ListTensors(dir), index, "Duplicate", "$.weight_map.a", "corrupt");
    }

    [Fact]
    public void Llama2cImport_WritesHfLlamaConfig()
    {
        var outDir = Path.Combine(TestPaths.NewTempDir("ext-l2c"), "model");
        Llama2cImporter.Import(TestPaths.Assets("stories260K", "stories260K.bin"), outDir, TestPaths.Assets("stories260K", "tokenizer.model"));
        // The asset's config.json, numbers as .NET writes them (1E-05, 10000), ending with a newline.
        const string expected = """
            {
              "architectures": [
                "LlamaForCausalLM"
              ],
              "model_type": "llama",
              "hidden_size": 64,
              "intermediate_size": 172,
              "num_hidden_layers": 5,
              "num_attention_heads": 8,
              "num_key_value_heads": 4,
              "head_dim": 8,
              "vocab_size": 512,
              "max_position_embeddings": 512,
              "rms_norm_eps": 1E-05,
              "rope_theta": 10000,
              "tie_word_embeddings": true,
              "hidden_act": "silu",
              "attention_bias": false,
              "mlp_bias": false,
              "bos_token_id": 1,
              "eos_token_id": 2,
              "torch_dtype": "float32"
            }

            """;
        Assert.Equal(expected, File.ReadAllText(Path.Combine(outDir, "config.json")));
    }

    [Fact]
    public void LayerLayout_SaveLoad_AndRefusals()
    {
        var dir = TestPaths.NewTempDir("ext-layout");
        var path = Path.Combine(dir, "layout.json");
        LayerLayout.FromSoftmaxLayers(4, [1, 3]).Save(path);
        Assert.Equal("{\n  \"softmax_layers\": [\n    1,\n    3\n  ],\n  \"layer_types\": [\n    \"gdn\",\n    \"softmax\",\n    \"gdn\",\n    \"softmax\"\n  ]\n}",
                     File.ReadAllText(path));
        var back = LayerLayout.Load(path);
        Assert.Equal([1, 3], back.SoftmaxLayers);
        Assert.Equal(["gdn", "softmax", "gdn", "softmax"], back.LayerTypes);

        File.WriteAllText(path, """{"softmax_layers": [0], "layer_types": ["gdn", "softmax"]}""");
        HandBuilt.AssertInputError(() => LayerLayout.Load(path), path, "softmax_layers disagrees with layer_types");
        File.WriteAllText(path, """{"layer_types": [1, 2]}""");
        HandBuilt.AssertInputError(() => LayerLayout.Load(path), path, "layer_types", "hybrid select");
        File.WriteAllText(path, """{"softmax_layers": [0]}""");
        HandBuilt.AssertInputError(() => LayerLayout.Load(path), path, "missing \"layer_types\"");
    }

    [Fact]
    public void LinearAttention_ReadsWholeFloats_RefusesUnknownKeys_WritesDefaultsExplicitly()
    {
        JsonObject Source(JsonObject gdn) => new()
        {
            ["hidden_size"] = 8, ["intermediate_size"] = 12, ["num_hidden_layers"] = 2, ["num_attention_heads"] = 2, ["vocab_size"] = 16,
            ["layer_types"] = new JsonArray("gdn", "softmax"), ["linear_attention"] = new JsonObject { ["gdn"] = gdn },
        };
        var config = ModelConfig.FromJson(Source(JsonNode.Parse("""{"chunk_size": 32.0, "norm_eps": 1e-06}""")!.AsObject()));
        Assert.Equal(new GdnOptions(ChunkSize: 32, NormEps: 1e-6), config.LinearAttention.Gdn);
        // Written: layer_kinds first, every kind's options (gla's and swa's defaults too), gdn's norm_eps as it differs.
        Assert.Equal("""{"layer_kinds":["gdn","softmax"],"gdn":{"chunk_size":32,"use_short_conv":false,"conv_size":4,"norm_eps":1E-06},"gla":{"chunk_size":64,"gate_low_rank_dim":16,"gate_logit_normalizer":16},"swa":{}}""",
                     config.ToJson()["linear_attention"]!.ToJsonString());

        var e = Assert.Throws<InputException>(() => ModelConfig.FromJson(Source(new JsonObject { ["chunk"] = 32 })));
        Assert.Contains("linear_attention", e.Message);
        Assert.Contains("chunk", e.Message);
        Assert.Contains("chunk_size", e.Message);       // the fix: the keys it knows
    }
}
