using System.Text.Json.Nodes;
using HybridDistill.Artifacts;
using HybridDistill.Selection;

namespace HybridDistill.Tests.Selection;

public class LayerScoresTests
{
    static LayerScores Full() => LayerScores.FromScores("kl", [-0.5, -0.25, -1.0], OpaqueJson.FromNode(new JsonObject { ["seed"] = 3, ["data"] = new JsonObject { ["sha256"] = "ab" } })) with
    {
        Layouts = new Dictionary<int, IReadOnlyList<int>> { [1] = [2], [2] = [0, 2] },
        Details = [OpaqueJson.FromNode(new JsonObject { ["nll"] = 1.5 }), null, OpaqueJson.FromNode(new JsonObject { ["nll"] = 2.5 })],
        Curves = new Dictionary<int, IReadOnlyList<CurvePoint>> { [0] = [new(100, 2.0), new(200, 0.5)], [2] = [new(100, 3.0)] },
    };

    [Fact]
    public void SaveThenLoad_RoundTripsEveryField()
    {
        var dir = TestPaths.NewTempDir("scores-json");
        var path = Path.Combine(dir, "scores.json");
        var original = Full();
        original.Save(path);
        var back = LayerScores.Load(dir);                           // a directory means DIR/scores.json
        Assert.Equal(original.ToJsonText(), back.ToJsonText());
        Assert.Equal([1, 0, 2], back.Ranking);
        Assert.Equal([0, 2], back.Layouts![2]);
        Assert.Null(back.Details![1]);
        Assert.Equal(new CurvePoint(200, 0.5), back.Curves![0][1]);
        Assert.Equal(3, back.Provenance.ToObject()["seed"]!.GetValue<int>());
        Assert.False(File.Exists(path + ".tmp"));
    }

    [Theory]
    [InlineData("{not json", "not valid JSON")]
    [InlineData("[1, 2]", "expected a JSON object")]
    [InlineData("""{"num_layers": 2, "scores": [1, 2], "ranking": [1, 0]}""", "'method'")]
    [InlineData("""{"method": "x", "num_layers": 3, "scores": [1, 2], "ranking": [1, 0, 2]}""", "\"scores\" has 2 entries")]
    [InlineData("""{"method": "x", "num_layers": 2, "scores": [1, 2], "ranking": [1, 1]}""", "\"ranking\" must list every layer")]
    [InlineData("""{"method": "x", "num_layers": 2, "scores": [1, "a"], "ranking": [1, 0]}""", "$.scores[1]")]
    [InlineData("""{"method": "x", "num_layers": 2, "scores": [1, 2], "ranking": [1, 0], "layouts": {"2": [0]}}""", "must list 2 distinct layers")]
    [InlineData("""{"method": "x", "num_layers": 2, "scores": [1, 2], "ranking": [1, 0], "layouts": {"3": [0, 1, 2]}}""", "not a layer count between 1 and 2")]
    [InlineData("""{"method": "x", "num_layers": 2, "scores": [1, 2], "ranking": [1, 0], "curves": {"0": [{"tokens": 1}]}}""", "'kl'")]
    public void BadFiles_GiveAnErrorNamingTheFileAndKey(string text, string expected)
    {
        var path = Path.Combine(TestPaths.NewTempDir("scores-bad"), "scores.json");
        File.WriteAllText(path, text);
        var e = Assert.Throws<InputException>(() => LayerScores.Load(path));
        Assert.Contains(path, e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void MissingFile_SaysHowToMakeOne()
    {
        var e = Assert.Throws<InputException>(() => LayerScores.Load(Path.Combine(TestPaths.NewTempDir("scores-none"), "scores.json")));
        Assert.Contains("hybrid score", e.Message);
    }

    [Fact]
    public void NaNScores_AreRejected() =>
        Assert.Throws<InputException>(() => LayerScores.FromScores("ppl", [0.1, double.NaN]));
}
