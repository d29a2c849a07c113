// The knobs of one training stage. Values flow one way: the stage's defaults below (method.md section 5) ->
// the recipe file's section for the stage -> --set key=value on the command line. Unknown keys are errors;
// the resolved config is written to run_config.json and into every checkpoint. A recipe file (Recipe, below) holds
// one section of these keys per stage; a pretraining recipe a shared train section and one per phase (ResolvePhase).
// This file reads and writes that settings tree by hand: the keys are the table below, and --set edits the tree.
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using HybridDistill.Artifacts;
using HybridDistill.Attention;
using HybridDistill.Config;

namespace HybridDistill.Training;

/// <summary>The three RADLADS stages (method.md section 5).</summary>
public enum Stage
{
    /// <summary>Attention-output alignment of the linear layers, teacher-forced per layer.</summary>
    Stage1,
    /// <summary>KL(teacher || student) over the vocabulary, the hybrid with its softmax layers restored.</summary>
    Stage2,
    /// <summary>Plain next-token cross-entropy fine-tune, no teacher.</summary>
    Stage3,
    /// <summary>Training a model from scratch (hybrid pretrain): next-token loss weighted by each target's loss class.</summary>
    Pretrain,
}

public static class Stages
{
    public static string Name(Stage s) => s switch
    {
        Stage.Stage1 => "stage1", Stage.Stage2 => "stage2", Stage.Stage3 => "stage3", _ => "pretrain",
    };

    public static Stage Parse(string name) => name switch
    {
        "stage1" or "1" => Stage.Stage1,
        "stage2" or "2" => Stage.Stage2,
        "stage3" or "3" => Stage.Stage3,
        _ => throw new InputException($"unknown stage \"{name}\" (stage1, stage2, stage3)."),
    };
}

public sealed record TrainConfig
{
    // ---- data and batching -----------------------------------------------------------------------
    /// <summary>Tokens per training window (inputs; the window holds one more token as the last target).</summary>
    public int SeqLen { get; init; } = 512;
    /// <summary>Windows per micro-batch.</summary>
    public int BatchSize { get; init; } = 8;
    /// <summary>Micro-batches per optimizer step (gradient accumulation).</summary>
    public int GradAccum { get; init; } = 1;
    /// <summary>The budget: input tokens the stage trains on. Steps = ceil(train_tokens / (seq_len x batch_size x grad_accum)).</summary>
    public long TrainTokens { get; init; } = 100_000_000;

    // ---- optimizer (AdamW) -------------------------------------------------------------------------
    /// <summary>Peak learning rate (stages 1 and 3; stage 2 has two groups).</summary>
    public double Lr { get; init; } = 1e-3;
    /// <summary>Stage 2: attention parameters (linear and softmax) and the pre-attention norm.</summary>
    public double LrAttention { get; init; } = 1e-4;
    /// <summary>Stage 2: every other parameter (embeddings, MLPs, other norms, LM head).</summary>
    public double LrOther { get; init; } = 7e-6;
    /// <summary>constant, cosine or linear (decay to min_lr_ratio x peak at the last step), after warmup.</summary>
    public LrScheduleKind LrSchedule { get; init; } = LrScheduleKind.Cosine;
    /// <summary>Linear warmup from 0, in tokens (0: none).</summary>
    public long WarmupTokens { get; init; }
    /// <summary>Floor of the cosine/linear decay as a fraction of the peak.</summary>
    public double MinLrRatio { get; init; }
    public double Beta1 { get; init; } = 0.9;
    public double Beta2 { get; init; } = 0.95;
    public double Eps { get; init; } = 1e-8;
    public double WeightDecay { get; init; } = 0.01;
    /// <summary>Also decay 1-D parameters (norm weights, biases, A_log, dt_bias); by default only matrices decay.</summary>
    public bool WeightDecay1d { get; init; }
    /// <summary>Clip the global gradient norm to this (0: no clipping).</summary>
    public double GradClip { get; init; } = 1.0;

