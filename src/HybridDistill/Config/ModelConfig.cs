using System.Text.Json;
using System.Text.Json.Nodes;
using HybridDistill.Artifacts;

namespace HybridDistill.Config;

/// <summary>RoPE frequency scaling from config.json's <c>rope_scaling</c> (types <c>llama3</c> and <c>linear</c>).</summary>
public sealed record RopeScaling(
    string Type,
    double Factor,
    double LowFreqFactor = 1.0,
    double HighFreqFactor = 4.0,
    long OriginalMaxPositionEmbeddings = 8192);

/// <summary>
/// The model architecture, mirroring Hugging Face's config.json (llama, mistral, qwen2, qwen3), plus the
/// per-layer <c>layer_types</c> that makes a model a hybrid and the per-kind options under
/// <c>linear_attention</c>. The teacher is the layout with every layer <c>softmax</c>.
///
/// config.json of a hybrid (<see cref="IsHybrid"/>) names no architecture that Hugging Face transformers or
/// flash-linear-attention registers, so no stock class loads it as something it is not:
/// <c>"model_type": "hybrid_distill"</c>, <c>"architectures": ["HybridDistillForCausalLM"]</c>, the teacher's family
/// in <c>"base_model_type"</c>, <c>layer_types</c> in Hugging Face's words (full_attention, sliding_attention,
/// linear_attention) and the project's kind of every layer in <c>linear_attention.layer_kinds</c> (softmax, gdn,
/// gla, swa). Loading also accepts the older form (the family's model_type, layer_types in the project's words). A
/// model that is not a hybrid keeps its source config.json unchanged.
/// </summary>
public sealed record ModelConfig
{
    public static readonly string[] SupportedModelTypes = ["llama", "mistral", "qwen2", "qwen3"];

    /// <summary>config.json <c>model_type</c> and <c>architectures</c> of a hybrid.</summary>
    public const string HybridModelType = "hybrid_distill";
    public const string HybridArchitecture = "HybridDistillForCausalLM";

    /// <summary>The family (llama, mistral, qwen2, qwen3): config.json's model_type, or base_model_type for a hybrid.
    /// Family defaults follow it (qwen2's attention bias, mistral's sliding window, qwen3's q/k norm).</summary>
    public string ModelType { get; init; } = "llama";
    public int HiddenSize { get; init; }
    public int IntermediateSize { get; init; }
    public int NumHiddenLayers { get; init; }
    public int NumAttentionHeads { get; init; }
    public int NumKeyValueHeads { get; init; }
    public int HeadDim { get; init; }
    public int VocabSize { get; init; }
    public int MaxPositionEmbeddings { get; init; } = 2048;
    public double RmsNormEps { get; init; } = 1e-5;
    public double RopeTheta { get; init; } = 10000.0;
    public RopeScaling? RopeScaling { get; init; }
    public bool TieWordEmbeddings { get; init; }
    /// <summary>q/k/v projections carry a bias (Qwen2; llama's <c>attention_bias</c>). o_proj never does here.</summary>
    public bool AttentionBias { get; init; }
    /// <summary>Per-head RMSNorm of q and k before RoPE (Qwen3).</summary>
    public bool QkNorm { get; init; }
    /// <summary>Window of <c>swa</c> layers when <c>linear_attention.swa.window</c> is not given (HF's <c>sliding_window</c>).</summary>
    public int? SlidingWindow { get; init; }
    public int? BosTokenId { get; init; }
    public IReadOnlyList<int> EosTokenIds { get; init; } = [];
    /// <summary>One kind per layer: softmax, gdn, gla, swa (see <see cref="LayerKinds"/>).</summary>
    public IReadOnlyList<string> LayerTypes { get; init; } = [];
    /// <summary>Per-kind options, stored in config.json under <c>linear_attention</c>.</summary>
    public LinearAttentionOptions LinearAttention { get; init; } = new();
    /// <summary>config.json as read, so keys we do not interpret (architectures, torch_dtype, ...) survive a save.</summary>
    public JsonObject? Source { get; init; }

    public int KvGroups => NumAttentionHeads / NumKeyValueHeads;

    public bool IsAllSoftmax => LayerTypes.All(t => t == LayerKinds.Softmax);

