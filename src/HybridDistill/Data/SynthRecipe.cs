using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using HybridDistill.Artifacts;

namespace HybridDistill.Data;

/// <summary>An inclusive integer range [Min, Max] of a recipe, written as [min, max] (or one number for both).</summary>
[JsonConverter(typeof(IntRangeConverter))]
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
public sealed partial record SynthRecipe
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

    /// <summary>Reads a corpus recipe file (the whole file is the recipe).</summary>
    public static SynthRecipe Load(string path)
    {
        var full = Path.GetFullPath(path);
        if (!File.Exists(full)) throw new InputException($"{full}: recipe not found.");
        return Parse(File.ReadAllText(full), Path.GetDirectoryName(full)!, full);
    }

    /// <summary>
    /// A recipe from its JSON text (comments and trailing commas allowed); relative paths are resolved against
    /// <paramref name="baseDir"/>; errors name <paramref name="source"/> and the key.
    /// </summary>
    public static SynthRecipe Parse(string json, string baseDir, string source) => FromFile(ReadFile(json, source), baseDir, source);

    /// <summary>A recipe from its JSON (a pretraining phase's merged corpus object), read as <see cref="Parse"/> reads its text.</summary>
    public static SynthRecipe FromJson(OpaqueJson json, string baseDir, string source) => Parse(json.ToString(), baseDir, source);

    static SynthRecipeFile ReadFile(string json, string source)
    {
        var type = ArtifactJson.Types.SynthRecipeFile;
        var reader = new Utf8JsonReader(Encoding.UTF8.GetBytes(json),
            new JsonReaderOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        // The serializer's three faults: a syntax error (the reader's, as the inner exception), something other
        // than an object (at the root, "$"), and a key that is unknown or of the wrong type (at its path).
        try { return JsonSerializer.Deserialize(ref reader, type) ?? throw new InputException($"{source}: a recipe is a JSON object."); }
        catch (JsonException e) when (e.InnerException is JsonException syntax)
        {
            throw new InputException($"{source}: not valid JSON ({syntax.Message}).", e);
        }
        catch (JsonException e) when (e.Path is null or "$") { throw new InputException($"{source}: a recipe is a JSON object.", e); }
        catch (JsonException e)
        {
            string key = TopKey(e.Path!);
            var property = type.Properties.FirstOrDefault(p => p.Name == key);
            if (property is null)
                throw new InputException($"{source}: unknown corpus key \"{key}\" (known: {string.Join(", ", KnownKeys)}).", e);
            string expected = property.PropertyType == typeof(string) ? "a string (paths are relative to the recipe file)"
                : property.PropertyType == typeof(IntRange?) ? "[min, max] (or one number for both)"
                : property.PropertyType == typeof(double?) ? "a number"
                : $"weights of the episode kinds, e.g. {{\"story\": 0.5, \"copy\": 0.5}} (kinds: {KindNames})";
            throw new InputException($"{source}: {key} should be {expected} ({e.Message}).", e);
        }
    }

    /// <summary>The recipe's keys in file order ("description" aside: free text).</summary>
    static IEnumerable<string> KnownKeys => ArtifactJson.Types.SynthRecipeFile.Properties.Select(p => p.Name).Where(n => n != "description");

    static string KindNames => string.Join(", ", LossClasses.Kinds.Select(LossClasses.Name));

    /// <summary>The recipe's own key in a serializer path: "$.mix.story" -> "mix", "$['odd key']" -> "odd key".</summary>
    static string TopKey(string path)
    {
        var rest = path.AsSpan(1);
        if (rest.StartsWith("['"))
        {
            rest = rest[2..];
            return rest[..Math.Max(0, rest.IndexOf("']"))].ToString();
        }
        rest = rest.TrimStart('.');
        int end = rest.IndexOfAny('.', '[');
        return (end < 0 ? rest : rest[..end]).ToString();
    }

    /// <summary>A recipe from the file's keys, checked; relative paths are resolved against <paramref name="baseDir"/>.</summary>
    public static SynthRecipe FromFile(SynthRecipeFile file, string baseDir, string source)
    {
        string where(string key) => $"{source}: {key}";
        string PathOf(string? value, string key) =>
            Path.GetFullPath(Path.Combine(baseDir, value ?? throw new InputException($"{where(key)} is required: a path (relative to the recipe file).")));
        int Int(double? value, string key, int? fallback) => value is not double d
            ? fallback ?? throw new InputException($"{where(key)} is required.")
            : d == Math.Floor(d) && d >= 0 && d <= int.MaxValue ? (int)d
            : throw new InputException($"{where(key)} should be a whole number >= 0, got {Shown(d)}.");
        double Fraction(double? value, string key, double fallback) => value is not double d ? fallback
            : d >= 0 && d <= 1 ? d
            : throw new InputException($"{where(key)} should be a number in [0, 1], got {Shown(d)}.");
        IntRange Range(IntRange? value, string key, IntRange fallback) => value is not IntRange r ? fallback
            : r.Min >= 1 && r.Max >= r.Min ? r
            : throw new InputException($"{where(key)} should be [min, max] with 1 <= min <= max, got {r}.");

        if (file.Mix is not { Count: > 0 } mixWeights)
            throw new InputException($"{where("mix")} is required: weights of the episode kinds, e.g. {{\"story\": 0.5, \"copy\": 0.5}} " +
                                     $"(kinds: {KindNames}).");
        var mix = new Dictionary<EpisodeKind, double>();
        foreach (var (name, weight) in mixWeights)
        {
            var kind = LossClasses.Kinds.Cast<EpisodeKind?>().FirstOrDefault(k => LossClasses.Name(k!.Value) == name)
                ?? throw new InputException($"{where("mix")}: unknown episode kind \"{name}\" (kinds: {KindNames}).");
            if (!(weight >= 0)) throw new InputException($"{where("mix")}.{name} should be a weight >= 0, got {Shown(weight)}.");
            if (weight > 0) mix[kind] = weight;
        }
        if (mix.Count == 0) throw new InputException($"{where("mix")}: every weight is 0; give at least one kind a positive weight.");

        var recipe = new SynthRecipe
        {
            Tokenizer = PathOf(file.Tokenizer, "tokenizer"),
            Text = PathOf(file.Text, "text"),
            Seed = Int(file.Seed, "seed", 0),
            SeqLen = Int(file.SeqLen, "seq_len", null),
            TrainWindows = Int(file.TrainWindows, "train_windows", null),
            ValWindows = Int(file.ValWindows, "val_windows", 64),
            HeldoutFraction = Fraction(file.HeldoutFraction, "heldout_fraction", 0.1),
            HeldoutSeed = Int(file.HeldoutSeed, "heldout_seed", 0),
            Mix = mix,
            EpisodeMin = file.EpisodeMin is null ? null : Int(file.EpisodeMin, "episode_min", null),
            RepeatKeys = Range(file.RepeatKeys, "repeat_keys", new(8, 32)),
            CopySpan = Range(file.CopySpan, "copy_span", new(8, 48)),
            CopyTextFraction = Fraction(file.CopyTextFraction, "copy_text_fraction", 0.25),
            PasskeyDigits = Range(file.PasskeyDigits, "passkey_digits", new(3, 7)),
            PasskeyStockFraction = Fraction(file.PasskeyStockFraction, "passkey_stock_fraction", 0.5),
            KvPairs = Range(file.KvPairs, "kv_pairs", new(2, 64)),
            KvQueries = Range(file.KvQueries, "kv_queries", new(1, 8)),
            MultihopQueries = Range(file.MultihopQueries, "multihop_queries", new(1, 4)),
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

    static string Shown(double d) => d.ToString("R", CultureInfo.InvariantCulture);

    /// <summary>The recipe as recorded in manifest.json (absolute paths): equal recipes make equal corpora.</summary>
    public SynthRecipeRecord ToRecord() => new(Tokenizer, Text, Seed, SeqLen, TrainWindows, ValWindows, HeldoutFraction, HeldoutSeed,
        Mix.OrderBy(m => m.Key).ToDictionary(m => LossClasses.Name(m.Key), m => m.Value), MinEpisode,
        RepeatKeys.ToArray(), CopySpan.ToArray(), CopyTextFraction, PasskeyDigits.ToArray(), PasskeyStockFraction,
        KvPairs.ToArray(), KvQueries.ToArray(), MultihopQueries.ToArray());
}

/// <summary>A synthetic corpus's recipe as recorded (manifest.json's "synthetic"): every setting resolved, paths absolute, ranges [min, max].</summary>
public sealed record SynthRecipeRecord(string Tokenizer, string Text, long Seed, int SeqLen, long TrainWindows, int ValWindows,
    double HeldoutFraction, long HeldoutSeed, IReadOnlyDictionary<string, double> Mix, int EpisodeMin,
    IReadOnlyList<int> RepeatKeys, IReadOnlyList<int> CopySpan, double CopyTextFraction, IReadOnlyList<int> PasskeyDigits,
    double PasskeyStockFraction, IReadOnlyList<int> KvPairs, IReadOnlyList<int> KvQueries, IReadOnlyList<int> MultihopQueries);

/// <summary>
/// A corpus recipe as written (<see cref="SynthRecipe"/> documents each key): every key optional here,
/// <see cref="SynthRecipe.FromFile"/> checks them and supplies the defaults; unknown keys are errors. Whole numbers are
/// read as numbers and checked there, so that "seq_len": 1.5 says which key wants a whole number.
/// </summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record SynthRecipeFile(
    string? Description, string? Tokenizer, string? Text, double? Seed, double? SeqLen, double? TrainWindows, double? ValWindows,
    double? HeldoutFraction, double? HeldoutSeed, IReadOnlyDictionary<string, double>? Mix, double? EpisodeMin,
    IntRange? RepeatKeys, IntRange? CopySpan, double? CopyTextFraction, IntRange? PasskeyDigits, double? PasskeyStockFraction,
    IntRange? KvPairs, IntRange? KvQueries, IntRange? MultihopQueries);