    // ---- logging, evaluation, checkpoints -------------------------------------------------------
    /// <summary>Write a metrics line every N optimizer steps.</summary>
    public int LogEvery { get; init; } = 10;
    /// <summary>Evaluate on the validation split every N steps (and at step 0 and at the end).</summary>
    public int EvalEvery { get; init; } = 100;
    /// <summary>Validation input tokens per evaluation (the first windows of the validation split).</summary>
    public long EvalTokens { get; init; } = 65_536;
    /// <summary>Checkpoint every N steps (and at the end, and on Ctrl-C).</summary>
    public int CheckpointEvery { get; init; } = 500;
    /// <summary>Checkpoints kept in checkpoints/ (older ones are deleted).</summary>
    public int KeepCheckpoints { get; init; } = 2;
    /// <summary>Seeds the data order and the fresh linear-attention weights.</summary>
    public long Seed { get; init; }
    /// <summary>Torch intra-op threads (0: libtorch's default). Fix it to make resumed runs match exactly.</summary>
    public int Threads { get; init; }

    // ---- stage-specific ----------------------------------------------------------------------------
    /// <summary>Stages 1 and 2: the kind of the linear layers (gdn, gla).</summary>
    public string LinearKind { get; init; } = LayerKinds.GatedDeltaNet;
    /// <summary>Stages 1 and 2: how fresh linear layers get k/v from the teacher's KV heads: "heads" (whole head blocks) or "rows" (the reference code).</summary>
    public KvExpansion KvExpand { get; init; } = KvExpansion.Heads;
    /// <summary>Stages 1 and 2: fresh linear layers get q/k/v projections without bias (the reference drops the teacher's
    /// q/k/v biases, e.g. Qwen2's, when it builds linear layers); false keeps them.</summary>
    public bool DropQkvBias { get; init; }
    /// <summary>Stage 2: layers that keep the teacher's softmax attention (the command line's --softmax-layers wins).</summary>
    public IReadOnlyList<int> SoftmaxLayers { get; init; } = [];
    /// <summary>Stages 2 and 3: positions per chunk when applying the LM head (full logits are never held at once).</summary>
    public int LogitsChunk { get; init; } = 1024;
    /// <summary>Stage 2: distillation temperature (the KL is scaled by T^2 so gradients keep their size).</summary>
    public double Temperature { get; init; } = 1.0;
    /// <summary>Stage 2: weight of an added next-token cross-entropy term (0: pure KL, the paper's choice).</summary>
    public double CeWeight { get; init; }
    /// <summary>Pretraining on a synthetic corpus: loss weight of ordinary text targets.</summary>
    public double TextWeight { get; init; } = 1.0;
    /// <summary>Pretraining on a synthetic corpus: loss weight of recall answers (copied spans, pass-key digits, queried
    /// values). Without the extra weight a small model learned no recall in the prototypes (teacher-notes).</summary>
    public double AnswerWeight { get; init; } = 6.0;

    public long TokensPerStep => (long)SeqLen * BatchSize * GradAccum;
    public long TotalSteps => Math.Max(1, (TrainTokens + TokensPerStep - 1) / TokensPerStep);
    public long WarmupSteps => WarmupTokens <= 0 ? 0 : (WarmupTokens + TokensPerStep - 1) / TokensPerStep;

    // ---- defaults per stage ------------------------------------------------------------------------

    /// <summary>method.md section 5, at the paper's budgets (a recipe scales them down).</summary>
    public static TrainConfig Defaults(Stage stage) => stage switch
    {
        Stage.Stage1 => new TrainConfig
        {
            SeqLen = 512, TrainTokens = 100_000_000, Lr = 1e-3, LrSchedule = LrScheduleKind.Cosine,
        },
        Stage.Stage2 => new TrainConfig
        {
            SeqLen = 4096, BatchSize = 2, TrainTokens = 600_000_000, LrSchedule = LrScheduleKind.Constant,
        },
        Stage.Stage3 => new TrainConfig
        {
            SeqLen = 4096, BatchSize = 2, TrainTokens = 100_000_000, Lr = 1e-5, LrSchedule = LrScheduleKind.Cosine,
        },
        _ => new TrainConfig
        {
            SeqLen = 256, BatchSize = 16, TrainTokens = 10_000_000, Lr = 3e-3, LrSchedule = LrScheduleKind.Constant, WeightDecay = 0.1,
        },
    };

