using System.Text.Json.Nodes;
using HybridDistill.Training;

namespace HybridDistill.Tests.Training;

public class PretrainingTests
{
    static string CommittedRecipe => Path.Combine(TestPaths.RepoRoot, "recipes", "default-teacher.json");

    /// <summary>The committed recipe with its assets at absolute paths, and only its first phase, shortened.</summary>
    static string ShortRecipe(string dir, long trainTokens, int batchSize)
    {
        var json = JsonNode.Parse(File.ReadAllText(CommittedRecipe))!.AsObject();
        json["corpus"]!["tokenizer"] = TestPaths.Assets("stories260K");
        json["corpus"]!["text"] = TestPaths.Assets("text", "tinystories_val_slice.txt");
        json["train"]!["batch_size"] = batchSize;
        json["train"]!["eval_every"] = 50;
        json["train"]!["eval_tokens"] = 4096;
        var first = json["phases"]![0]!.DeepClone().AsObject();
        first["train"]!["train_tokens"] = trainTokens;
        json["phases"] = new JsonArray(first);
        var path = Path.Combine(dir, "recipe.json");
        File.WriteAllText(path, json.ToJsonString());
        return path;
    }

    /// <summary>The committed recipe stays alive: 200 steps of its first phase (the model it defines, its corpus and
    /// settings) bring the validation loss well down from its start near ln(vocab).</summary>
    [Fact]
    public void CommittedRecipe_FirstPhaseLossFalls()
    {
        var dir = TestPaths.NewTempDir("pretrain-alive");
        var recipe = ShortRecipe(dir, trainTokens: 200 * 8 * 128, batchSize: 8);
        var outcome = Pretraining.Run(new PretrainRequest { RecipeFile = recipe, Out = Path.Combine(dir, "run") });
        Assert.True(outcome.Completed);
        var lines = File.ReadLines(Path.Combine(dir, "run", "metrics.jsonl")).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();
        var evals = lines.Where(l => l["val_loss"] is not null).ToList();
        double first = (double)evals[0]["val_loss"]!, last = (double)evals[^1]["val_loss"]!;
        Assert.Equal(0, (long)evals[0]["step"]!);
        Assert.Equal(200, (long)evals[^1]["step"]!);
        Assert.InRange(first, 5.5, 7.0);                                        // ln 512 = 6.24 at initialisation
        Assert.True(last < first - 1.2, $"val_loss {first:F3} -> {last:F3}");
        Assert.All(evals, e => Assert.NotNull(e["val_acc_repeat"]));            // the recall signal is logged
        Assert.True(File.Exists(Path.Combine(dir, "run", "model.safetensors")) && File.Exists(Path.Combine(dir, "run", "config.json")));
        Assert.True(File.Exists(Path.Combine(dir, "run", "tokenizer.model")));
    }

    [Fact]
    public void BadRecipes_AreOneLineErrorsNamingTheFile()
    {
        var dir = TestPaths.NewTempDir("pretrain-bad");
        var json = JsonNode.Parse(File.ReadAllText(ShortRecipe(dir, 1000, 4)))!.AsObject();

        var unknown = json.DeepClone().AsObject();
        unknown["optimiser"] = "sgd";
        File.WriteAllText(Path.Combine(dir, "unknown.json"), unknown.ToJsonString());
        var e1 = Assert.Throws<InputException>(() => Pretraining.LoadRecipe(Path.Combine(dir, "unknown.json")));
        Assert.Contains("unknown.json", e1.Message);
        Assert.Contains("\"optimiser\"", e1.Message);

        var tooLong = json.DeepClone().AsObject();
        tooLong["phases"]![0]!["corpus"]!["seq_len"] = 512;
        File.WriteAllText(Path.Combine(dir, "long.json"), tooLong.ToJsonString());
        var e2 = Assert.Throws<InputException>(() => Pretraining.LoadRecipe(Path.Combine(dir, "long.json")));
        Assert.Contains("max_position_embeddings (256)", e2.Message);

        var badKey = json.DeepClone().AsObject();
        badKey["phases"]![0]!["train"]!["lr_attention"] = 1e-3;                // a stage-2 key
        File.WriteAllText(Path.Combine(dir, "key.json"), badKey.ToJsonString());
        Assert.Contains("unknown key \"lr_attention\" for pretrain", Assert.Throws<InputException>(() => Pretraining.LoadRecipe(Path.Combine(dir, "key.json"))).Message);

        // Nothing was written for any of them.
        Assert.False(Directory.Exists(Path.Combine(dir, "run")));
    }
}
