namespace HybridDistill.Evaluation;

/// <summary>Names of the recall tasks.</summary>
public static class RecallTasks
{
    public const string Passkey = "passkey";
    public const string KvRecall = "kv-recall";
    public const string KvMultihop = "kv-multihop";
    public const string Copy = "copy";
    public static IReadOnlyList<string> All { get; } = [Passkey, KvRecall, KvMultihop, Copy];
}

/// <summary>
/// One answer inside a recall prompt: the tokens <c>Ids</c> sit at positions Start .. Start + Ids.Length - 1 of the
/// item's ids, so they are predicted by the logits at Start - 1 .. Start + Ids.Length - 2.
/// </summary>
public sealed record RecallAnswer(int Start, int[] Ids, string Label = "")
{
    public IEnumerable<int> Positions => Enumerable.Range(Start, Ids.Length);
}

/// <summary>
/// A generated recall prompt. <c>Ids</c> is the whole sequence (BOS, context, queries and their correct answers,
/// so several queries are scored in one teacher-forced pass; with single-token answers greedy decoding of a
/// query's answer equals the argmax at its position). For a single query, <see cref="PromptIds"/> and
/// <see cref="AnswerIds"/> are the prompt to generate from and the expected tokens.
/// <c>FirstOccurrences</c> is used by <c>copy</c>: the same tokens where they first appear.
/// </summary>
public sealed record RecallItem(string Task, int[] Ids, IReadOnlyList<RecallAnswer> Answers,
    IReadOnlyList<RecallAnswer> FirstOccurrences, double Depth)
{
    public int Length => Ids.Length;
    public int[] PromptIds => Ids[..Answers[0].Start];
    public int[] AnswerIds => Answers[0].Ids;
}

/// <summary>Sizes of the generated prompts.</summary>
public sealed record RecallSuiteOptions
{
    /// <summary>Queries per kv-recall / kv-multihop prompt (multihop alternates one and two hops).</summary>
    public int Queries { get; init; } = 4;
    /// <summary>key: value lines per kv-recall prompt; null: as many as fit the length (up to the number of keys).</summary>
    public int? Pairs { get; init; }
    public int PasskeyDigits { get; init; } = 5;
    /// <summary>Tokens in copy's repeated span (capped at a quarter of the prompt).</summary>
    public int CopySpan { get; init; } = 32;
    /// <summary>Needle depths (0 = start, 1 = just before the question), cycled over the prompts of one length;
    /// for copy, where the first occurrence of the span sits.</summary>
    public IReadOnlyList<double> Depths { get; init; } = [0.0, 0.25, 0.5, 0.75, 1.0];
}

/// <summary>
/// Deterministic recall prompts built as token ids from a <see cref="RecallVocabulary"/> (the model's tokenizer).
/// Item i of (task, length, seed) depends on nothing else, so the same seed and tokenizer give the same prompts
/// whatever the count. Every item of a given length has exactly that many tokens (answers included).
/// <list type="bullet">
/// <item><c>passkey</c>: filler sentences with " The pass key is N. Remember it. N is the pass key." at a depth,
/// then " What is the pass key? The pass key is" and the answer N (digits).</item>
/// <item><c>kv-recall</c>: "key: value" lines (unique single-token keys, single-token digit values that may
/// repeat), then several queries "key: value" whose values are the answers. Filler pads the front to the length.</item>
/// <item><c>kv-multihop</c>: the same with alias lines "a -> b" (one hop: a -> b, b: 7; two hops: c -> a,
/// a -> b, b: 7), lines shuffled, distractor pairs, queries on the first key of each chain.</item>
/// <item><c>copy</c>: filler (held-out text, or random key tokens without it), then a span of it repeated at the end;
/// scored on the span's tokens after its first (unpredictable) one, at the repeat and at the first occurrence.</item>
/// </list>
/// </summary>
public sealed class RecallSuite(RecallVocabulary vocab, FillerText? data = null, RecallSuiteOptions? options = null)
{
    readonly FillerText _filler = data ?? FillerText.Default;