    // ---- keys -------------------------------------------------------------------------------------

    sealed record Key(string Name, Stage[] Stages, Func<TrainConfig, JsonNode?> Get, Func<TrainConfig, JsonNode, string, TrainConfig> Set);

    static readonly Stage[] All = [Stage.Stage1, Stage.Stage2, Stage.Stage3, Stage.Pretrain];

    static readonly Key[] Keys =
    [
        new("seq_len", All, c => c.SeqLen, (c, v, k) => c with { SeqLen = PositiveInt(v, k) }),
        new("batch_size", All, c => c.BatchSize, (c, v, k) => c with { BatchSize = PositiveInt(v, k) }),
        new("grad_accum", All, c => c.GradAccum, (c, v, k) => c with { GradAccum = PositiveInt(v, k) }),
        new("train_tokens", All, c => c.TrainTokens, (c, v, k) => c with { TrainTokens = PositiveLong(v, k) }),
        new("lr", [Stage.Stage1, Stage.Stage3, Stage.Pretrain], c => c.Lr, (c, v, k) => c with { Lr = NonNegative(v, k) }),
        new("lr_attention", [Stage.Stage2], c => c.LrAttention, (c, v, k) => c with { LrAttention = NonNegative(v, k) }),
        new("lr_other", [Stage.Stage2], c => c.LrOther, (c, v, k) => c with { LrOther = NonNegative(v, k) }),
        new("lr_schedule", All, c => Training.LrSchedule.Words.Of(c.LrSchedule), (c, v, k) => c with { LrSchedule = OneOf(v, k, Training.LrSchedule.Words) }),
        new("warmup_tokens", All, c => c.WarmupTokens, (c, v, k) => c with { WarmupTokens = NonNegativeLong(v, k) }),
        new("min_lr_ratio", All, c => c.MinLrRatio, (c, v, k) => c with { MinLrRatio = Fraction(v, k) }),
        new("beta1", All, c => c.Beta1, (c, v, k) => c with { Beta1 = Fraction(v, k) }),
        new("beta2", All, c => c.Beta2, (c, v, k) => c with { Beta2 = Fraction(v, k) }),
        new("eps", All, c => c.Eps, (c, v, k) => c with { Eps = NonNegative(v, k) }),
        new("weight_decay", All, c => c.WeightDecay, (c, v, k) => c with { WeightDecay = NonNegative(v, k) }),
        new("weight_decay_1d", All, c => c.WeightDecay1d, (c, v, k) => c with { WeightDecay1d = Bool(v, k) }),
        new("grad_clip", All, c => c.GradClip, (c, v, k) => c with { GradClip = NonNegative(v, k) }),
        new("log_every", All, c => c.LogEvery, (c, v, k) => c with { LogEvery = PositiveInt(v, k) }),
        new("eval_every", All, c => c.EvalEvery, (c, v, k) => c with { EvalEvery = PositiveInt(v, k) }),
        new("eval_tokens", All, c => c.EvalTokens, (c, v, k) => c with { EvalTokens = PositiveLong(v, k) }),
        new("checkpoint_every", All, c => c.CheckpointEvery, (c, v, k) => c with { CheckpointEvery = PositiveInt(v, k) }),
        new("keep_checkpoints", All, c => c.KeepCheckpoints, (c, v, k) => c with { KeepCheckpoints = PositiveInt(v, k) }),
        new("seed", All, c => c.Seed, (c, v, k) => c with { Seed = NonNegativeLong(v, k) }),
        new("threads", All, c => c.Threads, (c, v, k) => c with { Threads = NonNegativeInt(v, k) }),
        new("linear_kind", [Stage.Stage1, Stage.Stage2], c => c.LinearKind, (c, v, k) => c with { LinearKind = LinearKindOf(v, k) }),
        new("kv_expand", [Stage.Stage1, Stage.Stage2], c => WeightTransfer.KvExpansionWords.Of(c.KvExpand),
            (c, v, k) => c with { KvExpand = OneOf(v, k, WeightTransfer.KvExpansionWords) }),
        new("drop_qkv_bias", [Stage.Stage1, Stage.Stage2], c => c.DropQkvBias, (c, v, k) => c with { DropQkvBias = Bool(v, k) }),
        new("softmax_layers", [Stage.Stage2], c => new JsonArray(c.SoftmaxLayers.Select(i => (JsonNode)i).ToArray()),
            (c, v, k) => c with { SoftmaxLayers = IntList(v, k) }),
        new("logits_chunk", [Stage.Stage2, Stage.Stage3, Stage.Pretrain], c => c.LogitsChunk, (c, v, k) => c with { LogitsChunk = PositiveInt(v, k) }),
        new("temperature", [Stage.Stage2], c => c.Temperature, (c, v, k) => c with { Temperature = Positive(v, k) }),
        new("ce_weight", [Stage.Stage2], c => c.CeWeight, (c, v, k) => c with { CeWeight = NonNegative(v, k) }),
        new("text_weight", [Stage.Pretrain], c => c.TextWeight, (c, v, k) => c with { TextWeight = NonNegative(v, k) }),
        new("answer_weight", [Stage.Pretrain], c => c.AnswerWeight, (c, v, k) => c with { AnswerWeight = NonNegative(v, k) }),
    ];

