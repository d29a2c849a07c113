namespace HybridDistill.Config;

/// <summary>The attention kinds a layer can have, as written in <c>layer_types</c>.</summary>
public static class LayerKinds
{
    public const string Softmax = "softmax";
    public const string GatedDeltaNet = "gdn";
    public const string GatedLinearAttention = "gla";
    public const string SlidingWindow = "swa";

    public static readonly string[] All = [Softmax, GatedDeltaNet, GatedLinearAttention, SlidingWindow];

    /// <summary>Our name for a kind; Hugging Face's <c>full_attention</c> and <c>sliding_attention</c> are accepted.</summary>
    public static string Normalize(string kind) => kind switch
    {
        Softmax or "full_attention" or "attention" => Softmax,
        SlidingWindow or "sliding_attention" => SlidingWindow,
        GatedDeltaNet or "gated_deltanet" => GatedDeltaNet,
        GatedLinearAttention => GatedLinearAttention,
        _ => throw new InputException(
            $"unsupported layer type \"{kind}\" in layer_types (supported: {string.Join(", ", All)}, full_attention, sliding_attention)."),
    };

    public static bool IsLinear(string kind) => kind is GatedDeltaNet or GatedLinearAttention;
}
