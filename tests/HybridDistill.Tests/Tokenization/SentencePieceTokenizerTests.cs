using System.Text.Json;
using HybridDistill.Tokenization;

namespace HybridDistill.Tests.Tokenization;

/// <summary>Expected ids come from Google's sentencepiece 0.1.97 (spm.SentencePieceProcessor.encode/decode) on the
/// same tokenizer.model files.</summary>
public class SentencePieceTokenizerTests
{
    static readonly SentencePieceTokenizer Stories = SentencePieceTokenizer.Load(TestPaths.Assets("stories260K", "tokenizer.model"));
    static readonly SentencePieceTokenizer Baby = SentencePieceTokenizer.Load(TestPaths.Assets("babyllama-tok105", "tokenizer.model"));

    static JsonElement ReadJson(params string[] parts) => JsonDocument.Parse(File.ReadAllText(TestPaths.Assets(parts))).RootElement;
    static int[] Ints(JsonElement e) => e.EnumerateArray().Select(x => x.GetInt32()).ToArray();

    [Fact]
    public void Stories_ReferenceLogitsPrompt_EncodesToReferenceTokensAfterBos()
    {
        var r = ReadJson("stories260K", "reference_logits.json");
        var tokens = Ints(r.GetProperty("tokens"));
        Assert.Equal(new[] { 1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426 }, tokens);
        Assert.Equal(tokens[0], Stories.BosId);
        Assert.Equal(tokens[1..], Stories.Encode(r.GetProperty("text").GetString()!));
    }

    [Fact]
    public void Stories_Greedy200_DecodesToReferenceText_AndReEncodes()
    {
        var g = ReadJson("stories260K", "greedy_200.json");
        var tokens = Ints(g.GetProperty("tokens"));
        string text = g.GetProperty("text").GetString()!;
        Assert.Equal(201, tokens.Length);
        Assert.Equal(1, tokens[0]);
        Assert.Equal(text, Stories.Decode(tokens[1..]));
        Assert.Equal(text, Stories.Decode(tokens));              // BOS is a control piece: no text
        Assert.Equal(tokens[1..], Stories.Encode(text));

        var stream = Stories.CreateStreamDecoder();               // streaming BOS + ids == Decode
        string streamed = string.Concat(tokens.Select(stream.Append)) + stream.Flush();
        Assert.Equal(text, streamed);
    }

    [Theory]
    [InlineData("a", new[] { 261 })]                              // one character: Microsoft.ML.Tokenizers alone gives []
    [InlineData("b", new[] { 268 })]
    [InlineData("x", new[] { 410, 444 })]                         // "▁x" is not a piece: "▁" + "x"
    [InlineData(" a", new[] { 261 })]                             // leading spaces removed
    [InlineData("  a", new[] { 261 })]
    [InlineData("a ", new[] { 261 })]                             // trailing spaces removed
    [InlineData("a  b", new[] { 261, 268 })]                      // repeated spaces collapse
    [InlineData("\n", new[] { 410, 13 })]                         // "▁" + <0x0A>
    [InlineData("a\nb", new[] { 261, 13, 430 })]                  // no "▁" after a newline
    [InlineData("Hello\n\nworld", new[] { 346, 306, 414, 13, 13, 424, 304, 341 })]
    [InlineData(" ", new int[0])]
    [InlineData("", new int[0])]
    [InlineData("café 😀", new[] { 280, 412, 431, 485, 410, 243, 162, 155, 131 })] // emoji -> 4 byte pieces
    [InlineData("Ω", new[] { 410, 209, 172 })]                    // <0xCE><0xA9>
    [InlineData("1234", new[] { 410, 475, 479, 472, 484 })]       // split_digits
    [InlineData("a\tb", new[] { 261, 12, 430 })]
    [InlineData("<s>", new[] { 410, 504, 419, 505 })]               // control pieces are not matched in text
    public void Stories_Encode_MatchesSentencePiece(string text, int[] expected) =>
        Assert.Equal(expected, Stories.Encode(text));

