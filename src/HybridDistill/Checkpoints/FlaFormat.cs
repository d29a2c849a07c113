// flash-linear-attention's Gated DeltaNet model directory (fla-org/flash-linear-attention @ bc3b101, 2026-08-22;
// the facts are in docs/fla-format.md of the shared docs, read from fla/models/gated_deltanet/*, fla/layers/
// {gated_deltanet,attn}.py and fla/modules/*). A hybrid of GDN and softmax layers is that model with an `attn`
// block naming the softmax layers. The mapping, ours -> fla:
//   config   model_type gated_deltanet; num_heads = num_attention_heads, head_dim = head_dim, expand_v 1 (our GDN
//            has dv = dk), num_v_heads = num_heads, use_gate true, allow_neg_eigval false, norm_eps = rms_norm_eps
//            (fla uses it for every RMSNorm: it must equal linear_attention.gdn.norm_eps, the GDN o_norm's), attn = {layers: softmax layers, num_heads,
//            num_kv_heads, qkv_bias = attention_bias, window_size null, rope_theta}.
//   tensors  model.embed_tokens -> model.embeddings; model.layers.N.input_layernorm -> attn_norm,
//            .self_attn -> .attn, .post_attention_layernorm -> .mlp_norm; mlp, model.norm, lm_head unchanged.
//            Every parameter below those prefixes already has fla's name (q_proj, a_proj, A_log, o_norm, q_conv1d ...).
// Only what fla computes exactly is exported; anything else is an InputException naming the feature.
using System.Text.Json.Serialization;
using HybridDistill.Artifacts;
using HybridDistill.Config;
using HybridDistill.Models;
using HybridDistill.Tokenization;
using TorchSharp;
using static TorchSharp.torch;

namespace HybridDistill.Checkpoints;

public static class FlaFormat
{
    /// <summary>The fla source the format was read from.</summary>
    public const string FlaVersion = "flash-linear-attention @ bc3b101 (2026-08-22)";
    public const string ModelType = "gated_deltanet";
    public const string Architecture = "GatedDeltaNetForCausalLM";
    public const string TokenizerConfigFile = "tokenizer_config.json";

    // ---- tensor names ------------------------------------------------------------------------------

    /// <summary>Our prefix -> fla's, for the parts of a name that differ (matched at the start, or after model.layers.N.).</summary>
    static readonly (string Ours, string Fla)[] TopLevelRenames = [("model.embed_tokens.", "model.embeddings."), ("model.norm.", "model.norm."), ("lm_head.", "lm_head.")];
    static readonly (string Ours, string Fla)[] LayerRenames =
        [("input_layernorm.", "attn_norm."), ("self_attn.", "attn."), ("post_attention_layernorm.", "mlp_norm."), ("mlp.", "mlp.")];
    const string LayersPrefix = "model.layers.";

    /// <summary>fla's name of one of our parameters: <c>model.layers.3.self_attn.q_proj.weight</c> -> <c>model.layers.3.attn.q_proj.weight</c>.</summary>
    public static string ToFlaName(string name) =>
        Rename(name, fromOurs: true) ?? throw new ArgumentException($"no fla name for parameter '{name}'", nameof(name));

    /// <summary>Our name of an fla tensor, or null when the name is none of fla's model parameters.</summary>
    public static string? FromFlaName(string name) => Rename(name, fromOurs: false);

    static string? Rename(string name, bool fromOurs)
    {
        foreach (var (ours, fla) in TopLevelRenames)
        {
            var (from, to) = fromOurs ? (ours, fla) : (fla, ours);
            if (name.StartsWith(from, StringComparison.Ordinal)) return to + name[from.Length..];
        }
        if (!name.StartsWith(LayersPrefix, StringComparison.Ordinal)) return null;
        int dot = name.IndexOf('.', LayersPrefix.Length);
        if (dot < 0 || !int.TryParse(name.AsSpan(LayersPrefix.Length, dot - LayersPrefix.Length), out _)) return null;
        string layer = name[..(dot + 1)], rest = name[(dot + 1)..];                 // "model.layers.3.", "self_attn.q_proj.weight"
        foreach (var (ours, fla) in LayerRenames)
        {
            var (from, to) = fromOurs ? (ours, fla) : (fla, ours);
            if (rest.StartsWith(from, StringComparison.Ordinal)) return layer + to + rest[from.Length..];
        }
        return null;
    }

