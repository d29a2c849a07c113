using HybridDistill.Selection;

namespace HybridDistill.Tests.Selection;

public class KlCurvesTests
{
    /// <summary>Points at 1000, 2000, ... tokens (no step-0 point).</summary>
    static IReadOnlyList<CurvePoint> Curve(params double[] kl) => kl.Select((x, i) => new CurvePoint((i + 1) * 1000L, x)).ToArray();

    /// <summary>n points of <paramref name="level"/> with +-<paramref name="noise"/> alternating (+ first).</summary>
    static IReadOnlyList<CurvePoint> Flat(double level, double noise, int n = 10) =>
        Curve(Enumerable.Range(0, n).Select(i => level + (i % 2 == 0 ? noise : -noise)).ToArray());

    [Fact]
    public void Score_IsMinusTheMeanOfTheLastLoggedValues()
    {
        var c = Curve(5, 4, 3, 2, 1);
        Assert.Equal(-2.0, KlCurves.LateMeanScore(c, 3), 12);
        Assert.Equal(-1.0, KlCurves.LateMeanScore(c, 1), 12);
        Assert.Equal(-3.0, KlCurves.LateMeanScore(c, 10), 12);     // fewer points than asked: all of them
        Assert.Throws<InputException>(() => KlCurves.LateMeanScore([], 3));
        Assert.Equal(0.5, KlCurves.Jaccard([1, 2], [2, 3]) * 1.5, 12);   // 1/3 * 1.5
    }

    [Fact]
    public void StepZeroPoint_IsNeverInAScore()
    {
        // the step-0 point (tokens 0, before any update) of layer 1 is very low; it must not make layer 1 look best
        IReadOnlyList<CurvePoint> WithStepZero(double atZero, params double[] kl) => [new CurvePoint(0, atZero), .. Curve(kl)];
        var curves = new Dictionary<int, IReadOnlyList<CurvePoint>>
        {
            [0] = WithStepZero(2.0, 1.0, 1.0),
            [1] = WithStepZero(0.0, 3.0, 3.0),
        };
        Assert.Equal(-3.0, KlCurves.LateMeanScore(curves[1], 3), 12);    // not -(0 + 3 + 3) / 3
        Assert.Equal(-3.0, KlCurves.LateMeanScore(curves[1].Take(2).ToArray(), 3), 12);
        Assert.Equal([0], KlCurves.TopK(curves, 1, steps: 2, lastN: 3));
        Assert.Throws<InputException>(() => KlCurves.LateMeanScore([new CurvePoint(0, 1.0)], 3));
        Assert.Equal(0.0, KlCurves.LateMeanNoise(curves[0], 3), 12);          // two equal points after step 0: no noise
        Assert.Equal(double.PositiveInfinity, KlCurves.LateMeanNoise(curves[0].Take(2).ToArray(), 3));   // one point: unknown
    }

    [Fact]
    public void NoStopBeforeMinFraction_AndNotBeforeTheSetHeldForTheWindow()
    {
        // three well separated flat curves: the top-1 set is {0} from the first point and the margin is 100x the noise
        var curves = new Dictionary<int, IReadOnlyList<CurvePoint>>
        {
            [0] = Flat(1.0, 0.01), [1] = Flat(2.0, 0.01), [2] = Flat(3.0, 0.01),
        };
        Assert.Equal(5, KlCurves.StopPoint(curves, [1], 10_000, new KlCurves.StopRule(MinFraction: 0.45, Window: 2)));   // 5000 >= 4500
        Assert.Equal(3, KlCurves.StopPoint(curves, [1], 10_000, new KlCurves.StopRule(MinFraction: 0, Window: 2)));      // points 1..3 agree
        Assert.Equal(2, KlCurves.StopPoint(curves, [1], 10_000, new KlCurves.StopRule(MinFraction: 0, Window: 0)));      // noise needs 2 points
        Assert.Equal(10, KlCurves.StopPoint(curves, [1, 2], 10_000, new KlCurves.StopRule(MinFraction: 1.0, Window: 0)));
        Assert.Null(KlCurves.StopPoint(curves, [1], 20_000, new KlCurves.StopRule(MinFraction: 0.6)));               // the curves end before 60%
    }

