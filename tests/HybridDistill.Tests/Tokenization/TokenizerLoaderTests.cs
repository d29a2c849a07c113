using System.Text.Json.Nodes;
using HybridDistill.Tokenization;

namespace HybridDistill.Tests.Tokenization;

public class TokenizerLoaderTests
{
    static string NewDir(string name, params (string Name, string Source)[] copies)
    {
        var dir = TestPaths.NewTempDir(name);
        foreach (var (n, src) in copies) File.Copy(src, Path.Combine(dir, n));
        return dir;
    }

    static string StoriesModel => TestPaths.Assets("stories260K", "tokenizer.model");

    [Fact]
    public void Stories260K_Directory_LoadsSentencePieceWithConfigIds()
    {
        var tok = TokenizerLoader.Load(TestPaths.Assets("stories260K"));
        Assert.IsType<SentencePieceTokenizer>(tok);
        Assert.Equal("sentencepiece", tok.Kind);
        Assert.Equal(512, tok.VocabSize);
        Assert.Equal(1, tok.BosId);
        Assert.Equal(2, tok.EosId);
        Assert.Equal(new[] { 2 }, tok.EosIds);
        Assert.True(tok.AddBosByDefault);
        Assert.Equal(new[] { 403, 407, 261 }, tok.Encode("Once upon a"));
    }

    [Fact]
    public void BabyLlama_Directory_LoadsCharacterLevelSentencePiece()
    {
        var tok = TokenizerLoader.Load(TestPaths.Assets("babyllama-tok105"));
        Assert.Equal("sentencepiece", tok.Kind);
        Assert.Equal(105, tok.VocabSize);
        Assert.Equal(1, tok.BosId);
        Assert.Equal(2, tok.EosId);
        Assert.Equal(new[] { 3, 5 }, tok.Encode("a"));
    }

    [Fact]
    public void ConfigEosList_AndTokenizerConfigAddBos_AreApplied()
    {
        var dir = NewDir("loader-eos-list", ("tokenizer.model", StoriesModel));
        File.WriteAllText(Path.Combine(dir, "config.json"), """{"bos_token_id": 1, "eos_token_id": [2, 1]}""");
        File.WriteAllText(Path.Combine(dir, "generation_config.json"), """{"eos_token_id": [1, 0]}""");
        File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), """{"add_bos_token": false}""");
        var tok = TokenizerLoader.Load(dir);
        Assert.Equal(2, tok.EosId);
        Assert.Equal(new[] { 2, 1, 0 }, tok.EosIds);      // config.json first, then generation_config.json, no repeats
        Assert.Equal(1, tok.BosId);
        Assert.False(tok.AddBosByDefault);
    }

    [Fact]
    public void TokenizerConfigStrings_GiveIds_WhenConfigHasNone()
    {
        var dir = NewDir("loader-token-strings", ("tokenizer.model", StoriesModel));
        File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"),
            """{"bos_token": {"content": "</s>", "lstrip": false}, "eos_token": "<unk>"}""");
        var tok = TokenizerLoader.Load(dir);
        Assert.Equal(2, tok.BosId);
        Assert.Equal(new[] { 0 }, tok.EosIds);
        Assert.True(tok.AddBosByDefault);                  // SentencePiece default
    }

    [Fact]
    public void TokenizerJson_IsPreferredOverTokenizerModel()
    {
        var dir = NewDir("loader-prefer-json", ("tokenizer.model", StoriesModel));
        TokenizerJsonFiles.WriteGpt2(dir);
        var tok = TokenizerLoader.Load(dir);
        Assert.Equal("bpe", tok.Kind);
        Assert.Equal(new[] { 15496, 995 }, tok.Encode("Hello world"));
        Assert.False(tok.AddBosByDefault);                 // BPE default without add_bos_token or a BOS template
    }

    [Fact]
    public void SentencePieceStyleTokenizerJson_FallsBackToTokenizerModel()
    {
        var dir = NewDir("loader-fallback", ("tokenizer.model", StoriesModel));
        TokenizerJsonFiles.WriteTiny(dir, preTokenizer: new JsonObject { ["type"] = "Metaspace", ["replacement"] = "▁" });
        var tok = TokenizerLoader.Load(dir);
        Assert.Equal("sentencepiece", tok.Kind);
        Assert.Equal(new[] { 261 }, tok.Encode("a"));
    }

    [Fact]
    public void VocabAndMerges_WithTokenizerConfig()
    {
        var dir = NewDir("loader-vocab-merges", ("vocab.json", TokenizerJsonFiles.Gpt2VocabPath), ("merges.txt", TokenizerJsonFiles.Gpt2MergesPath));
        File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"),
            """{"bos_token": "<|endoftext|>", "eos_token": {"content": "<|endoftext|>"}, "add_bos_token": true}""");
        var tok = TokenizerLoader.Load(dir);
        Assert.Equal("bpe", tok.Kind);
        Assert.Equal(50256, tok.BosId);
        Assert.Equal(new[] { 50256 }, tok.EosIds);
        Assert.True(tok.AddBosByDefault);
        Assert.Equal(new[] { 15496, 995, 50256 }, tok.Encode("Hello world<|endoftext|>"));
    }

    [Fact]
    public void EmptyDirectory_ListsTheFilesLookedFor()
    {
        var dir = TestPaths.NewTempDir("loader-empty");
        File.WriteAllText(Path.Combine(dir, "vocab.json"), "{}");
        var e = Assert.Throws<InputException>(() => TokenizerLoader.Load(dir));
        Assert.Contains(dir, e.Message);
        foreach (var name in new[] { "tokenizer.json", "tokenizer.model", "vocab.json", "merges.txt" }) Assert.Contains(name, e.Message);
        Assert.Contains("merges.txt is missing", e.Message);
    }

    [Fact]
    public void MissingDirectory_Throws()
    {
        var dir = Path.Combine(TestPaths.NewTempDir("loader-missing"), "nope");
        var e = Assert.Throws<InputException>(() => TokenizerLoader.Load(dir));
        Assert.Contains(dir, e.Message);
    }

    [Fact]
    public void CorruptTokenizerJson_ThrowsNamingFile_EvenWithTokenizerModel()
    {
        var dir = NewDir("loader-corrupt", ("tokenizer.model", StoriesModel));
        var path = Path.Combine(dir, "tokenizer.json");
        File.WriteAllText(path, "{ \"model\": { \"type\": \"BPE\", ");
        var e = Assert.Throws<InputException>(() => TokenizerLoader.Load(dir));
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void ConfigIdOutsideVocabulary_ThrowsNamingConfig()
    {
        var dir = NewDir("loader-bad-eos", ("tokenizer.model", StoriesModel));
        var config = Path.Combine(dir, "config.json");
        File.WriteAllText(config, """{"bos_token_id": 1, "eos_token_id": 600}""");
        var e = Assert.Throws<InputException>(() => TokenizerLoader.Load(dir));
        Assert.Contains(config, e.Message);
        Assert.Contains("eos_token_id", e.Message);
    }
}