    // ---- config: ours -> fla -----------------------------------------------------------------------

    /// <summary>What of <paramref name="config"/> fla's gated_deltanet model cannot represent exactly (empty: all of it can).</summary>
    public static IReadOnlyList<string> Unrepresentable(ModelConfig config)
    {
        var problems = new List<string>();
        string Layers(string kind) => string.Join(", ", config.LayerTypes.Select((k, i) => (k, i)).Where(p => p.k == kind).Select(p => p.i));
        bool Has(string kind) => config.LayerTypes.Contains(kind);
        bool hasGdn = Has(LayerKinds.GatedDeltaNet), hasSoftmax = Has(LayerKinds.Softmax);

        if (Has(LayerKinds.GatedLinearAttention))
            problems.Add($"gla layers (Gated Linear Attention, layers {Layers(LayerKinds.GatedLinearAttention)}): fla's gated_deltanet model has only Gated DeltaNet and attention layers");
        if (Has(LayerKinds.SlidingWindow))
            problems.Add($"swa layers (sliding-window attention, layers {Layers(LayerKinds.SlidingWindow)}): not mapped to fla's attn.window_size");
        if (hasGdn && config.RmsNormEps != config.LinearAttention.Gdn.NormEps)
            problems.Add($"rms_norm_eps {config.RmsNormEps:R} differs from the GDN output norm's eps {config.LinearAttention.Gdn.NormEps:R}: fla uses one norm_eps for every RMSNorm");
        if (hasGdn && config.AttentionBias)
            problems.Add("q/k/v biases in the GDN layers (attention_bias): fla's Gated DeltaNet projections have no bias");
        if (hasSoftmax && config.QkNorm)
            problems.Add($"q/k RMSNorm in the softmax layers ({config.ModelType}'s qk_norm): fla's attention has none");
        if (hasSoftmax && config.HeadDim * config.NumAttentionHeads != config.HiddenSize)
            problems.Add($"softmax head_dim {config.HeadDim} with {config.NumAttentionHeads} heads and hidden_size {config.HiddenSize}: " +
                         $"fla's attention head size is hidden_size / num_heads = {config.HiddenSize / config.NumAttentionHeads}");
        if (hasSoftmax && config.RopeScaling is not null)
            problems.Add($"rope_scaling ({config.RopeScaling.Type}): fla's attention RoPE has only rope_theta");
        return problems;
    }

    /// <summary>fla's config.json for <paramref name="config"/>: every key that shapes the model written explicitly
    /// (fla's defaults differ from ours), only keys fla's GatedDeltaNetConfig defines.</summary>
    public static FlaConfigFile ToFlaConfig(ModelConfig config)
    {
        var problems = Unrepresentable(config);
        if (problems.Count > 0)
            throw new InputException($"fla's {ModelType} format cannot represent this model exactly: {string.Join("; ", problems)}. " +
                                     "Export a hybrid of gdn and softmax layers whose features fla has (README: Export to flash-linear-attention).");
        var softmaxLayers = config.LayerTypes.Select((k, i) => (k, i)).Where(p => p.k == LayerKinds.Softmax).Select(p => (double)p.i).ToArray();
        return new FlaConfigFile
        {
            ModelType = ModelType,
            Architectures = [Architecture],
            HiddenSize = config.HiddenSize,
            NumHiddenLayers = config.NumHiddenLayers,
            NumHeads = config.NumAttentionHeads,
            NumVHeads = config.NumAttentionHeads,
            HeadDim = config.HeadDim,
            ExpandV = 1.0,
            UseShortConv = config.LinearAttention.Gdn.UseShortConv,
            ConvSize = config.LinearAttention.Gdn.ConvSize,
            UseGate = true,
            AllowNegEigval = false,
            NormEps = config.RmsNormEps,
            IntermediateSize = config.IntermediateSize,
            HiddenAct = "swish",
            VocabSize = config.VocabSize,
            MaxPositionEmbeddings = config.MaxPositionEmbeddings,
            TieWordEmbeddings = config.TieWordEmbeddings,
            Attn = softmaxLayers.Length == 0 ? null :
                [new FlaAttnFile(softmaxLayers, config.NumAttentionHeads, config.NumKeyValueHeads, config.AttentionBias, WindowSize: null, config.RopeTheta)],
            BosTokenId = config.BosTokenId,
            EosTokenId = config.EosTokenIds.Count == 0 ? null : config.EosTokenIds.Select(e => (double)e).ToArray(),
            PadTokenId = null,
            TorchDtype = "float32",
        };
    }

