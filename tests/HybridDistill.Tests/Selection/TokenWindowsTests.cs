using HybridDistill.Data;
using HybridDistill.Selection;

namespace HybridDistill.Tests.Selection;

public class TokenWindowsTests
{
    static string Stories => TestPaths.Assets("stories260K");

    static string SmallText()
    {
        var path = Path.Combine(TestPaths.NewTempDir("windows-text"), "stories.txt");
        File.WriteAllLines(path, File.ReadLines(TestPaths.Assets("text", "tinystories_val_slice.txt")).Take(400));
        return path;
    }

    [Fact]
    public void TextFileWindows_AreConsecutiveDocumentsWithBos()
    {
        var text = SmallText();
        var windows = TokenWindowSources.FromPath(text).Open(Stories, length: 64, maxTokens: 64 * 5 + 10);
        Assert.Equal(5, windows.Count);
        Assert.Equal(64, windows.Length);
        var tokenizer = HybridDistill.Tokenization.TokenizerLoader.Load(Stories);
        var firstDocument = File.ReadAllText(text).Replace("\r\n", "\n").Split("\n\n")[0].Trim('\n');
        var expected = new[] { tokenizer.BosId!.Value }.Concat(tokenizer.Encode(firstDocument)).Take(64).Select(t => (long)t).ToArray();
        using var batch = windows.Batch(0, 2);                                  // [2, 64]
        Assert.Equal([2L, 64L], batch.shape);
        Assert.Equal(expected, batch[0].data<long>().ToArray()[..expected.Length]);
        var d = windows.Describe();
        Assert.Equal("text", d.Kind);
        Assert.Equal(320, d.Tokens);
        Assert.Equal(64, d.Sha256!.Length);
    }

    [Fact]
    public void TokenDirectoryWindows_ComeFromTheValidationSplit()
    {
        var dir = Path.Combine(TestPaths.NewTempDir("windows-tokens"), "data");
        CorpusBuilder.Build(Stories, [SmallText()], dir, new TokenizeOptions { MinValTokens = 1024 });
        var windows = TokenWindowSources.FromPath(dir).Open(Stories, length: 64, maxTokens: 64 * 4);
        Assert.Equal(4, windows.Count);
        using var val = new TokenFile(Path.Combine(dir, CorpusBuilder.ValFile));
        var expected = new uint[64];
        val.Read(2 * 63, expected);                                             // window 2: 63 inputs + the last target
        using var batch = windows.Batch(2, 1);                                  // [1, 64]
        Assert.Equal(expected.Select(t => (long)t), batch.data<long>().ToArray());
        Assert.Equal("tokens", windows.Describe().Kind);

        // ids of a 512-piece tokenizer do not fit babyllama's 105-id vocabulary
        var e = Assert.Throws<InputException>(() => TokenWindowSources.FromPath(dir).Open(TestPaths.Assets("babyllama-tok105"), 64, 256));
        Assert.Contains("does not fit the vocabulary", e.Message);
    }

    [Fact]
    public void Ppl_ScoresFromATokenDirectory()
    {
        var dir = Path.Combine(TestPaths.NewTempDir("windows-ppl"), "data");
        CorpusBuilder.Build(Stories, [SmallText()], dir, new TokenizeOptions { MinValTokens = 1024 });
        var scores = LayerScorers.Create("ppl").Score(new ScoringContext
        {
            Method = "ppl", TeacherDir = Stories, DataPath = dir, BudgetTokens = 512,
            Set = new Dictionary<string, string> { ["window"] = "128" },
        });
        Assert.Equal(5, scores.NumLayers);
        Assert.All(scores.Scores, s => Assert.True(s > 0, "ablating any stories260K layer should raise its NLL"));
        Assert.Equal(4L * 127, scores.Details![0]!.ToObject()["tokens"]!.GetValue<long>());
        Assert.Equal("tokens", scores.Provenance.ToObject()["data"]!["kind"]!.GetValue<string>());
    }

    [Fact]
    public void MissingOrWrongDataPaths_AreNamed()
    {
        Assert.Contains("data file not found", Assert.Throws<InputException>(() => TokenWindowSources.FromPath("/nonexistent/x.txt")).Message);
        Assert.Contains("without manifest.json", Assert.Throws<InputException>(() => TokenWindowSources.FromPath(TestPaths.NewTempDir("empty"))).Message);
    }
}
