using System.Diagnostics;
using HybridDistill.Models;
using static TorchSharp.torch;

namespace HybridDistill.Evaluation;

/// <summary>One measurement: a model decoding one token at a given context length.</summary>
public sealed record DecodeRow(string Model, int Context, double MsPerToken, long CacheBytes, long WeightBytes)
{
    /// <summary>Bytes a decode step must read at least: every weight once plus the whole cache.</summary>
    public long BytesPerToken => WeightBytes + CacheBytes;
}

/// <summary>
/// Decode latency and cache size against context length for several models at once. Each model keeps its
/// own state; contexts are reached by prefilling further, and at each context the models' timings are
/// interleaved (A B C A B C ...) so machine noise hits them alike.
/// </summary>
public static class DecodeBenchmark
{
    public static IReadOnlyList<DecodeRow> Run(IReadOnlyList<(string Name, HybridCausalLM Model)> models, IReadOnlyList<int> contexts,
        int stepsPerRound = 8, int rounds = 3, IProgress<string>? progress = null, CancellationToken cancellation = default)
    {
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
                var times = new double[models.Count];
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
                        Measure.Synchronize(device);                                             // item() below syncs each step
                        var sw = Stopwatch.StartNew();
                        for (int i = 0; i < stepsPerRound; i++)
                        {
                            using var logits = models[m].Model.Forward(token, states[m]);
                            using var next = logits[0, -1].argmax();
                            _ = next.item<long>();
                        }
                        times[m] += sw.Elapsed.TotalMilliseconds;
                    }
                for (int m = 0; m < models.Count; m++)
                    rows.Add(new DecodeRow(models[m].Name, context, times[m] / (rounds * stepsPerRound), cacheBytes[m], WeightBytes(models[m].Model)));
            }
            return rows;
        }
        finally
        {
            foreach (var s in states) s.Dispose();
        }
    }

    /// <summary>Bytes of the weights a decode step reads: every parameter, except an untied embedding matrix (one row of it is read).</summary>
    public static long WeightBytes(HybridCausalLM model)
    {
        long all = model.parameters().Sum(p => p.numel());
        long unread = model.Config.TieWordEmbeddings ? 0 : model.Stack.Embeddings.weight!.numel();
        return (all - unread) * sizeof(float);
    }
}