    // ---- config: fla -> ours -----------------------------------------------------------------------

    /// <summary>Our config for fla's config.json <paramref name="json"/> (fla's defaults where a key is absent). What we
    /// cannot represent exactly is an InputException naming the key.</summary>
    public static ModelConfig FromFlaConfig(FlaConfigFile json)
    {
        string modelType = json.ModelType ?? "";
        if (modelType != ModelType)
            throw new InputException($"model_type is \"{modelType}\", not fla's \"{ModelType}\": import --format fla reads {Architecture} directories.");
        int hidden = Int(json.HiddenSize) ?? 2048;
        int layers = Int(json.NumHiddenLayers) ?? 21;
        int heads = Int(json.NumHeads) ?? 6;
        int headDim = Int(json.HeadDim) ?? 256;
        double expandV = json.ExpandV ?? 2.0;
        double normEps = json.NormEps ?? 1e-6;
        if (expandV != 1.0)
            throw new InputException($"expand_v {expandV:R}: GDN value heads wider than key heads (dv = head_dim * expand_v) are not represented here (our GDN has dv = head_dim); expand_v must be 1.");
        if (Int(json.NumVHeads) is int vHeads && vHeads != heads)
            throw new InputException($"num_v_heads {vHeads} differs from num_heads {heads}: grouped value heads (GVA) are not represented here.");
        if (json.UseGate == false)
            throw new InputException("use_gate false: our GDN layers always gate their output (g_proj); only use_gate true is represented.");
        if (json.AllowNegEigval == true)
            throw new InputException("allow_neg_eigval true (beta in (0, 2)): not represented here; only false is.");
        if (json.NormFirst == true)
            throw new InputException("norm_first true: an older fla layout that is not represented here.");
        if (json.AttnresBlockSize is not null)
            throw new InputException("attnres_block_size is set: fla's attention-residual blocks are not represented here.");
        string act = json.HiddenAct ?? "swish";
        if (act is not ("swish" or "silu"))
            throw new InputException($"hidden_act \"{act}\": only swish (the SwiGLU MLP) is represented here.");

        var kinds = Enumerable.Repeat(LayerKinds.GatedDeltaNet, layers).ToArray();
        int kvHeads = heads;
        bool qkvBias = false;
        double ropeTheta = 10000.0;
        if (Attn(json) is { } attn)
        {
            int attnHeads = Int(attn.NumHeads) ?? throw new InputException("attn has no num_heads (fla requires it).");
            kvHeads = Int(attn.NumKvHeads) ?? attnHeads;
            qkvBias = attn.QkvBias ?? false;
            ropeTheta = attn.RopeTheta ?? 10000.0;
            if (attn.WindowSize is not null)
                throw new InputException("attn.window_size is set: sliding-window attention layers are not mapped from fla's format.");
            if (attnHeads != heads)
                throw new InputException($"attn.num_heads {attnHeads} differs from num_heads {heads}: here GDN and softmax layers share num_attention_heads.");
            if (hidden / attnHeads != headDim)
                throw new InputException($"attention head size hidden_size / attn.num_heads = {hidden / attnHeads} differs from head_dim {headDim}: here GDN and softmax layers share head_dim.");
            if (attnHeads % kvHeads != 0)
                throw new InputException($"attn.num_heads {attnHeads} is not a multiple of attn.num_kv_heads {kvHeads}.");
            if (attn.Layers is not { } indices)
                throw new InputException("attn has no layers list (fla requires it).");
            foreach (double d in indices)
            {
                int i = d == Math.Floor(d) ? (int)d : throw new InputException($"attn.layers holds {d:R}, not a layer index.");
                if (i < 0 || i >= layers)
                    throw new InputException($"attn.layers names layer {i} but num_hidden_layers is {layers}.");
                kinds[i] = LayerKinds.Softmax;
            }
            if (qkvBias && kinds.Contains(LayerKinds.GatedDeltaNet))
                throw new InputException("attn.qkv_bias true: here q/k/v biases would apply to the GDN layers too, which have none in fla.");
        }

        int intermediate = Int(json.IntermediateSize) ?? DefaultIntermediateSize(hidden, json.HiddenRatio ?? 4);
        return new ModelConfig
        {
            ModelType = "llama",
            HiddenSize = hidden,
            IntermediateSize = intermediate,
            NumHiddenLayers = layers,
            NumAttentionHeads = heads,
            NumKeyValueHeads = kvHeads,
            HeadDim = headDim,
            VocabSize = Int(json.VocabSize) ?? 32000,
            MaxPositionEmbeddings = Int(json.MaxPositionEmbeddings) ?? 2048,
            RmsNormEps = normEps,
            RopeTheta = ropeTheta,
            TieWordEmbeddings = json.TieWordEmbeddings ?? false,
            AttentionBias = qkvBias,
            BosTokenId = Int(json.BosTokenId),
            EosTokenIds = json.EosTokenId?.Select(e => (int)e).ToArray() ?? [],
            LayerTypes = kinds,
            LinearAttention = new LinearAttentionOptions
            {
                // fla's one norm_eps is also the GDN output norm's (linear_attention.gdn.norm_eps here).
                Gdn = new GdnOptions(UseShortConv: json.UseShortConv ?? true, ConvSize: Int(json.ConvSize) ?? 4, NormEps: normEps),
            },
        };
    }