    /// <summary>The layer kinds the family's own config gives: every layer sliding-window for a mistral with a window,
    /// else every layer softmax.</summary>
    public IReadOnlyList<string> StockLayerTypes =>
        Enumerable.Repeat(ModelType == "mistral" && SlidingWindow is not null ? LayerKinds.SlidingWindow : LayerKinds.Softmax, NumHiddenLayers).ToArray();

    /// <summary>True when some layer's kind differs from what the family's own config gives (a gdn, gla or swa
    /// layer in a softmax model): config.json then takes the hybrid form.</summary>
    public bool IsHybrid => !LayerTypes.SequenceEqual(StockLayerTypes);

    public ModelConfig WithLayerTypes(IReadOnlyList<string> layerTypes)
    {
        if (layerTypes.Count != NumHiddenLayers)
            throw new InputException($"layer_types has {layerTypes.Count} entries but the model has {NumHiddenLayers} layers.");
        return this with { LayerTypes = layerTypes.Select(LayerKinds.Normalize).ToArray() };
    }

    // ---- reading -------------------------------------------------------------------------------------

    public static ModelConfig Load(string path)
    {
        if (Directory.Exists(path)) path = Path.Combine(path, "config.json");
        if (!File.Exists(path))
            throw new InputException($"{path}: not found. A model directory needs a Hugging Face config.json.");
        JsonNode? node;
        try { node = JsonNode.Parse(File.ReadAllText(path)); }
        catch (JsonException e) { throw new InputException($"{path}: not valid JSON ({e.Message}).", e); }
        if (node is not JsonObject obj) throw new InputException($"{path}: expected a JSON object.");
        try { return FromJson(obj); }
        catch (InputException e) { throw new InputException($"{path}: {e.Message}", e); }
    }

