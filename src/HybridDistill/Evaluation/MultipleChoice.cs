using System.Text.Json;
using HybridDistill.Artifacts;
using HybridDistill.Tokenization;
using static TorchSharp.torch;

namespace HybridDistill.Evaluation;

/// <summary>The three JSONL layouts of the evaluation sets (llm-foundry local data).</summary>
public enum McLayout
{
    /// <summary><c>{"query", "choices": [...], "gold"}</c> (PIQA, ARC, COPA): each choice continues the query.</summary>
    QueryChoices,
    /// <summary><c>{"context_options": [...], "continuation", "gold"}</c> (WinoGrande): one continuation after each option.</summary>
    ContextOptions,
    /// <summary><c>{"context", "continuation"}</c> (LAMBADA): the continuation must come out greedily.</summary>
    Cloze,
}

/// <summary>Context text and the continuation whose log-likelihood is scored.</summary>
public sealed record McRequest(string Context, string Continuation);

/// <summary>One question: a request per choice, the gold index, and each choice's length in characters (for acc_norm).</summary>
public sealed record McItem(IReadOnlyList<McRequest> Requests, int Gold, IReadOnlyList<int> ChoiceLengths);

/// <summary>A loaded set: <c>Items</c> are the first --limit items of the file, <c>Available</c> counts all of them.</summary>
public sealed record McSet(string Name, string Path, McLayout Layout, IReadOnlyList<McItem> Items, int Available);

/// <summary>acc (and acc_norm for choice layouts; none for cloze, where MeanNll is the continuations' mean summed NLL).</summary>
public sealed record McResult(string Name, McLayout Layout, Proportion Acc, Proportion? AccNorm, double? MeanNll, int Available)
{
    public int N => Acc.Count;
}

/// <summary>A continuation's summed log-probability and whether every one of its tokens was the argmax.</summary>
public readonly record struct ContinuationScore(double LogProb, bool Greedy);

/// <summary>
/// Multiple-choice and cloze scoring as lm-evaluation-harness does it: the continuation is " " + choice; trailing
/// whitespace of the context moves to the continuation; context and continuation are tokenised together and the
/// continuation's tokens are those after the context's own tokens; their log-probabilities are summed.
/// acc = argmax of the sums; acc_norm = argmax of sum / (choice length in characters); cloze acc = every
/// continuation token is the argmax. Sequences longer than the context keep their last context + 1 tokens.
/// </summary>
public static class MultipleChoice
{
    public static McSet Load(string path, int? limit = null)
    {
        if (!File.Exists(path)) throw new InputException($"multiple-choice file '{path}' does not exist; pass a .jsonl file with --mc.");
        var items = new List<McItem>();
        McLayout? layout = null;
        int lineNumber = 0, available = 0;
        foreach (var line in File.ReadLines(path))
        {
            lineNumber++;
            if (line.Trim().Length == 0) continue;
            available++;                                                  // lines past --limit are counted, not parsed
            if (limit is int n && items.Count >= n) continue;
            string where = $"'{path}' line {lineNumber}";
            McLine? read;
            // The serializer tells the three faults apart: the reader's syntax error comes as the inner exception, a
            // line that is valid JSON but no object fails at the root ("$"), a key of the wrong type at its path.
            try { read = JsonSerializer.Deserialize(line, ArtifactJson.Types.McLine); }
            catch (JsonException e) when (e.InnerException is JsonException syntax)
            {
                throw new InputException($"{where} is not valid JSON: {syntax.Message}");
            }
            catch (JsonException e) when (e.Path is not (null or "$"))
            {
                throw new InputException($"{where}: '{e.Path.TrimStart('$', '.')}' has the wrong type ({e.Message}); query, continuation and context " +
                                         "are strings, choices and context_options non-empty arrays of strings, gold an integer index.");
            }
            catch (JsonException) { read = null; }
            var obj = read ?? throw new InputException($"{where} is not a JSON object.");
            var kind = obj.Choices is not null ? McLayout.QueryChoices
                : obj.ContextOptions is not null ? McLayout.ContextOptions
                : obj.Context is not null ? McLayout.Cloze
                : throw new InputException($"{where} has none of the keys 'choices', 'context_options' or 'context'; expected the layout " +
                                           "{query, choices, gold}, {context_options, continuation, gold} or {context, continuation}.");
            if (layout is not null && layout != kind)
                throw new InputException($"{where} uses the {kind} layout but earlier lines use {layout}; one file holds one layout.");
            layout = kind;
            items.Add(kind switch
            {
                McLayout.QueryChoices => ChoiceItem(Required(obj.Query, "query", where), NonEmpty(obj.Choices, "choices", where), Gold(obj, where)),
                McLayout.ContextOptions => OptionsItem(NonEmpty(obj.ContextOptions, "context_options", where), Required(obj.Continuation, "continuation", where), Gold(obj, where)),
                _ => new McItem([new McRequest(obj.Context!, " " + Required(obj.Continuation, "continuation", where))], 0, []),
            });
            var last = items[^1];
            if (kind != McLayout.Cloze && (last.Gold < 0 || last.Gold >= last.Requests.Count))
                throw new InputException($"{where}: gold {last.Gold} is not an index into its {last.Requests.Count} choices.");
        }
        if (items.Count == 0) throw new InputException($"'{path}' holds no items.");
        return new McSet(System.IO.Path.GetFileNameWithoutExtension(path), path, layout!.Value, items, available);
    }