    /// <summary>fla's GatedMLP size when intermediate_size is null: 256 * ceil(int(D * hidden_ratio * 2/3) / 256).</summary>
    static int DefaultIntermediateSize(int hidden, double hiddenRatio)
    {
        int size = (int)(hidden * hiddenRatio * 2 / 3);
        return 256 * ((size + 255) / 256);
    }

    /// <summary>The attn block: a dict, or (fla since 2026-07) a list of dicts, of which one is represented here.</summary>
    static FlaAttnFile? Attn(FlaConfigFile json) => json.Attn switch
    {
        null => null,
        [var one] => one,
        var groups => throw new InputException($"attn is a list of {groups.Count} attention groups: only one group (one set of attention settings) is represented here."),
    };

    // ---- directories -------------------------------------------------------------------------------

    /// <summary>
    /// Writes <paramref name="model"/> as fla's model directory: the tokenizer files of <paramref name="tokenizerSource"/>
    /// and a tokenizer_config.json (written from the tokenizer when the source has none), the weights under fla's names
    /// (model.safetensors, or shards of at most <paramref name="maxShardBytes"/> with model.safetensors.index.json), and
    /// config.json last. A model fla cannot represent exactly is refused before anything is written.
    /// </summary>
    public static void Export(HybridCausalLM model, string dir, string? tokenizerSource, long maxShardBytes = ModelWeights.DefaultMaxShardBytes)
    {
        var config = ToFlaConfig(model.Config);
        Directory.CreateDirectory(dir);
        if (tokenizerSource is not null)
        {
            HfCheckpoint.CopyTokenizerFiles(tokenizerSource, dir);
            var tokenizerConfig = Path.Combine(dir, TokenizerConfigFile);
            if (!File.Exists(tokenizerConfig))
                AtomicFile.WriteAllBytes(tokenizerConfig, ArtifactJson.ExternalBytes(TokenizerConfig(tokenizerSource, model.Config), ArtifactJson.Types.FlaTokenizerConfigFile));
        }
        var tensors = model.state_dict().Select(p => new KeyValuePair<string, Tensor>(ToFlaName(p.Key), p.Value.detach().cpu()));
        ModelWeights.SaveDirectory(dir, tensors, maxShardBytes);
        AtomicFile.WriteAllBytes(Path.Combine(dir, "config.json"), ArtifactJson.ExternalBytes(config, ArtifactJson.Types.FlaConfigFile));
    }

