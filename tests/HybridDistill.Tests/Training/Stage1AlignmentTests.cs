using System.Text.Json.Nodes;
using HybridDistill.Artifacts;
using HybridDistill.Attention;
using HybridDistill.Checkpoints;
using HybridDistill.Data;
using HybridDistill.Models;
using HybridDistill.Training;
using static TorchSharp.torch;

namespace HybridDistill.Tests.Training;

public class Stage1AlignmentTests
{
    static readonly string[] AllGdn = ["gdn", "gdn", "gdn", "gdn", "gdn"];

    [Fact]
    public void OnlyLinearAttentionTrains_EverythingElseBitIdentical_TeacherUntouched()
    {
        using var teacher = TrainingFixtures.LoadTeacher();
        // layer 2 stays softmax: its attention must not train either
        using var student = StudentBuilder.Build(teacher, ["gdn", "gdn", "softmax", "gdn", "gdn"], null, seed: 0);
        var objective = new Stage1Alignment(teacher, student);
        Assert.Equal(new[] { 0, 1, 3, 4 }, objective.TrainedLayers);
        var teacherBefore = TrainingFixtures.Snapshot(teacher);
        var before = TrainingFixtures.Snapshot(student);
        var config = TrainConfig.Resolve(Stage.Stage1, null, ["seq_len=32", "batch_size=4", "train_tokens=512", "eval_tokens=64", "threads=1"]);
        using var data = new TokenDataset(TrainingFixtures.StoriesData);
        TrainLoop.Run(objective, data, config, TestPaths.NewTempDir("stage1-frozen"), OpaqueJson.EmptyObject, resume: false);

        var changed = TrainingFixtures.Changed(before, TrainingFixtures.Snapshot(student));
        var linear = before.Keys.Where(k => StudentBuilder.AttentionLayerOf(k) is int l && l != 2).ToList();
        Assert.NotEmpty(linear);
        Assert.All(changed, name => Assert.Contains(name, linear));            // nothing outside the linear layers moved
        Assert.Contains("model.layers.0.self_attn.q_proj.weight", changed);    // transferred projections train too
        Assert.Contains("model.layers.4.self_attn.a_proj.weight", changed);
        Assert.Empty(TrainingFixtures.Changed(teacherBefore, TrainingFixtures.Snapshot(teacher)));
        // Non-attention student weights equal the teacher's (they were copied and never trained).
        var t = TrainingFixtures.Snapshot(teacher);
        foreach (var name in before.Keys.Where(k => StudentBuilder.AttentionLayerOf(k) is null || k.StartsWith("model.layers.2.")))
            Assert.True(TrainingFixtures.BitEqual(t[name], TrainingFixtures.Snapshot(student)[name]), name);
    }

    [Fact]
    public void Loss_IsMeanOverLayersOfRmsError_AgainstTheTeachersOwnStream()
    {
        using var teacher = TrainingFixtures.LoadTeacher();
        using var student = StudentBuilder.Build(teacher, AllGdn, null, seed: 1);
        var objective = new Stage1Alignment(teacher, student);
        using var data = new TokenDataset(TrainingFixtures.StoriesData);
        using var batch = data.Train.Windows([3, 9], 24);
        var report = objective.Evaluate(new TrainingBatch(batch));

        using var _ = no_grad();
        var ids = batch.narrow(1, 0, 24);
        var context = new AttentionContext(teacher.Rotary.Tables(0, 24, ids.device), 0);
        var x = teacher.Stack.Embeddings.forward(ids);
        double sum = 0, baseline = 0;
        double d = teacher.Config.HiddenSize;
        for (int l = 0; l < 5; l++)
        {
            var n = teacher.Layers[l].InputNorm.forward(x);
            var o = teacher.Layers[l].Attention.forward(n, context, null);
            var s = student.Layers[l].Attention.forward(n, context, null);
            // ||o - s||_2 per token, / sqrt(d), mean over the B*T tokens
            double layer = ((o - s).pow(2).sum(-1).sqrt() / Math.Sqrt(d)).mean().item<float>();
            Assert.Equal(layer, report.LayerLosses![l], 5);
            sum += layer;
            baseline += (o.pow(2).sum(-1).sqrt() / Math.Sqrt(d)).mean().item<float>();
            x = teacher.Layers[l].forward(x, context, null);              // the teacher's stream continues
        }
        Assert.Equal(sum / 5, report.Loss, 5);
        Assert.Equal(baseline / 5, report.Extras["baseline_loss"], 5);

        // A student whose output projection is zero scores exactly the zero-output baseline.
        foreach (var layer in student.Layers)
            foreach (var (name, p) in layer.Attention.named_parameters())
                if (name.StartsWith("o_proj")) p.zero_();
        var zero = objective.Evaluate(new TrainingBatch(batch));
        Assert.Equal(zero.Extras["baseline_loss"], zero.Loss, 6);
    }