    static McItem ChoiceItem(string query, IReadOnlyList<string> choices, int gold) =>
        new(choices.Select(c => new McRequest(query, " " + c)).ToList(), gold, choices.Select(c => c.Length).ToList());

    static McItem OptionsItem(IReadOnlyList<string> options, string continuation, int gold) =>
        new(options.Select(o => new McRequest(o, " " + continuation)).ToList(), gold, options.Select(_ => continuation.Length).ToList());

    static string Required(string? value, string key, string where) => value ?? throw new InputException($"{where}: '{key}' must be a string.");

    static IReadOnlyList<string> NonEmpty(IReadOnlyList<string>? values, string key, string where) =>
        values is { Count: > 0 } ? values : throw new InputException($"{where}: '{key}' must be a non-empty array of strings.");

    static int Gold(McLine line, string where) => line.Gold ?? throw new InputException($"{where}: 'gold' must be an integer index.");

    /// <summary>lm-evaluation-harness's pair encoding: [BOS] + ids(context), and the ids of context + continuation
    /// after the context's own. An empty context is BOS (or EOS) alone.</summary>
    public static (int[] Context, int[] Continuation) EncodePair(ITextTokenizer tokenizer, string context, string continuation)
    {
        string trimmed = context.TrimEnd();
        if (trimmed.Length < context.Length)
        {
            continuation = context[trimmed.Length..] + continuation;
            context = trimmed;
        }
        int? prefix = tokenizer.AddBosByDefault ? tokenizer.BosId : null;
        if (context.Length == 0)
        {
            int start = prefix ?? tokenizer.BosId ?? tokenizer.EosId
                ?? throw new InputException("a multiple-choice item has an empty context and the tokenizer has no BOS or EOS token to start from.");
            return ([start], tokenizer.Encode(continuation).ToArray());
        }
        var contextIds = tokenizer.Encode(context);
        var whole = tokenizer.Encode(context + continuation);
        int[] head = prefix is int b ? [b] : [];
        return ([.. head, .. contextIds], whole.Skip(contextIds.Count).ToArray());
    }

    public static McResult Evaluate(ILogitModel model, ITextTokenizer tokenizer, McSet set, int? batchSize = null, IProgress<string>? progress = null)
    {
        var requests = set.Items.SelectMany(i => i.Requests).Select(r => EncodePair(tokenizer, r.Context, r.Continuation)).ToList();
        var scores = Score(model, requests, batchSize, new SyncReport(progress, set.Name));
        int next = 0, acc = 0, accNorm = 0;
        double nll = 0;
        foreach (var item in set.Items)
        {
            var s = scores.Skip(next).Take(item.Requests.Count).ToList();
            next += item.Requests.Count;
            if (set.Layout == McLayout.Cloze)
            {
                if (s[0].Greedy) acc++;
                nll -= s[0].LogProb;
                continue;
            }
            if (ArgMax(s.Select(x => x.LogProb)) == item.Gold) acc++;
            if (ArgMax(s.Select((x, i) => x.LogProb / Math.Max(1, item.ChoiceLengths[i]))) == item.Gold) accNorm++;
        }
        int n = set.Items.Count;
        return set.Layout == McLayout.Cloze
            ? new McResult(set.Name, set.Layout, new Proportion(acc, n), null, nll / n, set.Available)
            : new McResult(set.Name, set.Layout, new Proportion(acc, n), new Proportion(accNorm, n), null, set.Available);
    }

