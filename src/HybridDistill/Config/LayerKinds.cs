namespace HybridDistill.Config;

/// <summary>The attention kinds a layer can have, as written in <c>layer_types</c>.</summary>
public static class LayerKinds
{
    public const string Softmax = "softmax";
    public const string GatedDeltaNet = "gdn";
    public const string GatedLinearAttention = "gla";
    public const string SlidingWindow = "swa";

    public static readonly string[] All = [Softmax, GatedDeltaNet, GatedLinearAttention, SlidingWindow];

    /// <summary>Hugging Face's <c>layer_types</c> words, which a hybrid's config.json uses.</summary>
    public const string HfFullAttention = "full_attention";
    public const string HfSlidingAttention = "sliding_attention";
    public const string HfLinearAttention = "linear_attention";

    /// <summary>The Hugging Face word for a kind: softmax -> full_attention, swa -> sliding_attention, gdn and gla ->
    /// linear_attention (which linear kind is then in <c>linear_attention.layer_kinds</c>).</summary>
    public static string HfName(string kind) => kind switch
    {
        Softmax => HfFullAttention,
        SlidingWindow => HfSlidingAttention,
        GatedDeltaNet or GatedLinearAttention => HfLinearAttention,
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "not a layer kind"),
    };

    /// <summary>Our name for a kind; Hugging Face's <c>full_attention</c> and <c>sliding_attention</c> are accepted
    /// (<c>linear_attention</c> names no kind on its own: <see cref="ModelConfig"/> reads it with
    /// <c>linear_attention.layer_kinds</c>).</summary>
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