    /// <summary>The keys a stage's recipe section may set.</summary>
    public static IReadOnlyList<string> KeysOf(Stage stage) => Keys.Where(k => k.Stages.Contains(stage)).Select(k => k.Name).ToList();

    /// <summary>Defaults, then <paramref name="section"/> (a recipe section), then <paramref name="overrides"/> ("key=value").</summary>
    public static TrainConfig Resolve(Stage stage, JsonObject? section, IEnumerable<string>? overrides = null, string? source = null)
    {
        var config = Defaults(stage);
        if (section is not null)
            foreach (var (name, value) in section)
                config = config.With(stage, name, value, source ?? "recipe");
        foreach (var item in overrides ?? [])
        {
            int eq = item.IndexOf('=');
            if (eq <= 0) throw new InputException($"--set expects key=value, got \"{item}\".");
            var name = item[..eq].Trim();
            config = config.With(stage, name, ParseValue(item[(eq + 1)..].Trim()), "--set");
        }
        config.Validate(stage);
        return config;
    }

    /// <summary>This config with one key set; unknown keys and keys of other stages are errors naming <paramref name="source"/>.</summary>
    public TrainConfig With(Stage stage, string name, JsonNode? value, string source)
    {
        var key = Keys.FirstOrDefault(k => k.Name == name);
        if (key is null || !key.Stages.Contains(stage))
            throw new InputException(
                $"{source}: unknown key \"{name}\" for {Stages.Name(stage)} (known: {string.Join(", ", KeysOf(stage))}).");
        if (value is null) throw new InputException($"{source}: {name} must not be null.");
        return key.Set(this, value, $"{source}: {name}");
    }

    public JsonObject ToJson(Stage stage)
    {
        var json = new JsonObject();
        foreach (var key in Keys.Where(k => k.Stages.Contains(stage))) json[key.Name] = key.Get(this);
        return json;
    }

    /// <summary>Defaults, then section <paramref name="section"/> of <paramref name="recipe"/> (a recipe's tree) when it has one, then <paramref name="overrides"/>.</summary>
    public static TrainConfig ResolveSection(Stage stage, OpaqueJson recipe, string section, IEnumerable<string>? overrides, string? source) =>
        Resolve(stage, recipe.ToObject()[section] as JsonObject, overrides, source);

    /// <summary>
    /// The stage-2 config of a scoring job's training runs (kl, removal): <paramref name="recipe"/>'s stage2 section with
    /// the score section's keys over it, except the method's own (<paramref name="methodKeys"/>) and softmax_layers (each
    /// candidate sets its own), then <paramref name="overrides"/>.
    /// </summary>
    public static TrainConfig ResolveScoring(OpaqueJson recipe, IReadOnlyCollection<string> methodKeys, IEnumerable<string>? overrides, string source)
    {
        var json = recipe.ToObject();
        var train = json["stage2"] is JsonObject stage2 ? (JsonObject)stage2.DeepClone() : new JsonObject();
        if (json["score"] is JsonObject score)
            foreach (var (key, value) in score)
                if (!methodKeys.Contains(key)) train[key] = value?.DeepClone();
        train.Remove("softmax_layers");
        return Resolve(Stage.Stage2, train, overrides, source);
    }

