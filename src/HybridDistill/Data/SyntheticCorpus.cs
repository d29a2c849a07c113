// A deterministic corpus that teaches in-context recall next to ordinary language (hybrid corpus synth):
//   OUT/train.bin, OUT/val.bin                  uint32 token ids, windows of seq_len tokens back to back (+ one final BOS)
//   OUT/train.classes.bin, OUT/val.classes.bin  one loss class per token (LossClasses: role and episode kind)
//   OUT/heldout.txt                             the text documents no window uses (held-out perplexity)
//   OUT/manifest.json                           as `hybrid tokenize` writes it, plus the recipe and loss_classes
// Window w is tokens [w*T, w*T + T + 1), so every window starts with BOS at position 0, exactly as an evaluation
// prompt does. A window holds one episode (or story text), then a new document of story text to its end.
// Episodes (token-level, from the tokenizer's single-token keys and digits; none is the evaluation suite's code or
// seed space, and stories come from the training documents only):
//   repeat    BOS k1..kn k1..kn k1..     random keys repeated (first pass and the next key unscored, the rest answers)
//   copy      BOS filler .. span .. span  span of the filler repeated at the end (filler: random keys or story)
//   passkey   BOS haystack NEEDLE haystack QUESTION answer-digits    (haystack: stock sentences or story text)
//   kv        BOS [story sep] k: v sep ... sep k: v sep ...           queries' values are answers
//   multihop  the same with alias lines "a -> b"; a query names the first key of a chain
// Same recipe, same bytes: all randomness comes from SplitMix64 streams of the recipe's seed.
using System.Buffers.Binary;
using System.Security.Cryptography;
using HybridDistill.Artifacts;
using HybridDistill.Evaluation;
using HybridDistill.Tokenization;

namespace HybridDistill.Data;

public static class SyntheticCorpus
{
    public const string HeldoutFile = "heldout.txt";
    public const string DocumentSplit = "synthetic";

