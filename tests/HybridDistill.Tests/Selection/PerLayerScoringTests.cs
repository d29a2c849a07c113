using System.Text.Json.Nodes;
using HybridDistill.Selection;

namespace HybridDistill.Tests.Selection;

public class PerLayerScoringTests
{
    static (string Teacher, InMemoryTokenWindows Windows) Planted()
    {
        var dir = PlantedTeacher.SaveTo(TestPaths.NewTempDir("planted"), layers: 4, plantedLayer: 2);
        return (dir, new InMemoryTokenWindows(PlantedTeacher.Sequences(count: 6, queries: 8, seed: 1)));
    }

    static ScoringContext Context(string teacher, InMemoryTokenWindows windows, string outDir, IReadOnlyList<int>? layers = null, long? budget = null) => new()
    {
        Method = "ppl", TeacherDir = teacher, Data = windows, OutDir = outDir, Layers = layers, BudgetTokens = budget,
        Set = new Dictionary<string, string> { ["window"] = windows.Length.ToString(), ["batch"] = "4" },
    };

    [Fact]
    public void Rerun_SkipsFinishedLayersAndMergesWhenAllAreDone()
    {
        var (teacher, windows) = Planted();
        var outDir = TestPaths.NewTempDir("ppl-resume");
        var ppl = new PerplexityScorer();

        var first = ppl.Run(Context(teacher, windows, outDir, layers: [0, 1]));
        Assert.Null(first.Scores);
        Assert.Equal([0, 1], first.Done);
        Assert.Equal([2, 3], first.Missing);
        Assert.True(File.Exists(Path.Combine(outDir, "layers", "layer-1.json")));
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(outDir, "layers"), "*.tmp"));

        // plant a sentinel in layer 0's finished result: a re-run must keep it rather than recompute
        var layer0 = Path.Combine(outDir, "layers", "layer-0.json");
        var json = JsonNode.Parse(File.ReadAllText(layer0))!.AsObject();
        json["score"] = 123.0;
        File.WriteAllText(layer0, json.ToJsonString());

        var second = ppl.Run(Context(teacher, windows, outDir));
        Assert.Equal([2, 3], second.ComputedNow);
        Assert.NotNull(second.Scores);
        Assert.Equal(123.0, second.Scores!.Scores[0]);
        Assert.Equal(0, second.Scores.Ranking[0]);          // the sentinel
        Assert.Equal(2, second.Scores.Ranking[1]);          // the planted layer
        Assert.Equal("ppl", second.Scores.Method);
        Assert.NotNull(second.Scores.Provenance.ToObject()["run_key"]);
        Assert.True(second.Scores.Details![3]!.ToObject()["seconds"]!.GetValue<double>() >= 0);

        var merged = new LayerResultStore(outDir).Merge();
        Assert.Equal(second.Scores.ToJsonText(), merged.ToJsonText());
    }

    [Fact]
    public void Merge_ListsTheMissingLayers()
    {
        var (teacher, windows) = Planted();
        var outDir = TestPaths.NewTempDir("ppl-merge");
        new PerplexityScorer().Run(Context(teacher, windows, outDir, layers: [1, 3]));
        var e = Assert.Throws<InputException>(() => new LayerResultStore(outDir).Merge());
        Assert.Contains("layers 0,2 of 0..3 have no result yet", e.Message);
        Assert.Contains("--layers 0,2", e.Message);
        Assert.Contains("no result yet", Assert.Throws<InputException>(() => new PerplexityScorer().Score(Context(teacher, windows, outDir, layers: [1]))).Message);
    }

    [Fact]
    public void ResultsOfAnotherJob_AreNeverReused()
    {
        var (teacher, windows) = Planted();
        var outDir = TestPaths.NewTempDir("ppl-otherjob");
        new PerplexityScorer().Run(Context(teacher, windows, outDir, layers: [0]));
        // a smaller token budget means other windows: another job
        var e = Assert.Throws<InputException>(() => new PerplexityScorer().Run(Context(teacher, windows, outDir, layers: [0], budget: windows.Length * 2L)));
        Assert.Contains("layer-0.json", e.Message);
        Assert.Contains("another scoring job", e.Message);
    }

    [Fact]
    public void WithoutAnOutputDirectory_EveryLayerIsScoredInMemory()
    {
        var (teacher, windows) = Planted();
        var scores = new PerplexityScorer().Score(new ScoringContext
        {
            Method = "ppl", TeacherDir = teacher, Data = windows,
            Set = new Dictionary<string, string> { ["window"] = windows.Length.ToString() },
        });
        Assert.Equal(2, scores.Ranking[0]);
        Assert.Equal(4, scores.Details!.Count);
    }
}
