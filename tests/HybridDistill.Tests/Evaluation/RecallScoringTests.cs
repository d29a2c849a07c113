using HybridDistill.Evaluation;

namespace HybridDistill.Tests.Evaluation;

/// <summary>Planted oracles: a model that knows the answers scores 1.0; one that guesses scores at chance, inside the interval.</summary>
public class RecallScoringTests
{
    static readonly RecallVocabulary Vocab = RecallVocabulary.Build(EvalTokenizers.Stories260K);
    const int V = 512;

    static RecallLengthResult Run(ILogitModel model, string task, int length, int prompts, RecallSuiteOptions? options = null)
    {
        var items = new RecallSuite(Vocab, null, options).Generate(task, length, prompts, seed: 0);
        var result = RecallScorer.Summarize(task, items, RecallScorer.Score(model, items));
        return Assert.Single(result.Lengths);
    }

    [Theory]
    [InlineData(RecallTasks.Passkey)]
    [InlineData(RecallTasks.KvRecall)]
    [InlineData(RecallTasks.KvMultihop)]
    [InlineData(RecallTasks.Copy)]
    public void Oracle_ScoresOne(string task)
    {
        var r = Run(new OracleModel(V), task, 128, 10);
        Assert.Equal(1.0, r.Accuracy.Accuracy);
        Assert.True(r.Accuracy.Count >= 10);
        Assert.True(r.MeanAnswerLogProb > -0.01, $"log p {r.MeanAnswerLogProb}");
        if (task == RecallTasks.Copy) Assert.Equal(1.0, r.FirstOccurrence!.Value.Accuracy);
    }

    static void AssertChance(Proportion p, double chance)
    {
        var (lo, hi) = p.Wilson;
        Assert.True(lo <= chance && chance <= hi, $"accuracy {p.Accuracy:F3} [{lo:F3}, {hi:F3}] n={p.Count} misses chance {chance:F3}");
        Assert.InRange(p.Accuracy, chance * 0.5, chance * 1.6);
    }

    [Fact]
    public void RandomDigits_ScoreChance_OnKvRecall()
    {
        var r = Run(new RandomGuesser(V, Vocab.Values.Select(x => x.Id).ToList(), seed: 1), RecallTasks.KvRecall, 128, 100);
        Assert.Equal(400, r.Accuracy.Count);                                // 4 queries per prompt
        AssertChance(r.Accuracy, 0.1);
    }

    [Fact]
    public void RandomDigits_ScoreChance_OnKvMultihop()
    {
        var r = Run(new RandomGuesser(V, Vocab.Values.Select(x => x.Id).ToList(), seed: 2), RecallTasks.KvMultihop, 128, 100);
        AssertChance(r.Accuracy, 0.1);
        Assert.Equal(200, r.ByLabel["hop1"].Count);
        Assert.Equal(200, r.ByLabel["hop2"].Count);
    }

    [Fact]
    public void RandomDigits_ScoreChance_OnPasskey()
    {
        // One-digit keys: chance 1/10 (five digits would make chance 1e-5).
        var options = new RecallSuiteOptions { PasskeyDigits = 1 };
        var r = Run(new RandomGuesser(V, Vocab.Values.Select(x => x.Id).ToList(), seed: 3), RecallTasks.Passkey, 128, 300, options);
        Assert.Equal(300, r.Accuracy.Count);
        AssertChance(r.Accuracy, 0.1);
        Assert.Equal(5, r.ByLabel.Count);                                    // one bucket per depth
    }

    [Fact]
    public void RandomKeys_ScoreChance_OnCopy_AtRepeatAndFirstOccurrence()
    {
        // Without --data the copy filler is random keys, so a uniform guess over keys is right 1/K of the time.
        var r = Run(new RandomGuesser(V, Vocab.Keys.Select(x => x.Id).ToList(), seed: 4), RecallTasks.Copy, 256, 30);
        double chance = 1.0 / Vocab.Keys.Count;
        Assert.Equal(30 * 31, r.Accuracy.Count);                             // 32-token span, first token unscored
        AssertChance(r.Accuracy, chance);
        AssertChance(r.FirstOccurrence!.Value, chance);
    }

    [Fact]
    public void AnswerLogProbability_IsTheLogSoftmaxOfTheCorrectToken()
    {
        // A unigram model with logit 2 on the correct value and 0 elsewhere: log p = 2 - log(e² + V - 1).
        var item = new RecallSuite(Vocab).Item(RecallTasks.KvRecall, 128, 0, 0);
        int answer = item.AnswerIds[0];
        var model = new TableModel(V, _ => Enumerable.Range(0, V).Select(i => i == answer ? 2f : 0f).ToArray());
        var score = RecallScorer.Score(model, [item])[0].Answers[0];
        Assert.Equal(2 - Math.Log(Math.Exp(2) + V - 1), score.LogProb, 4);
        Assert.True(score.Correct);
    }

    [Fact]
    public void PromptLongerThanTheContext_IsAnInputError()
    {
        var items = new RecallSuite(Vocab).Generate(RecallTasks.KvRecall, 256, 1, 0);
        var e = Assert.Throws<InputException>(() => RecallScorer.Score(new OracleModel(V, context: 128), items));
        Assert.Contains("context is 128", e.Message);
    }
}