    /// <summary>Generates the corpus of <paramref name="recipe"/> into <paramref name="outDir"/> (which must not hold a
    /// corpus yet). Files are written into a temporary folder and moved into place at the end, so a failure or a
    /// kill leaves no half-written corpus.</summary>
    public static CorpusManifest Build(SynthRecipe recipe, string outDir, IProgress<string>? progress = null, CancellationToken cancellation = default)
    {
        var outFull = Path.GetFullPath(outDir);
        if (File.Exists(Path.Combine(outFull, CorpusManifest.FileName)))
            throw new InputException($"{outFull}: already holds a corpus (manifest.json). Choose another --out or delete it.");
        if (!File.Exists(recipe.Text)) throw new InputException($"{recipe.Text}: text file not found (recipe key \"text\").");
        var tokenizer = TokenizerLoader.Load(recipe.Tokenizer);
        if (tokenizer.BosId is not int bos)
            throw new InputException($"{recipe.Tokenizer}: the tokenizer has no BOS token; synthetic windows start with BOS.");

        progress?.Report("probing the tokenizer and tokenizing the text");
        var generator = new EpisodeGenerator(recipe, tokenizer, bos);
        generator.CheckEpisodesFit();

        var parent = Path.GetDirectoryName(outFull)!;
        Directory.CreateDirectory(parent);
        var tmp = Path.Combine(parent, "." + Path.GetFileName(outFull) + ".synth-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(tmp);
        try
        {
            long maxId = 0;
            var train = WriteSplit(generator, recipe.TrainWindows, Stream.Train, tmp, CorpusBuilder.TrainFile, LossClasses.TrainFile, ref maxId, progress, cancellation);
            var val = WriteSplit(generator, recipe.ValWindows, Stream.Val, tmp, CorpusBuilder.ValFile, LossClasses.ValFile, ref maxId, progress, cancellation);
            File.WriteAllText(Path.Combine(tmp, HeldoutFile), string.Join("\n\n", generator.HeldoutDocuments) + "\n");
            var textBytes = File.ReadAllBytes(recipe.Text);
            var manifest = new CorpusManifest
            {
                TokenizerKind = tokenizer.Kind,
                TokenizerModelDir = recipe.Tokenizer,
                TokenizerVocabSize = tokenizer.VocabSize,
                BosId = tokenizer.BosId,
                EosId = tokenizer.EosId,
                Separator = DocumentSeparator.BosBefore,
                DocumentSplit = DocumentSplit,
                Seed = recipe.Seed,
                ValFraction = recipe.HeldoutFraction,
                MinValTokens = 0,
                MaxTokenId = maxId,
                Train = train,
                Val = val,
                Sources = [new CorpusSource(recipe.Text, Convert.ToHexStringLower(SHA256.HashData(textBytes)), textBytes.Length,
                    generator.TrainDocumentCount + generator.HeldoutDocuments.Count, generator.TextTokenCount)],
                LossClasses = true,
                Synthetic = OpaqueJson.Of(recipe.ToRecord(), ArtifactJson.Types.SynthRecipeRecord),
            };
            manifest.Save(tmp);
            if (Directory.Exists(outFull))
            {
                if (Directory.EnumerateFileSystemEntries(outFull).Any())
                    throw new InputException($"{outFull}: not empty. Choose another --out or delete it.");
                Directory.Delete(outFull);
            }
            Directory.Move(tmp, outFull);
            return manifest;
        }
        finally
        {
            if (Directory.Exists(tmp)) Directory.Delete(tmp, recursive: true);
        }
    }

    enum Stream { Train = 0, Val = 1 }

    static CorpusSplit WriteSplit(EpisodeGenerator generator, long windows, Stream stream, string dir, string tokenFile, string classFile,
        ref long maxId, IProgress<string>? progress, CancellationToken cancellation)
    {
        var rng = SplitMix64.For(generator.Recipe.Seed, (long)stream);
        bool heldout = stream == Stream.Val;
        int t = generator.Recipe.SeqLen;
        using var tokens = new FileStream(Path.Combine(dir, tokenFile), FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20);
        using var classes = new FileStream(Path.Combine(dir, classFile), FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20);
        var window = new Sequence(t);
        var bytes = new byte[t * sizeof(uint)];
        for (long w = 0; w < windows; w++)
        {
            if (w % 4096 == 0)
            {
                cancellation.ThrowIfCancellationRequested();
                progress?.Report($"{(heldout ? "val" : "train")} windows {w:N0}/{windows:N0}");
            }
            window.Clear();
            generator.FillWindow(window, ref rng, heldout);
            for (int i = 0; i < t; i++)
            {
                BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(i * sizeof(uint)), (uint)window.Ids[i]);
                maxId = Math.Max(maxId, window.Ids[i]);
            }
            tokens.Write(bytes);
            classes.Write(window.Classes.ToArray());
        }
        // The last window's final target: a BOS that starts no window (not scored).
        BinaryPrimitives.WriteUInt32LittleEndian(bytes, (uint)generator.Bos);
        tokens.Write(bytes, 0, sizeof(uint));
        classes.WriteByte(LossClasses.Code(EpisodeKind.Story, TokenRole.None));
        return new CorpusSplit(tokenFile, windows * t + 1, windows);
    }
}

/// <summary>Token ids with their loss classes, built up to a fixed capacity.</summary>
internal sealed class Sequence(int capacity)
{
    public readonly List<int> Ids = new(capacity);
    public readonly List<byte> Classes = new(capacity);
    public int Capacity => capacity;
    public int Count => Ids.Count;
    public int Room => capacity - Ids.Count;

    public void Clear() { Ids.Clear(); Classes.Clear(); }

    public void Add(int id, EpisodeKind kind, TokenRole role)
    {
        if (Ids.Count >= capacity) throw new InvalidOperationException("sequence is full");
        Ids.Add(id);
        Classes.Add(LossClasses.Code(kind, role));
    }

    public void Add(IEnumerable<int> ids, EpisodeKind kind, TokenRole role)
    {
        foreach (int id in ids) Add(id, kind, role);
    }
}

/// <summary>Builds windows of one recipe: the tokenizer's recall pieces, the tokenized story documents and sentences.</summary>
internal sealed class EpisodeGenerator
{
    // Haystack sentences of the pass-key episodes (the passkey literature's style of filler, written for this corpus).
    static readonly string[] StockSentences =
    [
        "The grass is green.", "The sky is blue.", "The sun is yellow.", "Here we go.", "There and back again.",
        "The sea is deep.", "The hill is high.", "The road is long.", "The night is dark.", "The snow is white.",
        "Birds sing in the morning.", "The river runs to the sea.", "The wind blows over the field.", "We walk on.",
        "The tree is tall.", "Rain falls on the roof.", "The day is warm.", "Stars shine at night.",
    ];

