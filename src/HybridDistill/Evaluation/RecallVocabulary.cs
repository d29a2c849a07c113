using HybridDistill.Tokenization;

namespace HybridDistill.Evaluation;

/// <summary>A word or digit that is one token where the recall prompts put it.</summary>
public readonly record struct VocabEntry(string Text, int Id);

/// <summary>
/// The token pieces the recall suites assemble prompts from, probed once from a model's own tokenizer so that
/// every key and value is exactly one token in context and concatenating the pieces gives the ids the tokenizer
/// itself produces for the prompt's text.
///
/// Prompt text uses word segments that each start with one space (" cat", " 7", " The pass key is"), because a
/// leading space is a pre-tokenisation boundary for both SentencePiece (a piece starts at "▁") and byte-level BPE
/// (the split regex starts a word at " "); a segment's ids are then its ids in context:
/// Encode(before + text) minus Encode(before) (<see cref="Continue"/>).
///
/// Keys are harvested from the vocabulary (tokens whose text is 1-10 ASCII letters after an optional space),
/// kept when " key" encodes to the same ids at the start of the text and after the line separator, and grouped by
/// the tokens before the key token (the "lead"): "▁cat" (SentencePiece), "Ġcat" (BPE) have no lead; on a
/// character-level vocabulary " c" is "▁", "c" and the lead is "▁", so keys are single letters. The largest group
/// wins. Values are the digits 0-9 the same way (SentencePiece with single-digit pieces gives ":", "▁" | "7").
/// Lines are separated by "\n" when the tokenizer round-trips it, else by "," (character-level vocabularies
/// such as babyllama's have no newline).
/// </summary>
public sealed class RecallVocabulary
{
    readonly Dictionary<string, int[]> _encoded = new(StringComparer.Ordinal);
    /// <summary>Tokens between ":" and a digit (SentencePiece's lone "▁"); part of <see cref="ColonIds"/>.</summary>
    int[] _valueLead = [];

    public ITextTokenizer Tokenizer { get; }
    /// <summary>BOS when the tokenizer starts prompts with it, else empty.</summary>
    public int[] StartIds { get; }
    /// <summary>"\n" or ",".</summary>
    public string Separator { get; }
    /// <summary>Ids of <see cref="Separator"/> after a value.</summary>
    public int[] SeparatorIds { get; private set; } = [];
    /// <summary>Tokens before every key token (at the start, after a separator and after an arrow); often empty.</summary>
    public int[] KeyLeadIds { get; private set; } = [];
    /// <summary>Single-token keys, unique ids, in vocabulary order.</summary>
    public IReadOnlyList<VocabEntry> Keys { get; private set; } = [];
    /// <summary>Ids between a key token and its value token: ":" and the value's lead (":", "▁" for SentencePiece).</summary>
    public int[] ColonIds { get; private set; } = [];
    /// <summary>Single-token digit values.</summary>
    public IReadOnlyList<VocabEntry> Values { get; private set; } = [];
    /// <summary>Ids between an alias key and its target key: " ->" and the key lead.</summary>
    public int[] ArrowIds { get; private set; } = [];

    RecallVocabulary(ITextTokenizer tokenizer)
    {
        Tokenizer = tokenizer;
        StartIds = tokenizer.AddBosByDefault && tokenizer.BosId is int bos ? [bos] : [];
        Separator = tokenizer.Decode(tokenizer.Encode("a\nb")) == "a\nb" ? "\n" : ",";
    }

    public static RecallVocabulary Build(ITextTokenizer tokenizer, int maxCandidates = 3000)
    {
        var v = new RecallVocabulary(tokenizer);
        v.ProbeValues();
        v.ProbeKeys(maxCandidates);
        if (v.Keys.Count < 4 || v.Values.Count < 2)
            throw new InputException($"the {tokenizer.Kind} tokenizer (vocabulary {tokenizer.VocabSize}) gives only {v.Keys.Count} " +
                                     $"single-token keys and {v.Values.Count} single-token digit values; the recall suites need " +
                                     "at least 4 and 2. Evaluate this model without the kv-recall, kv-multihop and copy tasks.");
        return v;
    }

    /// <summary>Ids of <paramref name="text"/> when it follows <paramref name="before"/>: Encode(before + text) minus
    /// Encode(before). When the tokenizer merges across the boundary, falls back to Encode(text) and reports it.</summary>
    public int[] Continue(string before, string text) => Continue(before, text, out _);

    public int[] Continue(string before, string text, out bool stable)
    {
        var whole = Encode(before + text);
        var head = Encode(before);
        stable = whole.Length >= head.Length && whole.AsSpan(0, head.Length).SequenceEqual(head);
        return stable ? whole[head.Length..] : Encode(text);
    }

    /// <summary>Splits the ids of a number (" 71432") after <paramref name="before"/> into the lead that belongs to
    /// the prompt (a lone "▁" on SentencePiece) and the answer tokens.</summary>
    public (int[] Lead, int[] Answer) Number(string before, string digits)
    {
        var ids = Continue(before, " " + digits);
        var lead = Continue(before, " 0");
        int shared = 0;
        while (shared < lead.Length - 1 && shared < ids.Length - 1 && lead[shared] == ids[shared]) shared++;
        return (ids[..shared], ids[shared..]);
    }

