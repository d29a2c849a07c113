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

public class PretrainingResumeTests
{
    /// <summary>A two-phase recipe on a tiny model, stopped while its second phase trains and resumed: the result is
    /// complete, every phase's steps appear once in OUT/metrics.jsonl in order, and a finished phase is not redone.</summary>
    [Fact]
    public void InterruptedInTheSecondPhase_ResumesToACompleteModel()
    {
        var dir = TestPaths.NewTempDir("pretrain-resume");
        var corpus = new JsonObject
        {
            ["tokenizer"] = TestPaths.Assets("stories260K"), ["text"] = TestPaths.Assets("text", "tinystories_val_slice.txt"),
            ["seq_len"] = 64, ["val_windows"] = 4, ["episode_min"] = 64,
        };
        var recipe = new JsonObject
        {
            ["model"] = new JsonObject
            {
                ["model_type"] = "llama", ["hidden_size"] = 16, ["intermediate_size"] = 32, ["num_hidden_layers"] = 2,
                ["num_attention_heads"] = 2, ["vocab_size"] = 512, ["max_position_embeddings"] = 64, ["tie_word_embeddings"] = true,
            },
            ["corpus"] = corpus,
            ["train"] = new JsonObject { ["batch_size"] = 2, ["log_every"] = 1, ["eval_every"] = 5, ["eval_tokens"] = 128, ["checkpoint_every"] = 3, ["threads"] = 1 },
            ["phases"] = new JsonArray(
                new JsonObject { ["name"] = "a", ["corpus"] = new JsonObject { ["mix"] = new JsonObject { ["story"] = 1 } }, ["train"] = new JsonObject { ["train_tokens"] = 8 * 128 } },
                new JsonObject { ["name"] = "b", ["corpus"] = new JsonObject { ["mix"] = new JsonObject { ["repeat"] = 1 } }, ["train"] = new JsonObject { ["train_tokens"] = 12 * 128 } }),
        };
        var path = Path.Combine(dir, "recipe.json");
        File.WriteAllText(path, recipe.ToJsonString());
        var request = new PretrainRequest { RecipeFile = path, Out = Path.Combine(dir, "run") };

        using var stop = new CancellationTokenSource();
        var first = Pretraining.Run(request, trainProgress: phase => phase.Name == "b"
            ? new Progress(p => { if (p.Event == TrainEvent.Step && p.Step == 4) stop.Cancel(); })
            : null, cancellation: stop.Token);
        Assert.False(first.Completed);
        Assert.True(DistillRun.IsFinished(Path.Combine(dir, "run", "phases", "01-a")));
        Assert.False(File.Exists(Path.Combine(dir, "run", "config.json")));
        var phaseA = File.GetLastWriteTimeUtc(Path.Combine(dir, "run", "phases", "01-a", "model.safetensors"));

        Assert.Throws<InputException>(() => Pretraining.Run(request));                    // without --resume: refused
        var second = Pretraining.Run(request with { Resume = true });
        Assert.True(second.Completed);
        Assert.Equal(phaseA, File.GetLastWriteTimeUtc(Path.Combine(dir, "run", "phases", "01-a", "model.safetensors")));   // not redone
        var lines = File.ReadLines(Path.Combine(dir, "run", "metrics.jsonl")).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();
        Assert.Equal(Enumerable.Range(0, 9).Select(i => $"a:{i}").Concat(Enumerable.Range(0, 13).Select(i => $"b:{i}")),
            lines.Select(l => $"{l["phase"]}:{l["step"]}"));
        Assert.Equal(Enumerable.Range(0, 9).Concat(Enumerable.Range(8, 13)).Select(i => (long)i), lines.Select(l => (long)l["total_step"]!));
        Assert.Equal(2, JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "run", Pretraining.WallTimeFile)))!["sittings"]!.AsArray().Count);
        using var model = HybridDistill.Checkpoints.HfCheckpoint.Load(Path.Combine(dir, "run"));
        Assert.Equal(2, model.Config.NumHiddenLayers);
    }

    sealed class Progress(Action<TrainProgress> report) : IProgress<TrainProgress>
    {
        public void Report(TrainProgress value) => report(value);
    }
}
