using System.Text.Json.Nodes;
using HybridDistill.Tokenization;

namespace HybridDistill.Tests.Tokenization;

/// <summary>GPT-2 expected ids come from an independent Python implementation of GPT-2's encoder (regex
/// pre-tokenization + rank-ordered merges over vocab.json / merges.hf.txt); they agree with Microsoft.ML.Tokenizers
/// on 800 KB of mixed text.</summary>
public class BpeTokenizerTests
{
    static readonly BpeTokenizer Gpt2 = BpeTokenizer.FromVocabAndMerges(TokenizerJsonFiles.Gpt2VocabPath, TokenizerJsonFiles.Gpt2MergesPath);

    const string Part1 = "Hello world! The café opened at 9:30 on 12/05/2024, and 1,234 people came.\nThey said:  \"It's   great\" 😀\n\n  Indented line\twith tab.";
    const string Part2 = "Next doc costs $3.50 — naïve?";
    static readonly int[] Part1Ids = [15496, 995, 0, 383, 40304, 4721, 379, 860, 25, 1270, 319, 1105, 14, 2713, 14, 1238, 1731, 11, 290, 352, 11,
                                      24409, 661, 1625, 13, 198, 2990, 531, 25, 220, 366, 1026, 338, 220, 220, 1049, 1, 30325, 222, 628, 220,
                                      1423, 4714, 1627, 197, 4480, 7400, 13];
    static readonly int[] Part2Ids = [10019, 2205, 3484, 720, 18, 13, 1120, 851, 41492, 30];
    static readonly string Paragraph = Part1 + "<|endoftext|>" + Part2;
    static readonly int[] ParagraphIds = [.. Part1Ids, 50256, .. Part2Ids];

    [Fact]
    public void Gpt2_HelloWorld() => Assert.Equal(new[] { 15496, 995 }, Gpt2.Encode("Hello world"));

    [Fact]
    public void Gpt2_Paragraph_ExactIds_AndRoundTrip()
    {
        Assert.Equal(ParagraphIds, Gpt2.Encode(Paragraph));
        Assert.Equal(Paragraph, Gpt2.Decode(ParagraphIds));
    }

    [Fact]
    public void Gpt2_SpecialTokenIsRecognisedInText()
    {
        Assert.Equal(new[] { 220, 50256 }, Gpt2.Encode(" <|endoftext|>"));
        Assert.Equal(new[] { 64, 50256, 65 }, Gpt2.Encode("a<|endoftext|>b"));
        Assert.Equal(50256, Gpt2.TokenToId("<|endoftext|>"));
    }

    [Fact]
    public void TokenizerJson_Gpt2_AgreesWithVocabAndMerges()
    {
        var dir = TestPaths.NewTempDir("bpe-gpt2-json");
        var fromJson = BpeTokenizer.FromTokenizerJson(TokenizerJsonFiles.WriteGpt2(dir));
        Assert.Equal(ParagraphIds, fromJson.Encode(Paragraph));
        Assert.Equal(Paragraph, fromJson.Decode(fromJson.Encode(Paragraph)));
        Assert.Equal(new[] { 15496, 995 }, fromJson.Encode("Hello world"));
        Assert.Equal(50257, fromJson.VocabSize);
        Assert.Equal("bpe", fromJson.Kind);
        Assert.Null(fromJson.BosId);                 // GPT-2's post-processor adds nothing
        Assert.False(fromJson.AddBosByDefault);

        string story = string.Join("\n\n", File.ReadAllText(TestPaths.Assets("text", "tinystories_val_slice.txt")).Split("\n\n").Take(30));
        var ids = Gpt2.Encode(story);
        Assert.Equal(ids, fromJson.Encode(story));
        Assert.Equal(story, fromJson.Decode(ids));
    }

    [Fact]
    public void TokenizerJson_ArrayMerges_AndLlama3StyleSplitPreTokenizer()
    {
        var dir = TestPaths.NewTempDir("bpe-llama3-style");
        // Sequence[Split(Llama-3 pattern, Isolated), ByteLevel(use_regex=false)] over GPT-2's vocabulary. Digits go in
        // groups of at most 3 and newline runs are one piece, unlike GPT-2's pattern.
        var pre = new JsonObject
        {
            ["type"] = "Sequence",
            ["pretokenizers"] = new JsonArray(
                new JsonObject
                {
                    ["type"] = "Split", ["behavior"] = "Isolated", ["invert"] = false,
                    ["pattern"] = new JsonObject { ["Regex"] = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+" },
                },
                new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = false }),
        };
        var tok = BpeTokenizer.FromTokenizerJson(TokenizerJsonFiles.WriteGpt2(dir, pre, arrayMerges: true));
        // Expected from the Python reference with the same pattern; GPT-2's own pattern gives the second lists.
        Assert.Equal(new[] { 10163, 29228, 22 }, tok.Encode("1234567"));     // "123" "456" "7"  (GPT-2: 10163, 2231, 3134)
        Assert.Equal(new[] { 87, 628, 88 }, tok.Encode("x\n\ny"));          // "\n\n" one piece (GPT-2: 87, 198, 198, 88)
        Assert.Equal(new[] { 10163, 2231, 3134 }, Gpt2.Encode("1234567"));
        Assert.Equal(new[] { 87, 198, 198, 88 }, Gpt2.Encode("x\n\ny"));
        Assert.Equal(new[] { 15496, 995 }, tok.Encode("Hello world"));
        Assert.Equal(Paragraph, tok.Decode(tok.Encode(Paragraph)));
    }

