using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using HybridDistill.Benchmarks;
using HybridDistill.Checkpoints;
using HybridDistill.Config;
using HybridDistill.Evaluation;
using HybridDistill.Pipeline;
using HybridDistill.Selection;

namespace HybridDistill.Artifacts;

/// <summary>
/// The one source-generated serializer of the files the library writes and reads back (step records,
/// selection.json, summary.json, bench_decode.json, ...): each file's schema is a typed record in its home file,
/// listed here once. snake_case names, two-space indentation, nulls written as null unless a property says
/// otherwise ([JsonIgnore(Condition = WhenWritingNull)] for optional keys), doubles as their shortest round-trip
/// text: byte for byte what the hand-built <see cref="JsonObject"/>s wrote before.
/// </summary>
[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(StepRecord))]
[JsonSerializable(typeof(ComparisonPlanFile))]
[JsonSerializable(typeof(ComparisonSummary))]
[JsonSerializable(typeof(DecodeBenchFile))]
[JsonSerializable(typeof(MachineLimits))]
[JsonSerializable(typeof(LayerScoresFile))]
[JsonSerializable(typeof(LayerResultFile))]
[JsonSerializable(typeof(KlDetailView))]
[JsonSerializable(typeof(KlJobView))]
[JsonSerializable(typeof(LockStepView))]
[JsonSerializable(typeof(KlStoppingView))]
[JsonSerializable(typeof(KlCurves.StopRule))]
[JsonSerializable(typeof(KlCurves.EarlyStopReport))]
[JsonSerializable(typeof(RuleProvenance))]
[JsonSerializable(typeof(UniformProvenance))]
[JsonSerializable(typeof(AblationProvenance))]
[JsonSerializable(typeof(PplLayerMetrics))]
[JsonSerializable(typeof(Stage1LayerDetail))]
[JsonSerializable(typeof(Stage1Provenance))]
[JsonSerializable(typeof(RecallAblationProvenance))]
[JsonSerializable(typeof(RecallAblationMetrics))]
[JsonSerializable(typeof(KlProvenance))]
[JsonSerializable(typeof(KlMethodSettings))]
[JsonSerializable(typeof(KlLayerMetrics))]
[JsonSerializable(typeof(FullBudgetDetail))]
[JsonSerializable(typeof(KlRunConfig))]
[JsonSerializable(typeof(KlCurveLine))]
[JsonSerializable(typeof(StoredRunRecipe))]
[JsonSerializable(typeof(EvalFile))]
[JsonSerializable(typeof(HybridDistill.Data.CorpusManifestFile))]
[JsonSerializable(typeof(HybridDistill.Data.SynthRecipeRecord))]
[JsonSerializable(typeof(HybridDistill.Data.SynthRecipeFile))]
[JsonSerializable(typeof(PplEntry))]
[JsonSerializable(typeof(AgreeEntry))]
[JsonSerializable(typeof(McEntry))]
[JsonSerializable(typeof(McLine))]
[JsonSerializable(typeof(IReadOnlyDictionary<string, RecallLengthEntry>))]
[JsonSerializable(typeof(HybridDistill.Models.ModelReportFile))]
[JsonSerializable(typeof(HybridDistill.Training.TrainerStateFile))]
[JsonSerializable(typeof(HybridDistill.Training.MetricSumsFile))]
[JsonSerializable(typeof(HybridDistill.Training.MetricsLine))]
[JsonSerializable(typeof(HybridDistill.Training.MetricsLineStep))]
[JsonSerializable(typeof(HybridDistill.Training.DistillRunConfig))]
[JsonSerializable(typeof(HybridDistill.Training.PretrainRunConfig))]
[JsonSerializable(typeof(HybridDistill.Training.PretrainPhaseRunConfig))]
[JsonSerializable(typeof(HybridDistill.Training.PretrainRecipeFile))]
[JsonSerializable(typeof(HybridDistill.Training.PretrainRunIdentity))]
[JsonSerializable(typeof(HybridDistill.Training.CorpusSeqLen))]
[JsonSerializable(typeof(HybridDistill.Training.WallTimeRecord))]
// External formats: files another tool reads or writes (keys and layout are theirs).
[JsonSerializable(typeof(LayerLayout))]
[JsonSerializable(typeof(LinearAttentionFile))]
[JsonSerializable(typeof(FlaConfigFile))]
[JsonSerializable(typeof(FlaTokenizerConfigFile))]
[JsonSerializable(typeof(ShardIndexFile))]
[JsonSerializable(typeof(Llama2cConfigFile))]
[JsonSerializable(typeof(LmEvalFile))]
[JsonSerializable(typeof(double))]          // lm-eval's metric values and batch_size are a number or a string
[JsonSerializable(typeof(int))]
[JsonSerializable(typeof(string))]
internal sealed partial class ArtifactJsonContext : JsonSerializerContext;