    /// <summary>First index of the largest value (numpy's argmax).</summary>
    static int ArgMax(IEnumerable<double> values)
    {
        int best = -1, i = 0;
        double max = double.NegativeInfinity;
        foreach (var v in values)
        {
            if (best < 0 || v > max) (best, max) = (i, v);
            i++;
        }
        return best;
    }

    /// <summary>Scores each (context, continuation) pair, batching sequences of similar length (right-padded; the
    /// model is causal, so padding after a sequence does not change its logits).</summary>
    public static IReadOnlyList<ContinuationScore> Score(ILogitModel model, IReadOnlyList<(int[] Context, int[] Continuation)> requests,
        int? batchSize = null, IProgress<(int Done, int Total)>? progress = null)
    {
        int max = model.ContextLength;
        // Model input: the last max + 1 tokens of context + continuation, without the final token.
        var inputs = requests.Select(r =>
        {
            var all = r.Context.Concat(r.Continuation).ToArray();
            if (all.Length > max + 1) all = all[^(max + 1)..];
            return (Input: all[..^1], Continuation: r.Continuation.Length > all.Length - 1 ? r.Continuation[^(all.Length - 1)..] : r.Continuation);
        }).ToList();
        var order = Enumerable.Range(0, inputs.Count).OrderByDescending(i => inputs[i].Input.Length).ToList();
        var results = new ContinuationScore[inputs.Count];
        using var inference = inference_mode();
        for (int b = 0; b < order.Count;)
        {
            int longest = inputs[order[b]].Input.Length;
            int size = Math.Min(batchSize ?? EvalBatching.BatchSize(longest, model.VocabSize), order.Count - b);
            var chunk = order.GetRange(b, size);
            using (var scope = NewDisposeScope())
            {
                var flat = new long[size * longest];
                for (int j = 0; j < size; j++)
                {
                    var input = inputs[chunk[j]].Input;
                    for (int t = 0; t < input.Length; t++) flat[j * longest + t] = input[t];
                }
                var logProbs = model.Logits(tensor(flat, [size, longest])).log_softmax(-1);           // [B, T, V]
                for (int j = 0; j < size; j++)
                {
                    var (input, continuation) = inputs[chunk[j]];
                    int c = continuation.Length;
                    if (c == 0) { results[chunk[j]] = new ContinuationScore(0, true); continue; }
                    var rows = logProbs[j].narrow(0, input.Length - c, c);                             // [C, V]
                    var target = tensor(continuation.Select(t => (long)t).ToArray()).unsqueeze(1);   // [C, 1]
                    double logProb = rows.gather(1, target).to_type(ScalarType.Float64).sum().item<double>();
                    var argmax = rows.argmax(-1).data<long>().ToArray();
                    results[chunk[j]] = new ContinuationScore(logProb, argmax.Select((a, i) => a == continuation[i]).All(x => x));
                }
            }
            b += size;
            progress?.Report((b, order.Count));
        }
        return results;
    }

    /// <summary>Reports each tenth of the way (and the end), not every batch.</summary>
    sealed class SyncReport(IProgress<string>? inner, string name) : IProgress<(int Done, int Total)>
    {
        int _lastTenth = -1;
        public void Report((int Done, int Total) value)
        {
            int tenth = value.Done * 10 / Math.Max(1, value.Total);
            if (tenth == _lastTenth) return;
            _lastTenth = tenth;
            inner?.Report($"mc/{name}: {value.Done}/{value.Total} continuations");
        }
    }
}

/// <summary>One line of a multiple-choice .jsonl file, in one of three layouts: {query, choices, gold},
/// {context_options, continuation, gold} (Winogrande) or {context, continuation} (cloze); other keys are ignored.</summary>
public sealed record McLine(string? Query, IReadOnlyList<string>? Choices, int? Gold, IReadOnlyList<string>? ContextOptions,
    string? Continuation, string? Context);
