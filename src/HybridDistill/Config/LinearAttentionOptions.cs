using System.Text.Json.Nodes;

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
/// "gla": {"chunk_size": 64, "gate_low_rank_dim": 16, "gate_logit_normalizer": 16}, "swa": {"window": 256}}</c>.
/// <c>layer_kinds</c> (the project's kind of every layer) belongs to <see cref="ModelConfig"/> and is skipped here.
/// Unknown keys are errors.
/// </summary>
public sealed record LinearAttentionOptions
{
    public GdnOptions Gdn { get; init; } = new();
    public GlaOptions Gla { get; init; } = new();
    public SwaOptions Swa { get; init; } = new();
    /// <summary>Whether the linear layers' q/k/v projections carry a bias (config.json <c>linear_attention.qkv_bias</c>);
    /// null: as the teacher's attention (<c>attention_bias</c>). false when built with drop_qkv_bias, as the reference does.</summary>
    public bool? QkvBias { get; init; }

    public static LinearAttentionOptions FromJson(JsonObject json)
    {
        var result = new LinearAttentionOptions();
        foreach (var (key, value) in json)
        {
            if (key == LayerKindsKey) continue;
            if (key == QkvBiasKey)
            {
                result = result with { QkvBias = value is JsonValue v && v.TryGetValue<bool>(out var b) ? b : throw new InputException($"linear_attention.{QkvBiasKey} should be true or false.") };
                continue;
            }
            if (value is not JsonObject o) throw new InputException($"linear_attention.{key} should be an object.");
            result = key switch
            {
                "gdn" => result with
                {
                    Gdn = new GdnOptions(
                        Take(o, "chunk_size", key, 64),
                        TakeBool(o, "use_short_conv", key, false),
                        Take(o, "conv_size", key, 4),
                        Take(o, "norm_eps", key, GdnOptions.DefaultNormEps)),
                },
                "gla" => result with
                {
                    Gla = new GlaOptions(
                        Take(o, "chunk_size", key, 64),
                        Take(o, "gate_low_rank_dim", key, 16),
                        Take(o, "gate_logit_normalizer", key, 16.0)),
                },
                "swa" => result with { Swa = new SwaOptions(o.ContainsKey("window") ? Take(o, "window", key, 0) : null) },
                _ => throw new InputException($"unknown key linear_attention.{key} (known: {LayerKindsKey}, {QkvBiasKey}, gdn, gla, swa)."),
            };
            var unknown = o.Select(p => p.Key).Except(KnownKeys(key)).FirstOrDefault();
            if (unknown != null) throw new InputException($"unknown key linear_attention.{key}.{unknown}.");
        }
        return result;
    }

    /// <summary>The key of the per-layer kinds inside <c>linear_attention</c>.</summary>
    public const string LayerKindsKey = "layer_kinds";
    public const string QkvBiasKey = "qkv_bias";

    public JsonObject ToJson()
    {
        var json = ToJsonKinds();
        if (QkvBias is bool b) json[QkvBiasKey] = b;
        return json;
    }

    JsonObject ToJsonKinds() => new()
    {
        ["gdn"] = GdnJson(),
        ["gla"] = new JsonObject
        {
            ["chunk_size"] = Gla.ChunkSize, ["gate_low_rank_dim"] = Gla.GateLowRankDim, ["gate_logit_normalizer"] = Gla.GateLogitNormalizer,
        },
        ["swa"] = Swa.Window is int w ? new JsonObject { ["window"] = w } : new JsonObject(),
    };

    JsonObject GdnJson()
    {
        var gdn = new JsonObject { ["chunk_size"] = Gdn.ChunkSize, ["use_short_conv"] = Gdn.UseShortConv, ["conv_size"] = Gdn.ConvSize };
        if (Gdn.NormEps != GdnOptions.DefaultNormEps) gdn["norm_eps"] = Gdn.NormEps;
        return gdn;
    }

    static string[] KnownKeys(string kind) => kind switch
    {
        "gdn" => ["chunk_size", "use_short_conv", "conv_size", "norm_eps"],
        "gla" => ["chunk_size", "gate_low_rank_dim", "gate_logit_normalizer"],
        _ => ["window"],
    };

    static T Take<T>(JsonObject o, string key, string kind, T fallback)
    {
        if (o[key] is not JsonValue v) return fallback;
        // Parsed JSON numbers read as double; nodes built in code hold the CLR type they were made from.
        double? number = v.TryGetValue<double>(out var d) ? d : v.TryGetValue<int>(out var i) ? i : v.TryGetValue<long>(out var l) ? l : null;
        if (number is double x)
        {
            if (typeof(T) == typeof(int)) return (T)(object)checked((int)x);
            if (typeof(T) == typeof(double)) return (T)(object)x;
        }
        throw new InputException($"linear_attention.{kind}.{key} should be a number.");
    }

    static bool TakeBool(JsonObject o, string key, string kind, bool fallback)
    {
        if (o[key] is not JsonValue v) return fallback;
        return v.TryGetValue<bool>(out var b) ? b : throw new InputException($"linear_attention.{kind}.{key} should be true or false.");
    }
}