    [Fact]
    public void Stage1_CrashAndResume_ReproducesTheUninterruptedCurve()
    {
        DistillRequest Request(string outDir, bool resume) => new()
        {
            Stage = Stage.Stage1, Teacher = TrainingFixtures.StoriesTeacher, Data = TrainingFixtures.StoriesData, Out = outDir, Resume = resume,
            Overrides = ["seq_len=32", "batch_size=4", "train_tokens=1152", "log_every=1", "eval_every=4", "eval_tokens=128", "checkpoint_every=3", "threads=1"],
        };
        var full = TestPaths.NewTempDir("s1-resume-full");
        DistillRun.Run(Request(full, false));
        var crashed = TestPaths.NewTempDir("s1-resume-crash");
        var crash = new Progress(p => { if (p.Event == TrainEvent.Step && p.Step == 5) throw new IOException("simulated kill"); });
        Assert.Throws<IOException>(() => DistillRun.Run(Request(crashed, false), crash));
        Assert.Equal(3, TrainCheckpoint.List(crashed)[^1].Step);
        DistillRun.Run(Request(crashed, true));
        var a = File.ReadAllLines(Path.Combine(full, TrainCheckpoint.MetricsFile)).Select(l => JsonNode.Parse(l)!).ToList();
        var b = File.ReadAllLines(Path.Combine(crashed, TrainCheckpoint.MetricsFile)).Select(l => JsonNode.Parse(l)!).ToList();
        Assert.Equal(a.Count, b.Count);
        for (int i = 0; i < a.Count; i++)
            foreach (var key in new[] { "loss", "baseline_loss", "val_loss" })
                if (a[i][key] is not null)
                    Assert.True(Math.Abs((double)a[i][key]! - (double)b[i][key]!) <= 1e-5 * Math.Abs((double)a[i][key]!), $"line {i} {key}");
    }

    sealed class Progress(Action<TrainProgress> report) : IProgress<TrainProgress>
    {
        public void Report(TrainProgress value) => report(value);
    }

    [Fact]
    public void Stage1ThenStage2_OnTheRealTeacher_LossesFall_ArtifactsChain()
    {
        var s1 = TestPaths.NewTempDir("chain-s1");
        var common = new[] { "seq_len=64", "batch_size=8", "log_every=5", "eval_every=10", "eval_tokens=1024", "checkpoint_every=100", "threads=1" };
        var r1 = DistillRun.Run(new DistillRequest
        {
            Stage = Stage.Stage1, Teacher = TrainingFixtures.StoriesTeacher, Data = TrainingFixtures.StoriesData, Out = s1,
            Overrides = [.. common, "train_tokens=12800", "lr=1e-2"],
        });
        Assert.Equal(AllGdn, r1.LayerTypes);
        var m1 = File.ReadAllLines(Path.Combine(s1, TrainCheckpoint.MetricsFile)).Select(l => JsonNode.Parse(l)!).ToList();
        double first = (double)m1[0]["val_loss"]!, last = (double)m1[^1]["val_loss"]!, baseline = (double)m1[^1]["val_baseline_loss"]!;
        Assert.True(last < 0.8 * first, $"stage 1 held-out alignment {first} -> {last}");
        Assert.True(last < baseline, $"stage 1 {last} vs zero-output baseline {baseline}");

        var s2 = TestPaths.NewTempDir("chain-s2");
        var r2 = DistillRun.Run(new DistillRequest
        {
            Stage = Stage.Stage2, Teacher = TrainingFixtures.StoriesTeacher, Data = TrainingFixtures.StoriesData, Out = s2, From = s1,
            SoftmaxLayers = [4], Overrides = [.. common, "train_tokens=10240", "lr_attention=1e-3", "lr_other=1e-4"],
        });
        Assert.Equal(new[] { "gdn", "gdn", "gdn", "gdn", "softmax" }, r2.LayerTypes);
        var m2 = File.ReadAllLines(Path.Combine(s2, TrainCheckpoint.MetricsFile)).Select(l => JsonNode.Parse(l)!).ToList();
        Assert.True((double)m2[^1]["val_loss"]! < (double)m2[0]["val_loss"]!);

        // The stage-2 student started from stage 1's GDN weights and the teacher's layer-4 attention.
        using var teacher = TrainingFixtures.LoadTeacher();
        using var stage1 = HfCheckpoint.Load(s1);
        using var fresh = StudentBuilder.Build(teacher, r2.LayerTypes, s1, seed: 0);
        var f = TrainingFixtures.Snapshot(fresh);
        Assert.True(TrainingFixtures.BitEqual(f["model.layers.0.self_attn.a_proj.weight"], TrainingFixtures.Snapshot(stage1)["model.layers.0.self_attn.a_proj.weight"]));
        Assert.True(TrainingFixtures.BitEqual(f["model.layers.4.self_attn.k_proj.weight"], TrainingFixtures.Snapshot(teacher)["model.layers.4.self_attn.k_proj.weight"]));

        // Stage 3 continues from stage 2's layout.
        var s3 = TestPaths.NewTempDir("chain-s3");
        var r3 = DistillRun.Run(new DistillRequest
        {
            Stage = Stage.Stage3, Teacher = TrainingFixtures.StoriesTeacher, Data = TrainingFixtures.StoriesData, Out = s3, From = s2,
            Overrides = [.. common, "train_tokens=2048", "seq_len=128", "batch_size=4"],
        });
        Assert.Equal(r2.LayerTypes, r3.LayerTypes);
        using var final = HfCheckpoint.Load(s3);
        Assert.Equal(r2.LayerTypes, final.Config.LayerTypes);
    }
}