    [Fact]
    public void MarginBelowTheCurvesNoiseDoesNotStop_SetIdentityAloneWould()
    {
        // layer 1 is layer 0 + 0.02 at every point: the top-1 set never changes, but the 0.02 margin is below
        // 2 standard errors of curves that swing by +-0.05 (sd 0.0577 over 3 points, se 0.0333, combined 0.0471)
        var curves = new Dictionary<int, IReadOnlyList<CurvePoint>>
        {
            [0] = Flat(1.00, 0.05), [1] = Flat(1.02, 0.05), [2] = Flat(3.0, 0.05),
        };
        Assert.Equal(0.0333333, KlCurves.LateMeanNoise(curves[0].Take(3).ToArray(), 3), 6);
        Assert.Null(KlCurves.StopPoint(curves, [1], 10_000, new KlCurves.StopRule(MinFraction: 0, Window: 1, MarginZ: 2)));
        Assert.Equal(2, KlCurves.StopPoint(curves, [1], 10_000, new KlCurves.StopRule(MinFraction: 0, Window: 1, MarginZ: 0)));
        Assert.Equal(2, KlCurves.StopPoint(curves, [2], 10_000, new KlCurves.StopRule(MinFraction: 0, Window: 1, MarginZ: 2)));   // {0,1} vs 2: far apart
    }

    [Fact]
    public void Compare_GivesEarlyAgainstFullTopKForEveryK()
    {
        // layer 1 starts worse than layer 0 and ends best: stopping at the first point with a noise estimate
        // (point 2, 2000 of 6000 tokens) picks {0} for K=1 where the full budget picks {1}; K=2 is right either way
        var curves = new Dictionary<int, IReadOnlyList<CurvePoint>>
        {
            [0] = Curve(1.0, 1.0, 1.0, 1.0, 1.0, 1.0),
            [1] = Curve(2.0, 1.5, 1.2, 0.8, 0.5, 0.4),
            [2] = Curve(3.0, 3.0, 3.0, 3.0, 3.0, 3.0),
        };
        var eager = new KlCurves.StopRule(MinFraction: 0, Window: 0, MarginZ: 0, LastN: 1);
        var byK = KlCurves.Compare(curves, eager);
        Assert.Equal([1, 2], byK.Select(c => c.K));
        Assert.Equal((2, 2000L, 6000L), (byK[0].StopPoint!.Value, byK[0].StopTokens, byK[0].FullTokens));
        Assert.Equal([0], byK[0].EarlyTopK);
        Assert.Equal([1], byK[0].FullTopK);
        Assert.False(byK[0].Same);
        Assert.Equal(2.0 / 3, byK[0].SavedFraction, 12);
        Assert.Equal([0, 1], byK[1].EarlyTopK);
        Assert.True(byK[1].Same);

        // with min_fraction 0.5 the K=1 stop moves to point 3 (3000 tokens): still {0}; at 0.6, point 4: {1}, right
        Assert.Equal([0], KlCurves.Compare(curves, eager with { MinFraction = 0.5 })[0].EarlyTopK);
        var late = KlCurves.Compare(curves, eager with { MinFraction = 0.6 })[0];
        Assert.Equal((4, 4000L, true), (late.StopPoint!.Value, late.StopTokens, late.Same));

        var report = KlCurves.CompareReport(curves, eager with { MinFraction = 0.6 }, [1, 2])!;
        Assert.Equal(4000L, report.AllStopTokens);
        Assert.Equal(0.3333, report.SavedFraction, 4);
    }

    [Fact]
    public void ParseKs_AcceptsLayerCountsAndFractions()
    {
        Assert.Equal([1, 2], KlCurves.ParseKs("1L,2L", 8));
        Assert.Equal([1, 2], KlCurves.ParseKs("12.5%, 25%", 8));
        Assert.Equal([2, 3], KlCurves.ParseKs("3L,0.25", 8));
        Assert.Equal([7], KlCurves.ParseKs("8L", 8));                 // keeping all 8 needs no rule: the largest K that does is 7
        Assert.Contains("9L", Assert.Throws<InputException>(() => KlCurves.ParseKs("9L", 8)).Message);
        Assert.Contains("stable_budgets", Assert.Throws<InputException>(() => KlCurves.ParseKs("150%", 8)).Message);
    }
}
