using System.Text;
using HybridDistill.Artifacts;
using HybridDistill.Data;

namespace HybridDistill.Tests.Data;

/// <summary>The corpus recipe as a typed record: what a file says, the defaults it leaves, and one-line errors naming the file and the key.</summary>
public class SynthRecipeTests
{
    const string Source = "recipe.json";

    /// <summary>A minimal recipe with <paramref name="more"/> keys (JSON text, e.g. "\"kv_pairs\": 5") added.</summary>
    static string RecipeText(string more = "", string mix = """{"copy": 1, "story": 0}""") =>
        $$"""{"tokenizer": "tok", "text": "t.txt", "seq_len": 64, "train_windows": 2, "mix": {{mix}}{{(more.Length > 0 ? ", " + more : "")}}}""";

    static SynthRecipe Parse(string json) => SynthRecipe.Parse(json, "/base", Source);

    [Fact]
    public void CommittedRecipe_ReadsItsKeysAndTheDefaults()
    {
        var recipe = SynthRecipe.Load(Path.Combine(TestPaths.RepoRoot, "recipes", "corpus-recall.json"));
        Assert.Equal(TestPaths.Assets("stories260K"), recipe.Tokenizer);
        Assert.Equal(TestPaths.Assets("text", "tinystories_val_slice.txt"), recipe.Text);
        Assert.Equal((256, 4096L, 64, 64, 0L), (recipe.SeqLen, recipe.TrainWindows, recipe.ValWindows, recipe.MinEpisode, recipe.Seed));
        Assert.Equal((new IntRange(8, 48), new IntRange(2, 48), new IntRange(1, 8), new IntRange(1, 4)),
            (recipe.CopySpan, recipe.KvPairs, recipe.KvQueries, recipe.MultihopQueries));
        // keys the file leaves out take the defaults
        Assert.Equal((new IntRange(8, 32), new IntRange(3, 7), 0.25, 0.5, 0.1),
            (recipe.RepeatKeys, recipe.PasskeyDigits, recipe.CopyTextFraction, recipe.PasskeyStockFraction, recipe.HeldoutFraction));
        Assert.Equal([0.2, 0.05, 0.2, 0.25, 0.2, 0.1], LossClasses.Kinds.Select(k => recipe.Mix[k]));
    }

    [Fact]
    public void RecordInTheManifest_IsARecipe_ThatReadsBackToTheSameRecord()
    {
        var recipe = SynthRecipe.Load(Path.Combine(TestPaths.RepoRoot, "recipes", "corpus-recall.json"));
        var written = ArtifactJson.Bytes(recipe.ToRecord(), ArtifactJson.Types.SynthRecipeRecord);
        var again = SynthRecipe.Parse(Encoding.UTF8.GetString(written), "/elsewhere", "manifest.json");
        Assert.Equal(Encoding.UTF8.GetString(written),
            Encoding.UTF8.GetString(ArtifactJson.Bytes(again.ToRecord(), ArtifactJson.Types.SynthRecipeRecord)));
        Assert.Equal(recipe.Tokenizer, again.Tokenizer);                   // absolute paths stay where they were
    }

    [Fact]
    public void OneNumberRange_CommentsAndTrailingCommas_AreAccepted()
    {
        var recipe = Parse("// a corpus\n" + RecipeText("\"kv_pairs\": 5, \"episode_min\": 32,"));
        Assert.Equal(new IntRange(5, 5), recipe.KvPairs);
        Assert.Equal(32, recipe.MinEpisode);
        Assert.Equal("/base/tok", recipe.Tokenizer);
        Assert.Equal([EpisodeKind.Copy], recipe.Mix.Keys);                  // a weight of 0 leaves the kind out
        Assert.Equal(Source, recipe.Source);
    }

    [Fact]
    public void IntRange_WritesMinMax_AndReadsItBack()
    {
        var json = ArtifactJson.Bytes(new IntRange(3, 9), ArtifactJson.Types.IntRange);
        Assert.Equal("[3,9]", Encoding.UTF8.GetString(json).Replace("\n", "").Replace(" ", ""));
        Assert.Equal(new IntRange(3, 9), System.Text.Json.JsonSerializer.Deserialize(json, ArtifactJson.Types.IntRange));
    }

    [Theory]
    [InlineData("\"colour\": \"blue\"", "recipe.json: unknown corpus key \"colour\" (known: tokenizer, text, seed, seq_len,")]
    [InlineData("\"seed\": \"one\"", "recipe.json: seed should be a number")]
    [InlineData("\"kv_pairs\": [1, 2, 3]", "recipe.json: kv_pairs should be [min, max]")]
    [InlineData("\"kv_pairs\": [5, 2]", "recipe.json: kv_pairs should be [min, max] with 1 <= min <= max, got [5, 2]")]
    [InlineData("\"val_windows\": 1.5", "recipe.json: val_windows should be a whole number >= 0, got 1.5")]
    [InlineData("\"copy_text_fraction\": 2", "recipe.json: copy_text_fraction should be a number in [0, 1], got 2")]
    [InlineData("\"episode_min\": 8", "recipe.json: episode_min must be in 16..seq_len (64), got 8")]
    public void BadKeys_AreOneLineErrorsNamingTheFileAndKey(string key, string message)
    {
        var e = Assert.Throws<InputException>(() => Parse(RecipeText(key)));
        Assert.StartsWith(message, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Theory]
    [InlineData("[1, 2]", "recipe.json: a recipe is a JSON object.")]
    [InlineData("""{"seq_len": 64""", "recipe.json: not valid JSON (")]
    [InlineData("""{"text": "t.txt", "seq_len": 64, "train_windows": 2, "mix": {"copy": 1}}""", "recipe.json: tokenizer is required: a path")]
    [InlineData("""{"tokenizer": "tok", "text": "t.txt", "seq_len": 64, "train_windows": 2}""", "recipe.json: mix is required")]
    [InlineData("""{"tokenizer": "tok", "text": "t.txt", "seq_len": 64, "train_windows": 2, "mix": {"poems": 1}}""", "recipe.json: mix: unknown episode kind \"poems\"")]
    [InlineData("""{"tokenizer": "tok", "text": "t.txt", "seq_len": 64, "train_windows": 2, "mix": {"copy": "lots"}}""", "recipe.json: mix should be weights of the episode kinds")]
    public void BadRecipes_AreOneLineErrorsNamingTheFile(string json, string message) =>
        Assert.StartsWith(message, Assert.Throws<InputException>(() => Parse(json)).Message);
}
