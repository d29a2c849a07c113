namespace HybridDistill.Tokenization;

/// <summary>
/// GPT-2's byte-level alphabet: every byte 0..255 is shown as one printable character so that BPE tokens are
/// strings. Printable Latin-1 bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for themselves; the other 68 bytes take
/// U+0100, U+0101, ... in byte order (so ' ' (0x20) is 'Ġ' U+0120 and '\n' (0x0A) is 'Ċ' U+010A).
/// </summary>
internal static class ByteLevelAlphabet
{
    public static readonly char[] ByteToChar = Build();
    static readonly Dictionary<char, byte> CharToByte = Enumerable.Range(0, 256).ToDictionary(b => ByteToChar[b], b => (byte)b);

    static char[] Build()
    {
        var map = new char[256];
        int next = 256;
        for (int b = 0; b < 256; b++)
        {
            bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            map[b] = printable ? (char)b : (char)next++;
        }
        return map;
    }

    /// <summary>Text -> UTF-8 bytes -> one alphabet character per byte.</summary>
    public static string Encode(string text)
    {
        var bytes = System.Text.Encoding.UTF8.GetBytes(text);
        var chars = new char[bytes.Length];
        for (int i = 0; i < bytes.Length; i++) chars[i] = ByteToChar[bytes[i]];
        return new string(chars);
    }

    /// <summary>A byte-level token back to bytes; characters outside the alphabet pass through as their UTF-8
    /// (as Hugging Face's ByteLevel decoder does).</summary>
    public static void AppendBytes(string token, List<byte> output)
    {
        Span<byte> buf = stackalloc byte[4];
        foreach (var rune in token.EnumerateRunes())
        {
            if (rune.IsBmp && CharToByte.TryGetValue((char)rune.Value, out byte b))
            {
                output.Add(b);
            }
            else
            {
                int n = rune.EncodeToUtf8(buf);
                for (int i = 0; i < n; i++) output.Add(buf[i]);
            }
        }
    }
}