    [Fact]
    public void Stories_Encode_MultiLineParagraph_MatchesSentencePiece()
    {
        string text = "Tom said, \"Look!\" 3 cats ran.\nThen   they    slept.\n\n  Ben's café sold 12 pies — £5 each 😀";
        int[] expected = [274, 287, 336, 432, 313, 438, 347, 433, 443, 436, 410, 472, 280, 294, 419, 352, 303, 426, 13, 434, 260,
                          416, 366, 262, 305, 427, 413, 426, 13, 13, 368, 302, 439, 419, 280, 412, 431, 485, 384, 341, 410, 475,
                          479, 282, 417, 406, 410, 481, 410, 197, 166, 480, 344, 412, 402, 410, 243, 162, 155, 131];
        var ids = Stories.Encode(text);
        Assert.Equal(expected, ids);
        // Decode gives sentencepiece's text: the removed extra spaces do not come back.
        Assert.Equal("Tom said, \"Look!\" 3 cats ran.\nThen they slept.\n\n Ben's café sold 12 pies — £5 each 😀", Stories.Decode(ids));
    }

    [Fact]
    public void Stories_Normalize_FollowsSentencePieceWhitespaceRules()
    {
        Assert.Equal("▁a", Stories.Normalize("a"));
        Assert.Equal("▁a▁b", Stories.Normalize("  a   b  "));
        Assert.Equal("▁a\n▁b", Stories.Normalize("a\n b"));
        Assert.Equal("", Stories.Normalize("   "));
    }

    [Fact]
    public void Stories_DecodeEncode_RoundTripsStoriesWithoutExtraSpaces()
    {
        var stories = File.ReadAllText(TestPaths.Assets("text", "tinystories_val_slice.txt")).Split("\n\n")
            .Where(s => s.Length > 0 && !s.Contains("  ") && s == s.Trim(' ')).Take(200).ToList();
        Assert.Equal(200, stories.Count);
        foreach (var s in stories) Assert.Equal(s, Stories.Decode(Stories.Encode(s)));
    }

    [Fact]
    public void Stories_Decode_FollowsSentencePiece()
    {
        Assert.Equal("a", Stories.Decode([410, 261]));            // leading "▁" pieces dropped until text appears
        Assert.Equal("a", Stories.Decode([1, 410, 261]));
        Assert.Equal("\n a", Stories.Decode([13, 261]));          // a byte piece is text: the next space stays
        Assert.Equal("  a", Stories.Decode([35, 261]));           // <0x20> is a byte, not a word-start marker
        Assert.Equal("a a", Stories.Decode([261, 1, 261]));
        Assert.Equal("a😀", Stories.Decode([261, 243, 162, 155, 131]));
        Assert.Equal("a\uFFFD\uFFFD\uFFFD", Stories.Decode([261, 243, 162, 155]));   // truncated: one U+FFFD per byte
        Assert.Equal("\uFFFD\uFFFD", Stories.Decode([200, 1, 185]));                 // a control piece ends a byte run
        Assert.Equal(@" \342\201\207 ", Stories.Decode([0]));    // this model's unk_surface, verbatim as sentencepiece
    }

    [Fact]
    public void Stories_DecodeToken_IsMidStreamTextOfOnePiece()
    {
        Assert.Equal(" a", Stories.DecodeToken(261));
        Assert.Equal(" Once", Stories.DecodeToken(403));
        Assert.Equal("ir", Stories.DecodeToken(315));
        Assert.Equal("", Stories.DecodeToken(1));
        Assert.Equal("", Stories.DecodeToken(2));
        Assert.Equal("\n", Stories.DecodeToken(13));
        Assert.Equal("\uFFFD", Stories.DecodeToken(243));         // a lone lead byte: use the stream decoder
        Assert.Throws<ArgumentOutOfRangeException>(() => Stories.DecodeToken(512));
    }