/// <summary>Writing and reading artifacts through <see cref="ArtifactJsonContext"/>.</summary>
internal static class ArtifactJson
{
    public static ArtifactJsonContext Types => ArtifactJsonContext.Default;

    /// <summary>The file's bytes (UTF-8, indented; <paramref name="trailingNewline"/> for the files that end with one).</summary>
    public static byte[] Bytes<T>(T value, JsonTypeInfo<T> type, bool trailingNewline = false)
    {
        var bytes = JsonSerializer.SerializeToUtf8Bytes(value, type);
        return trailingNewline ? [.. bytes, (byte)'\n'] : bytes;
    }

    /// <summary>Writes PATH atomically (a kill leaves the old file or the new one).</summary>
    public static void Write<T>(string path, T value, JsonTypeInfo<T> type, bool trailingNewline = false) =>
        AtomicFile.WriteAllBytes(path, Bytes(value, type, trailingNewline));

    /// <summary>
    /// The bytes of a file another tool reads (fla's config.json, tokenizer_config.json, a shard index): indented,
    /// ending with a newline, and characters the default encoder escapes for HTML (&lt;s&gt;, +, non-ASCII) written as
    /// themselves, as Python's json.dump writes them.
    /// </summary>
    public static byte[] ExternalBytes<T>(T value, JsonTypeInfo<T> type)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
            JsonSerializer.Serialize(writer, value, type);
        buffer.WriteByte((byte)'\n');
        return buffer.ToArray();
    }

    /// <summary>The same contracts, refusing a key given twice in one object: for files whose keys are names
    /// (a shard index's weight_map), where the default (the last one wins) would hide a corrupt file.</summary>
    public static ArtifactJsonContext NoDuplicateKeys { get; } = new(new JsonSerializerOptions(Types.Options) { AllowDuplicateProperties = false });

    public static JsonObject ToNode<T>(T value, JsonTypeInfo<T> type) => JsonSerializer.SerializeToNode(value, type)!.AsObject();

    /// <summary>One line of a .jsonl file: the value on one line (not indented) and a newline.</summary>
    public static byte[] Line<T>(T value, JsonTypeInfo<T> type)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer)) JsonSerializer.Serialize(writer, value, type);
        return [.. buffer.WrittenSpan, (byte)'\n'];
    }

    /// <summary>One line of a .jsonl file read back; a <see cref="JsonException"/> when it is not one value of <typeparamref name="T"/>.</summary>
    public static T ParseLine<T>(string line, JsonTypeInfo<T> type) =>
        JsonSerializer.Deserialize(line, type) ?? throw new JsonException("null is not a line of this file");

    /// <summary>
    /// Where a stored file's JSON and <paramref name="current"/> differ, as "key.path: then-value then, now-value now"
    /// (objects compared key by key, anything else as a whole); <paramref name="ignored"/> paths ("config.threads") are
    /// not compared. A <see cref="JsonException"/> when the stored bytes are not a JSON object.
    /// </summary>
    public static IReadOnlyList<string> Differences<T>(byte[] stored, T current, JsonTypeInfo<T> type, params string[] ignored)
    {
        var before = JsonNode.Parse(stored) as JsonObject ?? throw new JsonException("not an object");
        return Differences(before, JsonSerializer.SerializeToNode(current, type), "", ignored).ToList();
    }

    static IEnumerable<string> Differences(JsonNode? a, JsonNode? b, string path, string[] ignored)
    {
        if (ignored.Contains(path.TrimStart('.'))) yield break;
        if (a is JsonObject oa && b is JsonObject ob)
        {
            foreach (var key in oa.Select(p => p.Key).Union(ob.Select(p => p.Key)))
                foreach (var d in Differences(oa[key], ob[key], path + "." + key, ignored)) yield return d;
        }
        else if (!JsonNode.DeepEquals(a, b))
            yield return $"{path.TrimStart('.')}: {a?.ToJsonString() ?? "null"} then, {b?.ToJsonString() ?? "null"} now";
    }

    /// <summary>
    /// Reads PATH as <typeparamref name="T"/>. A missing file, invalid JSON, something other than an object, a value of
    /// the wrong type or a missing required key is one <see cref="InputException"/> naming the file, what it should be,
    /// the key (the serializer's message carries the JSON path or the missing property) and <paramref name="fix"/>.
    /// </summary>
    public static T Read<T>(string path, JsonTypeInfo<T> type, string what, string fix)
    {
        if (!File.Exists(path)) throw new InputException($"{path}: {what} not found; {fix}.");
        JsonNode? node;
        try { node = JsonNode.Parse(File.ReadAllBytes(path)); }
        catch (JsonException e) { throw new InputException($"{path}: not valid JSON ({e.Message}); {fix}.", e); }
        if (node is not JsonObject) throw new InputException($"{path}: expected a JSON object ({what}); {fix}.");
        try { return JsonSerializer.Deserialize(node, type)!; }
        catch (JsonException e) { throw new InputException($"{path}: not {what} ({e.Message}); {fix}.", e); }
    }
}

