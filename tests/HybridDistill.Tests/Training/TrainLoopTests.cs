using System.Text.Json.Nodes;
using HybridDistill.Artifacts;
using HybridDistill.Checkpoints;
using HybridDistill.Data;
using HybridDistill.Models;
using HybridDistill.Training;
using static TorchSharp.torch;

namespace HybridDistill.Tests.Training;

public class TrainLoopTests
{
    /// <summary>A softmax-only "student" of stories260K whose layer-2 attention is re-initialised: stage 2 has something to fix.</summary>
    static string PerturbedStudent()
    {
        var dir = TestPaths.NewTempDir("perturbed-student");
        using var model = TrainingFixtures.LoadTeacher();
        using (no_grad())
        {
            var g = new Generator(42);
            foreach (var (name, p) in model.named_parameters())
                if (name.StartsWith("model.layers.2.self_attn.")) p.normal_(0, 0.1, g);
        }
        HfCheckpoint.Save(model, dir, TrainingFixtures.StoriesTeacher);
        return dir;
    }

    static readonly Lazy<string> perturbed = new(PerturbedStudent);

    static DistillRequest Stage2Request(string outDir, bool resume = false, params string[] extra) => new()
    {
        Stage = Stage.Stage2,
        Teacher = TrainingFixtures.StoriesTeacher,
        Data = TrainingFixtures.StoriesData,
        Out = outDir,
        From = perturbed.Value,
        Resume = resume,
        Overrides = new[]
        {
            "seq_len=32", "batch_size=4", "train_tokens=1536", "log_every=1", "eval_every=4", "eval_tokens=256", "checkpoint_every=5",
            "lr_attention=3e-3", "lr_other=1e-4", "logits_chunk=48", "threads=1",
        }.Concat(extra).ToArray(),
    };

    static List<JsonObject> Metrics(string runDir) =>
        File.ReadAllLines(Path.Combine(runDir, TrainCheckpoint.MetricsFile)).Select(l => (JsonObject)JsonNode.Parse(l)!).ToList();

    static void AssertSameCurve(List<JsonObject> expected, List<JsonObject> actual)
    {
        Assert.Equal(expected.Select(l => (long)l["step"]!), actual.Select(l => (long)l["step"]!));
        for (int i = 0; i < expected.Count; i++)
            foreach (var key in new[] { "loss", "val_loss", "kl", "lr", "grad_norm" })
            {
                if (expected[i][key] is null) { Assert.Null(actual[i][key]); continue; }
                double e = (double)expected[i][key]!, a = (double)actual[i][key]!;
                Assert.True(Math.Abs(e - a) <= 1e-5 * Math.Abs(e), $"step {expected[i]["step"]} {key}: {a} after resume, {e} uninterrupted");
            }
    }

    [Fact]
    public void Stage2_SoftmaxStudent_LowersKl_TeacherUnchanged_RunDirIsAModel()
    {
        var outDir = TestPaths.NewTempDir("stage2-softmax");
        var outcome = DistillRun.Run(Stage2Request(outDir));
        Assert.True(outcome.Result.Completed);
        Assert.Equal(12, outcome.Result.Step);
        var lines = Metrics(outDir);
        Assert.Equal(0, (long)lines[0]["step"]!);
        Assert.NotNull(lines[0]["val_loss"]);
        double first = (double)lines[0]["val_loss"]!, last = (double)lines[^1]["val_loss"]!;
        Assert.True(last < first / 1.5, $"held-out KL {first} -> {last}");
        Assert.Equal(new[] { 0L, 4, 8, 12 }, lines.Where(l => l["val_loss"] is not null).Select(l => (long)l["step"]!));
        Assert.All(lines, l => Assert.NotNull(l["lrs"]));
        Assert.Equal(1e-4, (double)lines[^1]["lrs"]!["other"]!, 12);       // --set lr_other=1e-4, constant schedule
        Assert.Equal(3e-3, (double)lines[^1]["lrs"]!["attention"]!, 12);

        // The run directory is a model directory; the teacher's files are untouched (teacher frozen).
        using var trained = HfCheckpoint.Load(outDir);
        Assert.True(File.Exists(Path.Combine(outDir, "tokenizer.model")));
        Assert.True(File.Exists(Path.Combine(outDir, DistillRun.RunConfigFile)));
        Assert.Equal(2, TrainCheckpoint.List(outDir).Count);   // keep_checkpoints 2: steps 10 and 12
        Assert.Equal(12, TrainCheckpoint.List(outDir)[^1].Step);
    }

