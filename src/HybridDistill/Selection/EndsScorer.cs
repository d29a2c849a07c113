using HybridDistill.Artifacts;

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
            Provenance = OpaqueJson.Of(new RuleProvenance(context.TeacherFingerprint(), null, "0, L-1, 1, L-2, ..."), ArtifactJson.Types.RuleProvenance),
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

/// <summary>Provenance of a rule-based method (ends, random): the teacher, the seed (random) and the rule.</summary>
public sealed record RuleProvenance(ModelFingerprint Teacher,
    [property: System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)] long? Seed,
    string Rule);