/// <summary>
/// A part of an artifact whose schema is not the artifact's own: a recipe as its author wrote it (key order and number
/// text kept), a settings tree that its owner reads by hand (<c>TrainConfig</c>, a model's config.json), the run record a
/// caller hands the trainer, a scoring method's provenance and per-layer details in scores.json (written from the
/// method's record, read back through small typed views). Written back as it came, indented with the file around it;
/// equal when the JSON is.
/// </summary>
[JsonConverter(typeof(OpaqueJsonConverter))]
public sealed class OpaqueJson : IEquatable<OpaqueJson>
{
    readonly JsonNode node;

    OpaqueJson(JsonNode node) => this.node = node;

    /// <summary><c>{}</c></summary>
    public static OpaqueJson EmptyObject => new(new JsonObject());

    /// <summary>A record as its typed schema writes it.</summary>
    public static OpaqueJson Of<T>(T value, JsonTypeInfo<T> type) => new(JsonSerializer.SerializeToNode(value, type) ?? throw new ArgumentNullException(nameof(value)));

    /// <summary>A tree that its owner built or read (a copy is kept).</summary>
    public static OpaqueJson FromNode(JsonNode node) => new(node.DeepClone());

    /// <summary>A copy of the tree, for the owner of its schema to read.</summary>
    public JsonObject ToObject() => node.DeepClone() as JsonObject ?? throw new JsonException($"expected an object, got {node.ToJsonString()}");

    /// <summary>The part read as the typed record <typeparamref name="T"/> (keys that <typeparamref name="T"/> lacks are ignored unless it says otherwise).</summary>
    public T As<T>(JsonTypeInfo<T> type) => JsonSerializer.Deserialize(node, type) ?? throw new JsonException("null");

    /// <summary>An object with <paramref name="over"/>'s keys set over this one's (a phase's settings over the shared ones).</summary>
    public OpaqueJson Merged(OpaqueJson? over)
    {
        var merged = ToObject();
        if (over is not null)
            foreach (var (key, value) in over.ToObject()) merged[key] = value?.DeepClone();
        return new(merged);
    }

    /// <summary>This object with <paramref name="key"/> set to <paramref name="value"/> when it has no such key (or null there).</summary>
    public OpaqueJson WithDefault(string key, long value)
    {
        var copy = ToObject();
        copy[key] ??= value;
        return new(copy);
    }

