using System.Text.Json.Nodes;

namespace HybridDistill.Tests.Tokenization;

/// <summary>Writes Hugging Face tokenizer.json files for tests, in the layout tokenizers' save() produces.</summary>
internal static class TokenizerJsonFiles
{
    public static string Gpt2VocabPath => TestPaths.Assets("tokenizers", "gpt2-bpe", "vocab.json");
    public static string Gpt2MergesPath => TestPaths.Assets("tokenizers", "gpt2-bpe", "merges.hf.txt");

    public static readonly JsonObject Gpt2PreTokenizer = new()
    {
        ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = true,
    };

    /// <summary>GPT-2's tokenizer.json rebuilt from vocab.json + merges.hf.txt: BPE model with string merges,
    /// ByteLevel pre-tokenizer/post-processor/decoder and &lt;|endoftext|&gt; as an added special token.</summary>
    public static string WriteGpt2(string dir, JsonNode? preTokenizer = null, bool arrayMerges = false)
    {
        var vocab = JsonNode.Parse(File.ReadAllText(Gpt2VocabPath))!;
        var lines = File.ReadAllLines(Gpt2MergesPath).Skip(1).Where(l => l.Length > 0);
        var merges = new JsonArray(lines.Select(l => arrayMerges
            ? (JsonNode)new JsonArray(l.Split(' ').Select(p => (JsonNode)JsonValue.Create(p)!).ToArray())
            : JsonValue.Create(l)!).ToArray());
        var root = new JsonObject
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = new JsonArray(AddedToken(50256, "<|endoftext|>")),
            ["normalizer"] = null,
            ["pre_tokenizer"] = preTokenizer ?? Gpt2PreTokenizer.DeepClone(),
            ["post_processor"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = true, ["trim_offsets"] = false, ["use_regex"] = true },
            ["decoder"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = true, ["trim_offsets"] = true, ["use_regex"] = true },
            ["model"] = new JsonObject
            {
                ["type"] = "BPE", ["dropout"] = null, ["unk_token"] = null, ["continuing_subword_prefix"] = "",
                ["end_of_word_suffix"] = "", ["fuse_unk"] = false, ["byte_fallback"] = false, ["vocab"] = vocab, ["merges"] = merges,
            },
        };
        var path = Path.Combine(dir, "tokenizer.json");
        File.WriteAllText(path, root.ToJsonString());
        return path;
    }

    public static JsonObject AddedToken(int id, string content, bool special = true, bool lstrip = false, bool rstrip = false) => new()
    {
        ["id"] = id, ["content"] = content, ["single_word"] = false, ["lstrip"] = lstrip, ["rstrip"] = rstrip,
        ["normalized"] = false, ["special"] = special,
    };

    /// <summary>A hand-made byte-level BPE over the letters a, b, c and space ("Ġ").</summary>
    public static string WriteTiny(string dir, bool ignoreMerges = false, JsonArray? addedTokens = null, JsonNode? postProcessor = null,
                                   JsonNode? preTokenizer = null)
    {
        var root = new JsonObject
        {
            ["version"] = "1.0",
            ["added_tokens"] = addedTokens ?? new JsonArray(),
            ["normalizer"] = null,
            ["pre_tokenizer"] = preTokenizer ?? Gpt2PreTokenizer.DeepClone(),
            ["post_processor"] = postProcessor,
            ["decoder"] = new JsonObject { ["type"] = "ByteLevel" },
            ["model"] = new JsonObject
            {
                ["type"] = "BPE", ["ignore_merges"] = ignoreMerges,
                ["vocab"] = new JsonObject { ["a"] = 0, ["b"] = 1, ["c"] = 2, ["Ġ"] = 3, ["ab"] = 4, ["abc"] = 5, ["bc"] = 6, ["Ġa"] = 7 },
                ["merges"] = new JsonArray(new JsonArray("b", "c"), new JsonArray("Ġ", "a")),   // array form (tokenizers >= 0.20)
            },
        };
        var path = Path.Combine(dir, "tokenizer.json");
        File.WriteAllText(path, root.ToJsonString());
        return path;
    }
}
