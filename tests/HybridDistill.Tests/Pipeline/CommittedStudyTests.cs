using System.Text.Json.Nodes;
using HybridDistill.Artifacts;
using HybridDistill.Pipeline;

namespace HybridDistill.Tests.Pipeline;

/// <summary>The studies committed under docs/results/: summary.json is what the committed eval.json files, the
/// decode benchmark and selection.json give (recomputed here), and every model of the plan has its evaluation.</summary>
public class CommittedStudyTests
{
    [Theory]
    [InlineData("teacher")]
    [InlineData("stories260K")]
    public void Summary_IsRecomputedExactlyFromTheCommittedEvaluations(string study)
    {
        var layout = new RunLayout(Path.Combine(TestPaths.RepoRoot, "docs", "results", study));
        var plan = ComparisonPlan.Load(layout.Selection);
        Assert.Equal([0, 1, 2], plan.Seeds);
        Assert.Equal([1, 2], plan.Budgets.Select(b => b.K));
        foreach (var (_, _, model) in plan.Models())
            Assert.True(File.Exists(layout.EvalJson(model)), $"{layout.EvalJson(model)} is missing");

        var recomputed = ArtifactJson.ToNode(ComparisonSummary.Build(layout, plan), ArtifactJson.Types.ComparisonSummary);
        var committed = JsonNode.Parse(File.ReadAllText(layout.Summary))!.AsObject();
        var a = recomputed["rows"]!.AsArray();
        var b = committed["rows"]!.AsArray();
        Assert.Equal(b.Count, a.Count);
        for (int i = 0; i < a.Count; i++)
            Assert.True(JsonNode.DeepEquals(a[i], b[i]), $"row {i}: recomputed {a[i]!.ToJsonString()} vs committed {b[i]!.ToJsonString()}");
        // the methods the study promises, at both budgets
        foreach (var method in new[] { "kl", "kl-full", "uniform-first", "uniform-last", "random-s0", "random-s1", "random-s2", "ar", "stage1" })
            Assert.Equal(2 * 3, b.Count(r => (string)r!["method"]! == method));
    }
}