    // (needle with {0} for the number, question ending where the number follows). The first is the form the
    // evaluation suite asks about; the others teach that the key, not the wording, is what is recalled.
    static readonly (string Needle, string Question)[] PasskeyTemplates =
    [
        ("The pass key is {0}. Remember it. {0} is the pass key.", "What is the pass key? The pass key is"),
        ("The secret code is {0}. Keep it safe. {0} is the secret code.", "What is the secret code? The secret code is"),
        ("My lucky number is {0}. Do not forget it. {0} is my lucky number.", "What is my lucky number? My lucky number is"),
    ];

    readonly ITextTokenizer tokenizer;
    readonly RecallVocabulary vocab;
    readonly List<int> trainStream = [], heldoutStream = [];           // BOS + document tokens, back to back
    readonly List<int> trainStarts = [], heldoutStarts = [];           // where each document's BOS sits
    readonly List<int[]> trainSentences = [], heldoutSentences = [];   // " sentence" ids in context
    readonly List<int[]> stockSentences;
    readonly EpisodeKind[] kinds;
    readonly double[] cumulative;

    public EpisodeGenerator(SynthRecipe recipe, ITextTokenizer tokenizer, int bos)
    {
        Recipe = recipe;
        Bos = bos;
        this.tokenizer = tokenizer;
        vocab = RecallVocabulary.Build(tokenizer);
        var documents = HeldOutText.Documents(File.ReadAllText(recipe.Text)).ToList();
        if (documents.Count < 2)
            throw new InputException($"{recipe.Text}: needs at least two blank-line separated documents (training and held-out text).");
        // Held-out documents: a choice by heldout_seed alone, so every corpus of this text holds out the same ones.
        var order = SplitMix64.Permutation(documents.Count, recipe.HeldoutSeed, 2);
        int heldout = Math.Max(1, (int)Math.Round(documents.Count * recipe.HeldoutFraction));
        var heldoutSet = order.Take(heldout).ToHashSet();
        for (int d = 0; d < documents.Count; d++)
        {
            bool isHeldout = heldoutSet.Contains(d);
            var ids = tokenizer.Encode(documents[d]);
            (isHeldout ? heldoutStarts : trainStarts).Add((isHeldout ? heldoutStream : trainStream).Count);
            var stream = isHeldout ? heldoutStream : trainStream;
            stream.Add(bos);
            stream.AddRange(ids);
            TextTokenCount += ids.Count;
            foreach (var sentence in FillerText.FromText(documents[d], recipe.Text).Sentences)
            {
                var s = vocab.Continue(".", " " + sentence);
                if (s.Length > 0) (isHeldout ? heldoutSentences : trainSentences).Add(s);
            }
            if (isHeldout) HeldoutDocuments.Add(documents[d]);
            else TrainDocumentCount++;
        }
        stockSentences = StockSentences.Select(s => vocab.Continue(".", " " + s)).ToList();
        kinds = recipe.Mix.Keys.OrderBy(k => k).ToArray();
        double total = recipe.Mix.Values.Sum(), sum = 0;
        cumulative = kinds.Select(k => sum += recipe.Mix[k] / total).ToArray();
    }

    public SynthRecipe Recipe { get; }
    public int Bos { get; }
    public List<string> HeldoutDocuments { get; } = [];
    public int TrainDocumentCount { get; private set; }
    public long TextTokenCount { get; private set; }

    /// <summary>Each kind's shortest episode (tokens, BOS included) at the recipe's sizes.</summary>
    readonly Dictionary<EpisodeKind, int> shortest = [];

