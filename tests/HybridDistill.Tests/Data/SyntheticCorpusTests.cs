using System.Text.Json.Nodes;
using HybridDistill.Artifacts;
using HybridDistill.Data;
using HybridDistill.Evaluation;
using HybridDistill.Tokenization;

namespace HybridDistill.Tests.Data;

public class SyntheticCorpusTests
{
    static string Stories => TestPaths.Assets("stories260K");
    static string Text => TestPaths.Assets("text", "tinystories_val_slice.txt");

    static JsonObject RecipeJson(int seed = 3, int seqLen = 256, long windows = 300) => new()
    {
        ["tokenizer"] = Stories,
        ["text"] = Text,
        ["seed"] = seed,
        ["seq_len"] = seqLen,
        ["train_windows"] = windows,
        ["val_windows"] = 8,
        ["episode_min"] = 64,
        ["mix"] = new JsonObject { ["story"] = 1, ["repeat"] = 1, ["copy"] = 1, ["passkey"] = 1, ["kv"] = 1, ["multihop"] = 1 },
    };

    static SynthRecipe Recipe(JsonObject json) => SynthRecipe.FromJson(OpaqueJson.FromNode(json), "/", "test-recipe.json");

    static (uint[] Ids, byte[] Classes) ReadSplit(string dir, string tokens, string classes)
    {
        var bytes = File.ReadAllBytes(Path.Combine(dir, tokens));
        var ids = new uint[bytes.Length / 4];
        Buffer.BlockCopy(bytes, 0, ids, 0, bytes.Length);
        return (ids, File.ReadAllBytes(Path.Combine(dir, classes)));
    }

    [Fact]
    public void SameRecipeAndSeed_GiveTheSameBytes_AndAnotherSeedDiffers()
    {
        string a = Path.Combine(TestPaths.NewTempDir("synth-a"), "c"), b = Path.Combine(TestPaths.NewTempDir("synth-b"), "c");
        string c = Path.Combine(TestPaths.NewTempDir("synth-c"), "c");
        SyntheticCorpus.Build(Recipe(RecipeJson()), a);
        SyntheticCorpus.Build(Recipe(RecipeJson()), b);
        SyntheticCorpus.Build(Recipe(RecipeJson(seed: 4)), c);
        foreach (var file in new[] { "train.bin", "val.bin", "train.classes.bin", "val.classes.bin", "heldout.txt", "manifest.json" })
            Assert.Equal(File.ReadAllBytes(Path.Combine(a, file)), File.ReadAllBytes(Path.Combine(b, file)));
        Assert.NotEqual(File.ReadAllBytes(Path.Combine(a, "train.bin")), File.ReadAllBytes(Path.Combine(c, "train.bin")));
        // Held-out documents depend on heldout_seed only: a pretraining's phases and a distillation corpus share them.
        Assert.Equal(File.ReadAllText(Path.Combine(a, "heldout.txt")), File.ReadAllText(Path.Combine(c, "heldout.txt")));
        Assert.DoesNotContain(Directory.GetDirectories(Path.GetDirectoryName(a)!), d => Path.GetFileName(d).StartsWith('.'));
    }

    [Fact]
    public void Windows_StartWithBos_AlignWithTheSampler_AndEveryKindAppears()
    {
        var dir = Path.Combine(TestPaths.NewTempDir("synth-layout"), "c");
        var manifest = SyntheticCorpus.Build(Recipe(RecipeJson()), dir);
        const int T = 256;
        Assert.True(manifest.LossClasses);
        Assert.Equal(300, manifest.Train.Documents);
        Assert.Equal(300L * T + 1, manifest.Train.Tokens);
        using var data = new TokenDataset(dir);
        Assert.Equal(300, data.Train.WindowCount(T));
        var (ids, classes) = ReadSplit(dir, "train.bin", "train.classes.bin");
        var kinds = new HashSet<EpisodeKind>();
        for (int w = 0; w < 300; w++)
        {
            Assert.Equal(1u, ids[w * T]);                                          // BOS at position 0, like an eval prompt
            Assert.Equal(TokenRole.None, LossClasses.Role(classes[w * T]));        // ... and never a target
            kinds.Add(LossClasses.Kind(classes[w * T + 1]));
        }
        Assert.Equal(LossClasses.Kinds.ToHashSet(), kinds);
        using var batch = data.TrainBatch([0, 7], T);
        Assert.Equal(new long[] { 2, T + 1 }, batch.Classes!.shape);
        Assert.Equal(classes[7 * T + 5], batch.Classes[1, 5].item<byte>());
        // The held-out documents are in heldout.txt and in no training window's text.
        var heldout = HeldOutText.Documents(File.ReadAllText(Path.Combine(dir, "heldout.txt"))).ToList();
        Assert.True(heldout.Count >= 10);
    }

