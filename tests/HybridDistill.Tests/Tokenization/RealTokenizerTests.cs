using System.Text.Json;
using System.Text.Json.Nodes;
using HybridDistill.Tests.Cli;
using HybridDistill.Tokenization;

namespace HybridDistill.Tests.Tokenization;

/// <summary>The real Qwen3 and Llama 3 tokenizer files (assets/tokenizers/qwen3, llama3) against the ids that
/// transformers.js produces for 255 strings (reference_ids.json, no special tokens added), through the library and
/// through <c>hybrid encode</c>/<c>decode</c>; special tokens per family; decode as the inverse of encode.</summary>
public class RealTokenizerTests
{
    public sealed record Row(string Text, int[] Ids);

    public static string Dir(string family) => TestPaths.Assets("tokenizers", family);

    public static List<Row> References(string family)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(Dir(family), "reference_ids.json")));
        return doc.RootElement.GetProperty("rows").EnumerateArray()
            .Select(r => new Row(r.GetProperty("text").GetString()!, r.GetProperty("ids").EnumerateArray().Select(i => i.GetInt32()).ToArray()))
            .ToList();
    }

    static readonly Dictionary<string, ITextTokenizer> Loaded = new();

    public static ITextTokenizer Load(string family)
    {
        lock (Loaded)
        {
            if (!Loaded.TryGetValue(family, out var tok)) Loaded[family] = tok = TokenizerLoader.Load(Dir(family));
            return tok;
        }
    }

    /// <summary>Rows whose ids differ, described (index, text, expected, got) for the failure message.</summary>
    static List<string> Differences(IReadOnlyList<Row> rows, Func<int, IReadOnlyList<int>> encoded)
    {
        var diffs = new List<string>();
        for (int i = 0; i < rows.Count; i++)
        {
            var got = encoded(i);
            if (!got.SequenceEqual(rows[i].Ids))
                diffs.Add($"row {i} {JsonSerializer.Serialize(rows[i].Text)}: expected [{string.Join(",", rows[i].Ids)}] got [{string.Join(",", got)}]");
        }
        return diffs;
    }

    static string WriteJson(string name, object value)
    {
        var path = Path.Combine(TestPaths.NewTempDir(name), "input.json");
        File.WriteAllText(path, JsonSerializer.Serialize(value));
        return path;
    }

    [Theory]
    [InlineData("qwen3")]
    [InlineData("llama3")]
    public void Library_EveryReferenceStringEncodesToTheReferenceIds(string family)
    {
        var rows = References(family);
        Assert.Equal(255, rows.Count);
        var tok = Load(family);
        var diffs = Differences(rows, i => tok.Encode(rows[i].Text));
        Assert.True(diffs.Count == 0, $"{diffs.Count} of {rows.Count} {family} strings differ:\n" + string.Join("\n", diffs.Take(10)));
    }

    /// <summary>Cases the reference file has few or none of, with ids from the same transformers.js (@lenml/tokenizers
    /// 3.7.2, add_special_tokens false) computed for this test: letters and digits outside the BMP (one code point, two
    /// UTF-16 chars: the regex must see code points), an emoji before letters, CJK Extension B, NEL and BOM (where
    /// JavaScript's \s and Oniguruma's differ), a long s after an apostrophe, NFC of a combining accent and the
    /// Angstrom sign (Qwen normalizes, Llama 3 does not).</summary>
    public static readonly string[] ExtraTexts =
    [
        "a\U0001D400b \U0001D400\U0001D401\U0001D402 x", "\U0001F600abc \U0001F600 abc", "digits \U0001D7CF\U0001D7D0\U0001D7D1\U0001D7D2 \u0663\u0664\u0665 1234",
        "\U00020000\U00020001 \u6f22\u5b57", "nel\u0085line bom\ufeffx", "'\u017f IT'S it's", "", "e\u0301 \u212b",
    ];

    static readonly Dictionary<string, int[][]> ExtraIds = new()
    {
        ["llama3"] =
        [
            [64, 57352, 238, 222, 65, 82350, 238, 222, 57352, 238, 223, 57352, 238, 224, 865], [76460, 222, 13997, 91416, 40122],
            [61870, 220, 57352, 253, 237, 57352, 253, 238, 57352, 253, 239, 57352, 253, 240, 220, 117413, 124079, 124043, 220, 4513, 19],
            [172, 64319, 222, 172, 64319, 223, 110385, 95, 19113], [8301, 116360, 1074, 18665, 3305, 87], [6, 129, 123, 8871, 13575, 433, 596], [],
            [68, 54939, 29753, 104],
        ],
        ["qwen3"] =
        [
            [64, 146527, 65, 81250, 238, 222, 147822, 147382, 856], [141334, 13683, 90316, 39022],
            [60770, 220, 56252, 253, 237, 56252, 253, 238, 56252, 253, 239, 56252, 253, 240, 220, 149, 96, 149, 97, 149, 98, 220, 16, 17, 18, 19],
            [172, 63219, 222, 172, 63219, 223, 6567, 120, 95, 18600], [8138, 126, 227, 1056, 18167, 3225, 87], [6, 144815, 8700, 13272, 432, 594], [],
            [963, 79252],
        ],
    };

    [Theory]
    [InlineData("qwen3")]
    [InlineData("llama3")]
    public void Library_CodePointsOutsideTheBmpAndWhitespaceEdgeCases(string family)
    {
        var rows = ExtraTexts.Zip(ExtraIds[family], (t, ids) => new Row(t, ids)).ToList();
        var tok = Load(family);
        var diffs = Differences(rows, i => tok.Encode(rows[i].Text));
        Assert.True(diffs.Count == 0, string.Join("\n", diffs));
    }

    [Theory]
    [InlineData("qwen3")]
    [InlineData("llama3")]
    public void Cli_EncodeReproducesEveryReferenceString_AndDecodeInvertsIt(string family)
    {
        var rows = References(family);
        var input = WriteJson("encode-" + family, rows.Select(r => r.Text).ToArray());
        var (code, stdout, stderr) = CliHarness.Run("encode", "--model", Dir(family), "--input", input);
        Assert.True(code == 0, stderr);
        var got = JsonSerializer.Deserialize<int[][]>(stdout)!;
        Assert.Equal(rows.Count, got.Length);
        var diffs = Differences(rows, i => got[i]);
        Assert.True(diffs.Count == 0, $"{diffs.Count} of {rows.Count} {family} strings differ through hybrid encode:\n" + string.Join("\n", diffs.Take(10)));

        var idsFile = WriteJson("decode-" + family, rows.Select(r => r.Ids).ToArray());
        (code, stdout, stderr) = CliHarness.Run("decode", "--model", Dir(family), "--input", idsFile);
        Assert.True(code == 0, stderr);
        var texts = JsonSerializer.Deserialize<string[]>(stdout)!;
        Assert.Equal(rows.Select(r => Expected(family, r.Text)), texts);
    }

    /// <summary>What decode(encode(s)) gives: s itself, except that Qwen's NFC normalizer composes (one reference
    /// string has "e" + U+0301, which comes back as "é").</summary>
    static string Expected(string family, string text) =>
        family == "qwen3" ? UnicodeNormalizer.Normalize(text, TextNormalization.Nfc) : text;

    [Theory]
    [InlineData("qwen3")]
    [InlineData("llama3")]
    public void Library_DecodeOfEncodeGivesTheText(string family)
    {
        var tok = Load(family);
        var rows = References(family);
        int changedByNfc = 0;
        foreach (var r in rows.Concat(ExtraTexts.Select(t => new Row(t, []))))
        {
            Assert.Equal(Expected(family, r.Text), tok.Decode(tok.Encode(r.Text)));
            if (Expected(family, r.Text) != r.Text) changedByNfc++;
        }
        Assert.Equal(family == "qwen3" ? 2 : 0, changedByNfc);        // reference row 249 and the extra "e\u0301 \u212b"
    }

    [Fact]
    public void Special_Qwen3AddsNothing()
    {
        var tok = Load("qwen3");
        Assert.False(tok.AddBosByDefault);
        Assert.False(tok.AddEosByDefault);
        Assert.Null(tok.BosId);                                       // tokenizer_config.json: "bos_token": null
        Assert.Equal(151645, tok.EosId);                              // "<|im_end|>"
        foreach (var r in References("qwen3").Take(20)) Assert.Equal(r.Ids, tok.EncodeWithSpecialTokens(r.Text));
    }

    [Fact]
    public void Special_Llama3PrependsBeginOfText_AndNoEos()
    {
        var tok = Load("llama3");
        Assert.Equal(128000, tok.BosId);
        Assert.Equal("<|begin_of_text|>", tok.IdToToken(128000));
        Assert.True(tok.AddBosByDefault);
        Assert.False(tok.AddEosByDefault);
        foreach (var r in References("llama3").Take(20)) Assert.Equal([128000, .. r.Ids], tok.EncodeWithSpecialTokens(r.Text));
        Assert.Equal("<|begin_of_text|>Hello world", tok.Decode(tok.EncodeWithSpecialTokens("Hello world")));
    }

    /// <summary>The later Llama 3.x files say it in the post-processor (Sequence[ByteLevel, TemplateProcessing] with
    /// &lt;|begin_of_text|&gt; first); tokenizer_config.json's add_bos_token / add_eos_token override either way.</summary>
    [Fact]
    public void Special_FollowsTheTemplateAndTokenizerConfig()
    {
        var root = JsonNode.Parse(File.ReadAllText(Path.Combine(Dir("llama3"), "tokenizer.json")))!.AsObject();
        root["post_processor"] = new JsonObject
        {
            ["type"] = "Sequence",
            ["processors"] = new JsonArray(
                new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = true, ["trim_offsets"] = false, ["use_regex"] = true },
                new JsonObject
                {
                    ["type"] = "TemplateProcessing",
                    ["single"] = new JsonArray(
                        new JsonObject { ["SpecialToken"] = new JsonObject { ["id"] = "<|begin_of_text|>", ["type_id"] = 0 } },
                        new JsonObject { ["Sequence"] = new JsonObject { ["id"] = "A", ["type_id"] = 0 } }),
                    ["pair"] = new JsonArray(),
                    ["special_tokens"] = new JsonObject
                    {
                        ["<|begin_of_text|>"] = new JsonObject { ["id"] = "<|begin_of_text|>", ["ids"] = new JsonArray(128000), ["tokens"] = new JsonArray("<|begin_of_text|>") },
                    },
                }),
        };
        var dir = TestPaths.NewTempDir("llama32-template");
        File.WriteAllText(Path.Combine(dir, "tokenizer.json"), root.ToJsonString());
        // No tokenizer_config.json at all: the template alone decides.
        var tok = TokenizerLoader.Load(dir);
        Assert.True(tok.AddBosByDefault);
        Assert.Equal(new[] { 128000, 9906, 1917 }, tok.EncodeWithSpecialTokens("Hello world"));

        File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), """{"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>", "add_bos_token": false, "add_eos_token": true}""");
        tok = TokenizerLoader.Load(dir);
        Assert.Equal(new[] { 9906, 1917, 128001 }, tok.EncodeWithSpecialTokens("Hello world"));

        // Qwen with add_eos_token: EOS is tokenizer_config.json's eos_token.
        var qdir = TestPaths.NewTempDir("qwen-add-eos");
        File.Copy(Path.Combine(Dir("qwen3"), "tokenizer.json"), Path.Combine(qdir, "tokenizer.json"));
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(Dir("qwen3"), "tokenizer_config.json")))!.AsObject();
        config["add_eos_token"] = true;
        File.WriteAllText(Path.Combine(qdir, "tokenizer_config.json"), config.ToJsonString());
        Assert.Equal(new[] { 9707, 1879, 151645 }, TokenizerLoader.Load(qdir).EncodeWithSpecialTokens("Hello world"));
    }

    [Fact]
    public void Cli_SpecialPerFamily_SkipSpecial_AndOneLineErrors()
    {
        var input = WriteJson("encode-special", new[] { "Hello world", "" });
        var (code, stdout, stderr) = CliHarness.Run("encode", "--model", Dir("llama3"), "--input", input, "--special");
        Assert.True(code == 0, stderr);
        Assert.Equal(new[] { new[] { 128000, 9906, 1917 }, [128000] }, JsonSerializer.Deserialize<int[][]>(stdout));
        (code, stdout, stderr) = CliHarness.Run("encode", "--model", Dir("qwen3"), "--input", input, "--special");
        Assert.True(code == 0, stderr);
        Assert.Equal(new[] { new[] { 9707, 1879 }, [] }, JsonSerializer.Deserialize<int[][]>(stdout));

        var ids = WriteJson("decode-special", new[] { new[] { 128000, 9906, 1917 } });
        (code, stdout, _) = CliHarness.Run("decode", "--model", Dir("llama3"), "--input", ids);
        Assert.Equal(new[] { "<|begin_of_text|>Hello world" }, JsonSerializer.Deserialize<string[]>(stdout));
        (code, stdout, _) = CliHarness.Run("decode", "--model", Dir("llama3"), "--input", ids, "--skip-special");
        Assert.Equal(new[] { "Hello world" }, JsonSerializer.Deserialize<string[]>(stdout));

        // Errors: one line naming the file and the fix, exit code 2.
        string missing = Path.Combine(TestPaths.NewTempDir("encode-missing"), "nope.json");
        (code, stdout, stderr) = CliHarness.Run("encode", "--model", Dir("qwen3"), "--input", missing);
        AssertOneLineError(code, stdout, stderr, missing, "JSON list of strings");
        var bad = WriteJson("encode-bad", new object[] { "ok", 3 });
        (code, stdout, stderr) = CliHarness.Run("encode", "--model", Dir("qwen3"), "--input", bad);
        AssertOneLineError(code, stdout, stderr, bad, "element 1 is the number 3");
        var outOfRange = WriteJson("decode-range", new[] { new[] { 1, 999999 } });
        (code, stdout, stderr) = CliHarness.Run("decode", "--model", Dir("qwen3"), "--input", outOfRange);
        AssertOneLineError(code, stdout, stderr, outOfRange, "id 999999");
        (code, stdout, stderr) = CliHarness.Run("encode", "--model", Path.Combine(TestPaths.NewTempDir("encode-nodir"), "none"), "--input", input);
        AssertOneLineError(code, stdout, stderr, "none", "tokenizer files");
    }

    [Fact]
    public void Cli_HelpOfEncodeAndDecodeRenders()
    {
        foreach (var command in new[] { "encode", "decode" })
        {
            var (code, stdout, stderr) = CliHarness.Run(command, "--help");
            Assert.True(code == 0, stderr);
            Assert.Contains("--model", stdout);
            Assert.Contains("--input", stdout);
        }
    }

    static void AssertOneLineError(int code, string stdout, string stderr, string names, string says)
    {
        Assert.Equal(2, code);
        Assert.Equal("", stdout);
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, stderr);
        Assert.StartsWith("error: ", lines[0]);
        Assert.Contains(names, lines[0]);
        Assert.Contains(says, lines[0]);
    }
}