    /// <summary>
    /// tokenizer_config.json for transformers' AutoTokenizer: the class that reads the tokenizer file this project
    /// reads in <paramref name="tokenizerDir"/> (tokenizer.model: LlamaTokenizer; byte-level tokenizer.json:
    /// PreTrainedTokenizerFast; vocab.json + merges.txt: GPT2Tokenizer), the BOS/EOS tokens and whether they are added, as this project's tokenizer uses them.
    /// </summary>
    public static FlaTokenizerConfigFile TokenizerConfig(string tokenizerDir, ModelConfig config)
    {
        var tokenizer = TokenizerLoader.Load(tokenizerDir);
        string? Token(int? id) => id is int i ? tokenizer.IdToToken(i) : null;
        return new FlaTokenizerConfigFile(
            TokenizerClass: tokenizer is SentencePieceTokenizer ? "LlamaTokenizer"
                : File.Exists(Path.Combine(tokenizerDir, TokenizerLoader.TokenizerJson)) ? "PreTrainedTokenizerFast" : "GPT2Tokenizer",
            BosToken: Token(tokenizer.BosId),
            EosToken: Token(tokenizer.EosId),
            AddBosToken: tokenizer.AddBosByDefault,
            AddEosToken: tokenizer.AddEosByDefault,
            ModelMaxLength: config.MaxPositionEmbeddings,
            UnkToken: tokenizer is SentencePieceTokenizer && tokenizer.TokenToId("<unk>") is int unk ? tokenizer.IdToToken(unk) : null);
    }

    /// <summary>Reads fla's model directory: config.json mapped to ours, the tensors renamed and loaded (all checked first).</summary>
    public static HybridCausalLM Load(string dir)
    {
        var full = Path.GetFullPath(dir);
        if (!Directory.Exists(full)) throw new InputException($"{full}: model directory not found.");
        var configPath = Path.Combine(full, "config.json");
        if (!File.Exists(configPath))
            throw new InputException($"{full}: no config.json here. Pass a directory saved by fla's GatedDeltaNetForCausalLM.save_pretrained (or hybrid export --format fla).");
        var json = ArtifactJson.Read(configPath, ArtifactJson.Types.FlaConfigFile, "fla's config.json (GatedDeltaNetConfig)",
            "pass a directory saved by fla's GatedDeltaNetForCausalLM.save_pretrained (or hybrid export --format fla)");
        ModelConfig config;
        try { config = FromFlaConfig(json); }
        catch (InputException e) { throw new InputException($"{configPath}: {e.Message}", e); }

        var model = new HybridCausalLM(config);
        try
        {
            var parameters = model.state_dict().ToDictionary(p => ToFlaName(p.Key), p => p.Value);
            // fla's tied models may still store lm_head.weight; RoPE inv_freq is non-persistent but older saves carry it.
            ModelWeights.LoadInto(full, parameters, ignoreExtra: name =>
                (config.TieWordEmbeddings && name == "lm_head.weight") || name.EndsWith("rotary.inv_freq", StringComparison.Ordinal));
        }
        catch
        {
            model.Dispose();
            throw;
        }
        model.eval();
        return model;
    }

    /// <summary>How far two models' outputs are apart: logits on a probe sequence and a greedy continuation of its first token.</summary>
    public sealed record OutputComparison(int ProbeTokens, double MaxAbsLogitDifference, int GreedyTokens, bool GreedyIdentical);

