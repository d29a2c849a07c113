using HybridDistill.Pipeline;
using HybridDistill.Selection;

namespace HybridDistill.Tests.Selection;

public class LayerSelectionTests
{
    [Theory]
    [InlineData("25%", 5, 1)]      // 1.25 -> 1
    [InlineData("12.5%", 8, 1)]    // exactly 1
    [InlineData("50%", 5, 3)]      // 2.5 rounds up
    [InlineData("25%", 6, 2)]      // 1.5 rounds up
    [InlineData("0.25", 28, 7)]
    [InlineData("12.5%", 28, 4)]   // 3.5 rounds up
    [InlineData("0.3", 5, 2)]      // 1.5 exactly in decimal (a double would give 1.4999...)
    [InlineData("1%", 5, 1)]       // at least one
    [InlineData("100%", 5, 5)]
    public void KeepCount_RoundsHalvesUpAndKeepsAtLeastOne(string budget, int layers, int expected)
    {
        Assert.Equal(expected, LayerSelection.KeepCount(LayerSelection.ParseBudget(budget), layers));
    }

    [Theory]
    [InlineData("25%", 0.25)]
    [InlineData("0.25", 0.25)]
    [InlineData(" 12.5 % ", 0.125)]
    [InlineData("1", 1.0)]
    public void ParseBudget_AcceptsPercentAndFraction(string text, double expected) =>
        Assert.Equal((decimal)expected, LayerSelection.ParseBudget(text));

    [Theory]
    [InlineData("abc")]
    [InlineData("0")]
    [InlineData("0%")]
    [InlineData("150%")]
    [InlineData("-0.1")]
    [InlineData("2")]
    public void ParseBudget_RejectsImpossibleBudgets(string text)
    {
        var e = Assert.Throws<InputException>(() => LayerSelection.ParseBudget(text));
        Assert.Contains("--budget", e.Message);
    }

    [Fact]
    public void BudgetLists_ReadCountsAndFractionsMergingTheSameK()
    {
        // 25% of 8 and 2L are both K = 2 (first label kept); 0.125 is K = 1; 8L keeps every layer
        Assert.Equal([("0.125", 1), ("25%", 2), ("8L", 8)], LayerSelection.ParseBudgetList(" 25%, 2L ,0.125,8L", 8, "--budgets"));
    }

    [Theory]
    [InlineData("9L")]
    [InlineData("0L")]
    [InlineData("xL")]
    [InlineData("150%")]
    [InlineData("abc")]
    public void BudgetListErrors_AreTheSameForRunAndKlScoring(string item)
    {
        string expected = $"\"{item}\" is not a budget for a model of 8 layers; give layer counts 1L..8L or fractions of the layers such as 12.5%,25% (above 0, at most 100%).";
        Assert.Equal("--budgets: " + expected, Assert.Throws<InputException>(() => ComparisonBudget.ParseList("1L," + item, 8)).Message);
        Assert.Equal("--set stable_budgets: " + expected, Assert.Throws<InputException>(() => KlCurves.ParseKs("1L," + item, 8)).Message);
    }

    [Fact]
    public void ResolveK_NeedsExactlyOneOfBudgetAndKeepWithinTheLayers()
    {
        Assert.Equal(2, LayerSelection.ResolveK(null, 2, 5));
        Assert.Equal(3, LayerSelection.ResolveK("50%", null, 5));
        Assert.Contains("exactly one", Assert.Throws<InputException>(() => LayerSelection.ResolveK("25%", 2, 5)).Message);
        Assert.Contains("exactly one", Assert.Throws<InputException>(() => LayerSelection.ResolveK(null, null, 5)).Message);
        Assert.Contains("--keep 6", Assert.Throws<InputException>(() => LayerSelection.ResolveK(null, 6, 5)).Message);
        Assert.Contains("--keep 0", Assert.Throws<InputException>(() => LayerSelection.ResolveK(null, 0, 5)).Message);
    }

    [Fact]
    public void Choose_TakesTheTopKOfTheRankingSortedAscending()
    {
        var scores = LayerScores.FromScores("test", [0.1, 0.9, 0.5, 0.9, 0.0]);
        Assert.Equal([1, 3, 2, 0, 4], scores.Ranking);      // tie 0.9: layer 1 before 3
        Assert.Equal([1], LayerSelection.Choose(scores, 1));
        Assert.Equal([1, 2, 3], LayerSelection.Choose(scores, 3));
        Assert.False(LayerSelection.UsesLayout(scores, 3));
    }

    [Fact]
    public void Choose_UsesTheMethodsLayoutForThatKWhenPresent()
    {
        var scores = LayerScores.FromScores("test", [0.1, 0.9, 0.5, 0.8, 0.0]) with
        {
            Layouts = new Dictionary<int, IReadOnlyList<int>> { [2] = [4, 0] },
        };
        Assert.Equal([0, 4], LayerSelection.Choose(scores, 2));
        Assert.True(LayerSelection.UsesLayout(scores, 2));
        Assert.Equal([1, 2, 3], LayerSelection.Choose(scores, 3));   // no layout for 3: the ranking
        var layout = LayerSelection.Layout(scores, 2, "gla");
        Assert.Equal([0, 4], layout.SoftmaxLayers);
        Assert.Equal(["softmax", "gla", "gla", "gla", "softmax"], layout.LayerTypes);
        Assert.Throws<InputException>(() => LayerSelection.Choose(scores, 6));
    }
}
