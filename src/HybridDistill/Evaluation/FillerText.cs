using System.Text.RegularExpressions;

namespace HybridDistill.Evaluation;

/// <summary>
/// Sentences that pad recall prompts (the passkey's haystack; kv-recall's padding). From held-out text
/// (<c>--data</c>: whitespace runs become one space, split after . ! ?) or, without it, the classic repeated
/// passkey filler.
/// </summary>
public sealed partial class FillerText
{
    public IReadOnlyList<string> Sentences { get; }

    FillerText(IReadOnlyList<string> sentences) => Sentences = sentences;

    public static FillerText Default { get; } = new(
    [
        "The grass is green.", "The sky is blue.", "The sun is yellow.", "Here we go.", "There and back again.",
    ]);

    public static FillerText FromText(string text, string source)
    {
        string flat = Whitespace().Replace(text, " ").Trim();
        var sentences = SentenceEnd().Split(flat).Select(s => s.Trim()).Where(s => s.Length > 0).ToList();
        if (sentences.Count == 0)
            throw new InputException($"'{source}' holds no text to use as filler; pass a non-empty text file with --data.");
        return new FillerText(sentences);
    }

    public static FillerText FromFile(string path)
    {
        if (!File.Exists(path)) throw new InputException($"data file '{path}' does not exist; pass a text file with --data.");
        return FromText(File.ReadAllText(path), path);
    }

    [GeneratedRegex(@"\s+")]
    private static partial Regex Whitespace();

    [GeneratedRegex(@"(?<=[.!?][""”’']?) ")]
    private static partial Regex SentenceEnd();
}
