using System.Text.Json.Nodes;

namespace HybridDistill.Selection;

/// <summary>ends: the first and last layers, then inwards: 0, L-1, 1, L-2, ...; score(l) = L - position of l in that order.</summary>
public sealed class EndsScorer : ILayerScorer
{
    public string Name => "ends";
    public string Description => "first and last layers, then inwards (0, L-1, 1, L-2, ...).";
    public IReadOnlyList<ScorerSetting> Settings { get; } = [];

    public LayerScores Score(ScoringContext context)
    {
        context.Accept(Settings);
        int numLayers = context.TeacherConfig().NumHiddenLayers;
        return Build(numLayers) with
        {
            Provenance = new JsonObject { ["teacher"] = context.TeacherFingerprint(), ["rule"] = "0, L-1, 1, L-2, ..." },
        };
    }

    public static LayerScores Build(int numLayers)
    {
        var scores = new double[numLayers];
        for (int position = 0; position < numLayers; position++)
        {
            int layer = position % 2 == 0 ? position / 2 : numLayers - 1 - position / 2;
            scores[layer] = numLayers - position;
        }
        return LayerScores.FromScores("ends", scores);
    }
}