    /// <summary>Finds each kind's shortest episode; throws an error naming the recipe key to change when one cannot fit seq_len.</summary>
    public void CheckEpisodesFit()
    {
        foreach (var kind in kinds)
        {
            int need = kind switch
            {
                EpisodeKind.Repeat => 1 + 2 * Recipe.RepeatKeys.Min,
                EpisodeKind.Copy => 1 + 4 * Math.Max(2, Recipe.CopySpan.Min),
                EpisodeKind.Passkey => 1 + PasskeyTemplates.Max(t => PasskeyTokens(t.Needle, t.Question)),
                EpisodeKind.KeyValue => 1 + (Recipe.KvPairs.Min + Math.Min(Recipe.KvQueries.Min, Recipe.KvPairs.Min)) * (LineTokens + vocab.SeparatorIds.Length),
                EpisodeKind.Multihop => 1 + Recipe.MultihopQueries.Min * (2 * (AliasTokens + vocab.SeparatorIds.Length) + 2 * (LineTokens + vocab.SeparatorIds.Length)),
                _ => 2,
            };
            if (need > Recipe.SeqLen)
                throw new InputException($"{Recipe.Source}: the {LossClasses.Name(kind)} episodes need {need} tokens but seq_len is {Recipe.SeqLen}; " +
                                         "raise seq_len or lower that kind's sizes (e.g. passkey_digits, kv_pairs, copy_span).");
            shortest[kind] = need;
        }
        if (Recipe.Mix.ContainsKey(EpisodeKind.KeyValue) && Recipe.KvPairs.Min > vocab.Keys.Count)
            throw new InputException($"{Recipe.Source}: kv_pairs asks for at least {Recipe.KvPairs.Min} pairs but the tokenizer has {vocab.Keys.Count} single-token keys; lower kv_pairs.");
    }

    /// <summary>Tokens of a pass-key episode without filler, at the most digits the recipe allows.</summary>
    int PasskeyTokens(string needle, string question)
    {
        string key = new('9', Recipe.PasskeyDigits.Max);
        var (lead, answer) = vocab.Number(question, key);
        return vocab.Continue(".", " " + string.Format(needle, key)).Length + vocab.Continue(".", " " + question).Length + lead.Length + answer.Length;
    }

    int LineTokens => vocab.KeyLeadIds.Length + 1 + vocab.ColonIds.Length + 1;
    int AliasTokens => vocab.KeyLeadIds.Length + 1 + vocab.ArrowIds.Length + 1;

    /// <summary>One window: BOS, an episode (or story text), then story text to the end.</summary>
    public void FillWindow(Sequence window, ref SplitMix64 rng, bool heldout)
    {
        var kind = Pick(ref rng);
        if (kind == EpisodeKind.Story)
        {
            AppendStory(window, window.Capacity, ref rng, heldout, leadingBosScored: false);
            return;
        }
        int min = Math.Max(Recipe.MinEpisode, shortest[kind]);
        int length = min + (int)rng.NextBelow(Recipe.SeqLen - min + 1);
        int start = window.Count;
        window.Add(Bos, kind, TokenRole.None);
        switch (kind)
        {
            case EpisodeKind.Repeat: Repeat(window, length - 1, ref rng); break;
            case EpisodeKind.Copy: Copy(window, length - 1, ref rng, heldout); break;
            case EpisodeKind.Passkey: Passkey(window, length - 1, ref rng, heldout); break;
            case EpisodeKind.KeyValue: KeyValue(window, length - 1, ref rng, heldout); break;
            default: Multihop(window, length - 1, ref rng, heldout); break;
        }
        if (window.Count - start != length) throw new InvalidOperationException($"{kind} episode has {window.Count - start} tokens, expected {length}");
        if (window.Room > 0) AppendStory(window, window.Room, ref rng, heldout, leadingBosScored: false);
    }

    EpisodeKind Pick(ref SplitMix64 rng)
    {
        double u = Uniform(ref rng);
        for (int i = 0; i < kinds.Length; i++)
            if (u < cumulative[i]) return kinds[i];
        return kinds[^1];
    }

    static double Uniform(ref SplitMix64 rng) => (rng.Next() >> 11) * (1.0 / (1UL << 53));
    static int Between(ref SplitMix64 rng, int min, int max) => min + (int)rng.NextBelow(max - min + 1);

