using System.Text.Json.Nodes;
using HybridDistill.Checkpoints;
using HybridDistill.Evaluation;
using HybridDistill.Tokenization;
using HybridDistill.Generation;
using HybridDistill.Models;
using static TorchSharp.torch;

namespace HybridDistill.Tests.Models;

/// <summary>The C# teacher against independent float64 references for the real stories260K model.</summary>
public class TeacherFidelityTests
{
    static readonly string Stories = TestPaths.Assets("stories260K");

    static JsonObject ReadJson(string file) => JsonNode.Parse(File.ReadAllText(Path.Combine(Stories, file)))!.AsObject();

    [Fact]
    public void Stories260K_ReproducesReferenceLogits()
    {
        var reference = ReadJson("reference_logits.json");
        var tokens = reference["tokens"]!.AsArray().Select(t => (long)t!.GetValue<int>()).ToArray();
        var expected = reference["logits"]!.AsArray()
            .SelectMany(row => row!.AsArray().Select(v => (float)v!.GetValue<double>())).ToArray();

        using var model = HfCheckpoint.Load(Stories);
        using var ids = tensor(tokens).unsqueeze(0);
        using var logits = model.forward(ids);                                        // [1, 16, 512]
        using var want = tensor(expected).view(1, tokens.Length, 512);
        double maxErr = (logits - want).abs().max().item<float>();
        Assert.True(maxErr <= 1e-4, $"max abs error vs float64 reference: {maxErr}");
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Stories260KGreedyDecoding_ReproducesReference(bool useCache)
    {
        var reference = ReadJson("greedy_200.json");
        var expected = reference["tokens"]!.AsArray().Select(t => t!.GetValue<int>()).ToArray();
        using var model = HfCheckpoint.Load(Stories);
        var options = new SamplingOptions { MaxNewTokens = 200, StopTokens = [1] };
        var generated = TokenGenerator.Generate(model, [1], options, useCache).ToList();
        Assert.Equal(expected.Skip(1).ToArray(), generated.ToArray());
    }

    [Fact]
    public void ImportedLlama2cCheckpoint_GivesTheSameLogitsAsTheHfCopy()
    {
        var dir = TestPaths.NewTempDir("import");
        Llama2cImporter.Import(Path.Combine(Stories, "stories260K.bin"), dir, Path.Combine(Stories, "tokenizer.model"));
        using var hf = HfCheckpoint.Load(Stories);
        using var imported = HfCheckpoint.Load(dir);
        manual_seed(0);
        using var ids = randint(0, 512, [2, 64], dtype: int64);
        using var a = hf.forward(ids);
        using var b = imported.forward(ids);
        double maxErr = (a - b).abs().max().item<float>();
        Assert.True(maxErr <= 1e-5, $"imported vs HF logits differ by {maxErr}");
    }

    [Fact]
    public void SaveThenLoad_RoundTripsExactly()
    {
        var dir = TestPaths.NewTempDir("roundtrip");
        using var model = HfCheckpoint.Load(Stories);
        HfCheckpoint.Save(model, dir, tokenizerSource: Stories);
        using var again = HfCheckpoint.Load(dir);
        var original = model.state_dict();
        foreach (var (name, value) in again.state_dict())
            Assert.Equal(0f, (value - original[name]).abs().max().item<float>());
        Assert.True(File.Exists(Path.Combine(dir, "tokenizer.model")));
        Assert.Equal(model.Config.ToJson().ToJsonString(), again.Config.ToJson().ToJsonString());
    }

    [Fact]
    public void BabyLlama_PredictsTinyStoriesAtItsKnownLoss()
    {
        var dir = TestPaths.Assets("babyllama-tok105");
        using var model = HfCheckpoint.Load(dir);
        var tokenizer = TokenizerLoader.Load(dir);
        var tokens = HeldOutText.TokensFromFile(tokenizer, TestPaths.Assets("text", "tinystories_val_slice.txt"), maxTokens: 20 * 256 + 1);
        var windows = HeldOutText.Windows(tokens, 256, limit: 20);
        Assert.Equal(20, windows.Count);
        var result = Perplexity.Evaluate(new CausalLMLogits(model), windows);
        Assert.InRange(result.Nll, 0.6, 0.85);
    }
}
