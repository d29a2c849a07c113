using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using HybridDistill.Checkpoints;
using HybridDistill.Config;

namespace HybridDistill.Selection;

/// <summary>One logged point of a scoring run's loss curve: training tokens seen so far and the KL (nats/position) there.</summary>
public readonly record struct CurvePoint(long Tokens, double Kl);

/// <summary>
/// scores.json: how important each layer is to keep as softmax, as one method measured it.
/// <code>
/// { "method": "ppl", "num_layers": 5,
///   "scores":  [0.12, 0.80, ...],          // one per layer; higher = keep as softmax
///   "ranking": [1, 3, 0, ...],             // layer indices, most important first (ties: lower index first)
///   "layouts": {"1": [4], "2": [2, 4]},    // optional: per-K choices for methods whose picks are not nested
///   "details": [{...}, ...],               // optional: per-layer measurements (e.g. nll, ppl)
///   "curves":  {"3": [{"tokens": 4096, "kl": 1.2}, ...]},   // optional: per-layer KL curves (kl, removal)
///   "provenance": {"teacher": {...}, "data": {...}, "budget_tokens": ..., "seed": ..., ...} }
/// </code>
/// </summary>
public sealed record LayerScores
{
    public const string FileName = "scores.json";

    public required string Method { get; init; }
    public required int NumLayers { get; init; }
    public required IReadOnlyList<double> Scores { get; init; }
    public required IReadOnlyList<int> Ranking { get; init; }
    /// <summary>K -> the softmax layers for that K, when a method's choices are not the top-K of one ranking (uniform).</summary>
    public IReadOnlyDictionary<int, IReadOnlyList<int>>? Layouts { get; init; }
    /// <summary>Per-layer measurements behind the score (index = layer); null entries for layers with none.</summary>
    public IReadOnlyList<JsonObject?>? Details { get; init; }
    /// <summary>Per-layer loss curves (layer -> points), for methods that train per candidate.</summary>
    public IReadOnlyDictionary<int, IReadOnlyList<CurvePoint>>? Curves { get; init; }
    public JsonObject Provenance { get; init; } = new();

    /// <summary>Scores and ranking from per-layer scores: descending score, ties to the lower layer index.</summary>
    public static LayerScores FromScores(string method, IReadOnlyList<double> scores, JsonObject? provenance = null)
    {
        if (scores.Count == 0) throw new ArgumentException("no layers to score", nameof(scores));
        if (scores.Any(double.IsNaN)) throw new InputException($"method {method} produced a NaN score: check the data and the teacher.");
        return new LayerScores
        {
            Method = method, NumLayers = scores.Count, Scores = scores.ToArray(), Ranking = RankingOf(scores),
            Provenance = provenance ?? new JsonObject(),
        };
    }

    /// <summary>Layer indices by descending score; equal scores keep ascending layer order.</summary>
    public static int[] RankingOf(IReadOnlyList<double> scores) =>
        Enumerable.Range(0, scores.Count).OrderByDescending(l => scores[l]).ThenBy(l => l).ToArray();

    // ---- writing -------------------------------------------------------------------------------------

    public JsonObject ToJson()
    {
        var json = new JsonObject
        {
            ["method"] = Method,
            ["num_layers"] = NumLayers,
            ["scores"] = new JsonArray(Scores.Select(s => (JsonNode)s).ToArray()),
            ["ranking"] = new JsonArray(Ranking.Select(l => (JsonNode)l).ToArray()),
        };
        if (Layouts is not null)
        {
            var layouts = new JsonObject();
            foreach (var (k, layers) in Layouts.OrderBy(p => p.Key))
                layouts[k.ToString(CultureInfo.InvariantCulture)] = new JsonArray(layers.Select(l => (JsonNode)l).ToArray());
            json["layouts"] = layouts;
        }
        if (Details is not null) json["details"] = new JsonArray(Details.Select(d => d?.DeepClone()).ToArray());
        if (Curves is not null)
        {
            var curves = new JsonObject();
            foreach (var (layer, points) in Curves.OrderBy(p => p.Key))
                curves[layer.ToString(CultureInfo.InvariantCulture)] = CurveToJson(points);
            json["curves"] = curves;
        }
        json["provenance"] = Provenance.DeepClone();
        return json;
    }

    public static JsonArray CurveToJson(IEnumerable<CurvePoint> points) =>
        new(points.Select(p => (JsonNode)new JsonObject { ["tokens"] = p.Tokens, ["kl"] = p.Kl }).ToArray());

    /// <summary>Writes the file atomically (PATH.tmp then rename).</summary>
    public void Save(string path)
    {
        var text = ToJson().ToJsonString(JsonOptions.Indented);
        AtomicFile.WriteAllBytes(path, System.Text.Encoding.UTF8.GetBytes(text));
    }

    // ---- reading -------------------------------------------------------------------------------------

    /// <summary>Reads scores.json (or DIR/scores.json), checking that scores, ranking and layouts fit num_layers.</summary>
    public static LayerScores Load(string path)
    {
        if (Directory.Exists(path)) path = Path.Combine(path, FileName);
        if (!File.Exists(path)) throw new InputException($"{path}: scores file not found (write one with hybrid score).");
        JsonNode? node;
        try { node = JsonNode.Parse(File.ReadAllText(path)); }
        catch (JsonException e) { throw new InputException($"{path}: not valid JSON ({e.Message}).", e); }
        if (node is not JsonObject json) throw new InputException($"{path}: expected a JSON object.");
        try { return FromJson(json); }
        catch (InputException e) { throw new InputException($"{path}: {e.Message}", e); }
    }

