using System.Text.Json.Serialization;
using System.Diagnostics;
using HybridDistill.Artifacts;
using HybridDistill.Models;
using static TorchSharp.torch;

namespace HybridDistill.Benchmarks;

/// <summary>One measurement: a model decoding one token at a given context length.</summary>
public sealed record DecodeRow(string Model, int Context, double MsPerToken, long CacheBytes, long WeightBytes)
{
    /// <summary>Bytes a decode step must read at least: every weight once plus the whole cache.</summary>
    public long BytesPerToken => WeightBytes + CacheBytes;
}

/// <summary>
/// Decode latency and cache size against context length for several models at once. Each model keeps its
/// own state; contexts are reached by prefilling further, and at each context the models' timings are
/// interleaved (A B C A B C ...) so machine noise hits them alike. Each step is timed on its own and a row reports the
/// median step (rounds x steps of them): on the shared 2-core host a few steps take several times the others, and a
/// mean would report those.
/// </summary>
public static class DecodeBenchmark
{
    /// <summary>
    /// The default lineup on a random-weight teacher of <paramref name="config"/> (seed 0): the teacher, "hybrid-25"
    /// (<see cref="BenchmarkLayouts.QuarterHybrid"/>) and "hybrid-12.5" (softmax at the last layer only), each hybrid
    /// built from the teacher by <see cref="StudentBuilder"/>. The caller disposes the models.
    /// </summary>
    public static IReadOnlyList<(string Name, HybridCausalLM Model)> DefaultLineup(Config.ModelConfig config)
    {
        var teacher = new HybridCausalLM(config);
        teacher.InitializeWeights(seed: 0);
        int layers = config.NumHiddenLayers;
        var eighth = Enumerable.Range(0, layers).Select(l => l == layers - 1 ? Config.LayerKinds.Softmax : Config.LayerKinds.GatedDeltaNet).ToArray();
        return
        [
            ("teacher", teacher),
            ("hybrid-25", StudentBuilder.Build(teacher, BenchmarkLayouts.QuarterHybrid(layers))),
            ("hybrid-12.5", StudentBuilder.Build(teacher, eighth)),
        ];
    }

    public static IReadOnlyList<DecodeRow> Run(IReadOnlyList<(string Name, HybridCausalLM Model)> models, IReadOnlyList<int> contexts,
        int stepsPerRound = 8, int rounds = 3, IProgress<string>? progress = null, CancellationToken cancellation = default)
    {
        if (stepsPerRound < 1 || rounds < 1)
            throw new ArgumentOutOfRangeException(stepsPerRound < 1 ? nameof(stepsPerRound) : nameof(rounds), "each row is the median of at least one timed step");
        int vocab = models.Min(m => m.Model.Config.VocabSize);
        var sorted = contexts.OrderBy(c => c).ToArray();
        long capacity = sorted[^1] + (long)sorted.Length * (stepsPerRound * rounds + 1) + 1;
        using var inference = inference_mode();
        var states = models.Select(m => m.Model.CreateState(1, capacity)).ToArray();
        try
        {
            var rows = new List<DecodeRow>();
            var device = models[0].Model.LmHeadWeight.device;                                    // the models share one device
            manual_seed(0);
            using var stream = randint(0, vocab, [1, capacity], dtype: int64, device: device);        // one token stream for all models
            using var token = tensor(new long[] { 1 }, device: device).unsqueeze(0);                  // [1, 1]
            foreach (int context in sorted)
            {
                var steps = models.Select(_ => new List<double>()).ToArray();                        // ms of each timed step
                for (int m = 0; m < models.Count; m++)
                {
                    cancellation.ThrowIfCancellationRequested();
                    progress?.Report($"{models[m].Name}: prefill to {context}");
                    long position = states[m].Position;
                    if (context > position)
                        using (var _ = models[m].Model.Forward(stream.narrow(1, position, context - position), states[m])) { }
                    using (var _ = models[m].Model.Forward(token, states[m])) { }                    // warm-up step
                }
                var cacheBytes = states.Select(s => s.CacheBytes).ToArray();
                for (int r = 0; r < rounds; r++)
                    for (int m = 0; m < models.Count; m++)
                    {
                        cancellation.ThrowIfCancellationRequested();
                        Measure.Synchronize(device);                                             // then TimeStep's item() syncs each step
                        for (int i = 0; i < stepsPerRound; i++) steps[m].Add(TimeStep(models[m].Model, token, states[m]));
                    }
                for (int m = 0; m < models.Count; m++)
                    rows.Add(new DecodeRow(models[m].Name, context, Measure.Median(steps[m]), cacheBytes[m], WeightBytes(models[m].Model)));
            }
            return rows;
        }
        finally
        {
            foreach (var s in states) s.Dispose();
        }
    }

    /// <summary>Milliseconds of one greedy decoding step: the forward of <paramref name="token"/> [1, 1] on <paramref name="state"/>,
    /// the argmax of its logits, and the item() that waits for them (on CUDA too).</summary>
    internal static double TimeStep(HybridCausalLM model, Tensor token, ModelState state)
    {
        var sw = Stopwatch.StartNew();
        using var logits = model.Forward(token, state);
        using var next = logits[0, -1].argmax();
        _ = next.item<long>();
        return sw.Elapsed.TotalMilliseconds;
    }

    /// <summary>Bytes of the weights a decode step reads: every parameter, except an untied embedding matrix (one row of it is read).</summary>
    public static long WeightBytes(HybridCausalLM model)
    {
        long all = model.parameters().Sum(p => p.numel());
        long unread = model.Config.TieWordEmbeddings ? 0 : model.Stack.Embeddings.weight!.numel();
        return (all - unread) * sizeof(float);
    }
}

/// <summary>
/// The comparison's bench_decode.json: <c>{"reference": model, "k": {model: K}, "rows": [{"model", "context",
/// "ms_per_token", "cache_bytes", "weight_bytes"}]}</c>; a plain decode benchmark's file (bench decode) has rows and
/// "machine" (the same run's <see cref="MachineLimits"/>) instead of reference and k.
/// </summary>
public sealed record DecodeBenchFile(
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Reference,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyDictionary<string, int>? K,
    [property: JsonRequired] IReadOnlyList<DecodeBenchRow> Rows,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] MachineLimits? Machine = null)
{
    /// <summary>A plain decode benchmark's file (bench decode): its rows and the machine's ceilings of the same run.</summary>
    public static DecodeBenchFile Of(IReadOnlyList<DecodeRow> rows, MachineLimits? machine = null) =>
        new(null, null, rows.Select(r => new DecodeBenchRow(r.Model, r.Context, r.MsPerToken, r.CacheBytes, r.WeightBytes)).ToArray(), machine);

    /// <summary>The file's text (indented JSON).</summary>
    public string ToJson() => System.Text.Encoding.UTF8.GetString(ArtifactJson.Bytes(this, ArtifactJson.Types.DecodeBenchFile));
}

public sealed record DecodeBenchRow(
    [property: JsonRequired] string Model, [property: JsonRequired] int Context, [property: JsonRequired] double MsPerToken,
    [property: JsonRequired] long CacheBytes, long WeightBytes);
