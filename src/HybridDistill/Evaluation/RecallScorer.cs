using static TorchSharp.torch;

namespace HybridDistill.Evaluation;

/// <summary>How a model did on one answer: exact match of every token's argmax (teacher-forced, so equal to greedy
/// decoding for the first token and given the correct prefix after it), the count of tokens right, and the
/// log-probability of the correct tokens.</summary>
public sealed record RecallOutcome(string Label, bool Correct, int TokensCorrect, int Tokens, double LogProb);

public sealed record RecallItemScore(IReadOnlyList<RecallOutcome> Answers, IReadOnlyList<RecallOutcome> FirstOccurrences);

/// <summary>Accuracy of one task at one length. For copy, <c>Accuracy</c> counts tokens of the repeated span and
/// <c>FirstOccurrence</c> the same tokens where they first appeared; for the others it counts answers (exact match).
/// <c>PerPrompt</c> is each prompt's own share of <c>Accuracy</c>, in prompt order: the unit a paired comparison of two
/// models on the same prompts resamples.</summary>
public sealed record RecallLengthResult(int Length, int Prompts, Proportion Accuracy, Proportion? FirstOccurrence,
    IReadOnlyDictionary<string, Proportion> ByLabel, double MeanAnswerLogProb, IReadOnlyList<Proportion> PerPrompt);

public sealed record RecallTaskResult(string Task, IReadOnlyList<RecallLengthResult> Lengths);

/// <summary>Scores recall prompts with one teacher-forced forward pass per batch of equal-length prompts.</summary>
public static class RecallScorer
{
    public static IReadOnlyList<RecallItemScore> Score(ILogitModel model, IReadOnlyList<RecallItem> items, int? batchSize = null,
        IProgress<string>? progress = null)
    {
        foreach (var item in items)
            if (item.Length > model.ContextLength)
                throw new InputException($"a {item.Task} prompt has {item.Length} tokens; the model's context is {model.ContextLength}. Use shorter --lengths.");
        var scores = new RecallItemScore[items.Count];
        using var inference = inference_mode();
        foreach (var group in Enumerable.Range(0, items.Count).GroupBy(i => items[i].Length))
        {
            var indices = group.ToList();
            int batch = batchSize ?? EvalBatching.BatchSize(group.Key, model.VocabSize);
            for (int b = 0; b < indices.Count; b += batch)
            {
                var chunk = indices.GetRange(b, Math.Min(batch, indices.Count - b));
                using var scope = NewDisposeScope();
                var flat = chunk.SelectMany(i => items[i].Ids.Select(t => (long)t)).ToArray();
                var ids = tensor(flat, [chunk.Count, group.Key]);                                     // [B, T]
                var logProbs = model.Logits(ids).log_softmax(-1);                                     // [B, T, V]
                for (int j = 0; j < chunk.Count; j++)
                {
                    var item = items[chunk[j]];
                    scores[chunk[j]] = new RecallItemScore(
                        item.Answers.Select(a => Outcome(logProbs[j], a)).ToList(),
                        item.FirstOccurrences.Select(a => Outcome(logProbs[j], a)).ToList());
                }
                progress?.Report($"{items[chunk[0]].Task} @{group.Key}: {Math.Min(b + batch, indices.Count)}/{indices.Count}");
            }
        }
        return scores;
    }

    /// <summary>logProbs [T, V] of one sequence; the answer's tokens are predicted at positions Start - 1 ...</summary>
    static RecallOutcome Outcome(Tensor logProbs, RecallAnswer answer)
    {
        using var scope = NewDisposeScope();
        var rows = logProbs.narrow(0, answer.Start - 1, answer.Ids.Length);                        // [A, V]
        var predicted = rows.argmax(-1).data<long>().ToArray();
        var target = tensor(answer.Ids.Select(t => (long)t).ToArray()).unsqueeze(1);             // [A, 1]
        double logProb = rows.gather(1, target).sum().item<float>();
        int right = predicted.Where((p, i) => p == answer.Ids[i]).Count();
        return new RecallOutcome(answer.Label, right == answer.Ids.Length, right, answer.Ids.Length, logProb);
    }

    /// <summary>Per-length accuracies with Wilson intervals (and per-label ones, e.g. hop1/hop2 or needle depth).</summary>
    public static RecallTaskResult Summarize(string task, IReadOnlyList<RecallItem> items, IReadOnlyList<RecallItemScore> scores)
    {
        bool perToken = task == RecallTasks.Copy;
        Proportion Of(RecallOutcome o) => perToken ? new(o.TokensCorrect, o.Tokens) : new(o.Correct ? 1 : 0, 1);
        var lengths = new List<RecallLengthResult>();
        foreach (var group in Enumerable.Range(0, items.Count).GroupBy(i => items[i].Length).OrderBy(g => g.Key))
        {
            var answers = group.SelectMany(i => scores[i].Answers).ToList();
            var firsts = group.SelectMany(i => scores[i].FirstOccurrences).ToList();
            var acc = answers.Aggregate(new Proportion(), (p, o) => p + Of(o));
            Proportion? first = firsts.Count == 0 ? null : firsts.Aggregate(new Proportion(), (p, o) => p + Of(o));
            var byLabel = answers.Where(o => o.Label.Length > 0).GroupBy(o => o.Label).OrderBy(g => g.Key, StringComparer.Ordinal)
                .ToDictionary(g => g.Key, g => g.Aggregate(new Proportion(), (p, o) => p + Of(o)));
            double meanLogProb = answers.Count == 0 ? 0 : answers.Average(o => o.LogProb);
            var perPrompt = group.Select(i => scores[i].Answers.Aggregate(new Proportion(), (p, o) => p + Of(o))).ToList();
            lengths.Add(new RecallLengthResult(group.Key, group.Count(), acc, first, byLabel, meanLogProb, perPrompt));
        }
        return new RecallTaskResult(task, lengths);
    }
}