    public RecallVocabulary Vocabulary => vocab;
    public RecallSuiteOptions Options { get; } = options ?? new RecallSuiteOptions();

    public IReadOnlyList<RecallItem> Generate(string task, int length, int count, int seed) =>
        Enumerable.Range(0, count).Select(i => Item(task, length, i, seed)).ToList();

    public RecallItem Item(string task, int length, int index, int seed)
    {
        var rng = new Random(StableSeed(seed, task, length, index));                  // length 0: see KvRecall
        double depth = Options.Depths[index % Options.Depths.Count];
        return task switch
        {
            RecallTasks.Passkey => Passkey(length, depth, rng),
            RecallTasks.KvRecall => KvRecall(length, rng),
            RecallTasks.KvMultihop => KvMultihop(length, rng),
            RecallTasks.Copy => Copy(length, depth, rng),
            _ => throw new InputException($"unknown recall task '{task}'; use one of {string.Join(", ", RecallTasks.All)}."),
        };
    }

    /// <summary>FNV-1a over the seed, task name, length and index: stable across processes and .NET versions.</summary>
    public static int StableSeed(int seed, string task, int length, int index)
    {
        ulong h = 14695981039346656037UL;
        void Mix(int x) { foreach (byte b in BitConverter.GetBytes(x)) { h ^= b; h *= 1099511628211UL; } }
        Mix(seed);
        foreach (char c in task) Mix(c);
        Mix(length);
        Mix(index);
        return (int)(h ^ (h >> 32)) & int.MaxValue;
    }

    public RecallItem Passkey(int length, double depth, Random rng)
    {
        int digits = Options.PasskeyDigits;
        string number = rng.NextInt64((long)Math.Pow(10, digits - 1), (long)Math.Pow(10, digits)).ToString();
        var needle = vocab.Continue(".", $" The pass key is {number}. Remember it. {number} is the pass key.");
        const string question = " What is the pass key? The pass key is";
        var questionIds = vocab.Continue(".", question);
        var (lead, answer) = vocab.Number(question, number);
        int fixedTokens = vocab.StartIds.Length + needle.Length + questionIds.Length + lead.Length + answer.Length;
        var filler = FillerSentences(_filler, length - fixedTokens, rng, "passkey", length, fixedTokens);

        // The needle goes between two sentences, at the boundary nearest depth x filler length.
        int target = (int)Math.Round(depth * (length - fixedTokens)), at = 0, cut = 0;
        for (int i = 0, sum = 0; i <= filler.Count; i++)
        {
            if (Math.Abs(sum - target) < Math.Abs(at - target)) (at, cut) = (sum, i);
            if (i < filler.Count) sum += filler[i].Length;
        }
        var ids = new List<int>(length);
        ids.AddRange(vocab.StartIds);
        foreach (var s in filler.Take(cut)) ids.AddRange(s);
        int needleAt = ids.Count;
        ids.AddRange(needle);
        foreach (var s in filler.Skip(cut)) ids.AddRange(s);
        ids.AddRange(questionIds);
        ids.AddRange(lead);
        int start = ids.Count;
        ids.AddRange(answer);
        return new RecallItem(RecallTasks.Passkey, [.. ids], [new RecallAnswer(start, answer, $"depth {depth:0.##}")], [],
            (double)needleAt / length);
    }