    /// <summary>
    /// A JSON file read as it is written (comments and trailing commas allowed); a missing file, invalid JSON or
    /// something other than an object is one <see cref="InputException"/> naming the file and <paramref name="what"/> ("recipe"),
    /// followed by <paramref name="objectHint"/> ("with sections ...") when it is not an object.
    /// </summary>
    public static OpaqueJson Load(string path, string what, string? objectHint = null)
    {
        if (!File.Exists(path)) throw new InputException($"{path}: {what} not found.");
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(File.ReadAllText(path), documentOptions: new JsonDocumentOptions
                { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        }
        catch (JsonException e) { throw new InputException($"{path}: not valid JSON ({e.Message}).", e); }
        return node is JsonObject ? new(node)
            : throw new InputException($"{path}: a {what} is a JSON object{(objectHint is null ? "" : " " + objectHint)}.");
    }

    /// <summary>Whether this is an object with <paramref name="key"/> (whatever its value).</summary>
    public bool Has(string key) => node is JsonObject o && o.ContainsKey(key);

    /// <summary>The value at <paramref name="key"/> when this is an object holding an object there, else null.</summary>
    public OpaqueJson? Part(string key) => node is JsonObject o && o[key] is JsonObject part ? new(part.DeepClone()) : null;

    /// <summary>The text of the plain value (string, number, true/false) at <paramref name="key"/>; null when there is none.</summary>
    public string? ValueText(string key) => node is JsonObject o && o[key] is JsonValue v ? v.ToString() : null;

    /// <summary>This object with <paramref name="key"/> set to <paramref name="value"/> (in its place when the key exists, else last).</summary>
    public OpaqueJson With<T>(string key, T? value, JsonTypeInfo<T> type)
    {
        var copy = ToObject();
        copy[key] = JsonSerializer.SerializeToNode(value!, type);
        return new(copy);
    }

    /// <summary>This object with <paramref name="key"/> set to <paramref name="value"/>'s JSON.</summary>
    public OpaqueJson With(string key, OpaqueJson value)
    {
        var copy = ToObject();
        copy[key] = value.node.DeepClone();
        return new(copy);
    }

    /// <summary>This object without its own key <paramref name="key"/> (nested objects keep theirs).</summary>
    public OpaqueJson Without(string key)
    {
        var copy = ToObject();
        copy.Remove(key);
        return new(copy);
    }

    /// <summary>This JSON with <paramref name="key"/> removed from every object in it, however deep (the "path" keys of a
    /// provenance, to identify a job on any machine).</summary>
    public OpaqueJson WithoutKey(string key)
    {
        var copy = node.DeepClone();
        Remove(copy);
        return new(copy);

        void Remove(JsonNode? n)
        {
            if (n is JsonObject o)
            {
                o.Remove(key);
                foreach (var (_, child) in o) Remove(child);
            }
            else if (n is JsonArray a) foreach (var child in a) Remove(child);
        }
    }

    public bool Equals(OpaqueJson? other) => other is not null && JsonNode.DeepEquals(node, other.node);
    public override bool Equals(object? obj) => obj is OpaqueJson o && Equals(o);
    public override int GetHashCode() => node.ToJsonString().GetHashCode(StringComparison.Ordinal);
    public override string ToString() => node.ToJsonString();

    internal sealed class OpaqueJsonConverter : JsonConverter<OpaqueJson>
    {
        public override OpaqueJson Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
            new(JsonNode.Parse(ref reader) ?? throw new JsonException("null"));

        public override void Write(Utf8JsonWriter writer, OpaqueJson value, JsonSerializerOptions options) => value.node.WriteTo(writer, options);
    }
}

/// <summary>
/// A metrics.jsonl line, key by key in the order the trainer always wrote them: (phase, total_step, total_tokens in
/// pretraining's combined file), step, tokens, loss, lr, lrs, the objective's extras by name, grad_norm, layer_losses,
/// val_loss, the validation extras as val_NAME, val_layer_losses, elapsed_s, tokens_per_s, rss_mb. Optional keys are
/// left out when absent; any other numeric key read back is an extra (val_NAME a validation one).
/// </summary>
sealed class MetricsLineConverter : JsonConverter<HybridDistill.Training.MetricsLine>
{
    const string ValPrefix = "val_";

