using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json.Serialization;
using HybridDistill.Artifacts;

namespace HybridDistill.Selection;

/// <summary>One layer's measurement: its score (higher = keep softmax), what it was computed from, and an optional loss curve.</summary>
public sealed record LayerResult(int Layer, double Score, OpaqueJson Metrics, IReadOnlyList<CurvePoint>? Curve = null);

/// <summary>
/// What the per-layer runs of one scoring job share (the loaded teacher, the data, a baseline measurement).
/// Each layer's run is independent of the others, so layers can be split over processes (--layers) and a killed
/// job resumes where it stopped.
/// </summary>
public interface IPerLayerRun : IDisposable
{
    int NumLayers { get; }
    /// <summary>Identifies the job (teacher, data, settings, seed, budget); results from another job are never mixed in.</summary>
    OpaqueJson Provenance { get; }
    LayerResult ScoreLayer(int layer);
}

/// <summary>Layers finished so far; <see cref="Scores"/> is set once every layer has a result.</summary>
public sealed record PerLayerProgress(IReadOnlyList<int> Done, IReadOnlyList<int> Missing, IReadOnlyList<int> ComputedNow, LayerScores? Scores);

/// <summary>
/// A method scored one layer at a time (ppl; later kl, removal, ar). Each finished layer is written to
/// OUT/layers/layer-{l}.json (tmp + rename) before the next starts; a re-run skips layers whose file exists
/// and belongs to the same job (same run_key); when all L files exist they are merged into scores.json.
/// </summary>
public abstract class PerLayerScorer : ILayerScorer
{
    public abstract string Name { get; }
    public abstract string Description { get; }
    public abstract IReadOnlyList<ScorerSetting> Settings { get; }

    /// <summary>Loads what the layers share. Expensive shared work (a baseline pass) may be deferred to the first <see cref="IPerLayerRun.ScoreLayer"/>.</summary>
    protected abstract IPerLayerRun Open(ScoringContext context);

    /// <summary>Scores every layer (or fails naming the missing ones when --layers asked for a subset).</summary>
    public LayerScores Score(ScoringContext context)
    {
        var progress = Run(context);
        return progress.Scores ?? throw new InputException(
            $"--method {Name}: layers {string.Join(",", progress.Missing)} have no result yet; score them (--layers) and run hybrid score merge.");
    }

    /// <summary>Scores the requested layers that have no result yet; merges when all are done.</summary>
    public PerLayerProgress Run(ScoringContext context)
    {
        context.Accept(Settings);
        using var run = Open(context);
        var store = context.OutDir is null ? null : new LayerResultStore(context.OutDir);
        string runKey = LayerResultStore.RunKey(run.Provenance);
        var results = new Dictionary<int, (LayerResult Result, double Seconds)>();
        var computed = new List<int>();
        foreach (int layer in context.LayersToScore(run.NumLayers))
        {
            context.Cancellation.ThrowIfCancellationRequested();
            var earlier = store?.TryRead(layer, Name, run.NumLayers, runKey);
            if (earlier is not null)
            {
                context.Progress?.Report($"layer {layer}: done earlier (score {earlier.Score:G5}), skipped");
                continue;
            }
            context.Progress?.Report($"layer {layer}: scoring...");
            var watch = Stopwatch.StartNew();
            var result = run.ScoreLayer(layer);
            double seconds = watch.Elapsed.TotalSeconds;
            if (result.Layer != layer) throw new InvalidOperationException($"method {Name} scored layer {result.Layer} when asked for {layer}");
            store?.Write(result, Name, run.NumLayers, run.Provenance, runKey, seconds);
            results[layer] = (result, seconds);
            computed.Add(layer);
            context.Progress?.Report($"layer {layer}: score {result.Score:G5} ({seconds:F1} s)");
        }

        if (store is not null)
        {
            var done = store.FinishedLayers(run.NumLayers);
            var missing = Enumerable.Range(0, run.NumLayers).Except(done).ToArray();
            var scores = missing.Length == 0 ? store.Merge() : null;
            return new PerLayerProgress(done, missing, computed, scores);
        }
        var notDone = Enumerable.Range(0, run.NumLayers).Where(l => !results.ContainsKey(l)).ToArray();
        LayerScores? merged = notDone.Length == 0
            ? LayerResultStore.Combine(Name, Enumerable.Range(0, run.NumLayers).Select(l => results[l]).ToArray(), run.Provenance, runKey)
            : null;
        return new PerLayerProgress(results.Keys.Order().ToArray(), notDone, computed, merged);
    }
}