    /// <summary>kv-recall at <paramref name="length"/> tokens; with <see cref="RecallSuiteOptions.Pairs"/> set and a length
    /// of 0, the prompt is just the pairs and queries (no padding), e.g. the 50-line associative-recall diagnostic.</summary>
    public RecallItem KvRecall(int length, Random rng)
    {
        int lineTokens = vocab.KeyLeadIds.Length + 1 + vocab.ColonIds.Length + 1;
        int sep = vocab.SeparatorIds.Length;
        int queries = Math.Min(Options.Queries, vocab.Keys.Count);
        // start + P lines + (P - 1) separators + separator + Q lines + (Q - 1) separators
        int Total(int pairs) => vocab.StartIds.Length + pairs * (lineTokens + sep) + queries * (lineTokens + sep) - sep;
        int pairCount = Options.Pairs ?? Math.Min(vocab.Keys.Count, (length - Total(0)) / (lineTokens + sep));
        if (length <= 0 && Options.Pairs is int fixedPairs) length = Total(fixedPairs);
        if (pairCount > vocab.Keys.Count)
            throw new InputException($"kv-recall asks for {pairCount} pairs but the tokenizer has {vocab.Keys.Count} single-token keys.");
        queries = Math.Min(queries, pairCount);
        if (pairCount < 1 || Total(pairCount) > length)
            throw new InputException($"kv-recall needs {Total(Math.Max(1, pairCount))} tokens for {Math.Max(1, pairCount)} pairs and " +
                                     $"{queries} queries; length {length} is too short.");

        var keys = Shuffled(vocab.Keys, rng).Take(pairCount).ToList();
        var values = keys.Select(_ => vocab.Values[rng.Next(vocab.Values.Count)]).ToList();
        var lines = keys.Select((k, i) => vocab.Line(k, values[i])).ToList();
        var asked = Shuffled(Enumerable.Range(0, pairCount).ToList(), rng).Take(queries).ToList();
        return AssembleKv(RecallTasks.KvRecall, length, lines, asked.Select(i => (keys[i], values[i], "")).ToList(), rng);
    }

    public RecallItem KvMultihop(int length, Random rng)
    {
        int pairTokens = vocab.KeyLeadIds.Length + 1 + vocab.ColonIds.Length + 1;
        int aliasTokens = vocab.KeyLeadIds.Length + 1 + vocab.ArrowIds.Length + 1;
        int sep = vocab.SeparatorIds.Length;
        int queries = Options.Queries;
        var hops = Enumerable.Range(0, queries).Select(j => 1 + j % 2).ToList();
        int keysNeeded = hops.Sum(h => h + 1);
        int chainTokens = hops.Sum(h => h * (aliasTokens + sep) + pairTokens + sep);
        int fixedTokens = vocab.StartIds.Length + chainTokens + queries * (pairTokens + sep) - sep;
        if (keysNeeded > vocab.Keys.Count || fixedTokens > length)
            throw new InputException($"kv-multihop needs {keysNeeded} keys and {fixedTokens} tokens for {queries} queries; the tokenizer " +
                                     $"has {vocab.Keys.Count} keys and the length is {length}.");
        int distractors = Math.Min(vocab.Keys.Count - keysNeeded, (length - fixedTokens) / (pairTokens + sep));

        var keys = Shuffled(vocab.Keys, rng).Take(keysNeeded + distractors).ToList();
        var lines = new List<int[]>();
        var asked = new List<(VocabEntry Key, VocabEntry Value, string Label)>();
        int next = 0;
        foreach (int h in hops)
        {
            var chain = keys.GetRange(next, h + 1);
            next += h + 1;
            var value = vocab.Values[rng.Next(vocab.Values.Count)];
            for (int i = 0; i < h; i++) lines.Add(vocab.Alias(chain[i], chain[i + 1]));
            lines.Add(vocab.Line(chain[h], value));
            asked.Add((chain[0], value, $"hop{h}"));
        }
        for (int i = 0; i < distractors; i++) lines.Add(vocab.Line(keys[next + i], vocab.Values[rng.Next(vocab.Values.Count)]));
        return AssembleKv(RecallTasks.KvMultihop, length, Shuffled(lines, rng), asked, rng);
    }