    public override HybridDistill.Training.MetricsLine Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType != JsonTokenType.StartObject) throw new JsonException("a metrics line is a JSON object.");
        string? phase = null;
        long? totalStep = null, totalTokens = null, step = null, tokens = null;
        double? loss = null, lr = null, gradNorm = null, valLoss = null, elapsed = null, rate = null, rss = null;
        IReadOnlyList<HybridDistill.Training.NamedValue>? lrs = null;
        IReadOnlyList<double>? layers = null, valLayers = null;
        var extras = new List<HybridDistill.Training.NamedValue>();
        var valExtras = new List<HybridDistill.Training.NamedValue>();
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            string key = reader.GetString()!;
            reader.Read();
            switch (key)
            {
                case "phase": phase = reader.GetString(); break;
                case "total_step": totalStep = reader.GetInt64(); break;
                case "total_tokens": totalTokens = reader.GetInt64(); break;
                case "step": step = reader.GetInt64(); break;
                case "tokens": tokens = reader.GetInt64(); break;
                case "loss": loss = reader.GetDouble(); break;
                case "lr": lr = reader.GetDouble(); break;
                case "lrs": lrs = ReadNamed(ref reader); break;
                case "grad_norm": gradNorm = reader.GetDouble(); break;
                case "layer_losses": layers = ReadArray(ref reader); break;
                case "val_loss": valLoss = reader.GetDouble(); break;
                case "val_layer_losses": valLayers = ReadArray(ref reader); break;
                case "elapsed_s": elapsed = reader.GetDouble(); break;
                case "tokens_per_s": rate = reader.GetDouble(); break;
                case "rss_mb": rss = reader.GetDouble(); break;
                default:
                    if (reader.TokenType != JsonTokenType.Number) throw new JsonException($"\"{key}\" should be a number.");
                    if (key.StartsWith(ValPrefix, StringComparison.Ordinal)) valExtras.Add(new(key[ValPrefix.Length..], reader.GetDouble()));
                    else extras.Add(new(key, reader.GetDouble()));
                    break;
            }
        }
        static T Required<T>(T? v, string key) where T : struct => v ?? throw new JsonException($"a metrics line needs \"{key}\".");
        return new HybridDistill.Training.MetricsLine
        {
            Phase = phase is null ? null : new HybridDistill.Training.PhasePosition(phase, Required(totalStep, "total_step"), Required(totalTokens, "total_tokens")),
            Step = Required(step, "step"), Tokens = Required(tokens, "tokens"), Loss = Required(loss, "loss"), Lr = Required(lr, "lr"), Lrs = lrs,
            Extras = extras, GradNorm = gradNorm, LayerLosses = layers, ValLoss = valLoss, ValExtras = valExtras, ValLayerLosses = valLayers,
            ElapsedS = Required(elapsed, "elapsed_s"), TokensPerS = Required(rate, "tokens_per_s"), RssMb = Required(rss, "rss_mb"),
        };
    }

    static List<HybridDistill.Training.NamedValue> ReadNamed(ref Utf8JsonReader reader)
    {
        if (reader.TokenType != JsonTokenType.StartObject) throw new JsonException("\"lrs\" should be an object {group: lr}.");
        var values = new List<HybridDistill.Training.NamedValue>();
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            string name = reader.GetString()!;
            reader.Read();
            values.Add(new(name, reader.GetDouble()));
        }
        return values;
    }

    static List<double> ReadArray(ref Utf8JsonReader reader)
    {
        if (reader.TokenType != JsonTokenType.StartArray) throw new JsonException("layer losses should be an array of numbers.");
        var values = new List<double>();
        while (reader.Read() && reader.TokenType == JsonTokenType.Number) values.Add(reader.GetDouble());
        return values;
    }

    public override void Write(Utf8JsonWriter writer, HybridDistill.Training.MetricsLine line, JsonSerializerOptions options)
    {
        writer.WriteStartObject();
        if (line.Phase is { } p)
        {
            writer.WriteString("phase", p.Phase);
            writer.WriteNumber("total_step", p.TotalStep);
            writer.WriteNumber("total_tokens", p.TotalTokens);
        }
        writer.WriteNumber("step", line.Step);
        writer.WriteNumber("tokens", line.Tokens);
        writer.WriteNumber("loss", line.Loss);
        writer.WriteNumber("lr", line.Lr);
        if (line.Lrs is { } lrs)
        {
            writer.WriteStartObject("lrs");
            foreach (var g in lrs) writer.WriteNumber(g.Name, g.Value);
            writer.WriteEndObject();
        }
        foreach (var e in line.Extras) writer.WriteNumber(e.Name, e.Value);
        if (line.GradNorm is double norm) writer.WriteNumber("grad_norm", norm);
        WriteArray(writer, "layer_losses", line.LayerLosses);
        if (line.ValLoss is double valLoss) writer.WriteNumber("val_loss", valLoss);
        foreach (var e in line.ValExtras) writer.WriteNumber(ValPrefix + e.Name, e.Value);
        WriteArray(writer, "val_layer_losses", line.ValLayerLosses);
        writer.WriteNumber("elapsed_s", line.ElapsedS);
        writer.WriteNumber("tokens_per_s", line.TokensPerS);
        writer.WriteNumber("rss_mb", line.RssMb);
        writer.WriteEndObject();
    }

    static void WriteArray(Utf8JsonWriter writer, string name, IReadOnlyList<double>? values)
    {
        if (values is null) return;
        writer.WriteStartArray(name);
        foreach (var v in values) writer.WriteNumberValue(v);
        writer.WriteEndArray();
    }
}

