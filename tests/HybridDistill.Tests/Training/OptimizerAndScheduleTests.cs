using HybridDistill.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace HybridDistill.Tests.Training;

public class OptimizerAndScheduleTests
{
    [Fact]
    public void AdamW_MatchesTorchAdamW_OverSeveralSteps()
    {
        manual_seed(0);
        var init = new[] { randn(4, 3), randn(5) };
        var ours = init.Select(t => new Parameter(t.clone())).ToArray();
        var theirs = init.Select(t => new Parameter(t.clone())).ToArray();
        using var opt = new AdamWOptimizer([new ParameterGroup("g", ours.Select((p, i) => ($"p{i}", p)).ToList(), 0.01)],
            0.9, 0.95, 1e-8, weightDecay: 0.1, decay1d: true);
        var reference = optim.AdamW(theirs, lr: 0.01, beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.1);
        for (int step = 0; step < 5; step++)
        {
            manual_seed(100 + step);
            var grads = init.Select(t => randn(t.shape)).ToArray();
            for (int i = 0; i < 2; i++)
            {
                ours[i].grad = grads[i].clone();
                theirs[i].grad = grads[i].clone();
            }
            opt.Step(1.0);
            reference.step();
        }
        for (int i = 0; i < 2; i++)
            Assert.True((ours[i] - theirs[i]).abs().max().item<float>() < 1e-6, $"param {i}");
    }

    [Fact]
    public void AdamW_DecaysOnlyMatrices_ByDefault_AndStateRoundTripsExactly()
    {
        var w = new Parameter(ones(2, 2));
        var b = new Parameter(ones(2));
        using var opt = new AdamWOptimizer([new ParameterGroup("g", [("w", w), ("b", b)], 0.5)], 0.9, 0.95, 1e-8, weightDecay: 0.1, decay1d: false);
        w.grad = zeros(2, 2);
        b.grad = zeros(2);
        opt.Step(1.0);
        Assert.Equal(1 - 0.5 * 0.1, w[0, 0].item<float>(), 6);   // zero gradient: only the decay moves it
        Assert.Equal(1.0f, b[0].item<float>());

        // Save, take a step, restore into a fresh optimizer over copies, take the same step: identical bits.
        var dir = TestPaths.NewTempDir("adamw-state");
        var path = Path.Combine(dir, "opt.safetensors");
        w.grad = full(2, 2, 0.3f);
        b.grad = full(2, 0.7f);
        opt.Step(1.0);
        opt.Save(path);
        var w2 = new Parameter(w.detach().clone());
        var b2 = new Parameter(b.detach().clone());
        using var restored = new AdamWOptimizer([new ParameterGroup("g", [("w", w2), ("b", b2)], 0.5)], 0.9, 0.95, 1e-8, 0.1, false);
        restored.Load(path);
        Assert.Equal(2, restored.StepCount);
        w.grad = full(2, 2, -0.2f); b.grad = full(2, 0.1f);
        w2.grad = full(2, 2, -0.2f); b2.grad = full(2, 0.1f);
        opt.Step(0.5);
        restored.Step(0.5);
        Assert.True(TrainingFixtures.BitEqual(w, w2));
        Assert.True(TrainingFixtures.BitEqual(b, b2));
    }

    [Fact]
    public void Schedules_HaveTheDocumentedShape()
    {
        // cosine to 0 over 10 steps, no warmup: step 1 at the peak, then down, last step just above 0
        Assert.Equal(1.0, LrSchedule.Scale(LrScheduleKind.Cosine, 1, 10, 0, 0.0), 12);
        Assert.Equal(0.5 * (1 + Math.Cos(Math.PI * 0.5)), LrSchedule.Scale(LrScheduleKind.Cosine, 6, 10, 0, 0.0), 12);
        Assert.True(LrSchedule.Scale(LrScheduleKind.Cosine, 10, 10, 0, 0.0) is > 0 and < 0.03);
        // warmup 4 steps: 0.25, 0.5, 0.75, 1 then decay; floor respected
        Assert.Equal(0.25, LrSchedule.Scale(LrScheduleKind.Cosine, 1, 20, 4, 0.1), 12);
        Assert.Equal(1.0, LrSchedule.Scale(LrScheduleKind.Cosine, 4, 20, 4, 0.1), 12);
        Assert.Equal(1.0, LrSchedule.Scale(LrScheduleKind.Cosine, 5, 20, 4, 0.1), 12);
        Assert.True(LrSchedule.Scale(LrScheduleKind.Cosine, 20, 20, 4, 0.1) >= 0.1);
        Assert.Equal(1.0, LrSchedule.Scale(LrScheduleKind.Constant, 17, 20, 4, 0.1));
        Assert.Equal(0.1 + 0.9 * 0.5, LrSchedule.Scale(LrScheduleKind.Linear, 13, 20, 4, 0.1), 12);
    }

