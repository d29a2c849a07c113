using HybridDistill.Checkpoints;
using HybridDistill.Evaluation;
using TorchSharp;

namespace HybridDistill.Tests.Evaluation;

/// <summary>Every tensor an evaluation makes is disposed (native memory is invisible to the GC).</summary>
public class LeakTests
{
    [Fact]
    public void Scoring_LeavesNoLiveTensors()
    {
        using var lm = HfCheckpoint.Load(TestPaths.Assets("stories260K"));
        var model = new CausalLMLogits(lm);
        var tok = EvalTokenizers.Stories260K;
        var items = new RecallSuite(RecallVocabulary.Build(tok)).Generate(RecallTasks.Copy, 64, 3, 0);
        var windows = HeldOutText.Windows(Enumerable.Range(3, 200).ToList(), 64, limit: 3);
        var requests = new[] { MultipleChoice.EncodePair(tok, "Once upon a", " time"), MultipleChoice.EncodePair(tok, "The cat", " sat down") };

        void RunAll()
        {
            RecallScorer.Score(model, items, batchSize: 2);
            Perplexity.Evaluate(model, windows, batchSize: 2);
            Perplexity.Agreement(model, model, windows, batchSize: 2);
            MultipleChoice.Score(model, requests, batchSize: 1);
        }
        RunAll();                                                            // warm-up: lazily created buffers
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        RunAll();
        Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }
}
