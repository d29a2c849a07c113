using System.Security.Cryptography;
using System.Text.Json.Serialization;
using HybridDistill.Artifacts;
using HybridDistill.Config;
using HybridDistill.Data;
using HybridDistill.Tokenization;
using static TorchSharp.torch;

namespace HybridDistill.Selection;

/// <summary>
/// Fixed-length token windows that a scoring method evaluates, always the same ones in the same order, so the
/// per-layer measurements are paired comparisons.
/// </summary>
public interface ITokenWindows
{
    /// <summary>Tokens per window (T).</summary>
    int Length { get; }
    int Count { get; }
    /// <summary>Windows start .. start + count - 1 as ids [count, T] int64.</summary>
    Tensor Batch(int start, int count);
    /// <summary>What the windows are (kind, file, sha256, window length and count), for provenance.</summary>
    WindowsDescription Describe();
}

/// <summary>Where windows come from: a text file, or the packed token directory of <c>hybrid tokenize</c>.</summary>
public interface ITokenWindowSource
{
    /// <summary>Up to <paramref name="maxTokens"/> tokens (at least one window) in windows of <paramref name="length"/>, tokenized for the teacher in <paramref name="teacherDir"/>.</summary>
    ITokenWindows Open(string teacherDir, int length, long maxTokens);
}

public static class TokenWindowSources
{
    /// <summary>The source behind a --data value: a token directory (manifest.json) or a text file.</summary>
    public static ITokenWindowSource FromPath(string path)
    {
        var full = Path.GetFullPath(path);
        if (Directory.Exists(full))
        {
            if (File.Exists(Path.Combine(full, CorpusManifest.FileName))) return new TokenDirectoryWindowSource(full);
            throw new InputException($"{full}: a directory without {CorpusManifest.FileName}; pass a text file or a token directory (hybrid tokenize) with --data.");
        }
        if (!File.Exists(full)) throw new InputException($"{full}: data file not found; pass a held-out text file with --data.");
        return new TextFileWindowSource(full);
    }
}

/// <summary>
/// A text file as windows: documents are separated by blank lines; each starts with BOS when the teacher's
/// tokenizer starts prompts with it; the stream of documents is cut into consecutive windows of T tokens from
/// the start of the file (a last partial window is dropped).
/// </summary>
public sealed class TextFileWindowSource(string path) : ITokenWindowSource
{
    public string Path { get; } = System.IO.Path.GetFullPath(path);

    public ITokenWindows Open(string teacherDir, int length, long maxTokens)
    {
        if (length < 2) throw new InputException($"the scoring window must hold at least 2 tokens, got {length}.");
        var tokenizer = TokenizerLoader.Load(teacherDir);
        var bytes = File.ReadAllBytes(Path);
        string text = System.Text.Encoding.UTF8.GetString(bytes);
        long want = Math.Max(length, maxTokens / length * length);
        var tokens = new List<int>();
        int? bos = tokenizer.AddBosByDefault ? tokenizer.BosId : null;
        foreach (var document in HybridDistill.Evaluation.HeldOutText.Documents(text))
        {
            if (tokens.Count >= want) break;
            if (bos is int b) tokens.Add(b);
            tokens.AddRange(tokenizer.Encode(document));
        }
        int count = (int)Math.Min(tokens.Count / length, want / length);
        if (count < 1)
            throw new InputException($"{Path}: {tokens.Count} tokens, less than one scoring window of {length}; pass more text with --data or a smaller window (--set window=N).");
        var windows = new int[count][];
        for (int i = 0; i < count; i++) windows[i] = tokens.GetRange(i * length, length).ToArray();
        var describe = new WindowsDescription("text", Path, Sha256: Convert.ToHexStringLower(SHA256.HashData(bytes)),
            Tokenizer: tokenizer.Kind, BosPerDocument: bos is not null);
        return new InMemoryTokenWindows(windows, describe);
    }
}