/// <summary>
/// OUT/layers/layer-{l}.json files, one per finished layer:
/// <c>{"method", "num_layers", "layer", "score", "metrics", "curve"?, "seconds", "run_key", "provenance"}</c>.
/// </summary>
public sealed class LayerResultStore(string outDir)
{
    public string OutDir { get; } = Path.GetFullPath(outDir);
    public string LayersDir => Path.Combine(OutDir, "layers");

    public string PathOf(int layer) => Path.Combine(LayersDir, $"layer-{layer}.json");

    /// <summary>sha256 of the provenance without file locations, so a moved teacher or data file still resumes.</summary>
    public static string RunKey(OpaqueJson provenance) =>
        Convert.ToHexStringLower(SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(provenance.WithoutKey("path").ToString())))[..16];

    public void Write(LayerResult result, string method, int numLayers, OpaqueJson provenance, string runKey, double seconds)
    {
        var file = new LayerResultFile(method, numLayers, result.Layer, result.Score, result.Metrics, result.Curve,
            Math.Round(seconds, 3), runKey, provenance);
        ArtifactJson.Write(PathOf(result.Layer), file, ArtifactJson.Types.LayerResultFile);
    }

    /// <summary>The earlier result for a layer, or null; a file from another job (method, layer count or run key) is an error, never reused.</summary>
    public LayerResult? TryRead(int layer, string method, int numLayers, string runKey)
    {
        var path = PathOf(layer);
        if (!File.Exists(path)) return null;
        var file = ReadFile(path);
        if (file.Method != method || file.NumLayers != numLayers || file.RunKey != runKey)
            throw new InputException($"{path}: a result of another scoring job ({file.Method}, {file.NumLayers} layers, run_key {file.RunKey}; " +
                                     $"this job: {method}, {numLayers} layers, run_key {runKey}: teacher, data, settings, seed or budget differ). " +
                                     $"Use another --out, or delete {LayersDir} to start over.");
        return file.Result;
    }

    /// <summary>Layers with a result file.</summary>
    public int[] FinishedLayers(int numLayers) =>
        Enumerable.Range(0, numLayers).Where(l => File.Exists(PathOf(l))).ToArray();

    /// <summary>Combines every layer file into scores (error listing missing layers, or files of different jobs).</summary>
    public LayerScores Merge()
    {
        if (!Directory.Exists(LayersDir)) throw new InputException($"{LayersDir}: no per-layer results here (hybrid score --out {OutDir} writes them).");
        var files = new List<LayerFile>();
        foreach (var path in Directory.EnumerateFiles(LayersDir, "layer-*.json"))
        {
            var name = Path.GetFileNameWithoutExtension(path);
            if (!int.TryParse(name.AsSpan("layer-".Length), NumberStyles.None, CultureInfo.InvariantCulture, out _)) continue;
            files.Add(ReadFile(path));
        }
        if (files.Count == 0) throw new InputException($"{LayersDir}: no layer-*.json files to merge.");
        var first = files[0];
        foreach (var f in files)
            if (f.Method != first.Method || f.NumLayers != first.NumLayers || f.RunKey != first.RunKey)
                throw new InputException($"{LayersDir}: layer files from different scoring jobs ({Describe(first)} vs {Describe(f)} in {f.Path}); keep one job's files per directory.");
        var byLayer = files.ToDictionary(f => f.Result.Layer);
        var missing = Enumerable.Range(0, first.NumLayers).Where(l => !byLayer.ContainsKey(l)).ToArray();
        if (missing.Length > 0)
            throw new InputException($"{LayersDir}: layers {string.Join(",", missing)} of 0..{first.NumLayers - 1} have no result yet " +
                                     $"(run hybrid score --method {first.Method} --layers {string.Join(",", missing)} --out {OutDir} with the same options).");
        var ordered = Enumerable.Range(0, first.NumLayers).Select(l => (byLayer[l].Result, byLayer[l].Seconds)).ToArray();
        return Combine(first.Method, ordered, first.Provenance, first.RunKey);
    }

    /// <summary>Scores, ranking, details (metrics + seconds) and curves from every layer's result, in layer order.</summary>
    public static LayerScores Combine(string method, IReadOnlyList<(LayerResult Result, double Seconds)> layers, OpaqueJson provenance, string runKey)
    {
        var scores = LayerScores.FromScores(method, layers.Select(l => l.Result.Score).ToArray());
        var details = layers.Select(l => (OpaqueJson?)l.Result.Metrics.With("seconds", Math.Round(l.Seconds, 3), ArtifactJson.Types.Double)).ToArray();
        var curves = layers.Where(l => l.Result.Curve is not null).ToDictionary(l => l.Result.Layer, l => l.Result.Curve!);
        var prov = provenance.With("run_key", runKey, ArtifactJson.Types.String);
        // kl: the stopping record (lock-step runs), and early stopping against the full budget for every K when
        // the curves reach it (full_budget=true, or early_stop=off)
        var first = details[0]!.As(ArtifactJson.Types.KlDetailView);
        if (first.LockStep is { } lockStep)
            prov = prov.With("early_stopping", lockStep.Without("rounds"));
        if (method == "kl" && curves.Count == layers.Count && KlScorer.RuleOf(provenance) is { } stop
            && first.BudgetTokens is long b && curves.Values.All(c => c.Count > 0 && c[^1].Tokens >= b))
            prov = prov.With("early_stop_vs_full", KlCurves.CompareReport(curves, stop.Rule, stop.Ks, b), ArtifactJson.Types.EarlyStopReport);
        return scores with { Details = details, Curves = curves.Count > 0 ? curves : null, Provenance = prov };
    }

    static string Describe(LayerFile f) => $"{f.Method}, {f.NumLayers} layers, run_key {f.RunKey}";

    sealed record LayerFile(string Path, string Method, int NumLayers, string RunKey, LayerResult Result, double Seconds, OpaqueJson Provenance);

    static LayerFile ReadFile(string path)
    {
        var file = ArtifactJson.Read(path, ArtifactJson.Types.LayerResultFile,
            "a layer result (needs method, num_layers, layer, score, run_key)", "delete it to score that layer again");
        var result = new LayerResult(file.Layer, file.Score, file.Metrics ?? OpaqueJson.EmptyObject, file.Curve);
        return new LayerFile(path, file.Method, file.NumLayers, file.RunKey, result, file.Seconds, file.Provenance ?? OpaqueJson.EmptyObject);
    }
}

/// <summary>OUT/layers/layer-{l}.json: one layer's result of a per-layer scoring job (curve left out when there is none).</summary>
public sealed record LayerResultFile(
    [property: JsonRequired] string Method, [property: JsonRequired] int NumLayers, [property: JsonRequired] int Layer,
    [property: JsonRequired] double Score, OpaqueJson? Metrics,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyList<CurvePoint>? Curve,
    double Seconds, [property: JsonRequired] string RunKey, OpaqueJson? Provenance);

/// <summary>The parts of a layer's details that merging reads (kl's): the lock-step record and the budget per run.</summary>
public sealed record KlDetailView(long? BudgetTokens, OpaqueJson? LockStep);
