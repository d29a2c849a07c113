using HybridDistill.Selection;
using HybridDistill.Training;

namespace HybridDistill.Tests.Selection;

public class KlCurveFileTests
{
    [Fact]
    public void ReadCurve_TakesTheTrainingOrValidationKl_AtTheLinesTokens()
    {
        var dir = TestPaths.NewTempDir("kl-curve");
        File.WriteAllLines(Path.Combine(dir, TrainCheckpoint.MetricsFile),
        [
            """{"step": 1, "tokens": 128, "loss": 2.5, "kl": 2.0, "lr": 0.001, "phase": "train"}""",
            """{"step": 2, "tokens": 256, "kl": 1.5, "val_kl": 1.75, "val": {"by_class": [1, 2]}}""",
            "",
            """{"step": 3, "tokens": 384, "val_kl": 1.25, "kl": null}""",
        ]);
        Assert.Equal([new CurvePoint(128, 2.0), new CurvePoint(256, 1.5)], KlScorer.ReadCurve(dir, KlCurve.Training));
        Assert.Equal([new CurvePoint(256, 1.75), new CurvePoint(384, 1.25)], KlScorer.ReadCurve(dir, KlCurve.Validation));
        Assert.Empty(KlScorer.ReadCurve(Path.Combine(dir, "none"), KlCurve.Training));
    }
}