    /// <summary>[start] [filler separator] lines (separated) separator queries (separated); filler pads to the length.</summary>
    RecallItem AssembleKv(string task, int length, IReadOnlyList<int[]> lines, IReadOnlyList<(VocabEntry Key, VocabEntry Value, string Label)> asked, Random rng)
    {
        var body = new List<int>();
        foreach (var line in lines) { body.AddRange(line); body.AddRange(vocab.SeparatorIds); }
        var answers = new List<(int Offset, VocabEntry Value, string Label)>();
        for (int q = 0; q < asked.Count; q++)
        {
            if (q > 0) body.AddRange(vocab.SeparatorIds);
            var line = vocab.Line(asked[q].Key, asked[q].Value);
            body.AddRange(line);
            answers.Add((body.Count - 1, asked[q].Value, asked[q].Label));
        }
        int pad = length - vocab.StartIds.Length - body.Count;
        var ids = new List<int>(length);
        ids.AddRange(vocab.StartIds);
        if (pad > 0)
        {
            int sep = vocab.SeparatorIds.Length;
            int fill = pad > sep ? pad - sep : pad;
            foreach (var s in FillerSentences(_filler, fill, rng, task, length, length - fill)) ids.AddRange(s);
            if (pad > sep) ids.AddRange(vocab.SeparatorIds);
        }
        int offset = ids.Count;
        ids.AddRange(body);
        double firstKey = (double)offset / length;
        return new RecallItem(task, [.. ids], answers.Select(a => new RecallAnswer(offset + a.Offset, [a.Value.Id], a.Label)).ToList(), [], firstKey);
    }

    public RecallItem Copy(int length, double depth, Random rng)
    {
        int start = vocab.StartIds.Length;
        int span = Math.Min(Options.CopySpan, (length - start) / 4);
        if (span < 2) throw new InputException($"copy needs a length of at least {start + 8} tokens; got {length}.");
        int fillerTokens = length - start - span;
        var filler = new List<int>(fillerTokens);
        if (data is not null)
            foreach (var s in FillerSentences(data, fillerTokens, rng, "copy", length, start + span)) filler.AddRange(s);
        else
            // Random keys, without their lead (a character-level "▁" before every letter would be free to predict).
            while (filler.Count < fillerTokens) filler.Add(vocab.Keys[rng.Next(vocab.Keys.Count)].Id);
        filler.RemoveRange(fillerTokens, filler.Count - fillerTokens);
        int first = start + (int)Math.Round(depth * (fillerTokens - span));
        var ids = new List<int>(length);
        ids.AddRange(vocab.StartIds);
        ids.AddRange(filler);
        int repeat = ids.Count;
        ids.AddRange(ids.GetRange(first, span));
        // The span's first token cannot be predicted (nothing says which span repeats); score the rest.
        var scored = ids.GetRange(first + 1, span - 1).ToArray();
        return new RecallItem(RecallTasks.Copy, [.. ids], [new RecallAnswer(repeat + 1, scored)], [new RecallAnswer(first + 1, scored)],
            (double)first / length);
    }

    /// <summary>Consecutive sentences (each " sentence" in context) from a random place, the last cut so the ids
    /// add up to exactly <paramref name="tokens"/>.</summary>
    List<int[]> FillerSentences(FillerText text, int tokens, Random rng, string task, int length, int fixedTokens)
    {
        if (tokens < 0)
            throw new InputException($"{task} needs {fixedTokens} tokens besides the filler; length {length} is too short.");
        var result = new List<int[]>();
        int count = 0, index = rng.Next(text.Sentences.Count);
        string before = "";
        int guard = 0;
        while (count < tokens)
        {
            string sentence = " " + text.Sentences[index];
            var ids = vocab.Continue(before, sentence);
            if (ids.Length > tokens - count) ids = ids[..(tokens - count)];
            result.Add(ids);
            count += ids.Length;
            before = sentence;
            index = (index + 1) % text.Sentences.Count;
            if (++guard > 4 * tokens + 16) throw new InputException("the filler text encodes to no tokens; pass another --data file.");
        }
        return result;
    }

    static List<T> Shuffled<T>(IEnumerable<T> items, Random rng)
    {
        var list = items.ToList();
        for (int i = list.Count - 1; i > 0; i--)
        {
            int j = rng.Next(i + 1);
            (list[i], list[j]) = (list[j], list[i]);
        }
        return list;
    }
}
