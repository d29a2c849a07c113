using HybridDistill.Selection;

namespace HybridDistill.Tests.Selection;

public class KlCurvesTests
{
    static IReadOnlyList<CurvePoint> Curve(params double[] kl) => kl.Select((x, i) => new CurvePoint((i + 1) * 1000L, x)).ToArray();

    [Fact]
    public void ScoreIsMinusTheMeanOfTheLastLoggedValues()
    {
        var c = Curve(5, 4, 3, 2, 1);
        Assert.Equal(-2.0, KlCurves.LateMeanScore(c, 3), 12);
        Assert.Equal(-1.0, KlCurves.LateMeanScore(c, 1), 12);
        Assert.Equal(-3.0, KlCurves.LateMeanScore(c, 10), 12);     // fewer points than asked: all of them
        Assert.Throws<InputException>(() => KlCurves.LateMeanScore([], 3));
    }

    [Fact]
    public void StableStepIsWhereTheTopKSetStopsChanging()
    {
        // layer 1 starts worst but ends best; the top-1 set settles on {1} from step 4 (late mean over 1 point)
        var curves = new Dictionary<int, IReadOnlyList<CurvePoint>>
        {
            [0] = Curve(1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0),
            [1] = Curve(3.0, 2.0, 1.5, 0.5, 0.4, 0.3, 0.2, 0.1),
            [2] = Curve(2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0),
        };
        Assert.Equal([0], KlCurves.TopK(curves, 1, steps: 3, lastN: 1));
        Assert.Equal([1], KlCurves.TopK(curves, 1, steps: 4, lastN: 1));
        var stable = KlCurves.StableStep(curves, k: 1, window: 3, lastN: 1);
        Assert.Equal((7, 7000L), stable);                                // steps 5, 6, 7 agree with their predecessor
        Assert.Null(KlCurves.StableStep(curves, k: 1, window: 10, lastN: 1));
        Assert.Equal(0.5, KlCurves.Jaccard([1, 2], [2, 3]) * 1.5, 12);   // 1/3 * 1.5
    }
}
