using System.Text;
using System.Text.RegularExpressions;

namespace HybridDistill.Tokenization;

/// <summary>How a split keeps the pattern's matches (Hugging Face SplitDelimiterBehavior).</summary>
internal enum SplitBehavior { Isolated, Removed, MergedWithPrevious, MergedWithNext, Contiguous }

/// <summary>One Hugging Face pre-tokenizer: splits each piece of text into smaller pieces.
/// BPE merges never cross piece boundaries.</summary>
internal abstract class PreTokenizeStep
{
    public abstract void Split(string piece, List<string> output);

    /// <summary>GPT-2's pattern, used by the ByteLevel pre-tokenizer when use_regex is true.</summary>
    public const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    public static List<string> Run(IReadOnlyList<PreTokenizeStep> steps, string text)
    {
        var pieces = new List<string> { text };
        foreach (var step in steps)
        {
            var next = new List<string>(pieces.Count * 2);
            foreach (var p in pieces) step.Split(p, next);
            pieces = next;
        }
        return pieces;
    }
}

/// <summary>Split{pattern, behavior, invert}: regex matches are delimiters (or, with invert, the kept content).</summary>
internal sealed class RegexSplitStep(Regex regex, SplitBehavior behavior, bool invert) : PreTokenizeStep
{
    public Regex Regex { get; } = regex;

    public override void Split(string piece, List<string> output)
    {
        // The regex runs over one char per code point (see CodePointView), as Rust's and JavaScript's engines do.
        string subject = CodePointView.Map(piece, out int[]? origin);
        // (text, isDelimiter) segments covering the piece in order.
        var segments = new List<(string Text, bool Delim)>();
        int pos = 0;
        for (var m = Regex.Match(subject); m.Success; m = m.NextMatch())
        {
            if (m.Length == 0) continue;
            int start = origin is null ? m.Index : origin[m.Index];
            int end = origin is null ? m.Index + m.Length : origin[m.Index + m.Length];
            if (start > pos) segments.Add((piece[pos..start], invert));
            segments.Add((piece[start..end], !invert));
            pos = end;
        }
        if (pos < piece.Length) segments.Add((piece[pos..], invert));

        switch (behavior)
        {
            case SplitBehavior.Isolated:
                foreach (var s in segments) output.Add(s.Text);
                break;
            case SplitBehavior.Removed:
                foreach (var s in segments) if (!s.Delim) output.Add(s.Text);
                break;
            case SplitBehavior.MergedWithPrevious:
            {
                var sb = new StringBuilder();
                foreach (var s in segments)
                {
                    sb.Append(s.Text);
                    if (s.Delim) { output.Add(sb.ToString()); sb.Clear(); }
                }
                if (sb.Length > 0) output.Add(sb.ToString());
                break;
            }
            case SplitBehavior.MergedWithNext:
            {
                var sb = new StringBuilder();
                foreach (var s in segments)
                {
                    if (s.Delim && sb.Length > 0) { output.Add(sb.ToString()); sb.Clear(); }
                    sb.Append(s.Text);
                }
                if (sb.Length > 0) output.Add(sb.ToString());
                break;
            }
            case SplitBehavior.Contiguous:
            {
                var sb = new StringBuilder();
                bool lastDelim = false;
                foreach (var s in segments)
                {
                    if (s.Delim && lastDelim) { sb.Append(s.Text); continue; }
                    if (sb.Length > 0) output.Add(sb.ToString());
                    sb.Clear().Append(s.Text);
                    lastDelim = s.Delim;
                }
                if (sb.Length > 0) output.Add(sb.ToString());
                break;
            }
        }
    }
}

/// <summary>
/// A regex view of text with one char per code point. .NET's regex matches UTF-16 chars, so a code point outside
/// the BMP is two surrogate chars of category Cs: <c>\p{L}</c> would not match 𝐀 (U+1D400), <c>[^\p{L}\p{N}]?</c>
/// would take half an emoji, and <c>\p{N}{1,3}</c> would count chars. Hugging Face's engines (Oniguruma, fancy-regex)
/// and JavaScript's /u match code points. Each surrogate pair is replaced by one BMP character of the same Unicode
/// general category (chosen once, from U+A000 upward, so it is no ASCII or Latin literal of a pattern); the
/// pre-tokenizer patterns only test categories, white space and ASCII literals, so they match the view exactly as
/// they would match the code points. <paramref name="origin"/> maps view offsets (0..length) back to the text.
/// </summary>
internal static class CodePointView
{
    static readonly char[] Representative = BuildRepresentatives();

