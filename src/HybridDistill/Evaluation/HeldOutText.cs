using HybridDistill.Tokenization;

namespace HybridDistill.Evaluation;

/// <summary>
/// Held-out text as a token stream for perplexity and teacher agreement: documents (separated by blank lines) are
/// encoded one by one and concatenated, then the stream is cut into windows. By default no BOS goes between
/// documents: that is the convention behind the known stories260K figure (mean NLL about 1.30 nats on 20 x 256
/// TinyStories tokens; with BOS before every story, as llama2.c trained it, the same windows give about 1.37,
/// the difference being mostly the cost of predicting BOS and the first word after it).
/// </summary>
public static class HeldOutText
{
    /// <summary>Tokens of the documents of <paramref name="text"/>, stopping once <paramref name="maxTokens"/> are reached;
    /// with <paramref name="bosPerDocument"/>, each document starts with BOS (when the tokenizer starts prompts with it).</summary>
    public static List<int> Tokens(ITextTokenizer tokenizer, string text, long maxTokens = long.MaxValue, bool bosPerDocument = false)
    {
        var tokens = new List<int>();
        int? bos = bosPerDocument && tokenizer.AddBosByDefault ? tokenizer.BosId : null;
        foreach (var document in Documents(text))
        {
            if (tokens.Count >= maxTokens) break;
            if (bos is int b) tokens.Add(b);
            tokens.AddRange(tokenizer.Encode(document));
        }
        return tokens;
    }

    public static List<int> TokensFromFile(ITextTokenizer tokenizer, string path, long maxTokens = long.MaxValue, bool bosPerDocument = false)
    {
        if (!File.Exists(path)) throw new InputException($"data file '{path}' does not exist; pass a held-out text file with --data.");
        var tokens = Tokens(tokenizer, File.ReadAllText(path), maxTokens, bosPerDocument);
        if (tokens.Count < 2) throw new InputException($"'{path}' holds fewer than 2 tokens of text; pass a larger held-out text file with --data.");
        return tokens;
    }

    /// <summary>Blank-line separated documents of a text (CRLF tolerated).</summary>
    public static IEnumerable<string> Documents(string text)
    {
        var lines = new List<string>();
        foreach (var raw in text.Replace("\r\n", "\n").Split('\n'))
        {
            if (raw.Trim().Length == 0)
            {
                if (lines.Count > 0) yield return string.Join("\n", lines);
                lines.Clear();
            }
            else lines.Add(raw);
        }
        if (lines.Count > 0) yield return string.Join("\n", lines);
    }

    /// <summary>
    /// Sliding windows of <paramref name="window"/> tokens every <paramref name="stride"/> tokens (stride = window:
    /// disjoint windows). Each window scores only the tokens no earlier window scored (the first: all but its first
    /// token), so every token after the first is predicted once, with up to window - 1 tokens of context.
    /// A last partial window is dropped. At most <paramref name="limit"/> windows.
    /// </summary>
    public static List<TextWindow> Windows(IReadOnlyList<int> tokens, int window, int? stride = null, int? limit = null)
    {
        int step = stride ?? window;
        if (window < 2) throw new InputException($"the evaluation window must hold at least 2 tokens; got {window}.");
        if (step < 1 || step > window) throw new InputException($"the window stride must be between 1 and the window ({window}); got {step}.");
        var windows = new List<TextWindow>();
        int scoredUpTo = 0; // tokens [0, scoredUpTo) have been predicted (token 0 never is)
        for (int start = 0; start + window <= tokens.Count && (limit is null || windows.Count < limit); start += step)
        {
            int firstScored = Math.Max(1, scoredUpTo - start);
            windows.Add(new TextWindow(tokens.Skip(start).Take(window).ToArray(), firstScored));
            scoredUpTo = start + window;
        }
        return windows;
    }
}

/// <summary>A window of token ids; positions FirstScored .. Length - 1 are predicted (from the logits one row earlier).</summary>
public sealed record TextWindow(int[] Ids, int FirstScored);
