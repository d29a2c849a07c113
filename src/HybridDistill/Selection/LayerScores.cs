using System.Text.Json.Serialization;
using HybridDistill.Artifacts;

namespace HybridDistill.Selection;

/// <summary>One logged point of a scoring run's loss curve: training tokens seen so far and the KL (nats/position) there.</summary>
public readonly record struct CurvePoint([property: JsonRequired] long Tokens, [property: JsonRequired] double Kl);

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
    public IReadOnlyList<OpaqueJson?>? Details { get; init; }
    /// <summary>Per-layer loss curves (layer -> points), for methods that train per candidate.</summary>
    public IReadOnlyDictionary<int, IReadOnlyList<CurvePoint>>? Curves { get; init; }
    public OpaqueJson Provenance { get; init; } = OpaqueJson.EmptyObject;

    /// <summary>Scores and ranking from per-layer scores: descending score, ties to the lower layer index.</summary>
    public static LayerScores FromScores(string method, IReadOnlyList<double> scores, OpaqueJson? provenance = null)
    {
        if (scores.Count == 0) throw new ArgumentException("no layers to score", nameof(scores));
        if (scores.Any(double.IsNaN)) throw new InputException($"method {method} produced a NaN score: check the data and the teacher.");
        return new LayerScores
        {
            Method = method, NumLayers = scores.Count, Scores = scores.ToArray(), Ranking = RankingOf(scores),
            Provenance = provenance ?? OpaqueJson.EmptyObject,
        };
    }

    /// <summary>Layer indices by descending score; equal scores keep ascending layer order.</summary>
    public static int[] RankingOf(IReadOnlyList<double> scores) =>
        Enumerable.Range(0, scores.Count).OrderByDescending(l => scores[l]).ThenBy(l => l).ToArray();

    // ---- the file ------------------------------------------------------------------------------------

    /// <summary>scores.json's content; the optional parts are left out when null.</summary>
    public LayerScoresFile ToFile() => new(Method, NumLayers, Scores, Ranking,
        Layouts is null ? null : new SortedDictionary<int, IReadOnlyList<int>>(Layouts.ToDictionary()),
        Details?.ToArray(),
        Curves is null ? null : new SortedDictionary<int, IReadOnlyList<CurvePoint>>(Curves.ToDictionary()),
        Provenance);

    /// <summary>scores.json's text, as <see cref="Save"/> writes it (the CLI's --json).</summary>
    public string ToJsonText() => System.Text.Encoding.UTF8.GetString(ArtifactJson.Bytes(ToFile(), ArtifactJson.Types.LayerScoresFile));

    /// <summary>Writes the file atomically (PATH.tmp then rename).</summary>
    public void Save(string path) => ArtifactJson.Write(path, ToFile(), ArtifactJson.Types.LayerScoresFile);

    /// <summary>Reads scores.json (or DIR/scores.json), checking that scores, ranking and layouts fit num_layers.</summary>
    public static LayerScores Load(string path)
    {
        if (Directory.Exists(path)) path = Path.Combine(path, FileName);
        var file = ArtifactJson.Read(path, ArtifactJson.Types.LayerScoresFile, "a scores file", "write one with hybrid score");
        try { return FromFile(file); }
        catch (InputException e) { throw new InputException($"{path}: {e.Message}", e); }
    }

    /// <summary>The scores of a file, after checking that its parts agree with num_layers.</summary>
    public static LayerScores FromFile(LayerScoresFile file)
    {
        int numLayers = file.NumLayers;
        if (numLayers < 1) throw new InputException($"\"num_layers\" must be at least 1, got {numLayers}.");
        if (file.Scores.Count != numLayers) throw new InputException($"\"scores\" has {file.Scores.Count} entries but num_layers is {numLayers}.");
        var ranking = file.Ranking;
        if (ranking.Count != numLayers || ranking.Order().Where((l, i) => l != i).Any())
            throw new InputException($"\"ranking\" must list every layer 0..{numLayers - 1} once, got [{string.Join(", ", ranking)}].");
        Dictionary<int, IReadOnlyList<int>>? layouts = null;
        if (file.Layouts is not null)
        {
            layouts = [];
            foreach (var (k, layers) in file.Layouts)
            {
                if (k < 1 || k > numLayers) throw new InputException($"\"layouts\" key \"{k}\" is not a layer count between 1 and {numLayers}.");
                if (layers.Count != k || layers.Distinct().Count() != k || layers.Any(l => l < 0 || l >= numLayers))
                    throw new InputException($"\"layouts\".\"{k}\" must list {k} distinct layers in 0..{numLayers - 1}, got [{string.Join(", ", layers)}].");
                layouts[k] = layers.Order().ToArray();
            }
        }
        if (file.Details is not null && file.Details.Count != numLayers)
            throw new InputException($"\"details\" has {file.Details.Count} entries but num_layers is {numLayers}.");
        if (file.Curves?.Keys.FirstOrDefault(l => l < 0 || l >= numLayers, -1) is int bad and >= 0)
            throw new InputException($"\"curves\" key \"{bad}\" is not a layer in 0..{numLayers - 1}.");
        return new LayerScores
        {
            Method = file.Method, NumLayers = numLayers, Scores = file.Scores.ToArray(), Ranking = ranking.ToArray(), Layouts = layouts,
            Details = file.Details?.ToList(), Curves = file.Curves?.ToDictionary(), Provenance = file.Provenance ?? OpaqueJson.EmptyObject,
        };
    }
}

/// <summary>
/// scores.json as stored (see <see cref="LayerScores"/>). details and provenance are each method's own measurements
/// and inputs (its records, e.g. <see cref="KlLayerMetrics"/>, <see cref="KlProvenance"/>), carried as written.
/// </summary>
public sealed record LayerScoresFile(
    [property: JsonRequired] string Method, [property: JsonRequired] int NumLayers,
    [property: JsonRequired] IReadOnlyList<double> Scores, [property: JsonRequired] IReadOnlyList<int> Ranking,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyDictionary<int, IReadOnlyList<int>>? Layouts,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyList<OpaqueJson?>? Details,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyDictionary<int, IReadOnlyList<CurvePoint>>? Curves,
    OpaqueJson? Provenance);
