using static TorchSharp.torch;

namespace HybridDistill.Evaluation;

/// <summary>Mean next-token negative log-likelihood (nats) over the scored tokens, its exponential, and the count.</summary>
public sealed record PerplexityResult(double Nll, double Ppl, long Tokens, int Windows, int WindowLength);

/// <summary>Mean KL(teacher || model) per position (nats) and how often both models' argmax agree.</summary>
public sealed record AgreementResult(double Kl, double Top1, long Tokens, int Windows, int WindowLength);

/// <summary>
/// Perplexity: NLL = -(1/N) Σ log p(x_t | x_&lt;t) over the windows' scored tokens; PPL = exp(NLL).
/// Agreement: KL = (1/N) Σ_t Σ_v p_T(v) (log p_T(v) - log p_M(v)), top-1 = (1/N) Σ_t [argmax p_T = argmax p_M].
/// </summary>
public static class Perplexity
{
    public static PerplexityResult Evaluate(ILogitModel model, IReadOnlyList<TextWindow> windows, int? batchSize = null,
        IProgress<string>? progress = null)
    {
        int length = CheckWindows(windows, model.ContextLength);
        double sum = 0;
        long count = 0;
        using var inference = inference_mode();
        foreach (var (batch, done) in Batches(windows, batchSize ?? EvalBatching.BatchSize(length, model.VocabSize)))
        {
            using var scope = NewDisposeScope();
            var ids = Stack(batch);                                                                     // [B, T]
            var logProbs = model.Logits(ids).log_softmax(-1);                                           // [B, T, V]
            var targetLogProbs = logProbs.narrow(1, 0, length - 1)
                .gather(2, ids.narrow(1, 1, length - 1).unsqueeze(2)).squeeze(2);                        // [B, T-1]
            var mask = ScoredMask(batch, length);                                                       // [B, T-1]
            sum -= (targetLogProbs * mask).to_type(ScalarType.Float64).sum().item<double>();
            count += (long)mask.sum().item<float>();
            progress?.Report($"ppl: {done}/{windows.Count} windows");
        }
        double nll = count == 0 ? 0 : sum / count;
        return new PerplexityResult(nll, Math.Exp(nll), count, windows.Count, length);
    }

    public static AgreementResult Agreement(ILogitModel teacher, ILogitModel model, IReadOnlyList<TextWindow> windows,
        int? batchSize = null, IProgress<string>? progress = null)
    {
        if (teacher.VocabSize != model.VocabSize)
            throw new InputException($"the teacher's vocabulary ({teacher.VocabSize}) differs from the model's ({model.VocabSize}); " +
                                     "agreement needs the same tokenizer. Pass the model's own teacher with --teacher.");
        int length = CheckWindows(windows, Math.Min(teacher.ContextLength, model.ContextLength));
        double kl = 0, agree = 0;
        long count = 0;
        using var inference = inference_mode();
        foreach (var (batch, done) in Batches(windows, batchSize ?? Math.Max(1, EvalBatching.BatchSize(length, model.VocabSize) / 2)))
        {
            using var scope = NewDisposeScope();
            var ids = Stack(batch);                                                                     // [B, T]
            var teacherLog = teacher.Logits(ids).narrow(1, 0, length - 1).log_softmax(-1);             // [B, T-1, V]
            var modelLog = model.Logits(ids).narrow(1, 0, length - 1).log_softmax(-1);                 // [B, T-1, V]
            var klPerPosition = (teacherLog.exp() * (teacherLog - modelLog)).sum(-1);                  // [B, T-1]
            var same = teacherLog.argmax(-1).eq(modelLog.argmax(-1)).to_type(ScalarType.Float32);     // [B, T-1]
            var mask = ScoredMask(batch, length);
            kl += (klPerPosition * mask).to_type(ScalarType.Float64).sum().item<double>();
            agree += (same * mask).to_type(ScalarType.Float64).sum().item<double>();
            count += (long)mask.sum().item<float>();
            progress?.Report($"agree: {done}/{windows.Count} windows");
        }
        return new AgreementResult(count == 0 ? 0 : kl / count, count == 0 ? 0 : agree / count, count, windows.Count, length);
    }

    static int CheckWindows(IReadOnlyList<TextWindow> windows, int context)
    {
        if (windows.Count == 0) throw new InputException("the held-out text gives no complete window; pass more text with --data or a shorter window.");
        int length = windows[0].Ids.Length;
        if (windows.Any(w => w.Ids.Length != length)) throw new ArgumentException("windows must have equal lengths", nameof(windows));
        if (length > context) throw new InputException($"the evaluation window ({length}) exceeds the model's context ({context}).");
        return length;
    }

    static IEnumerable<(List<TextWindow> Batch, int Done)> Batches(IReadOnlyList<TextWindow> windows, int size)
    {
        for (int i = 0; i < windows.Count; i += size)
            yield return (windows.Skip(i).Take(size).ToList(), Math.Min(i + size, windows.Count));
    }

    static Tensor Stack(List<TextWindow> batch) =>
        tensor(batch.SelectMany(w => w.Ids.Select(t => (long)t)).ToArray(), [batch.Count, batch[0].Ids.Length]);

    /// <summary>1 where row t (predicting token t + 1) is scored: [B, T-1].</summary>
    static Tensor ScoredMask(List<TextWindow> batch, int length)
    {
        var mask = new float[batch.Count * (length - 1)];
        for (int b = 0; b < batch.Count; b++)
            for (int t = batch[b].FirstScored - 1; t < length - 1; t++) mask[b * (length - 1) + t] = 1;
        return tensor(mask, [batch.Count, length - 1]);
    }
}
