using HybridDistill.Generation;
using HybridDistill.Models;
using static TorchSharp.torch;

namespace HybridDistill.Benchmarks;

/// <summary>Resident memory during a long generation: what it grew by after the warm-up, against the cache it added.
/// The resident size is host memory: on a CUDA device the cache lives in GPU memory and does not show in it.</summary>
public sealed record MemoryResult(int Tokens, int WarmupTokens, long RssAfterWarmup, long RssAtEnd, long CacheBytesAfterWarmup, long CacheBytesAtEnd)
{
    public long RssGrowth => RssAtEnd - RssAfterWarmup;
    public long CacheGrowth => CacheBytesAtEnd - CacheBytesAfterWarmup;
    /// <summary>Growth not explained by the cache: should stay small (tens of MB) for a leak-free loop.</summary>
    public long Excess => RssGrowth - CacheGrowth;
}

public static class MemoryBenchmark
{
    /// <summary>Samples <paramref name="tokens"/> tokens from BOS (temperature 1, so no early stop matters) one step at a time.</summary>
    public static MemoryResult Decode(HybridCausalLM model, int tokens, int warmupTokens = 100, IProgress<int>? progress = null)
    {
        using var inference = inference_mode();
        using var state = model.CreateState(1, tokens + 1);
        var sampler = new Sampler(new SamplingOptions { Temperature = 1.0, Seed = 0 });
        var device = model.LmHeadWeight.device;
        long next = model.Config.BosTokenId ?? 1;
        long rssWarm = 0, cacheWarm = 0;
        for (int i = 0; i < tokens; i++)
        {
            using (var scope = NewDisposeScope())
            {
                var logits = model.Forward(tensor(new[] { next }, device: device).unsqueeze(0), state);   // [1, 1, V]
                next = sampler.Next(logits[0, -1].cpu().data<float>().ToArray());                   // the sampler reads CPU memory
            }
            if (i + 1 == warmupTokens)
            {
                GC.Collect();
                rssWarm = ProcessMemory.ResidentBytes();
                cacheWarm = state.CacheBytes;
            }
            if ((i + 1) % 100 == 0) progress?.Report(i + 1);
        }
        GC.Collect();
        return new MemoryResult(tokens, warmupTokens, rssWarm, ProcessMemory.ResidentBytes(), cacheWarm, state.CacheBytes);
    }
}
