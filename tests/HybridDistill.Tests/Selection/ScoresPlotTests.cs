using System.Buffers.Binary;
using HybridDistill.Selection;

namespace HybridDistill.Tests.Selection;

public class ScoresPlotTests
{
    static readonly byte[] PngSignature = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];

    static (int Width, int Height) PngSize(byte[] bytes) =>
        (BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(16)), BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(20)));   // IHDR

    [Fact]
    public void Save_WritesARealPngWithOnePanelForScores()
    {
        var path = Path.Combine(TestPaths.NewTempDir("scores-png"), "scores.png");
        ScoresPlot.Save(UniformScorer.Build(8), path, k: 2, "25%");
        var bytes = File.ReadAllBytes(path);
        Assert.Equal(PngSignature, bytes[..8]);
        Assert.True(bytes.Length > 10_000, $"only {bytes.Length} bytes");
        Assert.Equal((900, 420), PngSize(bytes));
    }

    [Fact]
    public void Save_AddsACurvePanelWhenTheScoresCarryCurves()
    {
        var curves = Enumerable.Range(0, 4).ToDictionary(l => l,
            l => (IReadOnlyList<CurvePoint>)Enumerable.Range(1, 10).Select(i => new CurvePoint(i * 512L, (l + 1) * 2.0 / i)).ToArray());
        var scores = LayerScores.FromScores("kl", curves.Select(c => KlCurves.LateMeanScore(c.Value)).ToArray()) with { Curves = curves };
        var path = Path.Combine(TestPaths.NewTempDir("scores-png"), "scores.png");
        ScoresPlot.Save(scores, path, k: 1);
        var bytes = File.ReadAllBytes(path);
        Assert.Equal(PngSignature, bytes[..8]);
        Assert.Equal((900, 840), PngSize(bytes));
        Assert.True(bytes.Length > 20_000, $"only {bytes.Length} bytes");
    }
}
