using HybridDistill.Cli;
using HybridDistill.Cli.Commands;
using HybridDistill.Config;
using HybridDistill.Selection;
using HybridDistill.Tests.Models;
using Spectre.Console.Cli;

namespace HybridDistill.Tests.Selection;

/// <summary>hybrid score / score merge / select through Spectre's parser, with Program.cs's own wiring (in this process, consoles injected).</summary>
public class SelectionCliTests
{
    static (int Code, string Stdout) Run(params string[] args)
    {
        var (code, stdout, _) = HybridDistill.Tests.Cli.CliHarness.Run(args);
        return (code, stdout);
    }

    [Fact]
    public void ScoreThenSelect_WritesTheLayoutOfThatK()
    {
        var teacher = TestPaths.NewTempDir("cli-teacher");
        TinyConfigs.Llama(5).Save(teacher);
        var outDir = Path.Combine(TestPaths.NewTempDir("cli-score"), "uniform");
        Assert.Equal(0, Run("score", "--method", "uniform", "--teacher", teacher, "--out", outDir).Code);
        Assert.True(File.Exists(Path.Combine(outDir, "scores.json")));
        Assert.True(new FileInfo(Path.Combine(outDir, "scores.png")).Length > 10_000);

        var layoutPath = Path.Combine(outDir, "layout.json");
        var (code, stdout) = Run("select", "--scores", outDir, "--keep", "3", "--out", layoutPath, "--linear-kind", "gla");
        Assert.Equal(0, code);
        Assert.Equal("1,3,4", stdout.Trim());                     // uniform's own layout for K=3, not the ranking's top 3 (4,2,1)
        var layout = LayerLayout.Load(layoutPath);
        Assert.Equal([1, 3, 4], layout.SoftmaxLayers);
        Assert.Equal(["gla", "softmax", "gla", "softmax", "softmax"], layout.LayerTypes);

        (code, stdout) = Run("select", "--scores", Path.Combine(outDir, "scores.json"), "--budget", "50%", "--json");
        Assert.Equal(0, code);
        Assert.Contains("\"k\": 3", stdout);
        Assert.Contains("\"source\": \"layouts\"", stdout);
    }

    [Fact]
    public void EveryScoreOption_ReachesTheMethod()
    {
        var teacher = TestPaths.NewTempDir("cli-teacher");
        TinyConfigs.Llama(6).Save(teacher);
        var outDir = TestPaths.NewTempDir("cli-seed");
        var (code, stdout) = Run("score", "--method", "random", "--teacher", teacher, "--out", outDir, "--seed", "7", "--json", "--plot-budget", "50%");
        Assert.Equal(0, code);
        var scores = LayerScores.Load(outDir);
        Assert.Equal(7, scores.Provenance.ToObject()["seed"]!.GetValue<long>());
        Assert.Equal(RandomScorer.Permutation(6, 7), scores.Ranking);
        Assert.Contains("\"method\": \"random\"", stdout);
    }

    [Fact]
    public void UserErrors_ExitWithCodeTwo()
    {
        Assert.Equal(2, Run("select", "--scores", "/nonexistent/scores.json", "--keep", "1").Code);
        Assert.Equal(2, Run("select", "--scores", "x.json").Code);                                   // neither --budget nor --keep
        Assert.Equal(2, Run("score", "--method", "nope", "--out", TestPaths.NewTempDir("cli-bad")).Code);
        Assert.Equal(2, Run("score", "merge", TestPaths.NewTempDir("cli-empty")).Code);
        Assert.Equal(2, Run("score", "--method", "ends", "--out", TestPaths.NewTempDir("cli-bad"), "--set", "noequals").Code);
    }

    [Fact]
    public void KlWithFullBudget_WritesScoresAndScoresFull_SelectReadsBoth()
    {
        var (teacher, data, stage1) = KlScorerTests.Fixture();
        var outDir = TestPaths.NewTempDir("cli-kl-full");
        var sets = new[] { "seq_len=17", "batch_size=4", "log_every=1", "eval_every=1000", "eval_tokens=68", "threads=1",
                           "lr_attention=3e-3", "lr_other=1e-4", "stable_window=2", "stable_budgets=1L", "full_budget=true" };
        Assert.Equal(0, Run(["score", "--method", "kl", "--teacher", teacher, "--stage1", stage1, "--data", data, "--budget-tokens", "816",
            "--out", outDir, .. sets.SelectMany(x => new[] { "--set", x })]).Code);
        var early = LayerScores.Load(Path.Combine(outDir, "scores.json"));
        var full = LayerScores.Load(Path.Combine(outDir, KlScorer.FullScoresFile));
        Assert.Equal(("kl", KlScorer.FullMethod), (early.Method, full.Method));
        Assert.True((bool)early.Provenance.ToObject()["early_stopping"]!["stopped_early"]!);
        Assert.True(File.Exists(Path.Combine(outDir, "scores-full.png")));
        foreach (var file in new[] { "scores.json", KlScorer.FullScoresFile })
        {
            var layout = Path.Combine(outDir, file + ".layout.json");
            Assert.Equal(0, Run("select", "--scores", Path.Combine(outDir, file), "--budget", "25%", "--out", layout).Code);
            Assert.Equal([2], LayerLayout.Load(layout).SoftmaxLayers);
        }
    }

    [Fact]
    public void Merge_CombinesLayerFilesFromSeparateRuns()
    {
        var teacher = PlantedTeacher.SaveTo(TestPaths.NewTempDir("cli-planted"));
        var outDir = TestPaths.NewTempDir("cli-merge");
        var windows = new InMemoryTokenWindows(PlantedTeacher.Sequences(4, 8, seed: 2));
        var context = (IReadOnlyList<int> layers) => new ScoringContext
        {
            Method = "ppl", TeacherDir = teacher, Data = windows, OutDir = outDir, Layers = layers,
            Set = new Dictionary<string, string> { ["window"] = windows.Length.ToString() },
        };
        new PerplexityScorer().Run(context([0, 1]));       // as two processes would
        Assert.Equal(2, Run("score", "merge", outDir).Code);
        new PerplexityScorer().Run(context([2, 3]));
        File.Delete(Path.Combine(outDir, "scores.json"));
        var (code, _) = Run("score", "merge", outDir);
        Assert.Equal(0, code);
        Assert.Equal(2, LayerScores.Load(outDir).Ranking[0]);
        Assert.True(File.Exists(Path.Combine(outDir, "scores.png")));
    }

    [Fact]
    public void RepeatedSetOptions_AllReachTheMethod()
    {
        var outDir = Path.Combine(TestPaths.NewTempDir("cli-set"), "ppl");
        var stories = TestPaths.Assets("stories260K");
        var text = TestPaths.Assets("text", "tinystories_val_slice.txt");
        Assert.Equal(0, Run("score", "--method", "ppl", "--teacher", stories, "--data", text, "--budget-tokens", "256",
            "--set", "window=64", "--set", "batch=2", "--out", outDir).Code);
        Assert.Equal(5, LayerScores.Load(outDir).NumLayers);
        // both values were read: a repeated key and an unknown key are each reported
        Assert.Equal(2, Run("score", "--method", "ppl", "--teacher", stories, "--data", text, "--set", "window=64", "--set", "window=32", "--out", outDir + "2").Code);
        Assert.Equal(2, Run("score", "--method", "ppl", "--teacher", stories, "--data", text, "--set", "window=64", "--set", "bogus=1", "--out", outDir + "3").Code);
    }
}
