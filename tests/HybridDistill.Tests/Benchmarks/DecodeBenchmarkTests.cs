using HybridDistill.Benchmarks;
using HybridDistill.Checkpoints;
using HybridDistill.Tests.Cli;

namespace HybridDistill.Tests.Benchmarks;

public class DecodeBenchmarkTests
{
    [Fact]
    public void BenchDecode_RefusesZeroStepsOrRounds_BeforeLoadingAnything()
    {
        // each row is the median of steps x rounds timed steps: none of them is an error, not an index crash
        var json = Path.Combine(TestPaths.NewTempDir("bench-decode-zero"), "out");
        foreach (var option in new[] { "--steps", "--rounds" })
        {
            var (code, output, err) = CliHarness.Run("bench", "decode", "--model", TestPaths.Assets("stories260K"), "--contexts", "16", option, "0", "--json", json);
            Assert.Equal(2, code);
            Assert.Equal("", output);
            Assert.Contains("--steps and --rounds must be >= 1", err);
        }
        Assert.False(Directory.Exists(json));
        using var model = HfCheckpoint.Load(TestPaths.Assets("stories260K"));
        Assert.Throws<ArgumentOutOfRangeException>(() => DecodeBenchmark.Run([("m", model)], [16], stepsPerRound: 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => ForwardBenchmark.DecodeMsPerToken(model, 16, steps: 0));
    }
}