    int[] Encode(string text)
    {
        if (!_encoded.TryGetValue(text, out var ids))
        {
            ids = Tokenizer.Encode(text).ToArray();
            if (_encoded.Count < 100_000) _encoded[text] = ids;
        }
        return ids;
    }

    void ProbeValues()
    {
        // " d" after ":" -> lead + [digit]; the lead (shared by every digit) goes into ColonIds.
        var probes = Enumerable.Range(0, 10).Select(d => (Text: d.ToString(), Ids: Continue(":", " " + d, out bool ok), Ok: ok))
            .Where(p => p.Ok && p.Ids.Length >= 1).ToList();
        var group = LargestGroup(probes.Select(p => (p.Text, p.Ids)));
        Values = group.Entries;
        _valueLead = group.Lead;
        // The separator's ids after a value must not depend on the digit.
        var separators = Values.Select(e => Continue(" " + e.Text, Separator, out bool ok) is var ids && ok ? ids : null).ToList();
        SeparatorIds = Majority(separators.Where(s => s is { Length: > 0 })!)!;
        Values = Values.Where((e, i) => separators[i] is { } s && s.SequenceEqual(SeparatorIds)).ToList();
    }

    void ProbeKeys(int maxCandidates)
    {
        var words = new List<string>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (int id = 0; id < Tokenizer.VocabSize && words.Count < maxCandidates; id++)
        {
            string word = Tokenizer.DecodeToken(id).Trim();
            if (word.Length is >= 1 and <= 10 && word.All(char.IsAsciiLetter) && seen.Add(word)) words.Add(word);
        }
        var probes = new List<(string Text, int[] Ids)>();
        foreach (var word in words)
        {
            var afterSeparator = Continue(Separator, " " + word, out bool ok);
            if (ok && Encode(" " + word).SequenceEqual(afterSeparator)) probes.Add((word, afterSeparator));
        }
        var group = LargestGroup(probes);
        KeyLeadIds = group.Lead;
        var keys = group.Entries;

        // ":" after a key and " ->" after a key must be the same ids for every key (no merge with the key's letters).
        var colons = keys.Select(k => Continue(" " + k.Text, ":", out bool ok) is var ids && ok ? ids : null).ToList();
        var colon = Majority(colons.Where(c => c is { Length: > 0 })!) ?? [];
        var arrows = keys.Select(k => Continue(" " + k.Text, " ->", out bool ok) is var ids && ok ? ids : null).ToList();
        var arrow = Majority(arrows.Where(a => a is { Length: > 0 })!) ?? [];
        var kept = new List<VocabEntry>();
        for (int i = 0; i < keys.Count; i++)
        {
            if (colons[i] is not { } c || !c.SequenceEqual(colon) || arrows[i] is not { } a || !a.SequenceEqual(arrow)) continue;
            // After an arrow the key must come out as lead + key, as after a separator.
            var afterArrow = Continue(" ->", " " + keys[i].Text, out bool ok);
            if (ok && afterArrow.SequenceEqual([.. KeyLeadIds, keys[i].Id])) kept.Add(keys[i]);
        }
        Keys = kept;
        ColonIds = [.. colon, .. _valueLead];
        ArrowIds = [.. arrow, .. KeyLeadIds];
    }

    /// <summary>Groups probes by their leading tokens (all but the last) and returns the largest group (ties: shorter
    /// lead, then first seen), one entry per distinct final token.</summary>
    static (int[] Lead, List<VocabEntry> Entries) LargestGroup(IEnumerable<(string Text, int[] Ids)> probes)
    {
        var groups = new Dictionary<string, (int[] Lead, List<VocabEntry> Entries, HashSet<int> Ids)>();
        foreach (var (text, ids) in probes)
        {
            if (ids.Length == 0) continue;
            var lead = ids[..^1];
            string key = string.Join(",", lead);
            if (!groups.TryGetValue(key, out var g)) groups[key] = g = (lead, [], []);
            if (g.Ids.Add(ids[^1])) g.Entries.Add(new VocabEntry(text, ids[^1]));
        }
        if (groups.Count == 0) return ([], []);
        var best = groups.Values.OrderByDescending(g => g.Entries.Count).ThenBy(g => g.Lead.Length).First();
        return (best.Lead, best.Entries);
    }

    static int[]? Majority(IEnumerable<int[]> candidates) =>
        candidates.GroupBy(c => string.Join(",", c)).OrderByDescending(g => g.Count()).FirstOrDefault()?.First();

    /// <summary>The ids of one "key: value" line (no separator).</summary>
    public int[] Line(VocabEntry key, VocabEntry value) => [.. KeyLeadIds, key.Id, .. ColonIds, value.Id];
    /// <summary>The ids of one "alias -> key" line (no separator).</summary>
    public int[] Alias(VocabEntry alias, VocabEntry key) => [.. KeyLeadIds, alias.Id, .. ArrowIds, key.Id];
}
