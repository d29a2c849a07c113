using HybridDistill.Checkpoints;
using HybridDistill.Evaluation;
using HybridDistill.Models;
using HybridDistill.Selection;
using HybridDistill.Tokenization;
using HybridDistill.Training;

namespace HybridDistill.Tests.Selection;

public class Stage1AndRecallScorerTests
{
    [Fact]
    public void Stage1_PlantedLayerHasTheLargestAlignmentError_SoftmaxLayerScoresZero()
    {
        var (teacher, data, _) = KlScorerTests.Fixture();
        // a stage-1 student with layer 1 left softmax: its "error" is exactly 0
        var stage1 = TestPaths.NewTempDir("stage1-scorer-student");
        using (var model = HfCheckpoint.Load(teacher))
        using (var student = StudentBuilder.Build(model, ["gdn", "softmax", "gdn", "gdn"], null, seed: 3))
            HfCheckpoint.Save(student, stage1);
        var context = new ScoringContext
        {
            Method = "stage1", TeacherDir = teacher, Stage1Dir = stage1, DataPath = data, BudgetTokens = 17 * 4,
            Set = new Dictionary<string, string> { ["window"] = "17", ["batch"] = "2" },
        };
        var scores = LayerScorers.Create("stage1").Score(context);
        Assert.Equal(0.0, scores.Scores[1]);
        Assert.Equal(2, scores.Ranking[0]);
        // the planted layer copies a whole value vector; the others' outputs are ~100x smaller
        foreach (int l in new[] { 0, 3 }) Assert.True(scores.Scores[2] > 10 * scores.Scores[l], $"layer {l}: {scores.Scores[l]} vs {scores.Scores[2]}");
        Assert.Equal(scores.Scores[2], (double)scores.Details![2]!.ToObject()["alignment_error"]!);
    }

    [Theory]
    [InlineData("ar")]
    [InlineData("ar-multihop")]
    public void Ar_OnStories260K_FiniteDeterministicAndScoreIsTheLogProbDrop(string method)
    {
        ScoringContext Context() => new()
        {
            Method = method, TeacherDir = TestPaths.Assets("stories260K"),
            Set = new Dictionary<string, string> { ["measure"] = "logprob", ["prompts"] = "4", ["pairs"] = "20" },
        };
        var a = LayerScorers.Create(method).Score(Context());
        var b = LayerScorers.Create(method).Score(Context());
        Assert.Equal(5, a.NumLayers);
        Assert.Equal(a.Scores, b.Scores);
        Assert.Equal(a.Ranking, b.Ranking);
        for (int l = 0; l < 5; l++)
        {
            Assert.True(double.IsFinite(a.Scores[l]));
            var d = a.Details![l]!.ToObject();
            Assert.Equal((double)d["base_log_prob"]! - (double)d["log_prob"]!, a.Scores[l], 9);
            Assert.True((double)d["base_log_prob"]! <= 0);
        }
        Assert.Equal(a.Provenance.ToObject()["task"]!.ToString(), method == "ar" ? "kv-recall" : "kv-multihop");
    }

    [Fact]
    public void Ar_AccuracyDropOfTheEmbeddedTeacher_IsTheEvaluationSuitesAccuracyWithTheLayerZeroed()
    {
        string teacherDir = TestPaths.Assets("teacher");
        var scores = LayerScorers.Create("ar").Score(new ScoringContext
        {
            Method = "ar", TeacherDir = teacherDir,
            Set = new Dictionary<string, string> { ["prompts"] = "10", ["seq_len"] = "256" },
        });
        Assert.Equal("accuracy", scores.Provenance.ToObject()["measure"]!.ToString());
        Assert.Equal(256, (int)scores.Provenance.ToObject()["length"]!);

        // the same prompts straight through the evaluation suite (RecallSuite + RecallScorer), intact and with layer 3 zeroed
        using var model = HfCheckpoint.Load(teacherDir);
        model.eval();
        var items = new RecallSuite(RecallVocabulary.Build(TokenizerLoader.Load(teacherDir))).Generate(RecallTasks.KvRecall, 256, 10, seed: 0);
        Proportion Accuracy(ISet<int>? ablated) =>
            RecallScorer.Summarize(RecallTasks.KvRecall, items, RecallScorer.Score(new CausalLMLogits(model, ablated), items)).Lengths.Single().Accuracy;
        var intact = Accuracy(null);
        var zeroed = Accuracy(new HashSet<int> { 3 });

        var d = scores.Details![3]!.ToObject();
        Assert.Equal(intact.Count, (int)d["answers"]!);
        Assert.Equal(intact.Accuracy, (double)d["base_accuracy"]!, 12);
        Assert.Equal(zeroed.Accuracy, (double)d["accuracy"]!, 12);
        Assert.Equal(intact.Accuracy - zeroed.Accuracy, scores.Scores[3], 12);
        Assert.True(scores.Scores[3] >= 0.5, $"zeroing layer 3 should cost most of kv-recall: {intact.Accuracy} -> {zeroed.Accuracy}");
        var interval = d["accuracy_drop_interval"]!.AsArray().Select(x => (double)x!).ToArray();
        Assert.True(interval[0] > 0 && interval[0] < scores.Scores[3] && scores.Scores[3] < interval[1]);
        Assert.True((bool)d["drop_exceeds_interval"]!);
        Assert.Contains(3, scores.Ranking.Take(2));
    }
}