    /// <summary>The resolved config as run_config.json and trainer_state.json record it: the stage's keys in table order.</summary>
    public OpaqueJson ToRecord(Stage stage) => OpaqueJson.FromNode(ToJson(stage));

    /// <summary>
    /// A pretraining phase's config: <paramref name="section"/> (the recipe's shared train keys with the phase's over
    /// them) at the length of the phase's corpus, then <paramref name="overrides"/>, which may not change that length.
    /// </summary>
    public static TrainConfig ResolvePhase(OpaqueJson section, int seqLen, IEnumerable<string>? overrides, string where)
    {
        var json = section.ToObject();
        if (json["seq_len"] is JsonNode sl && Number(sl) != seqLen)
            throw new InputException($"{where}: train.seq_len {sl} differs from corpus.seq_len {seqLen}; leave train.seq_len out.");
        json["seq_len"] = seqLen;
        var train = Resolve(Stage.Pretrain, json, overrides, where);
        if (train.SeqLen != seqLen) throw new InputException($"{where}: --set seq_len cannot change a phase's corpus length ({seqLen}).");
        return train;
    }

    /// <summary>A JSON number of any stored type (parsed, or set from a long or an int in code), else null.</summary>
    static double? Number(JsonNode? node) =>
        node is not JsonValue v ? null
        : v.TryGetValue<double>(out var d) ? d
        : v.TryGetValue<long>(out var l) ? l
        : v.TryGetValue<int>(out var i) ? i
        : null;

    void Validate(Stage stage)
    {
        if (LogitsChunk < 1) throw new InputException("logits_chunk must be >= 1.");
        if (stage == Stage.Stage2 && SoftmaxLayers.Any(l => l < 0))
            throw new InputException("softmax_layers must hold layer indices >= 0.");
    }

    /// <summary>"3" -> 3, "true" -> true, "[0,3]" -> [0, 3], "0,3" -> [0, 3], "cosine" -> "cosine".</summary>
    public static JsonNode ParseValue(string text)
    {
        try
        {
            var node = JsonNode.Parse(text);
            if (node is not null) return node;
        }
        catch (JsonException) { }
        if (text.Contains(',') && text.Split(',').All(p => int.TryParse(p.Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out _)))
            return new JsonArray(text.Split(',').Select(p => (JsonNode)int.Parse(p.Trim(), CultureInfo.InvariantCulture)).ToArray());
        return JsonValue.Create(text);
    }

    // ---- value readers ------------------------------------------------------------------------------

    static double Number(JsonNode v, string where)
    {
        if (v is JsonValue j)
        {
            if (j.TryGetValue<double>(out var d)) return d;
            if (j.TryGetValue<long>(out var l)) return l;
            if (j.TryGetValue<int>(out var i)) return i;
        }
        throw new InputException($"{where} should be a number, got {v.ToJsonString()}.");
    }

    static long Long(JsonNode v, string where)
    {
        double d = Number(v, where);
        if (d != Math.Floor(d) || Math.Abs(d) > 9e15) throw new InputException($"{where} should be a whole number, got {v.ToJsonString()}.");
        return (long)d;
    }

    static int PositiveInt(JsonNode v, string where) => (int)Check(Long(v, where), x => x >= 1 && x <= int.MaxValue, where, ">= 1");
    static int NonNegativeInt(JsonNode v, string where) => (int)Check(Long(v, where), x => x >= 0 && x <= int.MaxValue, where, ">= 0");
    static long PositiveLong(JsonNode v, string where) => Check(Long(v, where), x => x >= 1, where, ">= 1");
    static long NonNegativeLong(JsonNode v, string where) => Check(Long(v, where), x => x >= 0, where, ">= 0");
    static double NonNegative(JsonNode v, string where) => Check(Number(v, where), x => x >= 0, where, ">= 0");
    static double Positive(JsonNode v, string where) => Check(Number(v, where), x => x > 0, where, "> 0");
    static double Fraction(JsonNode v, string where) => Check(Number(v, where), x => x >= 0 && x < 1, where, "in [0, 1)");

