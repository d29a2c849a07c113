using System.Text.Json.Nodes;

namespace HybridDistill.Selection;

/// <summary>
/// random: a seeded permutation of the layers (Fisher-Yates driven by System.Random(seed), whose seeded sequence
/// is fixed across .NET versions); score(l) = L - position of l, so the top K are the permutation's first K.
/// Run several seeds for a spread.
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
            Provenance = new JsonObject { ["teacher"] = context.TeacherFingerprint(), ["seed"] = seed, ["rule"] = "Fisher-Yates with System.Random(seed)" },
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
        var rng = new Random(unchecked((int)(seed ^ (seed >> 32))));
        var order = Enumerable.Range(0, n).ToArray();
        for (int i = n - 1; i > 0; i--)
        {
            int j = rng.Next(i + 1);
            (order[i], order[j]) = (order[j], order[i]);
        }
        return order;
    }
}
