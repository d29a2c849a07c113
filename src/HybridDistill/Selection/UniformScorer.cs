using HybridDistill.Artifacts;

namespace HybridDistill.Selection;

/// <summary>
/// uniform: one softmax layer every L/K layers. Anchored at the last layer (default): layers
/// L-1 - floor(i L / K), i = 0..K-1; anchored at the first: floor(i L / K). The choices for different K are not
/// nested (L=5: K=2 keeps 2,4, K=3 keeps 1,3,4), so scores.json carries every K's layout; the score only orders
/// layers by the smallest K that keeps them, score(l) = (L + 1 - K_min(l)) / L, so the ranking starts with the K=1 pick.
/// </summary>
public sealed class UniformScorer : ILayerScorer
{
    public const string First = "first";
    public const string Last = "last";

    public string Name => "uniform";
    public string Description => "one softmax layer every L/K layers (anchor=last: the last layer is always kept; anchor=first: the first).";
    public IReadOnlyList<ScorerSetting> Settings { get; } = [new("anchor", Last, "which end the pattern starts from: last or first")];

    public LayerScores Score(ScoringContext context)
    {
        context.Accept(Settings);
        string anchor = context.SettingChoice("anchor", Last, First);
        int numLayers = context.TeacherConfig().NumHiddenLayers;
        var scores = Build(numLayers, anchor);
        return scores with
        {
            Provenance = OpaqueJson.Of(new UniformProvenance(context.TeacherFingerprint(), anchor,
                anchor == Last ? "layers L-1-floor(i*L/K), i=0..K-1" : "layers floor(i*L/K), i=0..K-1"), ArtifactJson.Types.UniformProvenance),
        };
    }

    /// <summary>Every K's layout and the derived scores for <paramref name="numLayers"/> layers.</summary>
    public static LayerScores Build(int numLayers, string anchor = Last)
    {
        var layouts = new Dictionary<int, IReadOnlyList<int>>();
        var smallestK = Enumerable.Repeat(int.MaxValue, numLayers).ToArray();
        for (int k = 1; k <= numLayers; k++)
        {
            var layers = Layers(numLayers, k, anchor);
            layouts[k] = layers;
            foreach (int l in layers) smallestK[l] = Math.Min(smallestK[l], k);
        }
        var scores = smallestK.Select(k => (numLayers + 1.0 - k) / numLayers).ToArray();
        return LayerScores.FromScores("uniform", scores) with { Layouts = layouts };
    }

    /// <summary>The K uniformly spaced layers, ascending.</summary>
    public static int[] Layers(int numLayers, int k, string anchor = Last)
    {
        // floor(i L / K) grows by at least 1 per step (L >= K), so the K layers are distinct
        var fromStart = Enumerable.Range(0, k).Select(i => (int)((long)i * numLayers / k));
        return (anchor == First ? fromStart : fromStart.Select(o => numLayers - 1 - o)).Order().ToArray();
    }
}

public sealed record UniformProvenance(ModelFingerprint Teacher, string Anchor, string Rule);