    [Fact]
    public void Stage2_TeacherParametersAreBitIdenticalAfterTraining_AllStudentParametersMove()
    {
        using var teacher = TrainingFixtures.LoadTeacher();
        using var student = StudentBuilder.Build(teacher, teacher.Config.LayerTypes, perturbed.Value, seed: 0);
        var config = TrainConfig.Resolve(Stage.Stage2, null, ["seq_len=32", "batch_size=2", "train_tokens=192", "eval_tokens=64", "lr_other=1e-3", "threads=1"]);
        var objective = new Stage2Distillation(teacher, student, config);
        var teacherBefore = TrainingFixtures.Snapshot(teacher);
        var studentBefore = TrainingFixtures.Snapshot(student);
        using var data = new TokenDataset(TrainingFixtures.StoriesData);
        var runDir = TestPaths.NewTempDir("stage2-frozen-teacher");
        var result = TrainLoop.Run(objective, data, config, runDir, OpaqueJson.EmptyObject, resume: false);
        Assert.Equal(3, result.Step);
        Assert.Empty(TrainingFixtures.Changed(teacherBefore, TrainingFixtures.Snapshot(teacher)));
        var moved = TrainingFixtures.Changed(studentBefore, TrainingFixtures.Snapshot(student));
        Assert.Equal(studentBefore.Keys.Order(), moved.Order());
        Assert.All(teacher.parameters(), p => Assert.Null(p.grad));
    }

    [Fact]
    public void Resume_AfterCancellation_AndAfterACrash_MatchesAnUninterruptedRun()
    {
        var full = TestPaths.NewTempDir("resume-full");
        DistillRun.Run(Stage2Request(full));
        var expected = Metrics(full);

        // Ctrl-C after step 7: a checkpoint is saved at step 7; resuming continues from there.
        var cancelled = TestPaths.NewTempDir("resume-cancel");
        using (var cts = new CancellationTokenSource())
        {
            var progress = new SyncProgress(p => { if (p.Event == TrainEvent.Step && p.Step == 7) cts.Cancel(); });
            var stopped = DistillRun.Run(Stage2Request(cancelled), progress, cts.Token);
            Assert.False(stopped.Result.Completed);
            Assert.Equal(7, stopped.Result.Step);
            Assert.Equal(7, TrainCheckpoint.List(cancelled)[^1].Step);
            Assert.False(File.Exists(Path.Combine(cancelled, "config.json")));   // not a finished model yet
        }
        var resumed = DistillRun.Run(Stage2Request(cancelled, resume: true));
        Assert.True(resumed.Result.Completed);
        AssertSameCurve(expected, Metrics(cancelled));

        // A crash (no chance to save) at step 8: the newest checkpoint is step 5; lines 6..8 are dropped and redone.
        var crashed = TestPaths.NewTempDir("resume-crash");
        var crash = new SyncProgress(p => { if (p.Event == TrainEvent.Step && p.Step == 8) throw new IOException("simulated kill"); });
        Assert.Throws<IOException>(() => DistillRun.Run(Stage2Request(crashed), crash));
        Assert.Equal(5, TrainCheckpoint.List(crashed)[^1].Step);
        Assert.Contains(Metrics(crashed), l => (long)l["step"]! == 7);
        DistillRun.Run(Stage2Request(crashed, resume: true));
        AssertSameCurve(expected, Metrics(crashed));

        // Same final weights, bit for bit.
        using var a = HfCheckpoint.Load(full);
        using var b = HfCheckpoint.Load(cancelled);
        using var c = HfCheckpoint.Load(crashed);
        var sa = TrainingFixtures.Snapshot(a);
        Assert.Empty(TrainingFixtures.Changed(sa, TrainingFixtures.Snapshot(b)));
        Assert.Empty(TrainingFixtures.Changed(sa, TrainingFixtures.Snapshot(c)));

        // A finished run resumes to "nothing to do"; a new run into it without --resume is refused; so is --resume with other settings.
        Assert.True(DistillRun.Run(Stage2Request(full, resume: true)).AlreadyFinished);
        Assert.Contains("--resume", Assert.Throws<InputException>(() => DistillRun.Run(Stage2Request(full))).Message);
        var changed = Assert.Throws<InputException>(() => DistillRun.Run(Stage2Request(cancelled, true, "seq_len=16")));
        Assert.Contains("seq_len", changed.Message);
    }