    [Fact]
    public void Config_CommittedTrainConfig_ReadsAndWritesBackByteForByte()
    {
        // a train_config written before lr_schedule and kv_expand became enums (the committed study's kl scores)
        var scores = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "docs", "results", "teacher", "scores", "kl", "scores.json")))!;
        var stored = scores["provenance"]!["train_config"]!.AsObject();
        var config = TrainConfig.Resolve(Stage.Stage2, stored.DeepClone().AsObject());
        Assert.Equal((LrScheduleKind.Constant, HybridDistill.Attention.KvExpansion.Heads), (config.LrSchedule, config.KvExpand));
        Assert.Equal(stored.ToJsonString(), config.ToJson(Stage.Stage2).ToJsonString());
    }

    [Fact]
    public void Config_LayersDefaultsRecipeAndOverrides_AndRejectsUnknownKeys()
    {
        var c1 = TrainConfig.Resolve(Stage.Stage1, null);
        Assert.Equal(1e-3, c1.Lr);
        Assert.Equal((0.9, 0.95, 1e-8, 0.01, 1.0), (c1.Beta1, c1.Beta2, c1.Eps, c1.WeightDecay, c1.GradClip));
        Assert.Equal(LrScheduleKind.Cosine, c1.LrSchedule);
        var c2 = TrainConfig.Resolve(Stage.Stage2, null);
        Assert.Equal((1e-4, 7e-6, LrScheduleKind.Constant), (c2.LrAttention, c2.LrOther, c2.LrSchedule));

        var section = new System.Text.Json.Nodes.JsonObject { ["seq_len"] = 64, ["softmax_layers"] = new System.Text.Json.Nodes.JsonArray(3, 0) };
        var c = TrainConfig.Resolve(Stage.Stage2, section, ["seq_len=32", "temperature=2", "softmax_layers=1,4"]);
        Assert.Equal(32, c.SeqLen);
        Assert.Equal(2.0, c.Temperature);
        Assert.Equal(new[] { 1, 4 }, c.SoftmaxLayers);
        Assert.Equal(TrainConfig.Resolve(Stage.Stage2, section).SoftmaxLayers, new[] { 0, 3 });

        Assert.Contains("unknown key \"sequence_length\"", Assert.Throws<InputException>(() => TrainConfig.Resolve(Stage.Stage1, null, ["sequence_length=3"])).Message);
        Assert.Contains("lr_attention", Assert.Throws<InputException>(() => TrainConfig.Resolve(Stage.Stage1, null, ["lr_attention=1e-3"])).Message);
        Assert.Contains("batch_size must be >= 1", Assert.Throws<InputException>(() => TrainConfig.Resolve(Stage.Stage3, null, ["batch_size=0"])).Message);
        Assert.Contains("lr_schedule", Assert.Throws<InputException>(() => TrainConfig.Resolve(Stage.Stage3, null, ["lr_schedule=exp"])).Message);
        // the enum settings read and write the words recipes, --set and run_config.json use
        var linear = TrainConfig.Resolve(Stage.Stage2, null, ["lr_schedule=linear", "kv_expand=rows"]);
        Assert.Equal((LrScheduleKind.Linear, HybridDistill.Attention.KvExpansion.Rows), (linear.LrSchedule, linear.KvExpand));
        Assert.Equal(("linear", "rows"), ((string)linear.ToJson(Stage.Stage2)["lr_schedule"]!, (string)linear.ToJson(Stage.Stage2)["kv_expand"]!));
        Assert.Equal("--set: kv_expand must be one of heads, rows, got \"cols\".",
            Assert.Throws<InputException>(() => TrainConfig.Resolve(Stage.Stage2, null, ["kv_expand=cols"])).Message);

        // steps from the token budget
        var b = TrainConfig.Resolve(Stage.Stage3, null, ["seq_len=100", "batch_size=2", "grad_accum=3", "train_tokens=1300"]);
        Assert.Equal(600, b.TokensPerStep);
        Assert.Equal(3, b.TotalSteps);
    }

    [Fact]
    public void Recipe_UnknownSectionOrKey_IsAnError_NamingTheFile()
    {
        var dir = TestPaths.NewTempDir("recipe");
        var bad = Path.Combine(dir, "bad.json");
        File.WriteAllText(bad, """{"stage1": {"seq_len": 64}, "stage4": {}}""");
        var e = Assert.Throws<InputException>(() => Recipe.Load(bad));
        Assert.Contains("bad.json", e.Message);
        Assert.Contains("stage4", e.Message);
        File.WriteAllText(bad, """{"stage2": {"lr": 0.1}}""");
        Assert.Contains("[stage2]", Assert.Throws<InputException>(() => Recipe.Load(bad)).Message);
        var good = Path.Combine(dir, "good.json");
        File.WriteAllText(good, """{"description": "x", "stage1": {"seq_len": 64}, "score": {"anything": 1}}""");
        Assert.Equal(64, Recipe.Load(good).Resolve(Stage.Stage1).SeqLen);
    }

    [Fact]
    public void ShippedRecipes_Load()
    {
        foreach (var file in Directory.GetFiles(Path.Combine(TestPaths.RepoRoot, "recipes"), "*.json"))
        {
            // Three kinds of recipe: pretraining (phases), synthetic corpus (mix), distillation (stage sections).
            var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(file))!.AsObject();
            if (json.ContainsKey("phases"))
            {
                Assert.NotEmpty(Pretraining.LoadRecipe(file).Phases);
                continue;
            }
            if (json.ContainsKey("mix"))
            {
                Assert.True(HybridDistill.Data.SynthRecipe.Load(file).TrainWindows >= 1, file);
                continue;
            }
            var recipe = Recipe.Load(file);
            foreach (var stage in new[] { Stage.Stage1, Stage.Stage2, Stage.Stage3 })
                Assert.True(recipe.Resolve(stage).TotalSteps >= 1, file);
        }
    }
}