    /// <summary>
    /// Compares <paramref name="a"/> and <paramref name="b"/> (an exported model and its reading back): the max abs
    /// difference of their logits over <paramref name="probeTokens"/> seeded random tokens, and whether greedy
    /// decoding of <paramref name="greedyTokens"/> tokens from the probe's first token gives the same ids.
    /// </summary>
    public static OutputComparison Compare(HybridCausalLM a, HybridCausalLM b, int probeTokens = 64, int greedyTokens = 32, long seed = 0)
    {
        int context = Math.Min(a.Config.MaxPositionEmbeddings, b.Config.MaxPositionEmbeddings);
        probeTokens = Math.Min(probeTokens, context);
        greedyTokens = Math.Min(greedyTokens, context - 1);
        double maxDiff;
        using (var scope = NewDisposeScope())
        using (inference_mode())
        {
            var ids = randint(0, a.Config.VocabSize, [1, probeTokens], dtype: int64, generator: new Generator((ulong)seed)); // [1, T]
            maxDiff = (a.forward(ids) - b.forward(ids)).abs().max().item<float>();                                            // [1, T, V]
        }
        var prompt = new[] { a.Config.BosTokenId ?? 0 };
        var options = new Generation.SamplingOptions { MaxNewTokens = greedyTokens };
        var greedyA = Generation.TokenGenerator.Generate(a, prompt, options).ToList();
        var greedyB = Generation.TokenGenerator.Generate(b, prompt, options).ToList();
        return new OutputComparison(probeTokens, maxDiff, greedyA.Count, greedyA.SequenceEqual(greedyB));
    }

    // ---- helpers -----------------------------------------------------------------------------------

    static int? Int(double? value) => value is double d ? checked((int)d) : null;
}

/// <summary>
/// fla's config.json (GatedDeltaNetConfig as save_pretrained writes it), the keys this project writes in this order
/// and reads; other keys fla writes are ignored on reading. Numbers are doubles: Python writes 2048 or 2048.0, both
/// read and both written as 2048. Absent keys read as null (fla's default applies), except bos_token_id and
/// eos_token_id, whose defaults (1 and [2]) an explicit null overrides.
/// </summary>
public sealed record FlaConfigFile
{
    public string? ModelType { get; init; }
    public IReadOnlyList<string>? Architectures { get; init; }
    public double? HiddenSize { get; init; }
    public double? NumHiddenLayers { get; init; }
    public double? NumHeads { get; init; }
    public double? NumVHeads { get; init; }
    public double? HeadDim { get; init; }
    public double? ExpandV { get; init; }
    public bool? UseShortConv { get; init; }
    public double? ConvSize { get; init; }
    public bool? UseGate { get; init; }
    public bool? AllowNegEigval { get; init; }
    public double? NormEps { get; init; }
    public double? IntermediateSize { get; init; }
    public string? HiddenAct { get; init; }
    public double? VocabSize { get; init; }
    public double? MaxPositionEmbeddings { get; init; }
    public bool? TieWordEmbeddings { get; init; }
    /// <summary>One attention group: fla writes a dict (older) or a list of dicts (since 2026-07).</summary>
    [JsonConverter(typeof(OneOrManyConverter<FlaAttnFile>))]
    public IReadOnlyList<FlaAttnFile>? Attn { get; init; }
    public double? BosTokenId { get; init; } = 1;
    /// <summary>An id or a list of ids.</summary>
    [JsonConverter(typeof(OneOrManyConverter<double>))]
    public IReadOnlyList<double>? EosTokenId { get; init; } = [2];
    public double? PadTokenId { get; init; }
    public string? TorchDtype { get; init; }

    // Read, never written: keys of fla configs this project refuses or derives from.
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public double? HiddenRatio { get; init; }
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public bool? NormFirst { get; init; }
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public double? AttnresBlockSize { get; init; }
}

/// <summary>fla's attn block: which layers are softmax attention, and that attention's settings.</summary>
public sealed record FlaAttnFile(IReadOnlyList<double>? Layers, double? NumHeads, double? NumKvHeads, bool? QkvBias, double? WindowSize, double? RopeTheta);

/// <summary>tokenizer_config.json for transformers' AutoTokenizer (unk_token only for a SentencePiece tokenizer).</summary>
public sealed record FlaTokenizerConfigFile(string TokenizerClass, string? BosToken, string? EosToken, bool AddBosToken, bool AddEosToken,
    int ModelMaxLength, [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? UnkToken);
