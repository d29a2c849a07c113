using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using HybridDistill.Benchmarks;
using HybridDistill.Checkpoints;
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

    public static JsonObject ToNode<T>(T value, JsonTypeInfo<T> type) => JsonSerializer.SerializeToNode(value, type)!.AsObject();

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
