using HybridDistill.Artifacts;
using HybridDistill.Pipeline;

namespace HybridDistill.Tests.Pipeline;

public class ComparisonPlanTests
{
    [Fact]
    public void Budgets_AsFractionsOrLayerCounts_MergeOnTheSameK()
    {
        Assert.Equal([1, 2], ComparisonBudget.ParseList("1L,2L", 8).Select(b => b.K));
        Assert.Equal([1, 2], ComparisonBudget.ParseList("12.5%,25%", 8).Select(b => b.K));
        // 25% of 5 layers rounds to 1 (1.25), as 1L does: one budget, the first label kept
        var merged = ComparisonBudget.ParseList("25%,1L,40%", 5);
        Assert.Equal([1, 2], merged.Select(b => b.K));
        Assert.Equal("25%", merged[0].Label);
        Assert.Equal(0.4, merged[1].Fraction(5), 12);
    }

    [Theory]
    [InlineData("8L")]
    [InlineData("0L")]
    [InlineData("100%")]
    [InlineData("xL")]
    [InlineData("")]
    public void Budgets_Impossible_AreOneLineErrors(string text)
    {
        var e = Assert.Throws<InputException>(() => ComparisonBudget.ParseList(text, 8));
        Assert.Contains("--budgets", e.Message);
    }

    [Fact]
    public void Methods_ExpandToRowsInReportOrder()
    {
        Assert.Equal(["kl", "uniform-first", "uniform-last", "random-s0", "random-s1", "random-s2", "ar"],
            ComparisonMethods.Expand("ar,random,uniform,kl,uniform-first"));
        Assert.Contains("unknown method", Assert.Throws<InputException>(() => ComparisonMethods.Expand("kl,best")).Message);
    }

    [Fact]
    public void Jobs_OneKlRunServesKlAndKlFull_OneFolderPerOtherRow()
    {
        var budgets = ComparisonBudget.ParseList("1L,2L", 8);
        var jobs = ComparisonMethods.Jobs(ComparisonMethods.Expand("kl,kl-full,uniform,random-s1"), budgets);
        var kl = Assert.Single(jobs, j => j.Method == "kl");
        Assert.Equal("scores.json", kl.ScoresFileOfRow["kl"]);
        Assert.Equal("scores-full.json", kl.ScoresFileOfRow["kl-full"]);
        Assert.Contains("stable_budgets=1L,2L", kl.Settings);
        Assert.Contains(ComparisonMethods.KlFullSetting, kl.Settings);
        Assert.Equal(["anchor=first"], jobs.Single(j => j.Folder == "uniform-first").Settings);
        Assert.Equal(1, jobs.Single(j => j.Folder == "random-s1").Seed);
        Assert.Equal(4, jobs.Count);
        // kl alone: early stopping only, no full-budget continuation
        Assert.DoesNotContain(ComparisonMethods.KlFullSetting, ComparisonMethods.Jobs(["kl"], budgets)[0].Settings);
    }

    [Fact]
    public void Plan_DistillsEachDistinctLayoutOncePerSeed_AllLinearFirst()
    {
        var budgets = ComparisonBudget.ParseList("1L,2L", 8);
        var plan = new ComparisonPlan("t", "d", "r", 8, 256, [0, 1], budgets,
        [
            new MethodSelection("kl", budgets[0], [3]),
            new MethodSelection("uniform-last", budgets[0], [7]),
            new MethodSelection("kl", budgets[1], [3, 5]),
            new MethodSelection("uniform-first", budgets[1], [3, 5]),   // the same layers as kl: distilled once
        ]);
        Assert.Equal(["all-linear-s0", "all-linear-s1", "softmax-3-s0", "softmax-3-s1", "softmax-7-s0", "softmax-7-s1", "softmax-3-5-s0", "softmax-3-5-s1"],
            plan.Models().Select(m => m.Model));
        var path = Path.Combine(TestPaths.NewTempDir("plan"), "selection.json");
        File.WriteAllText(path, OpaqueJson.Of(plan.ToFile(), ArtifactJson.Types.ComparisonPlanFile).ToString());
        var back = ComparisonPlan.Load(path);
        Assert.Equal(plan.Models().Select(m => m.Model), back.Models().Select(m => m.Model));
        Assert.Equal(plan.Selections.Select(s => (s.Method, s.Budget.K, string.Join(",", s.SoftmaxLayers))),
            back.Selections.Select(s => (s.Method, s.Budget.K, string.Join(",", s.SoftmaxLayers))));
    }
}