/// <summary>
/// A token directory written by <c>hybrid tokenize</c>: the first windows of its validation split, always the same
/// ones (window i = tokens [i(T-1), i(T-1) + T), the layout of <see cref="TokenFile.Windows"/> with T-1 inputs plus
/// the last target). The ids must fit the teacher's vocabulary.
/// </summary>
public sealed class TokenDirectoryWindowSource(string dir) : ITokenWindowSource
{
    public string Directory { get; } = Path.GetFullPath(dir);

    public ITokenWindows Open(string teacherDir, int length, long maxTokens)
    {
        if (length < 2) throw new InputException($"the scoring window must hold at least 2 tokens, got {length}.");
        using var data = new TokenDataset(Directory);
        var config = ModelConfig.Load(teacherDir);
        data.CheckFits(config.VocabSize, length - 1, teacherDir);
        long available = data.Val.WindowCount(length - 1);
        int count = (int)Math.Clamp(maxTokens / length, 1, available);
        using var ids = data.Val.Windows(Enumerable.Range(0, count).Select(i => (long)i).ToArray(), length - 1);   // [count, T]
        var flat = ids.data<long>().ToArray();
        var windows = Enumerable.Range(0, count).Select(i => flat.AsSpan(i * length, length).ToArray().Select(t => (int)t).ToArray()).ToArray();
        var describe = new WindowsDescription("tokens", Directory, Split: "val", Sources: data.Manifest.Sources.Select(src => src.Sha256).ToArray(),
            ValTokens: data.Manifest.Val.Tokens, Tokenizer: data.Manifest.TokenizerKind);
        return new InMemoryTokenWindows(windows, describe);
    }
}

/// <summary>Windows held as arrays (tests, synthetic tasks); also a source that ignores the teacher's tokenizer.</summary>
public sealed class InMemoryTokenWindows : ITokenWindows, ITokenWindowSource
{
    private readonly int[][] windows;
    private readonly WindowsDescription description;

    public InMemoryTokenWindows(IReadOnlyList<int[]> windows, WindowsDescription? description = null)
    {
        if (windows.Count == 0) throw new ArgumentException("no windows", nameof(windows));
        Length = windows[0].Length;
        if (windows.Any(w => w.Length != Length)) throw new ArgumentException("windows must have equal lengths", nameof(windows));
        this.windows = windows.ToArray();
        this.description = description ?? new WindowsDescription("in-memory");
        // content hash, so runs over different windows never share per-layer results
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var w in this.windows) sha.AppendData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(w.AsSpan()));
        TokensSha256 = Convert.ToHexStringLower(sha.GetHashAndReset());
    }

    public int Length { get; }
    public int Count => windows.Length;
    public string TokensSha256 { get; }

    public Tensor Batch(int start, int count)
    {
        var flat = windows.Skip(start).Take(count).SelectMany(w => w.Select(t => (long)t)).ToArray();
        return tensor(flat, [flat.Length / Length, Length]);                      // [count * T] -> [count, T]
    }

    public WindowsDescription Describe() =>
        description with { Window = Length, Windows = Count, Tokens = (long)Length * Count, TokensSha256 = TokensSha256 };

    /// <summary>The same windows whatever is asked (the caller's length must match; the count is capped by maxTokens).</summary>
    public ITokenWindows Open(string teacherDir, int length, long maxTokens)
    {
        if (length != Length) throw new InputException($"these windows hold {Length} tokens, not {length}: set window={Length}.");
        int count = (int)Math.Clamp(maxTokens / Length, 1, Count);
        return count == Count ? this : new InMemoryTokenWindows(windows[..count], description);
    }
}

/// <summary>
/// What scoring windows are, for provenance: their kind (text, tokens, in-memory), where they come from (file and
/// sha256, or token directory, split, sources and size; the tokenizer), then the windows themselves (length, count,
/// tokens, sha256 of the ids). Parts a kind does not have are left out.
/// </summary>
public sealed record WindowsDescription(string Kind,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Path = null, [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Sha256 = null, [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Split = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyList<string>? Sources = null, [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] long? ValTokens = null, [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Tokenizer = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] bool? BosPerDocument = null, [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] int? Window = null, [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] int? Windows = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] long? Tokens = null, [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? TokensSha256 = null);
