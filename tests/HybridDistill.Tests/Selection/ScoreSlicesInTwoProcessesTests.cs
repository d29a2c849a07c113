using HybridDistill.Selection;
using HybridDistill.Tests.Cli;

namespace HybridDistill.Tests.Selection;

/// <summary>
/// The fan-out the README documents: two `hybrid score --method kl` processes, running at the same time on
/// disjoint --layers slices into one output folder, then `score merge`, against one process scoring every layer.
/// </summary>
public class ScoreSlicesInTwoProcessesTests
{
    static string[] ScoreArgs(string outDir, string? layers)
    {
        var (teacher, data, stage1) = KlScorerTests.Fixture();
        var args = new List<string>
        {
            "score", "--method", "kl", "--teacher", teacher, "--stage1", stage1, "--data", data, "--out", outDir,
            "--budget-tokens", (68 * 6).ToString(),
        };
        foreach (var set in new[] { "seq_len=17", "batch_size=4", "log_every=1", "eval_every=1000", "eval_tokens=68", "threads=1",
                     "lr_attention=3e-3", "lr_other=1e-4", "early_stop=off" })
            args.AddRange(["--set", set]);
        if (layers is not null) args.AddRange(["--layers", layers]);
        return [.. args];
    }

    [Fact]
    public void DisjointSlicesInParallel_ThenMerge_EqualOneProcessOverAllLayers()
    {
        var sliced = TestPaths.NewTempDir("kl-two-processes");
        using (var first = HybridProcess.Start(ScoreArgs(sliced, "0,1")))
        using (var second = HybridProcess.Start(ScoreArgs(sliced, "2,3")))
        {
            var a = HybridProcess.Finish(first);
            var b = HybridProcess.Finish(second);
            Assert.True(a.Code == 0, a.Err);
            Assert.True(b.Code == 0, b.Err);
        }
        File.Delete(Path.Combine(sliced, LayerScores.FileName));        // whichever slice finished last merged; merge again explicitly
        var merge = HybridProcess.Run("score", "merge", sliced);
        Assert.True(merge.Code == 0, merge.Err);
        var merged = LayerScores.Load(sliced);

        var oneDir = TestPaths.NewTempDir("kl-one-process");
        var single = HybridProcess.Run(ScoreArgs(oneDir, null));
        Assert.True(single.Code == 0, single.Err);
        var all = LayerScores.Load(oneDir);

        Assert.Equal(4, merged.NumLayers);
        Assert.Equal(all.Ranking, merged.Ranking);
        Assert.Equal(2, merged.Ranking[0]);                                  // the planted layer
        for (int l = 0; l < 4; l++)
        {
            // same batches in the same order, one thread each: the same arithmetic, whichever process ran the layer
            Assert.Equal(all.Scores[l], merged.Scores[l], 6);
            Assert.Equal(all.Curves![l].Count, merged.Curves![l].Count);
        }
        Assert.Empty(Directory.GetFiles(sliced, "*.tmp", SearchOption.AllDirectories));
    }
}