    static T Check<T>(T value, Func<T, bool> ok, string where, string rule) =>
        ok(value) ? value : throw new InputException($"{where} must be {rule}, got {value}.");

    static bool Bool(JsonNode v, string where) =>
        v is JsonValue j && j.TryGetValue<bool>(out var b) ? b : throw new InputException($"{where} should be true or false, got {v.ToJsonString()}.");

    static string Str(JsonNode v, string where) =>
        v is JsonValue j && j.TryGetValue<string>(out var s) ? s : throw new InputException($"{where} should be a string, got {v.ToJsonString()}.");

    static string OneOf(JsonNode v, string where, IReadOnlyList<string> allowed)
    {
        var s = Str(v, where);
        return allowed.Contains(s) ? s : throw new InputException($"{where} must be one of {string.Join(", ", allowed)}, got \"{s}\".");
    }

    static T OneOf<T>(JsonNode v, string where, SettingWords<T> words) where T : struct, Enum
    {
        words.TryParse(OneOf(v, where, words.All), out var value);
        return value;
    }

    static string LinearKindOf(JsonNode v, string where)
    {
        var kind = LayerKinds.Normalize(Str(v, where));
        return kind == LayerKinds.Softmax ? throw new InputException($"{where} must be a linear kind (gdn, gla, swa), not softmax.") : kind;
    }

    static IReadOnlyList<int> IntList(JsonNode v, string where)
    {
        if (v is JsonValue single && single.TryGetValue<double>(out _)) return [(int)Long(v, where)];
        if (v is not JsonArray a) throw new InputException($"{where} should be a list of layer indices such as [0, 3].");
        return a.Select(n => n is null ? throw new InputException($"{where} holds null.") : (int)Long(n, where)).Distinct().Order().ToArray();
    }
}

/// <summary>
/// A run recipe: one JSON file with a section per pipeline step,
/// <c>{"description": "...", "stage1": {...}, "stage2": {...}, "stage3": {...}, "score": {...}}</c>.
/// Each command reads its own section (stage sections hold <see cref="TrainConfig"/> keys; the score section
/// belongs to layer selection). Unknown sections are errors; so are unknown keys inside a stage section.
/// </summary>
public sealed class Recipe
{
    public static readonly string[] Sections = ["stage1", "stage2", "stage3", "score"];

    Recipe(string? path, JsonObject json)
    {
        Path = path;
        Json = json;
    }

    /// <summary>The file it came from (null for an empty recipe).</summary>
    public string? Path { get; }
    public JsonObject Json { get; }

    public static Recipe Empty { get; } = new(null, new JsonObject());

    public static Recipe Load(string path)
    {
        var full = System.IO.Path.GetFullPath(path);
        var obj = OpaqueJson.Load(full, "recipe", $"with sections {string.Join(", ", Sections)}").ToObject();
        foreach (var (key, value) in obj)
        {
            if (key == "description")
            {
                if (value is not JsonValue) throw new InputException($"{full}: \"description\" should be a string.");
                continue;
            }
            if (!Sections.Contains(key))
                throw new InputException($"{full}: unknown section \"{key}\" (known: description, {string.Join(", ", Sections)}).");
            if (value is not JsonObject) throw new InputException($"{full}: section \"{key}\" should be an object.");
        }
        var recipe = new Recipe(full, obj);
        // Check every stage section now, so a typo in stage2 is caught before stage 1 runs for an hour.
        foreach (var stage in new[] { Stage.Stage1, Stage.Stage2, Stage.Stage3 })
            recipe.Resolve(stage);
        return recipe;
    }

    public JsonObject? Section(string name) => Json[name] as JsonObject;

    /// <summary>The recipe as run_config.json records it: the file's tree as written (key order and number text kept).</summary>
    public OpaqueJson Record => OpaqueJson.FromNode(Json);

    /// <summary>The resolved config of a stage: defaults, this recipe's section, then the overrides.</summary>
    public TrainConfig Resolve(Stage stage, IEnumerable<string>? overrides = null) =>
        TrainConfig.Resolve(stage, Section(Stages.Name(stage)), overrides, Path is null ? "recipe" : $"{Path} [{Stages.Name(stage)}]");
}