    public static ModelConfig FromJson(JsonObject json)
    {
        string modelType = Str(json, "model_type") ?? "llama";
        bool hybridForm = modelType == HybridModelType;
        if (hybridForm)
        {
            modelType = Str(json, "base_model_type")
                        ?? throw new InputException($"model_type \"{HybridModelType}\" needs \"base_model_type\", the teacher's family ({string.Join(", ", SupportedModelTypes)}).");
            if (!SupportedModelTypes.Contains(modelType))
                throw new InputException($"unsupported base_model_type \"{modelType}\" (supported: {string.Join(", ", SupportedModelTypes)}).");
        }
        else if (!SupportedModelTypes.Contains(modelType))
            throw new InputException($"unsupported model_type \"{modelType}\" (supported: {string.Join(", ", SupportedModelTypes)}, {HybridModelType}).");

        string act = Str(json, "hidden_act") ?? "silu";
        if (act != "silu")
            throw new InputException($"unsupported hidden_act \"{act}\" (only silu, the SwiGLU MLP, is supported).");
        if (Bool(json, "mlp_bias") == true)
            throw new InputException("unsupported mlp_bias: true (MLP projections without bias only).");

        int hidden = Int(json, "hidden_size") ?? throw Missing("hidden_size");
        int heads = Int(json, "num_attention_heads") ?? throw Missing("num_attention_heads");
        int kvHeads = Int(json, "num_key_value_heads") ?? heads;
        if (heads % kvHeads != 0)
            throw new InputException($"num_attention_heads ({heads}) is not a multiple of num_key_value_heads ({kvHeads}).");
        int layers = Int(json, "num_hidden_layers") ?? throw Missing("num_hidden_layers");
        int headDim = Int(json, "head_dim") ?? hidden / heads;

        RopeScaling? scaling = null;
        if (json["rope_scaling"] is JsonObject rs)
        {
            string type = Str(rs, "rope_type") ?? Str(rs, "type") ?? "default";
            if (type != "default")
            {
                if (type != "llama3" && type != "linear")
                    throw new InputException($"unsupported rope_scaling type \"{type}\" (supported: llama3, linear).");
                scaling = new RopeScaling(type,
                    Dbl(rs, "factor") ?? throw Missing("rope_scaling.factor"),
                    Dbl(rs, "low_freq_factor") ?? 1.0,
                    Dbl(rs, "high_freq_factor") ?? 4.0,
                    (long)(Dbl(rs, "original_max_position_embeddings") ?? 8192));
            }
        }

        bool qwen2 = modelType == "qwen2";
        bool attentionBias = Bool(json, "attention_bias") ?? qwen2;
        bool useSlidingWindow = Bool(json, "use_sliding_window") ?? (modelType == "mistral");
        int? window = useSlidingWindow || json["layer_types"] is JsonArray ? Int(json, "sliding_window") : null;

        var eos = new List<int>();
        switch (json["eos_token_id"])
        {
            case JsonArray arr: eos.AddRange(arr.Where(n => n != null).Select(n => n!.GetValue<int>())); break;
            case JsonValue v when v.TryGetValue<int>(out int id): eos.Add(id); break;
        }

        var la = json["linear_attention"] as JsonObject;
        var layerKinds = ReadLayerKinds(la, layers);
        var options = la is not null ? ReadLinearAttention(la) : new LinearAttentionOptions();

        IReadOnlyList<string> layerTypes;
        if (json["layer_types"] is JsonArray types)
        {
            if (types.Count != layers)
                throw new InputException($"layer_types has {types.Count} entries but num_hidden_layers is {layers}.");
            layerTypes = types.Select((t, i) => LayerKind(t, i, layerKinds)).ToArray();
        }
        else if (layerKinds is not null)
            layerTypes = layerKinds;
        else if (hybridForm)
            throw new InputException($"a \"{HybridModelType}\" config needs layer_types.");
        else if (modelType == "mistral" && window != null)
            layerTypes = Enumerable.Repeat(LayerKinds.SlidingWindow, layers).ToArray();
        else
            layerTypes = Enumerable.Repeat(LayerKinds.Softmax, layers).ToArray();

        if (layerTypes.Contains(LayerKinds.SlidingWindow) && options.Swa.Window is null)
        {
            if (window is null)
                throw new InputException("layer_types contains sliding-window layers but neither sliding_window nor linear_attention.swa.window is set.");
            options = options with { Swa = options.Swa with { Window = window } };
        }

        return new ModelConfig
        {
            ModelType = modelType,
            HiddenSize = hidden,
            IntermediateSize = Int(json, "intermediate_size") ?? throw Missing("intermediate_size"),
            NumHiddenLayers = layers,
            NumAttentionHeads = heads,
            NumKeyValueHeads = kvHeads,
            HeadDim = headDim,
            VocabSize = Int(json, "vocab_size") ?? throw Missing("vocab_size"),
            MaxPositionEmbeddings = Int(json, "max_position_embeddings") ?? 2048,
            RmsNormEps = Dbl(json, "rms_norm_eps") ?? 1e-6,
            RopeTheta = Dbl(json, "rope_theta") ?? 10000.0,
            RopeScaling = scaling,
            TieWordEmbeddings = Bool(json, "tie_word_embeddings") ?? false,
            AttentionBias = attentionBias,
            QkNorm = modelType == "qwen3",
            SlidingWindow = window,
            BosTokenId = Int(json, "bos_token_id"),
            EosTokenIds = eos,
            LayerTypes = layerTypes,
            LinearAttention = options,
            Source = (JsonObject)json.DeepClone(),
        };
    }

    /// <summary>linear_attention.layer_kinds: one project kind per layer, or null when absent.</summary>
    static string[]? ReadLayerKinds(JsonObject? la, int layers)
    {
        if (la?[LinearAttentionOptions.LayerKindsKey] is not JsonNode node) return null;
        if (node is not JsonArray arr || arr.Any(k => k is not JsonValue v || !v.TryGetValue<string>(out _)))
            throw new InputException($"linear_attention.{LinearAttentionOptions.LayerKindsKey} should be a list of layer kinds ({string.Join(", ", LayerKinds.All)}).");
        if (arr.Count != layers)
            throw new InputException($"linear_attention.{LinearAttentionOptions.LayerKindsKey} has {arr.Count} entries but num_hidden_layers is {layers}.");
        return arr.Select(k => LayerKinds.Normalize(k!.GetValue<string>())).ToArray();
    }

