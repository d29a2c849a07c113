using HybridDistill.Selection;
using HybridDistill.Tests.Models;

namespace HybridDistill.Tests.Selection;

public class BaselineScorerTests
{
    [Fact]
    public void UniformAnchoredLast_KeepsTheLastLayerAndWritesEveryK()
    {
        var s = UniformScorer.Build(5, UniformScorer.Last);
        Assert.Equal([4], s.Layouts![1]);
        Assert.Equal([2, 4], s.Layouts[2]);
        Assert.Equal([1, 3, 4], s.Layouts[3]);     // not nested in K=2's choice: hence per-K layouts
        Assert.Equal([1, 2, 3, 4], s.Layouts[4]);
        Assert.Equal([0, 1, 2, 3, 4], s.Layouts[5]);
        Assert.Equal([4, 2, 1, 3, 0], s.Ranking);   // by the smallest K that keeps a layer, ties to the lower index
        Assert.Equal([0.2, 0.6, 0.8, 0.6, 1.0], s.Scores.Select(x => Math.Round(x, 12)));
        Assert.Equal([1, 3, 4], LayerSelection.Choose(s, 3));
    }

    [Fact]
    public void UniformAnchoredFirst_MirrorsTheLastAnchoredPattern()
    {
        var s = UniformScorer.Build(5, UniformScorer.First);
        Assert.Equal([0], s.Layouts![1]);
        Assert.Equal([0, 2], s.Layouts[2]);
        Assert.Equal([0, 1, 3], s.Layouts[3]);
        Assert.Equal([0, 2, 1, 3, 4], s.Ranking);
        Assert.Equal([3, 7], UniformScorer.Layers(8, 2, UniformScorer.Last));
        Assert.Equal([1, 3, 5, 7], UniformScorer.Layers(8, 4, UniformScorer.Last));
        Assert.Equal([0, 2, 4, 6], UniformScorer.Layers(8, 4, UniformScorer.First));
        Assert.Equal([3, 7, 11, 15, 19, 23, 27], UniformScorer.Layers(28, 7, UniformScorer.Last));
    }

    [Fact]
    public void Ends_GoesFromBothEndsInwards()
    {
        Assert.Equal([0, 4, 1, 3, 2], EndsScorer.Build(5).Ranking);
        Assert.Equal([0, 3, 1, 2], EndsScorer.Build(4).Ranking);
        Assert.Equal([0, 5], LayerSelection.Choose(EndsScorer.Build(6), 2));
        Assert.Equal([0], EndsScorer.Build(1).Ranking);
    }

    [Fact]
    public void Random_IsASeededPermutation()
    {
        var a = RandomScorer.Build(8, seed: 3);
        Assert.Equal(Enumerable.Range(0, 8), a.Ranking.Order());
        Assert.Equal(RandomScorer.Permutation(8, 3), a.Ranking);
        Assert.Equal(a.Ranking, RandomScorer.Build(8, seed: 3).Ranking);
        // neighbouring seeds must give unrelated orders (System.Random(0..4) gives one order for 5 layers)
        foreach (int layers in new[] { 5, 8 })
        {
            var rankings = Enumerable.Range(0, 5).Select(seed => string.Join(",", RandomScorer.Build(layers, seed).Ranking)).Distinct().Count();
            Assert.True(rankings >= 4, $"5 seeds gave only {rankings} distinct orders of {layers} layers");
        }
        // every layer leads about equally often over many seeds (120 seeds, 5 layers: 24 expected each)
        var leads = Enumerable.Range(0, 120).GroupBy(seed => RandomScorer.Permutation(5, seed)[0]).ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal(5, leads.Count);
        Assert.All(leads.Values, c => Assert.InRange(c, 10, 40));
        Assert.Equal(a.Ranking.Take(3).Order(), LayerSelection.Choose(a, 3));
    }

    static string TeacherConfigDir(int layers)
    {
        var dir = TestPaths.NewTempDir("select-config");
        TinyConfigs.Llama(layers).Save(dir);
        return dir;
    }

    [Fact]
    public void Scorers_ReadTheLayerCountFromTheTeacherAndRecordTheirSettings()
    {
        var teacher = TeacherConfigDir(8);
        var context = new ScoringContext
        {
            Method = "uniform", TeacherDir = teacher, Set = new Dictionary<string, string> { ["anchor"] = "first" },
        };
        var uniform = LayerScorers.Create("uniform").Score(context);
        Assert.Equal(8, uniform.NumLayers);
        Assert.Equal([0, 4], uniform.Layouts![2]);
        Assert.Equal("first", uniform.Provenance.ToObject()["anchor"]!.GetValue<string>());
        Assert.Contains("--teacher", context.Used);
        Assert.DoesNotContain("--data", context.Used);

        var random = LayerScorers.Create("random").Score(new ScoringContext { Method = "random", TeacherDir = teacher, Seed = 5 });
        Assert.Equal(RandomScorer.Permutation(8, 5), random.Ranking);
        Assert.Equal(5, random.Provenance.ToObject()["seed"]!.GetValue<long>());
        Assert.Equal([0, 7, 1, 6, 2, 5, 3, 4], LayerScorers.Create("ends").Score(new ScoringContext { Method = "ends", TeacherDir = teacher }).Ranking);
    }

    [Fact]
    public void MissingOptionsAndUnknownSettings_AreNamed()
    {
        var teacher = TeacherConfigDir(4);
        Assert.Contains("needs --teacher", Assert.Throws<InputException>(() => LayerScorers.Create("ends").Score(new ScoringContext { Method = "ends" })).Message);
        Assert.Contains("needs --data", Assert.Throws<InputException>(() =>
            LayerScorers.Create("ppl").Score(new ScoringContext { Method = "ppl", TeacherDir = teacher })).Message);
        var e = Assert.Throws<InputException>(() => LayerScorers.Create("uniform").Score(new ScoringContext
        {
            Method = "uniform", TeacherDir = teacher, Set = new Dictionary<string, string> { ["ancor"] = "last" },
        }));
        Assert.Contains("ancor", e.Message);
        Assert.Contains("anchor=last", e.Message);
        Assert.Contains("anchor=middle", Assert.Throws<InputException>(() => LayerScorers.Create("uniform").Score(new ScoringContext
        {
            Method = "uniform", TeacherDir = teacher, Set = new Dictionary<string, string> { ["anchor"] = "middle" },
        })).Message);
        foreach (var name in LayerScorers.Names) Assert.Equal(name, LayerScorers.Create(name).Name);
        Assert.Contains("unknown scoring method", Assert.Throws<InputException>(() => LayerScorers.Create("best")).Message);
    }
}
