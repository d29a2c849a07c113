using HybridDistill.Checkpoints;
using HybridDistill.Evaluation;
using HybridDistill.Tokenization;

namespace HybridDistill.Tests.Evaluation;

/// <summary>The committed teacher (assets/teacher) has the in-context recall it was trained for.</summary>
public class EmbeddedTeacherTests
{
    static string Teacher => TestPaths.Assets("teacher");

    [Fact]
    public void CommittedTeacher_IsAnEightLayerLlamaWithA256TokenContext()
    {
        using var model = HfCheckpoint.Load(Teacher);
        Assert.Equal(8, model.Config.NumHiddenLayers);
        Assert.Equal(256, model.Config.MaxPositionEmbeddings);
        Assert.All(model.Config.LayerTypes, t => Assert.Equal("softmax", t));
    }

    /// <summary>Copying a 32-token span of random keys at 256 tokens (the suite's copy, stock filler, 20 fixed prompts):
    /// the figure the teacher card reports on 100 prompts, here on fewer so the test stays quick.</summary>
    [Fact]
    public void CommittedTeacher_CopiesRandomSpansAt256Tokens()
    {
        using var model = HfCheckpoint.Load(Teacher);
        var suite = new RecallSuite(RecallVocabulary.Build(TokenizerLoader.Load(Teacher)));
        var items = suite.Generate(RecallTasks.Copy, 256, count: 20, seed: 0);
        var scores = RecallScorer.Score(new CausalLMLogits(model), items);
        var result = RecallScorer.Summarize(RecallTasks.Copy, items, scores).Lengths.Single();
        Assert.True(result.Accuracy.Accuracy >= 0.9, $"copy accuracy {result.Accuracy.Accuracy:F3} on {result.Accuracy.Count} tokens");
        // ... and it is recall: the same tokens where they first appear are unpredictable.
        var first = result.FirstOccurrence!.Value;
        Assert.True(first.Accuracy < 0.2, $"first-occurrence accuracy {first.Accuracy:F3}");
    }
}
