using HybridDistill.Artifacts;

namespace HybridDistill.Selection;

/// <summary>
/// random: a seeded permutation of the layers (Fisher-Yates driven by SplitMix64 from the seed; System.Random's
/// seeded sequences are nearly identical for neighbouring seeds, so seeds 0, 1, 2 would give the same order);
/// score(l) = L - position of l, so the top K are the permutation's first K. Run several seeds for a spread.
/// </summary>
public sealed class RandomScorer : ILayerScorer
{
    public string Name => "random";
    public string Description => "a seeded random order of the layers (--seed).";
    public IReadOnlyList<ScorerSetting> Settings { get; } = [];

    public LayerScores Score(ScoringContext context)
    {
        context.Accept(Settings);
        long seed = context.UseSeed();
        int numLayers = context.TeacherConfig().NumHiddenLayers;
        return Build(numLayers, seed) with
        {
            Provenance = OpaqueJson.Of(new RuleProvenance(context.TeacherFingerprint(), seed, "Fisher-Yates with SplitMix64(seed)"), ArtifactJson.Types.RuleProvenance),
        };
    }

    public static LayerScores Build(int numLayers, long seed)
    {
        var order = Permutation(numLayers, seed);
        var scores = new double[numLayers];
        for (int position = 0; position < numLayers; position++) scores[order[position]] = numLayers - position;
        return LayerScores.FromScores("random", scores);
    }

    public static int[] Permutation(int n, long seed)
    {
        ulong state = unchecked((ulong)seed);
        var order = Enumerable.Range(0, n).ToArray();
        for (int i = n - 1; i > 0; i--)
        {
            // uniform in 0..i: the high 64 bits of a 64 x 64-bit product (bias below 2^-50 for any layer count)
            int j = (int)(((UInt128)SplitMix64(ref state) * (ulong)(i + 1)) >> 64);
            (order[i], order[j]) = (order[j], order[i]);
        }
        return order;
    }

    /// <summary>Steele, Lea and Flood's SplitMix64: advance the state by the golden-ratio increment, then mix.</summary>
    static ulong SplitMix64(ref ulong state)
    {
        ulong z = state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
