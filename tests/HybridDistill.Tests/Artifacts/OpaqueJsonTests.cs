using System.Text.Json.Nodes;
using HybridDistill.Artifacts;
using HybridDistill.Selection;
using HybridDistill.Training;

namespace HybridDistill.Tests.Artifacts;

/// <summary>
/// OpaqueJson's reading and editing (what scores.json's details and provenance, the layer files and a recipe's sections
/// go through instead of JSON trees), each against the JSON text it must give; and the committed studies' run keys,
/// recomputed from their stored provenance.
/// </summary>
public class OpaqueJsonTests
{
    static OpaqueJson Parse(string text) => OpaqueJson.FromNode(JsonNode.Parse(text)!);

    [Fact]
    public void WithoutKey_RemovesTheKeyInEveryNestedObjectAndArray()
    {
        var json = Parse("""{"path":"/a","teacher":{"path":"/t","sha256":"ab"},"runs":[{"path":"/r","layer":1},[{"path":"/x"}]],"seed":3}""");
        Assert.Equal("""{"teacher":{"sha256":"ab"},"runs":[{"layer":1},[{}]],"seed":3}""", json.WithoutKey("path").ToString());
        Assert.Equal("""{"path":"/a","teacher":{"path":"/t","sha256":"ab"},"runs":[{"path":"/r","layer":1},[{"path":"/x"}]],"seed":3}""", json.ToString());
    }

    [Fact]
    public void Without_RemovesOnlyTheTopLevelKey()
    {
        var json = Parse("""{"lock_step_rounds":2,"rounds":[{"round":1}],"rule":{"rounds":5}}""");
        Assert.Equal("""{"lock_step_rounds":2,"rule":{"rounds":5}}""", json.Without("rounds").ToString());
    }

    [Fact]
    public void With_ReplacesAnExistingKeyInPlace_AndAppendsANewOne()
    {
        var json = Parse("""{"a":1,"b":2}""");
        Assert.Equal("""{"a":1,"b":"x"}""", json.With("b", "x", ArtifactJson.Types.String).ToString());
        Assert.Equal("""{"a":1,"b":2,"seconds":0.125}""", json.With("seconds", 0.125, ArtifactJson.Types.Double).ToString());
        Assert.Equal("""{"a":{"c":[1]},"b":2}""", json.With("a", Parse("""{"c":[1]}""")).ToString());
        Assert.Equal("""{"a":1,"b":2,"report":null}""", json.With<KlCurves.EarlyStopReport>("report", null, ArtifactJson.Types.EarlyStopReport).ToString());
    }

    [Fact]
    public void PartValueTextAndHas_ReadOneKey()
    {
        var json = Parse("""{"score":{"last_n":5,"curve":"val","full_budget":true},"stage2":7,"mix":null}""");
        var score = json.Part("score")!;
        Assert.Equal(("5", "val", "true"), (score.ValueText("last_n"), score.ValueText("curve"), score.ValueText("full_budget")));
        Assert.Null(score.ValueText("margin_z"));
        Assert.Null(json.ValueText("score"));                   // an object is no plain value
        Assert.Null(json.Part("stage2"));                        // a number is no object
        Assert.Null(json.Part("missing"));
        Assert.True(json.Has("mix"));
        Assert.False(json.Has("corpus"));
    }

    [Fact]
    public void Load_KeepsKeyOrderAndNumberText_RefusesWhatIsNoObject()
    {
        var dir = TestPaths.NewTempDir("opaque-load");
        var good = Path.Combine(dir, "good.json");
        File.WriteAllText(good, "{ // a comment\n \"b\": 1.50, \"a\": [1e3,],\n}");
        Assert.Equal("""{"b":1.50,"a":[1e3]}""", OpaqueJson.Load(good, "recipe").ToString());

        var list = Path.Combine(dir, "list.json");
        File.WriteAllText(list, "[1, 2]");
        Assert.Equal($"{list}: a recipe is a JSON object.", Assert.Throws<InputException>(() => OpaqueJson.Load(list, "recipe")).Message);
        var missing = Path.Combine(dir, "none.json");
        Assert.Equal($"{missing}: recipe not found.", Assert.Throws<InputException>(() => OpaqueJson.Load(missing, "recipe")).Message);
        var bad = Path.Combine(dir, "bad.json");
        File.WriteAllText(bad, "{\"a\": ");
        Assert.StartsWith($"{bad}: not valid JSON (", Assert.Throws<InputException>(() => OpaqueJson.Load(bad, "recipe")).Message);
    }

    [Theory]
    [InlineData("teacher", "kl")]
    [InlineData("teacher", "ar")]
    [InlineData("stories260K", "kl")]
    [InlineData("stories260K", "ar")]
    public void RunKey_OfTheCommittedProvenance_IsTheCommittedRunKey(string study, string method)
    {
        var scores = LayerScores.Load(Path.Combine(TestPaths.RepoRoot, "docs", "results", study, "scores", method, "scores.json"));
        // what the job hashed: its provenance before merging added run_key and kl's stopping records
        var job = scores.Provenance.Without("run_key").Without("early_stopping").Without("early_stop_vs_full");
        Assert.Contains("\"path\":", job.ToString());
        string committed = scores.Provenance.ToObject()["run_key"]!.GetValue<string>();
        Assert.Equal(committed, LayerResultStore.RunKey(job));
    }

    [Fact]
    public void ResolveScoring_PutsTheScoreSectionOverStage2_WithoutMethodKeysOrSoftmaxLayers()
    {
        var recipe = Parse("""{"stage2":{"lr_attention":0.001,"seq_len":32,"softmax_layers":[1]},"score":{"lr_attention":0.003,"last_n":5}}""");
        var config = TrainConfig.ResolveScoring(recipe, ["last_n"], ["batch_size=3"], "recipe [score]");
        Assert.Equal((0.003, 32, 3), (config.LrAttention, config.SeqLen, config.BatchSize));
        Assert.Empty(config.SoftmaxLayers);
        var stage2 = TrainConfig.ResolveSection(Stage.Stage2, recipe, "stage2", [], "recipe [stage2]");
        Assert.Equal((0.001, 32), (stage2.LrAttention, stage2.SeqLen));
        Assert.Equal([1], stage2.SoftmaxLayers);
        Assert.Equal(TrainConfig.Defaults(Stage.Stage1).ToRecord(Stage.Stage1),
            TrainConfig.ResolveSection(Stage.Stage1, recipe, "stage1", [], "recipe [stage1]").ToRecord(Stage.Stage1));   // no such section: the defaults
        var unknown = Assert.Throws<InputException>(() => TrainConfig.ResolveScoring(Parse("""{"score":{"nope":1}}"""), ["last_n"], [], "recipe [score]"));
        Assert.StartsWith("recipe [score]: unknown key \"nope\" for stage2", unknown.Message);
    }
}