    [Fact]
    public void BadInput_FailsBeforeTheRunDirectoryIsWritten()
    {
        var outDir = Path.Combine(TestPaths.NewTempDir("bad-run"), "run");
        var wrongVocab = Stage2Request(outDir) with { Teacher = TestPaths.Assets("babyllama-tok105"), From = null };
        Assert.Contains("Re-tokenize", Assert.Throws<InputException>(() => DistillRun.Run(wrongVocab)).Message);
        var badKey = Stage2Request(outDir, false, "lr=1e-3");
        Assert.Contains("unknown key \"lr\" for stage2", Assert.Throws<InputException>(() => DistillRun.Run(badKey)).Message);
        var badLayer = Stage2Request(outDir) with { SoftmaxLayers = [7] };
        Assert.Contains("layers 0..4", Assert.Throws<InputException>(() => DistillRun.Run(badLayer)).Message);
        Assert.False(Directory.Exists(outDir));
    }

    [Fact]
    public void LiveTensorCount_IsFlatAcrossSteps()
    {
        var statistics = TorchSharp.DisposeScopeManager.Statistics;
        var counts = new Dictionary<long, long>();
        var progress = new SyncProgress(p => { if (p.Event == TrainEvent.Step) counts[p.Step] = statistics.ThreadTotalLiveCount; });
        var outDir = TestPaths.NewTempDir("leak");
        DistillRun.Run(Stage2Request(outDir) with { Overrides = [.. Stage2Request(outDir).Overrides, "checkpoint_every=100"] }, progress);
        // Same count after step 2 and after step 11 (step 12 is the last; evaluations ran at 4 and 8 in between).
        Assert.Equal(counts[2], counts[11]);
        Assert.Equal(counts[2], counts[7]);
    }

    [Fact]
    public void Layout_FollowsFlagsFileRecipeAndFrom()
    {
        using var teacher = TrainingFixtures.LoadTeacher();
        var tc = teacher.Config;
        var c1 = TrainConfig.Resolve(Stage.Stage1, null);
        Assert.Equal(Enumerable.Repeat("gdn", 5), DistillRun.Layout(Stage.Stage1, tc, null, c1, null, null));
        var c2 = TrainConfig.Resolve(Stage.Stage2, null, ["softmax_layers=1"]);
        var stage1Config = tc.WithLayerTypes(Enumerable.Repeat("gdn", 5).ToArray());
        Assert.Equal(new[] { "gdn", "softmax", "gdn", "gdn", "gdn" }, DistillRun.Layout(Stage.Stage2, tc, stage1Config, c2, null, null));
        Assert.Equal(new[] { "softmax", "gdn", "gdn", "softmax", "gdn" }, DistillRun.Layout(Stage.Stage2, tc, stage1Config, c2, [0, 3], null));
        var dir = TestPaths.NewTempDir("layout");
        var layout = Path.Combine(dir, "layout.json");
        File.WriteAllText(layout, """{"softmax_layers": [2], "layer_types": ["gla", "gdn", "softmax", "gdn", "gdn"]}""");
        Assert.Equal(new[] { "gla", "gdn", "softmax", "gdn", "gdn" }, DistillRun.Layout(Stage.Stage2, tc, stage1Config, c2, null, layout));
        File.WriteAllText(layout, """{"softmax_layers": [1], "layer_types": ["gla", "gdn", "softmax", "gdn", "gdn"]}""");
        Assert.Contains("disagrees", Assert.Throws<InputException>(() => DistillRun.Layout(Stage.Stage2, tc, null, c2, null, layout)).Message);
        File.WriteAllText(layout, """{"layer_types": ["gdn", "softmax"]}""");
        Assert.Contains("5 layers", Assert.Throws<InputException>(() => DistillRun.Layout(Stage.Stage2, tc, null, c2, null, layout)).Message);
        Assert.Contains("layers 0..4", Assert.Throws<InputException>(() => DistillRun.Layout(Stage.Stage2, tc, null, c2, [5], null)).Message);
        // stage 3 keeps --from's layout
        var hybrid = tc.WithLayerTypes(["gdn", "softmax", "gdn", "gdn", "gdn"]);
        Assert.Equal(hybrid.LayerTypes, DistillRun.Layout(Stage.Stage3, tc, hybrid, TrainConfig.Resolve(Stage.Stage3, null), null, null));
    }

    sealed class SyncProgress(Action<TrainProgress> report) : IProgress<TrainProgress>
    {
        public void Report(TrainProgress value) => report(value);
    }
}