    [Fact]
    public void Stories_StreamDecoder_HoldsPartialUtf8_AndDropsOnlyTheFirstLeadingSpace()
    {
        var d = Stories.CreateStreamDecoder();
        Assert.Equal("", d.Append(1));
        Assert.True(d.AtStartOfText);
        Assert.Equal("Once", d.Append(403));
        Assert.Equal(" upon", d.Append(407));
        Assert.Equal("", d.Append(243));
        Assert.Equal("", d.Append(162));
        Assert.Equal("", d.Append(155));
        Assert.Equal("😀", d.Append(131));
        Assert.Equal("", d.Append(243));
        Assert.Equal("\uFFFD", d.Flush());

        var mid = Stories.CreateStreamDecoder(atStartOfText: false);   // continuing after a printed prompt
        Assert.Equal(" a", mid.Append(261));
    }

    [Fact]
    public void Stories_Properties()
    {
        Assert.Equal("sentencepiece", Stories.Kind);
        Assert.Equal(512, Stories.VocabSize);
        Assert.Equal(1, Stories.BosId);
        Assert.Equal(2, Stories.EosId);
        Assert.Equal(new[] { 2 }, Stories.EosIds);
        Assert.True(Stories.AddBosByDefault);
        Assert.True(Stories.ByteFallback);
        Assert.Equal("▁Once", Stories.IdToToken(403));
        Assert.Equal("<0x0A>", Stories.IdToToken(13));
        Assert.Equal(403, Stories.TokenToId("▁Once"));
        Assert.Null(Stories.TokenToId("▁Oncex"));
        Assert.Null(Stories.IdToToken(512));
    }

    [Fact]
    public void Baby_ReferencePrompt_IsCharacterLevel()
    {
        int[] expected = [3, 34, 9, 22, 4, 3, 18, 20, 7, 9, 3, 5, 3, 6, 10, 16, 4, 25, 3, 6, 8, 4, 13, 4, 3, 17, 5, 12, 3, 5, 3, 14,
                          10, 6, 6, 14, 4, 3, 21, 10, 13, 14, 3, 9, 5, 16, 4, 11, 3, 31, 10, 14, 15, 19];
        var ids = Baby.Encode("Once upon a time, there was a little girl named Lily.");
        Assert.Equal(expected, ids);
        Assert.Equal("Once upon a time, there was a little girl named Lily.", Baby.Decode(ids));
        Assert.Equal(105, Baby.VocabSize);
        Assert.False(Baby.ByteFallback);
    }

    [Theory]
    [InlineData("a", new[] { 3, 5 })]
    [InlineData("x", new[] { 3, 37 })]
    [InlineData("\n", new[] { 3, 0 })]                                        // no byte fallback: <unk>
    [InlineData("Hello\n\nworld", new[] { 3, 33, 4, 14, 14, 7, 0, 17, 7, 13, 14, 11 })] // a run of unknowns is one <unk>
    [InlineData("😀", new[] { 3, 0 })]
    [InlineData("café 😀", new[] { 3, 22, 5, 24, 78, 3, 0 })]
    [InlineData("a\tb", new[] { 3, 5, 0, 23 })]
    [InlineData("a  b", new[] { 3, 5, 3, 23 })]
    public void Baby_Encode_MatchesSentencePiece(string text, int[] expected) =>
        Assert.Equal(expected, Baby.Encode(text));

    [Fact]
    public void Baby_Decode_UnknownGivesUnkSurface()
    {
        Assert.Equal(@"a \342\201\207 b", Baby.Decode([3, 5, 0, 23]));
        Assert.Equal("a", Baby.Decode([3, 5]));
    }

    [Fact]
    public void Load_CorruptModel_ThrowsInputExceptionNamingFile()
    {
        var dir = TestPaths.NewTempDir("sp-corrupt");
        var path = Path.Combine(dir, "tokenizer.model");
        File.WriteAllBytes(path, File.ReadAllBytes(TestPaths.Assets("stories260K", "tokenizer.model"))[..1000]);
        var e = Assert.Throws<InputException>(() => SentencePieceTokenizer.Load(path));
        Assert.Contains(path, e.Message);
    }
}
