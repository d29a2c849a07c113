using HybridDistill.Checkpoints;
using HybridDistill.Selection;
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
        Assert.Equal(scores.Scores[2], (double)scores.Details![2]!["alignment_error"]!);
    }

    [Theory]
    [InlineData("ar")]
    [InlineData("ar-multihop")]
    public void Ar_OnStories260K_FiniteDeterministicAndScoreIsTheLogProbDrop(string method)
    {
        ScoringContext Context() => new()
        {
            Method = method, TeacherDir = TestPaths.Assets("stories260K"),
            Set = new Dictionary<string, string> { ["prompts"] = "4", ["pairs"] = "20" },
        };
        var a = LayerScorers.Create(method).Score(Context());
        var b = LayerScorers.Create(method).Score(Context());
        Assert.Equal(5, a.NumLayers);
        Assert.Equal(a.Scores, b.Scores);
        Assert.Equal(a.Ranking, b.Ranking);
        for (int l = 0; l < 5; l++)
        {
            Assert.True(double.IsFinite(a.Scores[l]));
            var d = a.Details![l]!;
            Assert.Equal((double)d["base_log_prob"]! - (double)d["log_prob"]!, a.Scores[l], 9);
            Assert.True((double)d["base_log_prob"]! <= 0);
        }
        Assert.Equal(a.Provenance["task"]!.ToString(), method == "ar" ? "kv-recall" : "kv-multihop");
    }
}
