using System.Text;

namespace HybridDistill.Tokenization;

/// <summary>What one token contributes to decoded text: its UTF-8 bytes; whether a leading space in them is
/// SentencePiece's word-start marker ("▁"), which is dropped while no text has been produced yet; and whether its
/// bytes may complete a UTF-8 character left open by the previous token (always for byte-level BPE; for
/// SentencePiece only byte pieces: any other piece, even an empty control piece, ends a run of byte pieces).</summary>
internal readonly record struct TokenSurface(byte[] Bytes, bool LeadingSpaceDroppable, bool JoinsPartialCharacter)
{
    public static readonly TokenSurface Empty = new([], false, false);
}

/// <summary>
/// Turns a stream of token ids into text chunks for printing during generation. Bytes of a UTF-8 character that
/// is split over several byte tokens are held back until the character is complete; <see cref="Flush"/> ends the
/// stream (incomplete bytes become U+FFFD, one per byte, as SentencePiece does).
/// Created by <see cref="ITextTokenizer.CreateStreamDecoder"/>.
/// </summary>
public sealed class TokenStreamDecoder
{
    readonly Func<int, TokenSurface> _surface;
    readonly List<byte> _pending = new();
    bool _atStart;

    internal TokenStreamDecoder(Func<int, TokenSurface> surface, bool atStartOfText)
    {
        _surface = surface;
        _atStart = atStartOfText;
    }

    /// <summary>True until some text (or a byte of it) has been produced; SentencePiece drops the leading
    /// space of word-start pieces while this holds.</summary>
    public bool AtStartOfText => _atStart;

    /// <summary>Appends one id and returns the text that became complete (often empty for control tokens or
    /// partial UTF-8 bytes).</summary>
    public string Append(int id)
    {
        var surface = _surface(id);
        string closed = surface.JoinsPartialCharacter || _pending.Count == 0 ? "" : Drain(final: true);
        ReadOnlySpan<byte> bytes = surface.Bytes;
        if (_atStart && surface.LeadingSpaceDroppable && bytes.Length > 0 && bytes[0] == (byte)' ') bytes = bytes[1..];
        if (bytes.Length == 0) return closed;
        _atStart = false;
        foreach (var b in bytes) _pending.Add(b);
        return closed + Drain(final: false);
    }

    /// <summary>Appends several ids and returns the text that became complete.</summary>
    public string Append(IEnumerable<int> ids)
    {
        var sb = new StringBuilder();
        foreach (var id in ids) sb.Append(Append(id));
        return sb.ToString();
    }

    /// <summary>Ends the stream: returns held-back bytes as U+FFFD (one per byte).</summary>
    public string Flush() => Drain(final: true);

    string Drain(bool final)
    {
        var span = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_pending);
        var text = Utf8Text.DecodePerByteLossy(span, final, out int consumed);
        _pending.RemoveRange(0, consumed);
        return text;
    }
}

/// <summary>UTF-8 decoding the way SentencePiece does it: each byte that does not start a valid character
/// becomes one U+FFFD.</summary>
internal static class Utf8Text
{
    /// <summary>Decodes complete characters; when <paramref name="final"/> is false an incomplete character at
    /// the end is left unconsumed.</summary>
    public static string DecodePerByteLossy(ReadOnlySpan<byte> bytes, bool final, out int consumed)
    {
        var sb = new StringBuilder(bytes.Length);
        int i = 0;
        while (i < bytes.Length)
        {
            var status = System.Text.Rune.DecodeFromUtf8(bytes[i..], out var rune, out int used);
            if (status == System.Buffers.OperationStatus.Done)
            {
                sb.Append(rune.ToString());
                i += used;
            }
            else if (status == System.Buffers.OperationStatus.NeedMoreData && !final)
            {
                break;
            }
            else
            {
                sb.Append('\uFFFD');
                i += 1;
            }
        }
        consumed = i;
        return sb.ToString();
    }

    public static string DecodePerByteLossy(ReadOnlySpan<byte> bytes) => DecodePerByteLossy(bytes, true, out _);
}
