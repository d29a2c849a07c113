using System.Text.Json;
using System.Text.Json.Nodes;
using HybridDistill.Artifacts;

namespace HybridDistill.Data;

/// <summary>An inclusive integer range [Min, Max] of a recipe, written as [min, max] (or one number for both).</summary>
public readonly record struct IntRange(int Min, int Max)
{
    public int[] ToArray() => [Min, Max];
    public override string ToString() => $"[{Min}, {Max}]";
}

/// <summary>
/// The recipe of a synthetic corpus (<c>hybrid corpus synth --recipe FILE</c>, or a phase's <c>corpus</c> object in a
/// pretraining recipe). Every window is <see cref="SeqLen"/> tokens; each holds one episode drawn from
/// <see cref="Mix"/> (lengths uniform in [<see cref="EpisodeMin"/>, seq_len]) followed by story text to the end.
/// Paths are relative to the recipe file. Unknown keys are errors.
/// </summary>
public sealed record SynthRecipe
{
    /// <summary>Model or tokenizer directory whose tokenizer encodes the corpus.</summary>
    public required string Tokenizer { get; init; }
    /// <summary>Plain text (blank-line separated documents): story windows, story filler, and the held-out text.</summary>
    public required string Text { get; init; }
    public long Seed { get; init; }
    public required int SeqLen { get; init; }
    public required long TrainWindows { get; init; }
    public int ValWindows { get; init; } = 64;
    /// <summary>Fraction of the text's documents kept out of training (validation windows' text and heldout.txt).</summary>
    public double HeldoutFraction { get; init; } = 0.1;
    /// <summary>Chooses the held-out documents. Independent of <see cref="Seed"/>, so corpora that differ only in their seed
    /// (the phases of a pretraining, the distillation corpus of the teacher they made) hold out the same documents.</summary>
    public long HeldoutSeed { get; init; }
    /// <summary>Relative weights of the episode kinds (names from <see cref="LossClasses.Name"/>).</summary>
    public required IReadOnlyDictionary<EpisodeKind, double> Mix { get; init; }
    /// <summary>Shortest episode in tokens (BOS included); lengths are uniform in [max(episode_min, the kind's own minimum), seq_len].</summary>
    public int? EpisodeMin { get; init; }
    public IntRange RepeatKeys { get; init; } = new(8, 32);
    public IntRange CopySpan { get; init; } = new(8, 48);
    /// <summary>Fraction of copy episodes whose filler is story text (the rest: random keys).</summary>
    public double CopyTextFraction { get; init; } = 0.25;
    public IntRange PasskeyDigits { get; init; } = new(3, 7);
    /// <summary>Fraction of pass-key episodes whose haystack is stock sentences (the rest: story text).</summary>
    public double PasskeyStockFraction { get; init; } = 0.5;
    public IntRange KvPairs { get; init; } = new(2, 64);
    public IntRange KvQueries { get; init; } = new(1, 8);
    public IntRange MultihopQueries { get; init; } = new(1, 4);

    public int MinEpisode => EpisodeMin ?? SeqLen;
    /// <summary>Where the recipe came from (a file, or a file and phase), for error messages; not part of the recipe.</summary>
    public string Source { get; init; } = "recipe";

    static readonly string[] KnownKeys =
    [
        "tokenizer", "text", "seed", "seq_len", "train_windows", "val_windows", "heldout_fraction", "heldout_seed", "mix", "episode_min",
        "repeat_keys", "copy_span", "copy_text_fraction", "passkey_digits", "passkey_stock_fraction", "kv_pairs", "kv_queries",
        "multihop_queries",
    ];

    /// <summary>Reads a corpus recipe file (the whole file is the recipe).</summary>
    public static SynthRecipe Load(string path)
    {
        var full = Path.GetFullPath(path);
        return FromJson(LoadObject(full), Path.GetDirectoryName(full)!, full);
    }