    static char[] BuildRepresentatives()
    {
        var reps = new char[32];
        for (int pass = 0; pass < 2; pass++)
            for (int c = pass == 0 ? 0xA000 : 0x100; c < (pass == 0 ? 0xFFFE : 0xA000); c++)
            {
                char ch = (char)c;
                if (char.IsSurrogate(ch) || char.IsWhiteSpace(ch)) continue;
                int cat = (int)char.GetUnicodeCategory(ch);
                if (reps[cat] == '\0') reps[cat] = ch;
            }
        return reps;
    }

    /// <summary>The text itself (origin null) when it has no surrogates; else the view.</summary>
    public static string Map(string text, out int[]? origin)
    {
        origin = null;
        int first = -1;
        for (int i = 0; i < text.Length; i++)
            if (char.IsSurrogate(text[i])) { first = i; break; }
        if (first < 0) return text;

        var view = new System.Text.StringBuilder(text.Length);
        var map = new List<int>(text.Length + 1);
        for (int i = 0; i < text.Length; i++)
        {
            map.Add(i);
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                var cat = System.Globalization.CharUnicodeInfo.GetUnicodeCategory(char.ConvertToUtf32(text[i], text[i + 1]));
                char rep = Representative[(int)cat];
                view.Append(rep == '\0' ? text[i] : rep);
                i++;
            }
            else view.Append(text[i]);      // BMP, or a lone surrogate (kept as Cs)
        }
        map.Add(text.Length);
        origin = map.ToArray();
        return view.ToString();
    }
}

/// <summary>ByteLevel{add_prefix_space, use_regex}: optionally a space in front of each piece, then GPT-2's
/// pattern. (The byte -> alphabet mapping itself happens in the BPE model call.)</summary>
internal sealed class ByteLevelStep(bool addPrefixSpace, bool useRegex) : PreTokenizeStep
{
    static readonly RegexSplitStep Gpt2 = new(new Regex(Gpt2Pattern, RegexOptions.Compiled | RegexOptions.CultureInvariant), SplitBehavior.Isolated, false);

    public override void Split(string piece, List<string> output)
    {
        if (addPrefixSpace && !piece.StartsWith(' ')) piece = " " + piece;
        if (useRegex) Gpt2.Split(piece, output);
        else output.Add(piece);
    }
}

/// <summary>Digits{individual_digits}: digits become their own pieces (each one, or each run).</summary>
internal sealed class DigitsStep(bool individual) : PreTokenizeStep
{
    readonly RegexSplitStep _split = new(new Regex(individual ? @"\p{Nd}" : @"\p{Nd}+", RegexOptions.CultureInvariant), SplitBehavior.Isolated, false);
    public override void Split(string piece, List<string> output) => _split.Split(piece, output);
}

/// <summary>An added token from tokenizer.json's added_tokens (or tokenizer_config.json): matched in raw text
/// before pre-tokenization, leftmost and then longest first.</summary>
internal sealed record AddedToken(string Content, int Id, bool Special, bool LStrip = false, bool RStrip = false, bool SingleWord = false);

/// <summary>Cuts text into plain-text segments and added-token ids.</summary>
internal sealed class AddedTokenSplitter
{
    readonly Dictionary<char, AddedToken[]> _byFirstChar;

    public AddedTokenSplitter(IEnumerable<AddedToken> tokens)
    {
        _byFirstChar = tokens.Where(t => t.Content.Length > 0)
            .GroupBy(t => t.Content[0])
            .ToDictionary(g => g.Key, g => g.OrderByDescending(t => t.Content.Length).ToArray());
    }

    public bool IsEmpty => _byFirstChar.Count == 0;

    /// <summary>Segments in order: (text, -1) for plain text, (null, id) for an added token.</summary>
    public List<(string? Text, int Id)> Split(string text)
    {
        var result = new List<(string?, int)>();
        int segStart = 0, i = 0;
        while (i < text.Length)
        {
            var tok = MatchAt(text, i);
            if (tok is null) { i++; continue; }
            int start = i, end = i + tok.Content.Length;
            if (tok.LStrip) while (start > segStart && char.IsWhiteSpace(text[start - 1])) start--;
            if (tok.RStrip) while (end < text.Length && char.IsWhiteSpace(text[end])) end++;
            if (start > segStart) result.Add((text[segStart..start], -1));
            result.Add((null, tok.Id));
            i = segStart = end;
        }
        if (segStart < text.Length) result.Add((text[segStart..], -1));
        return result;
    }

    AddedToken? MatchAt(string text, int i)
    {
        if (!_byFirstChar.TryGetValue(text[i], out var candidates)) return null;
        foreach (var t in candidates)
        {
            if (!text.AsSpan(i).StartsWith(t.Content, StringComparison.Ordinal)) continue;
            if (t.SingleWord && (IsWordChar(text, i - 1) || IsWordChar(text, i + t.Content.Length))) continue;
            return t;
        }
        return null;
    }

    static bool IsWordChar(string text, int i) =>
        i >= 0 && i < text.Length && (char.IsLetterOrDigit(text[i]) || text[i] == '_');
}

