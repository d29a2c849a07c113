using HybridDistill.Checkpoints;
using HybridDistill.Selection;
using static TorchSharp.torch;

namespace HybridDistill.Tests.Selection;

/// <summary>The planted teacher (layer 2 of 4 does the recall) and which selectors find it at K = 1.</summary>
public class PlantedAnswerTests
{
    const int Queries = 16;

    /// <summary>Mean probability the teacher gives the right answer token after each query, with some layers ablated.</summary>
    static double AnswerProbability(HybridDistill.Models.HybridCausalLM model, ISet<int>? ablated)
    {
        var rng = new Random(5);
        var seqs = Enumerable.Range(0, 8).Select(_ => PlantedTeacher.Sequence(rng, Queries)).ToArray();
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var ids = tensor(seqs.SelectMany(s => s.Ids.Select(i => (long)i)).ToArray(), [seqs.Length, seqs[0].Ids.Length]);   // [B, T]
        var probs = model.Forward(ids, null, ablated).softmax(-1);                                                         // [B, T, V]
        double sum = 0;
        int count = 0;
        for (int b = 0; b < seqs.Length; b++)
            foreach (int pos in seqs[b].AnswerPositions)
            {
                sum += probs[b, pos - 1, seqs[b].Ids[pos]].item<float>();
                count++;
            }
        return sum / count;
    }

    [Fact]
    public void TheTeacher_RecallsOnlyThroughThePlantedLayer()
    {
        using var teacher = PlantedTeacher.Build(layers: 4, plantedLayer: 2);
        Assert.True(AnswerProbability(teacher, null) > 0.99);
        Assert.InRange(AnswerProbability(teacher, new HashSet<int> { 2 }), 0.03, 0.05);   // uniform over 25 ids: 0.04
        foreach (int other in new[] { 0, 1, 3 })
            Assert.True(AnswerProbability(teacher, new HashSet<int> { other }) > 0.99, $"ablating layer {other} broke recall");
    }

    [Fact]
    public void UniformAndEnds_MissThePlantedLayer_AndPplFindsIt()
    {
        var dir = PlantedTeacher.SaveTo(TestPaths.NewTempDir("planted"), layers: 4, plantedLayer: 2);
        var windows = new InMemoryTokenWindows(PlantedTeacher.Sequences(count: 16, Queries, seed: 9));
        var window = windows.Length.ToString();

        var uniformLast = LayerScorers.Create("uniform").Score(new ScoringContext { Method = "uniform", TeacherDir = dir });
        var uniformFirst = LayerScorers.Create("uniform").Score(new ScoringContext
        {
            Method = "uniform", TeacherDir = dir, Set = new Dictionary<string, string> { ["anchor"] = "first" },
        });
        var ends = LayerScorers.Create("ends").Score(new ScoringContext { Method = "ends", TeacherDir = dir });
        var ppl = LayerScorers.Create("ppl").Score(new ScoringContext
        {
            Method = "ppl", TeacherDir = dir, Data = windows, Set = new Dictionary<string, string> { ["window"] = window },
        });

        Assert.Equal([3], LayerSelection.Choose(uniformLast, 1));
        Assert.Equal([0], LayerSelection.Choose(uniformFirst, 1));
        Assert.Equal([0], LayerSelection.Choose(ends, 1));
        Assert.Equal([2], LayerSelection.Choose(ppl, 1));

        // the answers are 16 of the 36 predicted tokens per window; ablating layer 2 makes them uniform over 25 ids
        double expected = 16.0 / 36 * Math.Log(25);
        Assert.Equal(expected, ppl.Scores[2], 0.02);
        foreach (int other in new[] { 0, 1, 3 }) Assert.InRange(ppl.Scores[other], -1e-3, 1e-3);
        Assert.Equal(Math.Log(25) * 20 / 36, ppl.Details![2]!.ToObject()["base_nll"]!.GetValue<double>(), 0.02);
    }
}
