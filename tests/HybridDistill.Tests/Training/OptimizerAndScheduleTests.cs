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

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void FusedAdamW_EqualsTheTensorOpSteps(bool decay1d)
    {
        // From the same state each step: moments equal to the bit; parameters to the last bit of the update, since the
        // fused square root is correctly rounded and libtorch's vectorised one is not always (see FusedAdamW).
        // Sizes: a matrix spanning several slices with a ragged end, a vector, and a length below one SIMD width; two
        // groups with different rates; the schedule changing lr between steps; a parameter without a gradient.
        manual_seed(0);
        // the last one column-major (a dense layout other than contiguous); its gradient row-major
        var init = new[] { randn(301, 517), randn(517), randn(5), randn(3, 4), randn(33, 70).t().contiguous().t() };
        Parameter[] Copy() => init.Select(t => new Parameter(t.clone())).ToArray();
        var fused = Copy();
        var reference = Copy();
        AdamWOptimizer Make(Parameter[] p) => new(
            [new ParameterGroup("a", [("w", p[0]), ("b", p[1]), ("column_major", p[4])], 3e-3), new ParameterGroup("c", [("n", p[2]), ("unused", p[3])], 1e-2)],
            0.9, 0.95, 1e-8, weightDecay: 0.1, decay1d);
        using var fusedOpt = Make(fused);
        using var referenceOpt = Make(reference);
        Assert.True(fusedOpt.Fused);
        Assert.True(HybridDistill.Modules.RawFloats.IsColumnMajor(fused[4]));
        referenceOpt.Fused = false;
        for (int step = 0; step < 6; step++)
        {
            manual_seed(100 + step);
            foreach (int i in new[] { 0, 1, 2, 4 })
            {
                var g = randn(init[i].shape) * (step % 2 == 0 ? 1e-3 : 10.0);   // tiny and large gradients
                fused[i].grad = g.clone();
                reference[i].grad = g.clone();
            }
            double lrScale = 1.0 / (step + 1);
            using (no_grad())
                for (int i = 0; i < init.Length; i++) fused[i].copy_(reference[i]);   // the same state into each step
            var before = reference.Select(p => p.detach().clone()).ToArray();
            double clip = step % 3 == 1 ? 0.37 : 1.0;                            // a gradient-clipping scale on some steps
            fusedOpt.Step(lrScale, clip);
            referenceOpt.Step(lrScale, clip);
            for (int i = 0; i < init.Length; i++)
            {
                // two ulps of the larger of p and the update (|update| <= lr |m| / sqrt(v) < 10 lr here): a one-ulp
                // difference of the update can move the rounding of p by one
                var diff = (fused[i] - reference[i]).abs();
                var allowed = (before[i].abs() + 10 * 1e-2) * 2.4e-7;
                Assert.True((diff <= allowed).all().item<bool>(), $"step {step}, parameter {i}: max |diff| {diff.max().item<float>()}");
            }
        }
        // The moments are equal to the bit: a checkpoint from either path resumes the other.
        var dir = TestPaths.NewTempDir("fused-adamw");
        fusedOpt.Save(Path.Combine(dir, "fused.safetensors"));
        referenceOpt.Save(Path.Combine(dir, "reference.safetensors"));
        Assert.Equal(File.ReadAllBytes(Path.Combine(dir, "reference.safetensors")), File.ReadAllBytes(Path.Combine(dir, "fused.safetensors")));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void ClearGrads_ThenBackward_EqualsZeroedGradients(bool fusedPath)
    {
        // Dropping the gradients (set to none) instead of zeroing them: autograd then hands over fresh gradients rather than
        // adding into zeros. Over three steps of two accumulated micro-batches each, through real backward passes, the
        // parameters and moments must come out equal to the bit, also for a column-major weight (its fresh gradient must
        // be given the weight's layout); after ClearGrads no gradient is left.
        manual_seed(1);
        var init = new[] { randn(24, 16), randn(24), randn(16, 24).t().contiguous().t() };        // w [24, 16], b [24], column-major u [16, 24]
        Parameter[] Copy() => init.Select(t => new Parameter(t.clone())).ToArray();
        var cleared = Copy();
        var zeroed = Copy();
        AdamWOptimizer Make(Parameter[] p) => new([new ParameterGroup("a", [("w", p[0]), ("b", p[1]), ("u", p[2])], 3e-3)],
            0.9, 0.95, 1e-8, weightDecay: 0.1, decay1d: false) { Fused = fusedPath };
        using var clearedOpt = Make(cleared);
        using var zeroedOpt = Make(zeroed);
        static void Backward(Parameter[] p, Tensor x)
        {
            using var scope = NewDisposeScope();
            var h = nn.functional.linear(x, p[0], p[1]).tanh();                                 // [4, 24]
            nn.functional.linear(h, p[2]).square().mean().backward();                           // [4, 16] -> scalar
        }
        for (int step = 0; step < 3; step++)
        {
            for (int micro = 0; micro < 2; micro++)
            {
                manual_seed(100 + 10 * step + micro);
                using var x = randn(4, 16);
                Backward(cleared, x);
                Backward(zeroed, x);
            }
            Assert.True(cleared[2].grad!.t().is_contiguous(), "the column-major weight's gradient keeps its layout");
            clearedOpt.Step(1.0, 0.5);
            zeroedOpt.Step(1.0, 0.5);
            clearedOpt.ClearGrads();
            foreach (var p in zeroed) p.grad!.zero_();
            for (int i = 0; i < init.Length; i++)
            {
                Assert.True(TrainingFixtures.BitEqual(zeroed[i], cleared[i]), $"step {step}, parameter {i}");
                Assert.Null(cleared[i].grad);
            }
        }
        var dir = TestPaths.NewTempDir("adamw-clear-grads");
        clearedOpt.Save(Path.Combine(dir, "cleared.safetensors"));
        zeroedOpt.Save(Path.Combine(dir, "zeroed.safetensors"));
        Assert.Equal(File.ReadAllBytes(Path.Combine(dir, "zeroed.safetensors")), File.ReadAllBytes(Path.Combine(dir, "cleared.safetensors")));
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