    public static JsonObject LoadObject(string full)
    {
        if (!File.Exists(full)) throw new InputException($"{full}: recipe not found.");
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(File.ReadAllText(full), documentOptions: new JsonDocumentOptions
                { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        }
        catch (JsonException e) { throw new InputException($"{full}: not valid JSON ({e.Message}).", e); }
        return node as JsonObject ?? throw new InputException($"{full}: a recipe is a JSON object.");
    }

    /// <summary>A recipe from JSON; relative paths are resolved against <paramref name="baseDir"/>; errors name <paramref name="source"/>.</summary>
    public static SynthRecipe FromJson(JsonObject json, string baseDir, string source)
    {
        foreach (var (key, _) in json)
            if (key != "description" && !KnownKeys.Contains(key))
                throw new InputException($"{source}: unknown corpus key \"{key}\" (known: {string.Join(", ", KnownKeys)}).");
        string where(string key) => $"{source}: {key}";
        string PathOf(string key)
        {
            var value = json[key] is JsonValue v && v.TryGetValue<string>(out var s) ? s
                : throw new InputException($"{where(key)} is required: a path (relative to the recipe file).");
            return Path.GetFullPath(Path.Combine(baseDir, value));
        }
        int Int(string key, int? fallback) => json[key] is null
            ? fallback ?? throw new InputException($"{where(key)} is required.")
            : Number(json[key]) is double d && d == Math.Floor(d) && d >= 0 && d <= int.MaxValue ? (int)d
            : throw new InputException($"{where(key)} should be a whole number >= 0, got {json[key]!.ToJsonString()}.");
        double Fraction(string key, double fallback) => json[key] is null ? fallback
            : Number(json[key]) is double d && d >= 0 && d <= 1 ? d
            : throw new InputException($"{where(key)} should be a number in [0, 1], got {json[key]!.ToJsonString()}.");
        IntRange Range(string key, IntRange fallback)
        {
            var node = json[key];
            if (node is null) return fallback;
            int[] values = node switch
            {
                JsonArray a when a.Count == 2 && a.All(x => Number(x) is not null) => a.Select(x => (int)Number(x)!.Value).ToArray(),
                JsonValue v when Number(v) is double d => [(int)d, (int)d],
                _ => throw new InputException($"{where(key)} should be [min, max], got {node.ToJsonString()}."),
            };
            if (values[0] < 1 || values[1] < values[0])
                throw new InputException($"{where(key)} should be [min, max] with 1 <= min <= max, got {node.ToJsonString()}.");
            return new IntRange(values[0], values[1]);
        }

        if (json["mix"] is not JsonObject mixJson || mixJson.Count == 0)
            throw new InputException($"{where("mix")} is required: weights of the episode kinds, e.g. {{\"story\": 0.5, \"copy\": 0.5}} " +
                                     $"(kinds: {string.Join(", ", LossClasses.Kinds.Select(LossClasses.Name))}).");
        var mix = new Dictionary<EpisodeKind, double>();
        foreach (var (name, value) in mixJson)
        {
            var kind = LossClasses.Kinds.Cast<EpisodeKind?>().FirstOrDefault(k => LossClasses.Name(k!.Value) == name)
                ?? throw new InputException($"{where("mix")}: unknown episode kind \"{name}\" (kinds: {string.Join(", ", LossClasses.Kinds.Select(LossClasses.Name))}).");
            double w = Number(value) is double d && d >= 0 ? d
                : throw new InputException($"{where("mix")}.{name} should be a weight >= 0, got {value?.ToJsonString()}.");
            if (w > 0) mix[kind] = w;
        }
        if (mix.Count == 0) throw new InputException($"{where("mix")}: every weight is 0; give at least one kind a positive weight.");

        var recipe = new SynthRecipe
        {
            Tokenizer = PathOf("tokenizer"),
            Text = PathOf("text"),
            Seed = Int("seed", 0),
            SeqLen = Int("seq_len", null),
            TrainWindows = Int("train_windows", null),
            ValWindows = Int("val_windows", 64),
            HeldoutFraction = Fraction("heldout_fraction", 0.1),
            HeldoutSeed = Int("heldout_seed", 0),
            Mix = mix,
            EpisodeMin = json["episode_min"] is null ? null : Int("episode_min", null),
            RepeatKeys = Range("repeat_keys", new(8, 32)),
            CopySpan = Range("copy_span", new(8, 48)),
            CopyTextFraction = Fraction("copy_text_fraction", 0.25),
            PasskeyDigits = Range("passkey_digits", new(3, 7)),
            PasskeyStockFraction = Fraction("passkey_stock_fraction", 0.5),
            KvPairs = Range("kv_pairs", new(2, 64)),
            KvQueries = Range("kv_queries", new(1, 8)),
            MultihopQueries = Range("multihop_queries", new(1, 4)),
            Source = source,
        };
        if (recipe.SeqLen < 16) throw new InputException($"{where("seq_len")} must be at least 16, got {recipe.SeqLen}.");
        if (recipe.TrainWindows < 1 || recipe.ValWindows < 1) throw new InputException($"{source}: train_windows and val_windows must be at least 1.");
        if (recipe.MinEpisode < 16 || recipe.MinEpisode > recipe.SeqLen)
            throw new InputException($"{where("episode_min")} must be in 16..seq_len ({recipe.SeqLen}), got {recipe.MinEpisode}.");
        if (recipe.HeldoutFraction <= 0 || recipe.HeldoutFraction >= 0.5)
            throw new InputException($"{where("heldout_fraction")} must be in (0, 0.5), got {recipe.HeldoutFraction}.");
        return recipe;
    }

    /// <summary>A JSON number of any stored type (parsed, or set from a long or an int in code), else null.</summary>
    public static double? Number(JsonNode? node) =>
        node is not JsonValue v ? null
        : v.TryGetValue<double>(out var d) ? d
        : v.TryGetValue<long>(out var l) ? l
        : v.TryGetValue<int>(out var i) ? i
        : null;

    /// <summary>The recipe as recorded in manifest.json (absolute paths): equal recipes make equal corpora.</summary>
    public SynthRecipeRecord ToRecord() => new(Tokenizer, Text, Seed, SeqLen, TrainWindows, ValWindows, HeldoutFraction, HeldoutSeed,
        Mix.OrderBy(m => m.Key).ToDictionary(m => LossClasses.Name(m.Key), m => m.Value), MinEpisode,
        RepeatKeys.ToArray(), CopySpan.ToArray(), CopyTextFraction, PasskeyDigits.ToArray(), PasskeyStockFraction,
        KvPairs.ToArray(), KvQueries.ToArray(), MultihopQueries.ToArray());

    public JsonObject ToJson() => ArtifactJson.ToNode(ToRecord(), ArtifactJson.Types.SynthRecipeRecord);
}

/// <summary>A synthetic corpus's recipe as recorded (manifest.json's "synthetic"): every setting resolved, paths absolute, ranges [min, max].</summary>
public sealed record SynthRecipeRecord(string Tokenizer, string Text, long Seed, int SeqLen, long TrainWindows, int ValWindows,
    double HeldoutFraction, long HeldoutSeed, IReadOnlyDictionary<string, double> Mix, int EpisodeMin,
    IReadOnlyList<int> RepeatKeys, IReadOnlyList<int> CopySpan, double CopyTextFraction, IReadOnlyList<int> PasskeyDigits,
    double PasskeyStockFraction, IReadOnlyList<int> KvPairs, IReadOnlyList<int> KvQueries, IReadOnlyList<int> MultihopQueries);
