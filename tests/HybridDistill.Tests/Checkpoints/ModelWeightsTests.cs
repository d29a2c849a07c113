using System.Text.Json;
using HybridDistill.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace HybridDistill.Tests.Checkpoints;

public class ModelWeightsTests
{
    static List<KeyValuePair<string, Tensor>> TinyModel(long seed = 7)
    {
        var g = torch.manual_seed(seed);
        return new()
        {
            new("model.embed_tokens.weight", torch.randn(10, 4, generator: g)), // 160 bytes
            new("model.layers.0.self_attn.q_proj.weight", torch.randn(4, 4, generator: g)), // 64
            new("model.layers.0.mlp.up_proj.weight", torch.randn(6, 4, generator: g)), // 96
            new("model.norm.weight", torch.randn(4, generator: g)), // 16
            new("lm_head.weight", torch.randn(10, 4, generator: g)), // 160
        };
    }

    static Dictionary<string, Tensor> ZerosLike(IEnumerable<KeyValuePair<string, Tensor>> tensors) =>
        tensors.ToDictionary(kv => kv.Key, kv => torch.zeros_like(kv.Value));

    static void AssertSameValues(IEnumerable<KeyValuePair<string, Tensor>> expected, IReadOnlyDictionary<string, Tensor> actual)
    {
        foreach (var (name, tensor) in expected)
            Assert.Equal(tensor.data<float>().ToArray(), actual[name].data<float>().ToArray());
    }

    [Fact]
    public void SingleFileSaveReadAndLoad_RoundTrip()
    {
        var dir = TestPaths.NewTempDir("mw-single");
        var tensors = TinyModel();
        ModelWeights.SaveDirectory(dir, tensors);
        Assert.True(File.Exists(Path.Combine(dir, ModelWeights.SingleFileName)));
        Assert.False(File.Exists(Path.Combine(dir, ModelWeights.IndexFileName)));

        var read = ModelWeights.ReadDirectory(dir).ToList();
        Assert.Equal(tensors.Select(t => t.Key), read.Select(t => t.Key));
        AssertSameValues(tensors, read.ToDictionary());

        var parameters = ZerosLike(tensors);
        var summary = ModelWeights.LoadInto(dir, parameters);
        Assert.Equal(5, summary.Loaded);
        Assert.Empty(summary.MissingOptional);
        AssertSameValues(tensors, parameters);
    }