    /// <summary><paramref name="count"/> tokens of story text from a random document start (crossing into the next
    /// documents, each after its BOS). The first token is a BOS; it is scored only when <paramref name="leadingBosScored"/>.</summary>
    void AppendStory(Sequence s, int count, ref SplitMix64 rng, bool heldout, bool leadingBosScored)
    {
        var stream = heldout ? heldoutStream : trainStream;
        var starts = heldout ? heldoutStarts : trainStarts;
        int at = starts[(int)rng.NextBelow(starts.Count)];
        for (int i = 0; i < count; i++)
        {
            int id = stream[(at + i) % stream.Count];
            s.Add(id, EpisodeKind.Story, i == 0 && !leadingBosScored ? TokenRole.None : TokenRole.Text);
        }
    }

    /// <summary>Whole sentences (the last one cut) adding up to exactly <paramref name="count"/> tokens, from a random place.</summary>
    List<int[]> Sentences(int count, ref SplitMix64 rng, IReadOnlyList<int[]> pool)
    {
        var result = new List<int[]>();
        int index = (int)rng.NextBelow(pool.Count), total = 0;
        while (total < count)
        {
            var ids = pool[index];
            if (ids.Length > count - total) ids = ids[..(count - total)];
            result.Add(ids);
            total += ids.Length;
            index = (index + 1) % pool.Count;
        }
        return result;
    }

    IReadOnlyList<int[]> StoryPool(bool heldout) => heldout ? heldoutSentences : trainSentences;

    int RandomKey(ref SplitMix64 rng) => vocab.Keys[(int)rng.NextBelow(vocab.Keys.Count)].Id;

    List<VocabEntry> DistinctKeys(int count, ref SplitMix64 rng)
    {
        var pool = vocab.Keys.ToList();
        for (int i = 0; i < count; i++)
        {
            int j = i + (int)rng.NextBelow(pool.Count - i);
            (pool[i], pool[j]) = (pool[j], pool[i]);
        }
        return pool.GetRange(0, count);
    }

    void Repeat(Sequence s, int count, ref SplitMix64 rng)
    {
        int n = Math.Min(Between(ref rng, Recipe.RepeatKeys.Min, Recipe.RepeatKeys.Max), Math.Min(count / 2, vocab.Keys.Count));
        var run = DistinctKeys(n, ref rng).Select(k => k.Id).ToArray();
        // The first pass is random, and so is the first key of the second pass (nothing says the run ended).
        for (int i = 0; i < count; i++)
            s.Add(run[i % n], EpisodeKind.Repeat, i <= n ? TokenRole.None : TokenRole.Answer);
    }

    void Copy(Sequence s, int count, ref SplitMix64 rng, bool heldout)
    {
        int span = Math.Min(Between(ref rng, Recipe.CopySpan.Min, Recipe.CopySpan.Max), count / 4);
        int fillerTokens = count - span;
        var filler = new List<int>(fillerTokens);
        bool text = Uniform(ref rng) < Recipe.CopyTextFraction;
        if (text)
            foreach (var sentence in Sentences(fillerTokens, ref rng, StoryPool(heldout))) filler.AddRange(sentence);
        else
            while (filler.Count < fillerTokens) filler.Add(RandomKey(ref rng));
        int first = (int)rng.NextBelow(fillerTokens - span + 1);
        s.Add(filler, EpisodeKind.Copy, text ? TokenRole.Text : TokenRole.None);
        // The span's first token cannot be known (nothing says which part repeats); the rest can be copied.
        for (int i = 0; i < span; i++)
            s.Add(filler[first + i], EpisodeKind.Copy, i == 0 ? TokenRole.None : TokenRole.Answer);
    }

