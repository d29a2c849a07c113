namespace HybridDistill.Generation;

/// <summary>How to pick each next token. Temperature 0 is greedy (argmax).</summary>
public sealed record SamplingOptions
{
    public double Temperature { get; init; }
    /// <summary>Keep only the k most likely tokens (0: all).</summary>
    public int TopK { get; init; }
    /// <summary>Keep the smallest set of most likely tokens whose probability reaches p (1: all).</summary>
    public double TopP { get; init; } = 1.0;
    public int Seed { get; init; }
    public int MaxNewTokens { get; init; } = 256;
    /// <summary>Generation ends (without emitting it) when one of these is produced.</summary>
    public IReadOnlyCollection<int> StopTokens { get; init; } = [];
}

/// <summary>Picks a token from one position's logits; seeded, so a run is reproducible.</summary>
public sealed class Sampler
{
    private readonly SamplingOptions options;
    private readonly Random random;

    public Sampler(SamplingOptions options)
    {
        if (options.Temperature < 0) throw new InputException("--temperature must be >= 0 (0 means greedy).");
        if (options.TopP <= 0 || options.TopP > 1) throw new InputException("--top-p must be in (0, 1].");
        if (options.TopK < 0) throw new InputException("--top-k must be >= 0 (0 means no limit).");
        this.options = options;
        random = new Random(options.Seed);
    }

    public int Next(ReadOnlySpan<float> logits)
    {
        if (options.Temperature == 0) return ArgMax(logits);

        // softmax(logits / T) in double
        var order = Enumerable.Range(0, logits.Length).ToArray();
        var scaled = new double[logits.Length];
        double max = double.NegativeInfinity;
        for (int i = 0; i < logits.Length; i++) { scaled[i] = logits[i] / options.Temperature; max = Math.Max(max, scaled[i]); }
        double sum = 0;
        for (int i = 0; i < scaled.Length; i++) { scaled[i] = Math.Exp(scaled[i] - max); sum += scaled[i]; }
        Array.Sort(order, (a, b) => scaled[b].CompareTo(scaled[a]));

        int keep = options.TopK > 0 ? Math.Min(options.TopK, order.Length) : order.Length;
        if (options.TopP < 1)
        {
            double cumulative = 0;
            for (int i = 0; i < keep; i++)
            {
                cumulative += scaled[order[i]] / sum;
                if (cumulative >= options.TopP) { keep = i + 1; break; }
            }
        }
        double kept = 0;
        for (int i = 0; i < keep; i++) kept += scaled[order[i]];
        double u = random.NextDouble() * kept;
        for (int i = 0; i < keep; i++)
        {
            u -= scaled[order[i]];
            if (u <= 0) return order[i];
        }
        return order[keep - 1];
    }

    /// <summary>Index of the largest logit; the first one on ties (as numpy's argmax).</summary>
    public static int ArgMax(ReadOnlySpan<float> logits)
    {
        int best = 0;
        for (int i = 1; i < logits.Length; i++) if (logits[i] > logits[best]) best = i;
        return best;
    }
}