/// <summary>
/// A value that a format writes as one item or as a list (HF's eos_token_id: 2 or [128001, 128009]; fla's attn: an
/// object or a list of them): read either form into a list; written as the item when there is one, else the list.
/// </summary>
public sealed class OneOrManyConverter<T> : JsonConverter<IReadOnlyList<T>>
{
    public override IReadOnlyList<T> Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        var item = (JsonTypeInfo<T>)options.GetTypeInfo(typeof(T));
        if (reader.TokenType != JsonTokenType.StartArray) return [JsonSerializer.Deserialize(ref reader, item)!];
        var items = new List<T>();
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray) items.Add(JsonSerializer.Deserialize(ref reader, item)!);
        return items;
    }

    public override void Write(Utf8JsonWriter writer, IReadOnlyList<T> value, JsonSerializerOptions options)
    {
        var item = (JsonTypeInfo<T>)options.GetTypeInfo(typeof(T));
        if (value.Count == 1) { JsonSerializer.Serialize(writer, value[0], item); return; }
        writer.WriteStartArray();
        foreach (var v in value) JsonSerializer.Serialize(writer, v, item);
        writer.WriteEndArray();
    }
}

/// <summary>
/// A recipe's integer range: <c>[min, max]</c>, or one number for both (whole or not: a fraction is cut toward zero, as
/// recipes always were). Written as <c>[min, max]</c>.
/// </summary>
internal sealed class IntRangeConverter : JsonConverter<HybridDistill.Data.IntRange>
{
    public override HybridDistill.Data.IntRange Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType == JsonTokenType.Number) { int n = (int)reader.GetDouble(); return new(n, n); }
        if (reader.TokenType != JsonTokenType.StartArray) throw new JsonException($"got a {reader.TokenType}");
        var ends = new List<int>(2);
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
            ends.Add(reader.TokenType == JsonTokenType.Number ? (int)reader.GetDouble() : throw new JsonException($"got a {reader.TokenType} in the list"));
        return ends.Count == 2 ? new(ends[0], ends[1]) : throw new JsonException($"got {ends.Count} numbers");
    }

    public override void Write(Utf8JsonWriter writer, HybridDistill.Data.IntRange value, JsonSerializerOptions options)
    {
        writer.WriteStartArray();
        writer.WriteNumberValue(value.Min);
        writer.WriteNumberValue(value.Max);
        writer.WriteEndArray();
    }
}

/// <summary>eval.json's "tasks" object (keys name the tasks), entry by entry through the typed records of Evaluation/EvalFile.cs.</summary>
internal sealed class EvalTaskResultsConverter : JsonConverter<EvalTaskResults>
{
    const string McPrefix = "mc/";

    public override EvalTaskResults Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType != JsonTokenType.StartObject) throw new JsonException("\"tasks\" must be an object {task: results}.");
        PplEntry? ppl = null;
        AgreeEntry? agree = null;
        var recall = new List<RecallTaskEntry>();
        var mc = new List<McTaskEntry>();
        var types = ArtifactJson.Types;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            string key = reader.GetString()!;
            reader.Read();
            if (key == EvalTasks.Ppl) ppl = JsonSerializer.Deserialize(ref reader, types.PplEntry);
            else if (key == EvalTasks.Agree) agree = JsonSerializer.Deserialize(ref reader, types.AgreeEntry);
            else if (key.StartsWith(McPrefix, StringComparison.Ordinal))
                mc.Add(new McTaskEntry(key[McPrefix.Length..], JsonSerializer.Deserialize(ref reader, types.McEntry)!));
            else recall.Add(new RecallTaskEntry(key, JsonSerializer.Deserialize(ref reader, types.IReadOnlyDictionaryStringRecallLengthEntry)!));
        }
        return new EvalTaskResults(ppl, agree, recall, mc);
    }

    public override void Write(Utf8JsonWriter writer, EvalTaskResults value, JsonSerializerOptions options)
    {
        var types = ArtifactJson.Types;
        writer.WriteStartObject();
        if (value.Ppl is { } ppl) { writer.WritePropertyName(EvalTasks.Ppl); JsonSerializer.Serialize(writer, ppl, types.PplEntry); }
        if (value.Agree is { } agree) { writer.WritePropertyName(EvalTasks.Agree); JsonSerializer.Serialize(writer, agree, types.AgreeEntry); }
        foreach (var task in value.Recall)
        {
            writer.WritePropertyName(task.Task);
            JsonSerializer.Serialize(writer, task.ByLength, types.IReadOnlyDictionaryStringRecallLengthEntry);
        }
        foreach (var m in value.Mc)
        {
            writer.WritePropertyName(McPrefix + m.Name);
            JsonSerializer.Serialize(writer, m.Result, types.McEntry);
        }
        writer.WriteEndObject();
    }
}