    [Fact]
    public void TokenizerJson_IgnoreMerges_EmitsWholeVocabularyPieces()
    {
        var dir = TestPaths.NewTempDir("bpe-tiny");
        var merged = BpeTokenizer.FromTokenizerJson(TokenizerJsonFiles.WriteTiny(dir, ignoreMerges: false));
        Assert.Equal(new[] { 0, 6 }, merged.Encode("abc"));           // merges only: a + bc ("ab" is never merged)
        Assert.Equal(new[] { 7, 6 }, merged.Encode(" abc"));          // Ġ a b c -> Ġ a bc -> Ġa bc
        var whole = BpeTokenizer.FromTokenizerJson(TokenizerJsonFiles.WriteTiny(dir, ignoreMerges: true));
        Assert.Equal(new[] { 5 }, whole.Encode("abc"));                // "abc" is in the vocabulary
        Assert.Equal(new[] { 7, 6 }, whole.Encode(" abc"));           // "Ġabc" is not
        Assert.Equal(" abc", whole.Decode([7, 6]));
    }

    [Fact]
    public void TokenizerJson_AddedTokens_LStripAndPlain()
    {
        var dir = TestPaths.NewTempDir("bpe-added");
        var added = new JsonArray(TokenizerJsonFiles.AddedToken(8, "<X>", lstrip: true), TokenizerJsonFiles.AddedToken(9, "<Y>"),
                                  TokenizerJsonFiles.AddedToken(10, "<X><Y>", special: false));
        var tok = BpeTokenizer.FromTokenizerJson(TokenizerJsonFiles.WriteTiny(dir, addedTokens: added));
        Assert.Equal(new[] { 0, 8, 1 }, tok.Encode("a <X>b"));         // lstrip: the space goes into <X>
        Assert.Equal(new[] { 0, 3, 9, 1 }, tok.Encode("a <Y>b"));      // no lstrip: the space is a token
        Assert.Equal(new[] { 10, 0 }, tok.Encode("<X><Y>a"));          // longest match wins
        Assert.Equal("a<X>b", tok.Decode([0, 8, 1]));
        Assert.Equal(11, tok.VocabSize);
    }

    [Fact]
    public void TokenizerJson_TemplatePostProcessor_GivesBos()
    {
        var dir = TestPaths.NewTempDir("bpe-template");
        var post = new JsonObject
        {
            ["type"] = "Sequence",
            ["processors"] = new JsonArray(
                new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = true, ["trim_offsets"] = false, ["use_regex"] = true },
                new JsonObject
                {
                    ["type"] = "TemplateProcessing",
                    ["single"] = new JsonArray(new JsonObject { ["SpecialToken"] = new JsonObject { ["id"] = "<X>", ["type_id"] = 0 } },
                                               new JsonObject { ["Sequence"] = new JsonObject { ["id"] = "A", ["type_id"] = 0 } }),
                    ["pair"] = new JsonArray(),
                    ["special_tokens"] = new JsonObject
                    {
                        ["<X>"] = new JsonObject { ["id"] = "<X>", ["ids"] = new JsonArray(8), ["tokens"] = new JsonArray("<X>") },
                    },
                }),
        };
        var tok = BpeTokenizer.FromTokenizerJson(TokenizerJsonFiles.WriteTiny(dir, addedTokens: new JsonArray(TokenizerJsonFiles.AddedToken(8, "<X>")), postProcessor: post));
        Assert.Equal(8, tok.BosId);
        Assert.True(tok.AddBosByDefault);
        Assert.Equal(new[] { 0 }, tok.Encode("a"));                    // Encode itself never adds BOS
    }

    [Fact]
    public void StreamDecoder_HoldsSplitUtf8Character()
    {
        // " 😀" is two byte-level tokens in GPT-2: 30325 (20 F0 9F 98) and 222 (80).
        Assert.Equal(new[] { 30325, 222 }, Gpt2.Encode(" 😀"));
        var d = Gpt2.CreateStreamDecoder();
        Assert.Equal("Hello", d.Append(15496));
        Assert.Equal(" ", d.Append(30325));
        Assert.Equal("😀", d.Append(222));
        Assert.Equal(" world", d.Append(995));
        Assert.Equal("", d.Flush());
        Assert.Equal(" world", Gpt2.DecodeToken(995));                 // BPE keeps the space at the start of text too
        Assert.Equal(" \uFFFD", Gpt2.DecodeToken(30325));
        Assert.Equal("Ġworld", Gpt2.IdToToken(995));
    }

    [Fact]
    public void TokenizerJson_NotByteLevel_IsRejectedWithReason()
    {
        var dir = TestPaths.NewTempDir("bpe-metaspace");
        var path = TokenizerJsonFiles.WriteTiny(dir, preTokenizer: new JsonObject { ["type"] = "Metaspace", ["replacement"] = "▁" });
        var e = Assert.Throws<InputException>(() => BpeTokenizer.FromTokenizerJson(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("Metaspace", e.Message);
    }

    [Fact]
    public void TokenizerJson_Corrupt_ThrowsInputExceptionNamingFile()
    {
        var dir = TestPaths.NewTempDir("bpe-corrupt");
        var path = Path.Combine(dir, "tokenizer.json");
        File.WriteAllText(path, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [");
        var e = Assert.Throws<InputException>(() => BpeTokenizer.FromTokenizerJson(path));
        Assert.Contains(path, e.Message);

        File.WriteAllText(path, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a b\"]}, \"pre_tokenizer\": {\"type\": \"ByteLevel\"}}");
        e = Assert.Throws<InputException>(() => BpeTokenizer.FromTokenizerJson(path));   // merge of a token not in the vocabulary
        Assert.Contains(path, e.Message);
    }
}