    void Passkey(Sequence s, int count, ref SplitMix64 rng, bool heldout)
    {
        int digits = Between(ref rng, Recipe.PasskeyDigits.Min, Recipe.PasskeyDigits.Max);
        var number = new char[digits];
        for (int i = 0; i < digits; i++) number[i] = (char)('0' + (i == 0 ? 1 + rng.NextBelow(9) : rng.NextBelow(10)));
        var (needleTemplate, question) = PasskeyTemplates[(int)rng.NextBelow(PasskeyTemplates.Length)];
        string key = new(number);
        var needle = vocab.Continue(".", " " + string.Format(needleTemplate, key));
        var questionIds = vocab.Continue(".", " " + question);
        var (lead, answer) = vocab.Number(question, key);
        int fillerTokens = count - needle.Length - questionIds.Length - lead.Length - answer.Length;
        if (fillerTokens < 0) throw new InvalidOperationException("pass-key episode does not fit (CheckEpisodesFit missed it)");
        var pool = Uniform(ref rng) < Recipe.PasskeyStockFraction ? stockSentences : StoryPool(heldout);
        var filler = Sentences(fillerTokens, ref rng, pool);
        int cut = (int)rng.NextBelow(filler.Count + 1);                                    // the needle's sentence boundary
        foreach (var sentence in filler.Take(cut)) s.Add(sentence, EpisodeKind.Passkey, TokenRole.Text);
        // In the needle the number's first mention is unpredictable, its second a recall.
        int second = LastIndexOf(needle, answer), firstMention = IndexOf(needle, answer);
        for (int i = 0; i < needle.Length; i++)
        {
            bool inFirst = firstMention >= 0 && i >= firstMention && i < firstMention + answer.Length;
            bool inSecond = second > firstMention && i >= second && i < second + answer.Length;
            s.Add(needle[i], EpisodeKind.Passkey, inFirst ? TokenRole.None : inSecond ? TokenRole.Answer : TokenRole.Text);
        }
        foreach (var sentence in filler.Skip(cut)) s.Add(sentence, EpisodeKind.Passkey, TokenRole.Text);
        s.Add(questionIds, EpisodeKind.Passkey, TokenRole.Text);
        s.Add(lead, EpisodeKind.Passkey, TokenRole.Text);
        s.Add(answer, EpisodeKind.Passkey, TokenRole.Answer);
    }

    static int IndexOf(int[] haystack, int[] needle)
    {
        for (int i = 0; i + needle.Length <= haystack.Length; i++)
            if (haystack.AsSpan(i, needle.Length).SequenceEqual(needle)) return i;
        return -1;
    }

    static int LastIndexOf(int[] haystack, int[] needle)
    {
        for (int i = haystack.Length - needle.Length; i >= 0; i--)
            if (haystack.AsSpan(i, needle.Length).SequenceEqual(needle)) return i;
        return -1;
    }

    /// <summary>One "key: value" line; the key is unpredictable, the value an answer only in a query.</summary>
    void AddLine(Sequence s, EpisodeKind kind, VocabEntry key, VocabEntry value, bool query)
    {
        s.Add(vocab.KeyLeadIds, kind, TokenRole.Text);
        s.Add(key.Id, kind, TokenRole.None);
        s.Add(vocab.ColonIds, kind, TokenRole.Text);
        s.Add(value.Id, kind, query ? TokenRole.Answer : TokenRole.None);
    }

    void AddAlias(Sequence s, VocabEntry alias, VocabEntry target)
    {
        s.Add(vocab.KeyLeadIds, EpisodeKind.Multihop, TokenRole.Text);
        s.Add(alias.Id, EpisodeKind.Multihop, TokenRole.None);
        s.Add(vocab.ArrowIds, EpisodeKind.Multihop, TokenRole.Text);
        s.Add(target.Id, EpisodeKind.Multihop, TokenRole.None);
    }

    void Separator(Sequence s, EpisodeKind kind) => s.Add(vocab.SeparatorIds, kind, TokenRole.Text);

    /// <summary>Story sentences, then a separator, filling <paramref name="pad"/> tokens before the lines.</summary>
    void Pad(Sequence s, int pad, EpisodeKind kind, ref SplitMix64 rng, bool heldout)
    {
        int sep = vocab.SeparatorIds.Length;
        if (pad <= 0) return;
        int fill = pad > sep ? pad - sep : pad;
        foreach (var sentence in Sentences(fill, ref rng, StoryPool(heldout))) s.Add(sentence, kind, TokenRole.Text);
        if (pad > sep) Separator(s, kind);
    }

