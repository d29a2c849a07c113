using HybridDistill.Models;
using static TorchSharp.torch;

namespace HybridDistill.Generation;

/// <summary>Autoregressive generation, streamed token by token.</summary>
public static class TokenGenerator
{
    /// <summary>
    /// Yields new token ids after <paramref name="prompt"/> (which must not be empty: pass BOS alone to start
    /// from nothing). With <paramref name="useCache"/> the prompt is prefilled once and every new token costs
    /// one step through the <see cref="ModelState"/>; without it every token re-runs the full forward (the
    /// reference the cached path is tested against). Stops at a stop token, at MaxNewTokens, or at the
    /// model's context length.
    /// </summary>
    public static IEnumerable<int> Generate(HybridCausalLM model, IReadOnlyList<int> prompt, SamplingOptions options, bool useCache = true)
    {
        if (prompt.Count == 0) throw new ArgumentException("the prompt needs at least one token (BOS)", nameof(prompt));
        int context = model.Config.MaxPositionEmbeddings;
        if (prompt.Count >= context)
            throw new InputException($"the prompt has {prompt.Count} tokens; the model's context is {context}.");
        int budget = Math.Min(options.MaxNewTokens, context - prompt.Count);
        var sampler = new Sampler(options);
        var stop = options.StopTokens.ToHashSet();
        var device = model.LmHeadWeight.device;
        var tokens = prompt.Select(t => (long)t).ToList();

        using var inference = inference_mode();
        using var state = useCache ? model.CreateState(1, prompt.Count + budget) : null;
        long[] pending = tokens.ToArray();
        for (int n = 0; n < budget; n++)
        {
            int next;
            using (var scope = NewDisposeScope())
            {
                using var ids = tensor(useCache ? pending : tokens.ToArray(), device: device).unsqueeze(0); // [1, T]
                var logits = model.Forward(ids, state);                                                  // [1, T, V]
                var last = logits[0, -1].contiguous().to(CPU);
                next = sampler.Next(last.data<float>().ToArray());
            }
            if (stop.Contains(next)) yield break;
            tokens.Add(next);
            pending = [next];
            yield return next;
        }
    }
}
