namespace HybridDistill.Selection;

/// <summary>One scores file as <see cref="ScoreRun.Write"/> left it: the scores, where, and the K its plot marks.</summary>
public sealed record WrittenScores(LayerScores Scores, string JsonPath, string PngPath, int K);

/// <summary>
/// What <c>hybrid score</c> does with one method, shared by the command and <c>hybrid run</c>: score (a per-layer
/// method keeps finished layers and may end with some missing), then write OUT/scores.json and its plot.
/// </summary>
public static class ScoreRun
{
    /// <summary>Scores with <paramref name="scorer"/>; for a per-layer method whose layers are not all done, Scores is null.</summary>
    public static PerLayerProgress Score(ILayerScorer scorer, ScoringContext context)
    {
        if (scorer is PerLayerScorer perLayer) return perLayer.Run(context);
        var scores = scorer.Score(context);
        var all = Enumerable.Range(0, scores.NumLayers).ToArray();
        return new PerLayerProgress(all, [], all, scores);
    }

    /// <summary>
    /// Writes OUT/scores.json and OUT/scores.png (the layers chosen at <paramref name="plotBudget"/> marked); for a kl
    /// job run with full_budget=true first also OUT/scores-full.json and its .png: the same runs scored from their whole
    /// curves. Returns the files in the order written.
    /// </summary>
    public static IReadOnlyList<WrittenScores> Write(LayerScores scores, string outDir, string plotBudget)
    {
        var written = new List<WrittenScores>();
        if (KlScorer.FullBudgetScores(scores) is { } full)
            written.Add(WriteOne(full, outDir, plotBudget, KlScorer.FullScoresFile));
        written.Add(WriteOne(scores, outDir, plotBudget, LayerScores.FileName));
        return written;
    }

    static WrittenScores WriteOne(LayerScores scores, string outDir, string plotBudget, string fileName)
    {
        Directory.CreateDirectory(outDir);
        var jsonPath = Path.GetFullPath(Path.Combine(outDir, fileName));
        scores.Save(jsonPath);
        int k = LayerSelection.KeepCount(LayerSelection.ParseBudget(plotBudget), scores.NumLayers);
        var pngPath = Path.ChangeExtension(jsonPath, ".png");
        ScoresPlot.Save(scores, pngPath, k, plotBudget);
        return new WrittenScores(scores, jsonPath, pngPath, k);
    }

    /// <summary>--set key=value pairs of a scoring method; a repeated key or a missing '=' is an error.</summary>
    public static Dictionary<string, string> ParseSet(IEnumerable<string> pairs)
    {
        var set = new Dictionary<string, string>();
        foreach (var pair in pairs)
        {
            int eq = pair.IndexOf('=');
            if (eq <= 0) throw new InputException($"--set expects key=value, got \"{pair}\".");
            var key = pair[..eq].Trim();
            if (!set.TryAdd(key, pair[(eq + 1)..].Trim())) throw new InputException($"--set {key} is given twice.");
        }
        return set;
    }
}