    public static LayerScores FromJson(JsonObject json)
    {
        string method = Get<string>(json, "method");
        int numLayers = Get<int>(json, "num_layers");
        if (numLayers < 1) throw new InputException($"\"num_layers\" must be at least 1, got {numLayers}.");
        var scores = Array<double>(json, "scores");
        if (scores.Length != numLayers) throw new InputException($"\"scores\" has {scores.Length} entries but num_layers is {numLayers}.");
        var ranking = Array<int>(json, "ranking");
        if (ranking.Length != numLayers || ranking.OrderBy(l => l).Where((l, i) => l != i).Any())
            throw new InputException($"\"ranking\" must list every layer 0..{numLayers - 1} once, got [{string.Join(", ", ranking)}].");

        Dictionary<int, IReadOnlyList<int>>? layouts = null;
        if (json["layouts"] is JsonObject layoutsJson)
        {
            layouts = [];
            foreach (var (key, value) in layoutsJson)
            {
                if (!int.TryParse(key, NumberStyles.None, CultureInfo.InvariantCulture, out int k) || k < 1 || k > numLayers)
                    throw new InputException($"\"layouts\" key \"{key}\" is not a layer count between 1 and {numLayers}.");
                var layers = ArrayOf<int>(value, $"layouts.{key}");
                if (layers.Length != k || layers.Distinct().Count() != k || layers.Any(l => l < 0 || l >= numLayers))
                    throw new InputException($"\"layouts\".\"{key}\" must list {k} distinct layers in 0..{numLayers - 1}, got [{string.Join(", ", layers)}].");
                layouts[k] = layers.Order().ToArray();
            }
        }
        else if (json["layouts"] is not null) throw new InputException("\"layouts\" must be an object {\"K\": [layers]}.");

        List<JsonObject?>? details = null;
        if (json["details"] is JsonArray detailsJson)
        {
            if (detailsJson.Count != numLayers) throw new InputException($"\"details\" has {detailsJson.Count} entries but num_layers is {numLayers}.");
            details = detailsJson.Select(d => d is null ? null : d as JsonObject ?? throw new InputException("\"details\" entries must be objects or null.")).Select(d => (JsonObject?)d?.DeepClone()).ToList();
        }

        Dictionary<int, IReadOnlyList<CurvePoint>>? curves = null;
        if (json["curves"] is JsonObject curvesJson)
        {
            curves = [];
            foreach (var (key, value) in curvesJson)
            {
                if (!int.TryParse(key, NumberStyles.None, CultureInfo.InvariantCulture, out int layer) || layer >= numLayers)
                    throw new InputException($"\"curves\" key \"{key}\" is not a layer in 0..{numLayers - 1}.");
                curves[layer] = CurveFromJson(value, $"curves.{key}");
            }
        }

        return new LayerScores
        {
            Method = method, NumLayers = numLayers, Scores = scores, Ranking = ranking, Layouts = layouts,
            Details = details, Curves = curves, Provenance = json["provenance"] is JsonObject p ? (JsonObject)p.DeepClone() : new JsonObject(),
        };
    }

    public static CurvePoint[] CurveFromJson(JsonNode? node, string where)
    {
        if (node is not JsonArray array) throw new InputException($"\"{where}\" must be a list of {{\"tokens\": N, \"kl\": x}}.");
        try
        {
            return array.Select(p => p is JsonObject o
                ? new CurvePoint(o["tokens"]!.GetValue<long>(), o["kl"]!.GetValue<double>())
                : throw new InputException($"\"{where}\" entries must be objects {{\"tokens\": N, \"kl\": x}}.")).ToArray();
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException or NullReferenceException)
        {
            throw new InputException($"\"{where}\" entries need a whole \"tokens\" and a numeric \"kl\".", e);
        }
    }

    static T Get<T>(JsonObject json, string key)
    {
        if (json[key] is not JsonValue value) throw new InputException($"missing required key \"{key}\".");
        try { return value.GetValue<T>(); }
        catch (Exception e) when (e is InvalidOperationException or FormatException)
        {
            throw new InputException($"\"{key}\" should be {(typeof(T) == typeof(string) ? "a string" : "a number")}.", e);
        }
    }

    static T[] Array<T>(JsonObject json, string key) =>
        json[key] is null ? throw new InputException($"missing required key \"{key}\".") : ArrayOf<T>(json[key], key);

    static T[] ArrayOf<T>(JsonNode? node, string key)
    {
        if (node is not JsonArray array) throw new InputException($"\"{key}\" should be a list of numbers.");
        try { return array.Select(n => n!.GetValue<T>()).ToArray(); }
        catch (Exception e) when (e is InvalidOperationException or FormatException or NullReferenceException)
        {
            throw new InputException($"\"{key}\" should be a list of {(typeof(T) == typeof(int) ? "layer indices (integers)" : "numbers")}.", e);
        }
    }
}