/// <summary>Normalizers that may precede byte-level BPE (tokenizer.json's "normalizer"; Qwen2/Qwen3 use NFC). The
/// Unicode forms are computed by <see cref="UnicodeNormalizer"/>, not string.Normalize, which is a no-op under the
/// project's InvariantGlobalization.</summary>
internal enum TextNormalization { None, Nfc, Nfkc, Nfd, Nfkd, Lowercase }

/// <summary>
/// Hugging Face pre-tokenizer patterns are written for Oniguruma / fancy-regex, which have possessive quantifiers
/// (<c>X*+</c>, <c>X++</c>, <c>X?+</c>, <c>X{n,m}+</c>: match greedily, never give back); .NET's regex rejects them
/// ("nested quantifier"). A possessive quantifier is the same as an atomic group around the greedily quantified atom,
/// <c>(?&gt;X*)</c>, which .NET has. Patterns without possessive quantifiers are returned unchanged.
/// </summary>
internal static class RegexDialect
{
    public static string ToDotNet(string pattern)
    {
        var sb = new System.Text.StringBuilder(pattern.Length + 8);
        var groups = new Stack<int>();
        int atom = -1;                       // where the last complete atom starts in sb, or -1
        bool changed = false;
        int i = 0;
        while (i < pattern.Length)
        {
            char c = pattern[i];
            int start = sb.Length;
            switch (c)
            {
                case '\\':
                    i = CopyEscape(pattern, i, sb);
                    atom = start;
                    continue;
                case '[':
                    i = CopyClass(pattern, i, sb);
                    atom = start;
                    continue;
                case '(':
                    groups.Push(start);
                    sb.Append(c);
                    i++;
                    atom = -1;
                    continue;
                case ')':
                    sb.Append(c);
                    i++;
                    atom = groups.Count > 0 ? groups.Pop() : -1;
                    continue;
                case '|' or '^' or '$':
                    sb.Append(c);
                    i++;
                    atom = -1;
                    continue;
            }
            int q = QuantifierLength(pattern, i);
            if (q > 0)
            {
                sb.Append(pattern, i, q);
                i += q;
                if (i < pattern.Length && pattern[i] == '+' && atom >= 0)
                {
                    sb.Insert(atom, "(?>").Append(')');
                    changed = true;
                    i++;
                }
                else if (i < pattern.Length && pattern[i] == '?')
                {
                    sb.Append('?');
                    i++;
                }
                atom = -1;
                continue;
            }
            sb.Append(c);
            i++;
            atom = start;
        }
        return changed ? sb.ToString() : pattern;
    }

    /// <summary>Length of a quantifier (*, +, ?, {n}, {n,}, {n,m}) at <paramref name="i"/>, or 0.</summary>
    static int QuantifierLength(string p, int i)
    {
        if (p[i] is '*' or '+' or '?') return 1;
        if (p[i] != '{') return 0;
        int j = i + 1, digits = 0;
        while (j < p.Length && char.IsAsciiDigit(p[j])) { j++; digits++; }
        if (digits == 0) return 0;
        if (j < p.Length && p[j] == ',')
        {
            j++;
            while (j < p.Length && char.IsAsciiDigit(p[j])) j++;
        }
        return j < p.Length && p[j] == '}' ? j - i + 1 : 0;
    }

    /// <summary>Copies one escape: \p{..}, \P{..}, \k{..}, \x{..}, \uHHHH, \xHH or a backslash and one character.</summary>
    static int CopyEscape(string p, int i, System.Text.StringBuilder sb)
    {
        int end = Math.Min(i + 2, p.Length);
        if (i + 2 < p.Length && p[i + 2] == '{' && p[i + 1] is 'p' or 'P' or 'x' or 'k')
        {
            int close = p.IndexOf('}', i + 2);
            end = close < 0 ? p.Length : close + 1;
        }
        else if (i + 1 < p.Length && p[i + 1] == 'u') end = Math.Min(i + 6, p.Length);
        else if (i + 1 < p.Length && p[i + 1] == 'x') end = Math.Min(i + 4, p.Length);
        sb.Append(p, i, end - i);
        return end;
    }

    static int CopyClass(string p, int i, System.Text.StringBuilder sb)
    {
        int j = i + 1;
        if (j < p.Length && p[j] == '^') j++;
        if (j < p.Length && p[j] == ']') j++;          // a leading ] is a literal
        int depth = 1;
        while (j < p.Length && depth > 0)
        {
            if (p[j] == '\\') { j += 2; continue; }
            if (p[j] == '[') depth++;
            else if (p[j] == ']') depth--;
            j++;
        }
        j = Math.Min(j, p.Length);
        sb.Append(p, i, j - i);
        return j;
    }
}