    void KeyValue(Sequence s, int count, ref SplitMix64 rng, bool heldout)
    {
        int sep = vocab.SeparatorIds.Length, perLine = LineTokens + sep;
        int lines = (count + sep) / perLine;                                                    // pairs + queries that fit
        int queries = Math.Max(1, Math.Min(Between(ref rng, Recipe.KvQueries.Min, Recipe.KvQueries.Max), lines / 2));
        int pairs = Math.Min(Math.Min(Between(ref rng, Recipe.KvPairs.Min, Recipe.KvPairs.Max), lines - queries), vocab.Keys.Count);
        queries = Math.Min(queries, pairs);
        var keys = DistinctKeys(pairs, ref rng);
        var values = new List<VocabEntry>(pairs);
        for (int i = 0; i < pairs; i++) values.Add(vocab.Values[(int)rng.NextBelow(vocab.Values.Count)]);
        var asked = DistinctIndices(pairs, queries, ref rng);
        Pad(s, count - ((pairs + queries) * perLine - sep), EpisodeKind.KeyValue, ref rng, heldout);
        for (int i = 0; i < pairs; i++) { AddLine(s, EpisodeKind.KeyValue, keys[i], values[i], query: false); Separator(s, EpisodeKind.KeyValue); }
        for (int q = 0; q < queries; q++)
        {
            if (q > 0) Separator(s, EpisodeKind.KeyValue);
            AddLine(s, EpisodeKind.KeyValue, keys[asked[q]], values[asked[q]], query: true);
        }
    }

    void Multihop(Sequence s, int count, ref SplitMix64 rng, bool heldout)
    {
        int sep = vocab.SeparatorIds.Length;
        int queries = Between(ref rng, Recipe.MultihopQueries.Min, Recipe.MultihopQueries.Max);
        var hops = new List<int>(queries);
        for (int q = 0; q < queries; q++) hops.Add(1 + (int)rng.NextBelow(2));
        int Fixed() => hops.Sum(h => h * (AliasTokens + sep) + LineTokens + sep) + hops.Count * (LineTokens + sep) - sep;
        while (hops.Count > 1 && (Fixed() > count || hops.Sum(h => h + 1) > vocab.Keys.Count)) hops.RemoveAt(hops.Count - 1);
        int keysNeeded = hops.Sum(h => h + 1);
        int room = count - Fixed();
        int distractors = Math.Min(vocab.Keys.Count - keysNeeded, room / (LineTokens + sep));
        distractors = (int)rng.NextBelow(distractors + 1);
        var keys = DistinctKeys(keysNeeded + distractors, ref rng);
        // Lines as (alias?, key, value): shuffled together.
        var lines = new List<(VocabEntry From, VocabEntry To, VocabEntry? Value)>();
        var asked = new List<(VocabEntry Key, VocabEntry Value)>();
        int next = 0;
        foreach (int h in hops)
        {
            var chain = keys.GetRange(next, h + 1);
            next += h + 1;
            var value = vocab.Values[(int)rng.NextBelow(vocab.Values.Count)];
            for (int i = 0; i < h; i++) lines.Add((chain[i], chain[i + 1], null));
            lines.Add((chain[h], default, value));
            asked.Add((chain[0], value));
        }
        for (int i = 0; i < distractors; i++) lines.Add((keys[next + i], default, vocab.Values[(int)rng.NextBelow(vocab.Values.Count)]));
        for (int i = lines.Count - 1; i > 0; i--)
        {
            int j = (int)rng.NextBelow(i + 1);
            (lines[i], lines[j]) = (lines[j], lines[i]);
        }
        int body = lines.Sum(l => (l.Value is null ? AliasTokens : LineTokens) + sep) + asked.Count * (LineTokens + sep) - sep;
        Pad(s, count - body, EpisodeKind.Multihop, ref rng, heldout);
        foreach (var line in lines)
        {
            if (line.Value is VocabEntry v) AddLine(s, EpisodeKind.Multihop, line.From, v, query: false);
            else AddAlias(s, line.From, line.To);
            Separator(s, EpisodeKind.Multihop);
        }
        for (int q = 0; q < asked.Count; q++)
        {
            if (q > 0) Separator(s, EpisodeKind.Multihop);
            AddLine(s, EpisodeKind.Multihop, asked[q].Key, asked[q].Value, query: true);
        }
    }

    static int[] DistinctIndices(int n, int count, ref SplitMix64 rng)
    {
        var all = Enumerable.Range(0, n).ToArray();
        for (int i = 0; i < count; i++)
        {
            int j = i + (int)rng.NextBelow(n - i);
            (all[i], all[j]) = (all[j], all[i]);
        }
        return all[..count];
    }
}
