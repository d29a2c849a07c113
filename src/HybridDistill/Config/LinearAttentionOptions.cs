using System.Text.Json.Serialization;

namespace HybridDistill.Config;

/// <summary>Gated DeltaNet options (config.json <c>linear_attention.gdn</c>). <c>norm_eps</c> is the eps of the per-head
/// output RMSNorm (o_norm): fla's layer default 1e-5, written only when it differs (a model imported from fla, whose
/// single norm_eps also applies there).</summary>
public sealed record GdnOptions(int ChunkSize = 64, bool UseShortConv = false, int ConvSize = 4, double NormEps = GdnOptions.DefaultNormEps)
{
    public const double DefaultNormEps = 1e-5;
}

/// <summary>Gated linear attention options (config.json <c>linear_attention.gla</c>).</summary>
public sealed record GlaOptions(int ChunkSize = 64, int GateLowRankDim = 16, double GateLogitNormalizer = 16.0);

/// <summary>Sliding-window attention options (config.json <c>linear_attention.swa</c>).</summary>
public sealed record SwaOptions(int? Window = null);

/// <summary>
/// Per-kind options of a hybrid's non-softmax layers, stored under stable keys in config.json:
/// <c>"linear_attention": {"layer_kinds": [...], "gdn": {"chunk_size": 64, "use_short_conv": false, "conv_size": 4},
/// "gla": {"chunk_size": 64, "gate_low_rank_dim": 16, "gate_logit_normalizer": 16}, "swa": {"window": 256}}</c>
/// (the schema is <see cref="LinearAttentionFile"/>). <c>layer_kinds</c> (the project's kind of every layer) belongs
/// to <see cref="ModelConfig"/>. Unknown keys are errors.
/// </summary>
public sealed record LinearAttentionOptions
{
    public GdnOptions Gdn { get; init; } = new();
    public GlaOptions Gla { get; init; } = new();
    public SwaOptions Swa { get; init; } = new();
    /// <summary>Whether the linear layers' q/k/v projections carry a bias (config.json <c>linear_attention.qkv_bias</c>);
    /// null: as the teacher's attention (<c>attention_bias</c>). false when built with drop_qkv_bias, as the reference does.</summary>
    public bool? QkvBias { get; init; }

    /// <summary>The key of the per-layer kinds inside <c>linear_attention</c>.</summary>
    public const string LayerKindsKey = "layer_kinds";
    public const string QkvBiasKey = "qkv_bias";

    /// <summary>The options of a read <c>linear_attention</c> object: a kind left out, or a key of it, takes its default.</summary>
    public static LinearAttentionOptions FromFile(LinearAttentionFile file) => new()
    {
        Gdn = file.Gdn is { } g
            ? new GdnOptions(Int(g.ChunkSize, 64), g.UseShortConv ?? false, Int(g.ConvSize, 4), g.NormEps ?? GdnOptions.DefaultNormEps)
            : new GdnOptions(),
        Gla = file.Gla is { } l
            ? new GlaOptions(Int(l.ChunkSize, 64), Int(l.GateLowRankDim, 16), l.GateLogitNormalizer ?? 16.0)
            : new GlaOptions(),
        Swa = new SwaOptions(file.Swa?.Window is double w ? checked((int)w) : null),
        QkvBias = file.QkvBias,
    };

    /// <summary><c>linear_attention</c> for config.json, <paramref name="layerKinds"/> first; gdn's norm_eps only when
    /// it differs from fla's default, qkv_bias only when set.</summary>
    public LinearAttentionFile ToFile(IReadOnlyList<string>? layerKinds) => new(
        layerKinds,
        new GdnOptionsFile(Gdn.ChunkSize, Gdn.UseShortConv, Gdn.ConvSize, Gdn.NormEps != GdnOptions.DefaultNormEps ? Gdn.NormEps : null),
        new GlaOptionsFile(Gla.ChunkSize, Gla.GateLowRankDim, Gla.GateLogitNormalizer),
        new SwaOptionsFile(Swa.Window),
        QkvBias);

    /// <summary>Whole numbers arrive as JSON numbers that Python may write as 64.0: read as double, cast checked.</summary>
    static int Int(double? value, int fallback) => value is double d ? checked((int)d) : fallback;
}

/// <summary>config.json's <c>linear_attention</c> as written and read. Numbers are doubles so that 64 and 64.0 both
/// read (they write as 64 either way).</summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record LinearAttentionFile(
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyList<string>? LayerKinds,
    GdnOptionsFile? Gdn,
    GlaOptionsFile? Gla,
    SwaOptionsFile? Swa,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] bool? QkvBias);

[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record GdnOptionsFile(double? ChunkSize, bool? UseShortConv, double? ConvSize,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] double? NormEps);

[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record GlaOptionsFile(double? ChunkSize, double? GateLowRankDim, double? GateLogitNormalizer);

[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record SwaOptionsFile([property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] double? Window);
