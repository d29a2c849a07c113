namespace HybridDistill.Selection;

/// <summary>
/// Every scoring method, by its --method name. One switch: a new method is one line here plus its class.
///   kl        (GA-S2, method.md section 6): per layer, stage-1 weights + teacher softmax at layer l only, a short stage 2;
///             score = -(mean of the last few logged KL values) (<see cref="KlCurves.LateMeanScore"/>); a PerLayerScorer
///             whose LayerResult carries the KL curve. Needs --teacher, --stage1, --data, --recipe (score section), --seed.
///   removal   (GR-S2): per layer, all softmax except layer l linearised, a short stage 2; score = +late KL (hurts most = keep).
///   stage1    (GA-S1): each layer's own stage-1 alignment error read from --stage1 DIR; score = that error.
///   ar, ar-multihop: per layer, recall accuracy drop of the teacher with layer l's attention ablated
///             (Evaluation kv-recall / kv-multihop generators); a PerLayerScorer like ppl.
/// </summary>
public static class LayerScorers
{
    /// <summary>Method names in the order help text lists them.</summary>
    public static IReadOnlyList<string> Names { get; } = ["kl", "uniform", "random", "ends", "ppl", "stage1", "removal", "ar", "ar-multihop"];

    public static ILayerScorer Create(string name) => name switch
    {
        "uniform" => new UniformScorer(),
        "random" => new RandomScorer(),
        "ends" => new EndsScorer(),
        "ppl" => new PerplexityScorer(),
        // plug-in points: replace each line with the scorer once its dependency is on main
        "kl" => new KlScorer(),
        "removal" => new KlScorer(removal: true),
        "stage1" => new Stage1Scorer(),
        "ar" => new AblationRecallScorer(multihop: false),
        "ar-multihop" => new AblationRecallScorer(multihop: true),
        _ => throw new InputException($"--method {name}: unknown scoring method (methods: {string.Join(", ", Names)})."),
    };
}