    /// <summary>linear_attention through its typed schema (<see cref="LinearAttentionFile"/>); layer_kinds was checked
    /// by <see cref="ReadLayerKinds"/>.</summary>
    static LinearAttentionOptions ReadLinearAttention(JsonObject la)
    {
        try { return LinearAttentionOptions.FromFile(JsonSerializer.Deserialize(la, ArtifactJson.Types.LinearAttentionFile)!); }
        catch (JsonException e)
        {
            throw new InputException($"linear_attention is not valid ({e.Message}); its keys are {LinearAttentionOptions.LayerKindsKey}, " +
                                     $"{LinearAttentionOptions.QkvBiasKey} (true or false), gdn {{chunk_size, use_short_conv, conv_size, norm_eps}}, " +
                                     "gla {chunk_size, gate_low_rank_dim, gate_logit_normalizer} and swa {window}, with numbers and booleans as values.", e);
        }
    }

    /// <summary>One layer_types entry: HF's words or ours. "linear_attention" takes its kind from layer_kinds; where
    /// both are given they must agree.</summary>
    static string LayerKind(JsonNode? entry, int layer, string[]? layerKinds)
    {
        string word = entry is JsonValue v && v.TryGetValue<string>(out var s) ? s : "";
        string? fromKinds = layerKinds?[layer];
        if (word == LayerKinds.HfLinearAttention)
        {
            if (fromKinds is null)
                throw new InputException($"layer_types[{layer}] is \"{LayerKinds.HfLinearAttention}\" but linear_attention.{LinearAttentionOptions.LayerKindsKey} " +
                                         "is missing; it names the linear kind of every layer (gdn or gla).");
            if (!LayerKinds.IsLinear(fromKinds))
                throw new InputException($"layer_types[{layer}] is \"{LayerKinds.HfLinearAttention}\" but linear_attention.{LinearAttentionOptions.LayerKindsKey}[{layer}] is \"{fromKinds}\", not gdn or gla.");
            return fromKinds;
        }
        string kind = LayerKinds.Normalize(word);
        if (fromKinds is not null && fromKinds != kind)
            throw new InputException($"layer_types[{layer}] is \"{word}\" but linear_attention.{LinearAttentionOptions.LayerKindsKey}[{layer}] is \"{fromKinds}\".");
        return kind;
    }

    // ---- writing -------------------------------------------------------------------------------------

    /// <summary>
    /// config.json for this model. Not a hybrid: the source config.json unchanged when this config is the one it
    /// describes (a teacher, or a softmax model saved again); otherwise the source's keys with ours written over them,
    /// in the family's form. A hybrid: the source's uninterpreted keys kept, ours written over them, in the hybrid form
    /// (see the class summary); the source's auto_map (remote code of the teacher's class) is dropped.
    /// </summary>
    public JsonObject ToJson()
    {
        if (!IsHybrid && Source is not null && SameModel(FromJson(Source), this))
            return (JsonObject)Source.DeepClone();

        var json = Source?.DeepClone() as JsonObject ?? new JsonObject();
        if (IsHybrid)
        {
            json["model_type"] = HybridModelType;
            json["base_model_type"] = ModelType;
            json["architectures"] = new JsonArray(HybridArchitecture);
            json.Remove("auto_map");
        }
        else
        {
            json["model_type"] = ModelType;
            json.Remove("base_model_type");
            if (json["architectures"] is not JsonArray archs || archs.Any(a => a?.ToString() == HybridArchitecture))
                json["architectures"] = new JsonArray(ModelType switch
                {
                    "mistral" => "MistralForCausalLM",
                    "qwen2" => "Qwen2ForCausalLM",
                    "qwen3" => "Qwen3ForCausalLM",
                    _ => "LlamaForCausalLM",
                });
        }
        json["hidden_size"] = HiddenSize;
        json["intermediate_size"] = IntermediateSize;
        json["num_hidden_layers"] = NumHiddenLayers;
        json["num_attention_heads"] = NumAttentionHeads;
        json["num_key_value_heads"] = NumKeyValueHeads;
        json["head_dim"] = HeadDim;
        json["vocab_size"] = VocabSize;
        json["max_position_embeddings"] = MaxPositionEmbeddings;
        json["rms_norm_eps"] = RmsNormEps;
        json["rope_theta"] = RopeTheta;
        json["rope_scaling"] = RopeScaling is null ? null : new JsonObject
        {
            ["rope_type"] = RopeScaling.Type,
            ["factor"] = RopeScaling.Factor,
            ["low_freq_factor"] = RopeScaling.LowFreqFactor,
            ["high_freq_factor"] = RopeScaling.HighFreqFactor,
            ["original_max_position_embeddings"] = RopeScaling.OriginalMaxPositionEmbeddings,
        };
        json["tie_word_embeddings"] = TieWordEmbeddings;
        json["attention_bias"] = AttentionBias;
        json["hidden_act"] = "silu";
        if (SlidingWindow is int w) json["sliding_window"] = w;
        if (BosTokenId is int bos) json["bos_token_id"] = bos;
        if (EosTokenIds.Count == 1) json["eos_token_id"] = EosTokenIds[0];
        else if (EosTokenIds.Count > 1) json["eos_token_id"] = new JsonArray(EosTokenIds.Select(e => (JsonNode)e).ToArray());
        if (IsHybrid)
        {
            json["layer_types"] = new JsonArray(LayerTypes.Select(t => (JsonNode)LayerKinds.HfName(t)).ToArray());
            json["linear_attention"] = ArtifactJson.ToNode(LinearAttention.ToFile(layerKinds: LayerTypes), ArtifactJson.Types.LinearAttentionFile);
        }
        else
        {
            // The family's own form: layer_types only where the source had them, in Hugging Face's words.
            if (json["layer_types"] is not null)
                json["layer_types"] = new JsonArray(LayerTypes.Select(t => (JsonNode)LayerKinds.HfName(t)).ToArray());
            json.Remove("linear_attention");
        }
        json["torch_dtype"] = "float32";
        return json;
    }