    [Fact]
    public void ShardedSave_WritesIndexAndRoundTrips()
    {
        var dir = TestPaths.NewTempDir("mw-sharded");
        var tensors = TinyModel();
        // 200-byte shards: [embed 160] [q 64 + up 96] [norm 16 + lm_head 160]
        ModelWeights.SaveDirectory(dir, tensors, maxShardBytes: 200);
        Assert.False(File.Exists(Path.Combine(dir, ModelWeights.SingleFileName)));
        var shardFiles = Directory.GetFiles(dir, "model-*.safetensors").Select(Path.GetFileName).Order().ToList();
        Assert.Equal(["model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors"], shardFiles);

        using var index = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(dir, ModelWeights.IndexFileName)));
        Assert.Equal(496, index.RootElement.GetProperty("metadata").GetProperty("total_size").GetInt64());
        var map = index.RootElement.GetProperty("weight_map");
        Assert.Equal("model-00002-of-00003.safetensors", map.GetProperty("model.layers.0.mlp.up_proj.weight").GetString());
        Assert.Equal("model-00003-of-00003.safetensors", map.GetProperty("lm_head.weight").GetString());

        var infos = ModelWeights.ListTensors(dir);
        Assert.Equal(tensors.Select(t => t.Key), infos.Select(i => i.Name));
        Assert.Equal(new long[] { 6, 4 }, infos.Single(i => i.Name == "model.layers.0.mlp.up_proj.weight").Shape);

        var read = ModelWeights.ReadDirectory(dir).ToDictionary();
        AssertSameValues(tensors, read);
        var parameters = ZerosLike(tensors);
        Assert.Equal(5, ModelWeights.LoadInto(dir, parameters).Loaded);
        AssertSameValues(tensors, parameters);

        // Saving again unsharded removes the index and shards, so the directory has one layout.
        ModelWeights.SaveDirectory(dir, tensors);
        Assert.Equal([ModelWeights.SingleFileName], Directory.GetFiles(dir).Select(Path.GetFileName));
    }

    [Fact]
    public void MissingShard_IsRejectedNamingIt()
    {
        var dir = TestPaths.NewTempDir("mw-noshard");
        ModelWeights.SaveDirectory(dir, TinyModel(), maxShardBytes: 200);
        File.Delete(Path.Combine(dir, "model-00002-of-00003.safetensors"));
        HandBuilt.AssertInputError(() => ModelWeights.ReadDirectory(dir), "model-00002-of-00003.safetensors", ModelWeights.IndexFileName);
        HandBuilt.AssertInputError(() => ModelWeights.LoadInto(dir, ZerosLike(TinyModel())), "model-00002-of-00003.safetensors");
    }

    [Fact]
    public void IndexNamingATensorTheShardLacks_IsRejected()
    {
        var dir = TestPaths.NewTempDir("mw-badindex");
        using var w = torch.ones(2);
        SafeTensorsWriter.Write(Path.Combine(dir, "part.safetensors"), [new("a", w)]);
        File.WriteAllText(Path.Combine(dir, ModelWeights.IndexFileName),
            """{"metadata":{},"weight_map":{"a":"part.safetensors","b":"part.safetensors"}}""");
        HandBuilt.AssertInputError(() => ModelWeights.ListTensors(dir), "part.safetensors", "'b'");
    }

    [Fact]
    public void DirectoryWithoutWeights_IsRejected()
    {
        var dir = TestPaths.NewTempDir("mw-empty");
        HandBuilt.AssertInputError(() => ModelWeights.ReadDirectory(dir), dir, ModelWeights.SingleFileName);
    }

    [Fact]
    public void ShapeMismatch_NamesFileTensorAndBothShapes()
    {
        var dir = TestPaths.NewTempDir("mw-shape");
        var tensors = TinyModel();
        ModelWeights.SaveDirectory(dir, tensors);
        var parameters = ZerosLike(tensors);
        parameters["model.layers.0.mlp.up_proj.weight"] = torch.zeros(8, 4);
        var file = Path.Combine(dir, ModelWeights.SingleFileName);
        var e = HandBuilt.AssertInputError(() => ModelWeights.LoadInto(dir, parameters), file);
        Assert.StartsWith($"{file}: tensor model.layers.0.mlp.up_proj.weight has shape [6, 4] but the config expects [8, 4]", e.Message);
        // Nothing was copied: validation happens before any copy.
        Assert.Equal(0f, parameters["model.embed_tokens.weight"].abs().sum().item<float>());
    }

    [Fact]
    public void MissingTensor_IsRejectedUnlessOptional()
    {
        var dir = TestPaths.NewTempDir("mw-missing");
        var tensors = TinyModel().Where(kv => kv.Key != "lm_head.weight").ToList();
        ModelWeights.SaveDirectory(dir, tensors);
        var parameters = ZerosLike(TinyModel());
        HandBuilt.AssertInputError(() => ModelWeights.LoadInto(dir, parameters), dir, "'lm_head.weight'");

        var summary = ModelWeights.LoadInto(dir, parameters, optionalNames: new HashSet<string> { "lm_head.weight" });
        Assert.Equal(4, summary.Loaded);
        Assert.Equal(["lm_head.weight"], summary.MissingOptional);
        AssertSameValues(tensors, parameters);
    }

    [Fact]
    public void UnexpectedTensors_AreListedUnlessIgnored()
    {
        var dir = TestPaths.NewTempDir("mw-extra");
        var extra = Enumerable.Range(0, 7).Select(i => new KeyValuePair<string, Tensor>($"extra.{i}", torch.ones(1))).ToList();
        ModelWeights.SaveDirectory(dir, TinyModel().Concat(extra));
        var parameters = ZerosLike(TinyModel());
        var e = HandBuilt.AssertInputError(() => ModelWeights.LoadInto(dir, parameters), dir, "7 tensor(s)", "extra.0", "extra.4", "and 2 more");
        Assert.DoesNotContain("extra.5", e.Message);

        var summary = ModelWeights.LoadInto(dir, parameters, ignoreExtra: n => n.StartsWith("extra."));
        Assert.Equal(5, summary.Loaded);
        Assert.Equal(7, summary.IgnoredExtra.Count);
        AssertSameValues(TinyModel(), parameters);
    }

    [Fact]
    public void LoadInto_ConvertsToTheParameterDTypeAndKeepsRequiresGrad()
    {
        var dir = TestPaths.NewTempDir("mw-param");
        using var source = torch.tensor(new[] { 1f, 2f, 3f });
        ModelWeights.SaveDirectory(dir, [new("w", source)]);
        using var parameter = new TorchSharp.Modules.Parameter(torch.zeros(3, dtype: float64));
        ModelWeights.LoadInto(dir, new Dictionary<string, Tensor> { ["w"] = parameter });
        Assert.True(parameter.requires_grad);
        Assert.Equal(new[] { 1.0, 2.0, 3.0 }, parameter.data<double>().ToArray());
    }
}