    /// <summary>Every answer token can be recalled from its own window: the tokens before it, back to the last unscored
    /// (unpredictable) token, occurred earlier followed by the answer (copy, repeat, pass key, key-value), or, for
    /// alias chains, following the chain from the queried key reaches the answer's value.</summary>
    [Fact]
    public void EveryAnswer_IsRecallableFromItsWindow()
    {
        var dir = Path.Combine(TestPaths.NewTempDir("synth-recall"), "c");
        SyntheticCorpus.Build(Recipe(RecipeJson(windows: 200)), dir);
        var vocab = RecallVocabulary.Build(TokenizerLoader.Load(Stories));
        var (ids, classes) = ReadSplit(dir, "train.bin", "train.classes.bin");
        const int T = 256;
        int answers = 0;
        for (int w = 0; w < 200; w++)
        {
            var win = ids.AsSpan(w * T, T).ToArray().Select(x => (int)x).ToArray();
            var cls = classes.AsSpan(w * T, T).ToArray();
            for (int i = 1; i < T; i++)
            {
                if (LossClasses.Role(cls[i]) != TokenRole.Answer) continue;
                answers++;
                var kind = LossClasses.Kind(cls[i]);
                if (kind == EpisodeKind.Multihop) { Assert.Equal(ResolveChain(win, i, vocab), win[i]); continue; }
                // The cue: the key before a queried value; otherwise the previous token (copy/repeat/pass key).
                int cueStart = kind == EpisodeKind.KeyValue ? i - vocab.ColonIds.Length - 1 : i - 1;
                var cue = win[cueStart..i];
                bool found = false;
                for (int j = 0; j + cue.Length < cueStart && !found; j++)
                    found = win.AsSpan(j, cue.Length).SequenceEqual(cue) && win[j + cue.Length] == win[i];
                Assert.True(found, $"window {w}, {kind} answer at {i} has no earlier occurrence of its cue");
            }
        }
        Assert.True(answers > 1000, $"only {answers} answer tokens");
    }

    /// <summary>The value of the key queried just before position i, following "a -> b" lines to a "b: v" line.</summary>
    static int ResolveChain(int[] win, int i, RecallVocabulary vocab)
    {
        int key = win[i - vocab.ColonIds.Length - 1];
        for (int hops = 0; hops < 4; hops++)
        {
            for (int j = 0; j < i - vocab.ColonIds.Length - 1; j++)
            {
                if (win[j] != key) continue;
                if (win.AsSpan(j + 1, vocab.ColonIds.Length).SequenceEqual(vocab.ColonIds)) return win[j + 1 + vocab.ColonIds.Length];
                if (win.AsSpan(j + 1, vocab.ArrowIds.Length).SequenceEqual(vocab.ArrowIds)) { key = win[j + 1 + vocab.ArrowIds.Length]; goto next; }
            }
            return -1;
        next:;
        }
        return -1;
    }

    [Fact]
    public void BadRecipes_AreOneLineErrorsNamingTheFileAndKey_AndWriteNothing()
    {
        var json = RecipeJson();
        json["colour"] = "blue";
        var e1 = Assert.Throws<InputException>(() => Recipe(json));
        Assert.Contains("test-recipe.json", e1.Message);
        Assert.Contains("\"colour\"", e1.Message);

        var noFit = RecipeJson(seqLen: 40);
        noFit["episode_min"] = 32;
        var outDir = Path.Combine(TestPaths.NewTempDir("synth-bad"), "c");
        var e2 = Assert.Throws<InputException>(() => SyntheticCorpus.Build(Recipe(noFit), outDir));
        Assert.Contains("seq_len is 40", e2.Message);
        Assert.StartsWith("test-recipe.json: ", e2.Message);
        Assert.False(Directory.Exists(outDir));
        Assert.Empty(Directory.GetDirectories(Path.GetDirectoryName(outDir)!));

        var badMix = RecipeJson();
        badMix["mix"] = new JsonObject { ["poems"] = 1 };
        Assert.Contains("unknown episode kind \"poems\"", Assert.Throws<InputException>(() => Recipe(badMix)).Message);
    }
}