    /// <summary>True when two configs describe the same model (every interpreted field; the source JSON aside).</summary>
    static bool SameModel(ModelConfig a, ModelConfig b) =>
        a.ModelType == b.ModelType && a.HiddenSize == b.HiddenSize && a.IntermediateSize == b.IntermediateSize &&
        a.NumHiddenLayers == b.NumHiddenLayers && a.NumAttentionHeads == b.NumAttentionHeads &&
        a.NumKeyValueHeads == b.NumKeyValueHeads && a.HeadDim == b.HeadDim && a.VocabSize == b.VocabSize &&
        a.MaxPositionEmbeddings == b.MaxPositionEmbeddings && a.RmsNormEps == b.RmsNormEps && a.RopeTheta == b.RopeTheta &&
        Equals(a.RopeScaling, b.RopeScaling) && a.TieWordEmbeddings == b.TieWordEmbeddings && a.AttentionBias == b.AttentionBias &&
        a.QkNorm == b.QkNorm && a.SlidingWindow == b.SlidingWindow && a.BosTokenId == b.BosTokenId &&
        a.EosTokenIds.SequenceEqual(b.EosTokenIds) && a.LayerTypes.SequenceEqual(b.LayerTypes) && a.LinearAttention == b.LinearAttention;

    /// <summary>Writes config.json; <paramref name="torchDtype"/> (e.g. "bfloat16") overrides torch_dtype when the weights
    /// are stored in another dtype than the config would say.</summary>
    public void Save(string directory, string? torchDtype = null)
    {
        Directory.CreateDirectory(directory);
        var json = ToJson();
        if (torchDtype is not null) json["torch_dtype"] = torchDtype;
        Checkpoints.AtomicFile.WriteAllBytes(Path.Combine(directory, "config.json"), System.Text.Encoding.UTF8.GetBytes(json.ToJsonString(JsonOptions.Indented)));
    }

    // ---- helpers -------------------------------------------------------------------------------------

    static InputException Missing(string key) => new($"missing required key \"{key}\".");

    static string? Str(JsonObject o, string key) => o[key] is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;

    static bool? Bool(JsonObject o, string key) => o[key] is JsonValue v && v.TryGetValue<bool>(out var b) ? b : null;

    static int? Int(JsonObject o, string key) => Dbl(o, key) is double d ? checked((int)d) : null;

    static double? Dbl(JsonObject o, string key)
    {
        if (o[key] is not JsonValue v) return null;
        if (v.TryGetValue<double>(out var d)) return d;
        if (v.TryGetValue<long>(out var l)) return l;
        if (v.TryGetValue<int>(out var i)) return i;
        throw new InputException($"key \"{key}\" should be a number.");
    }
}

public static class JsonOptions
{
    public static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };
}
