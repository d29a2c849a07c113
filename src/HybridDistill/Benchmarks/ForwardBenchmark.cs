using HybridDistill.Models;
using static TorchSharp.torch;

namespace HybridDistill.Benchmarks;

public sealed record ForwardBenchmarkResult(
    int Batch, int Tokens, double PrefillMs, double PrefillTokensPerSecond, double ModelGflopsPerToken,
    double AchievedGflops, double MatmulGflops, IReadOnlyDictionary<int, double> DecodeMsPerToken,
    IReadOnlyDictionary<int, long> DecodeCacheBytes, MachineLimits Limits, long DecodeWeightBytes)
{
    /// <summary>Prefill GFLOP/s over the same run's sgemm peak.</summary>
    public double FractionOfSgemmPeak => AchievedGflops / Limits.SgemmPeakGflops;

    /// <summary>The least time one decode step at <paramref name="context"/> can take: the weights it reads (all but the
    /// embedding table, of which it reads one row) and its cache, at the same run's read bandwidth.</summary>
    public double DecodeBoundMs(int context) => Limits.ReadMs(DecodeWeightBytes + DecodeCacheBytes[context]);

    /// <summary>Bandwidth bound over measured time: 1 means the step streams its bytes at the machine's read bandwidth.</summary>
    public double DecodeFractionOfBandwidth(int context) => DecodeBoundMs(context) / DecodeMsPerToken[context];
}

/// <summary>
/// Prefill throughput against the machine's sgemm peak, and decode latency at given context lengths against its read
/// bandwidth, both ceilings measured in the same run (<see cref="MachineLimits"/>).
/// FLOPs per token = 2 x (non-embedding parameters + lm_head parameters) + 2 x layers x d_model x T
/// (T = tokens in the sequence; logits at every position). A second, named reference: the model-shaped matmul
/// [B*T, d_model] x [d_model, intermediate_size] (allocating its output, as the model does), timed in the same process.
/// </summary>
public static class ForwardBenchmark
{
    public static double FlopsPerToken(HybridCausalLM model, long tokens)
    {
        var c = model.Config;
        long lmHead = (long)c.VocabSize * c.HiddenSize;
        long nonEmbedding = model.parameters().Sum(p => p.numel()) - model.Stack.Embeddings.weight!.numel();
        long weights = c.TieWordEmbeddings ? nonEmbedding + lmHead : nonEmbedding; // untied: lm_head already counted
        return 2.0 * weights + 2.0 * c.NumHiddenLayers * c.HiddenSize * tokens;
    }

    public static ForwardBenchmarkResult Run(HybridCausalLM model, int tokens, int batch, IReadOnlyList<int> decodeContexts,
        int decodeSteps = 16, IProgress<string>? progress = null, MachineLimits? limits = null)
    {
        var c = model.Config;
        if (tokens > c.MaxPositionEmbeddings)
            throw new InputException($"--tokens {tokens} exceeds the model's context ({c.MaxPositionEmbeddings}).");
        using var inference = inference_mode();
        var device = model.LmHeadWeight.device;
        manual_seed(0);
        using var ids = randint(0, c.VocabSize, [batch, tokens], dtype: int64, device: device);

        if (limits is null)
        {
            progress?.Report("machine limits (sgemm peak, read bandwidth)");
            limits = MachineLimits.Measure(device);
        }
        progress?.Report("model-shape matmul");
        double matmul = Measure.MatmulGflops((long)batch * tokens, c.HiddenSize, c.IntermediateSize, device: device);
        progress?.Report($"prefill {batch}x{tokens}");
        double prefillMs = Measure.MedianMs(() => { using var logits = model.forward(ids); }, repeats: 3, warmup: 1, device);
        double flopsPerToken = FlopsPerToken(model, tokens);
        double achieved = flopsPerToken * batch * tokens / (prefillMs * 1e-3) / 1e9;

        var decodeMs = new SortedDictionary<int, double>();
        var cacheBytes = new SortedDictionary<int, long>();
        foreach (int context in decodeContexts)
        {
            if (context + decodeSteps > c.MaxPositionEmbeddings)
                throw new InputException($"decode context {context} + {decodeSteps} steps exceeds the model's context ({c.MaxPositionEmbeddings}).");
            progress?.Report($"decode at context {context}");
            (decodeMs[context], cacheBytes[context]) = DecodeMsPerToken(model, context, decodeSteps);
        }
        return new ForwardBenchmarkResult(batch, tokens, prefillMs, batch * tokens / (prefillMs * 1e-3), flopsPerToken / 1e9,
            achieved, matmul, decodeMs, cacheBytes, limits, DecodeWeightBytes(model));
    }

    /// <summary>Bytes of weights one decode step reads: every parameter but the embedding table (one row of it, which
    /// is negligible), plus the lm_head when it is tied to the embeddings.</summary>
    public static long DecodeWeightBytes(HybridCausalLM model)
    {
        var c = model.Config;
        long embedding = model.Stack.Embeddings.weight!.numel();
        long weights = model.parameters().Sum(p => p.numel()) - embedding + (c.TieWordEmbeddings ? embedding : 0);
        return weights * sizeof(float);
    }

    /// <summary>Prefills <paramref name="context"/> random tokens, then times one-token steps; returns the median step's ms and the cache bytes at that context.</summary>
    public static (double MsPerToken, long CacheBytes) DecodeMsPerToken(HybridCausalLM model, int context, int steps)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(steps, 1);
        using var inference = inference_mode();
        using var state = model.CreateState(1, context + steps + 1);
        var device = model.LmHeadWeight.device;
        manual_seed(1);
        using (var prompt = randint(0, model.Config.VocabSize, [1, context], dtype: int64, device: device))
        using (var _ = model.Forward(prompt, state)) { }
        long bytes = state.CacheBytes;
        using var token = tensor(new long[] { 1 }, device: device).unsqueeze(0);                           // [1, 1]
        using (var _ = model.Forward(token, state)) { }                                                  // warm-up step
        Measure.Synchronize(device);                                                                     // then TimeStep's item() syncs each step
        var times = Enumerable.Range(0, steps).Select(_ => DecodeBenchmark.TimeStep(model, token, state)).ToArray();
        return (Measure.Median(times), bytes);                                                           // as bench decode: the median step
    }
}
