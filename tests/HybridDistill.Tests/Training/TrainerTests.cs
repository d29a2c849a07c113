using System.Text.Json.Nodes;
using HybridDistill.Artifacts;
using HybridDistill.Config;
using HybridDistill.Data;
using HybridDistill.Models;
using HybridDistill.Training;

namespace HybridDistill.Tests.Training;

/// <summary>The Trainer driven piece by piece gives the numbers and files of one uninterrupted TrainLoop.Run.</summary>
public class TrainerTests
{
    // 6 steps of stage 2 on stories260K (a hybrid student with softmax at layer 2): 2 x 32 tokens per step.
    static readonly string[] Overrides =
        ["seq_len=32", "batch_size=2", "train_tokens=384", "log_every=1", "eval_every=2", "eval_tokens=64", "checkpoint_every=4", "threads=1"];

    static readonly string[] Volatile = ["elapsed_s", "tokens_per_s", "rss_mb"];

    /// <summary>A fresh student and its objective; the caller disposes the models.</summary>
    static (HybridDistill.Models.HybridCausalLM Teacher, HybridDistill.Models.HybridCausalLM Student, Stage2Distillation Objective, TrainConfig Config) Setup()
    {
        var teacher = TrainingFixtures.LoadTeacher();
        var layout = LayerLayout.FromSoftmaxLayers(teacher.Config.NumHiddenLayers, [2]);
        var student = StudentBuilder.Build(teacher, layout.LayerTypes, null, seed: 0);
        var config = TrainConfig.Resolve(Stage.Stage2, null, Overrides);
        return (teacher, student, new Stage2Distillation(teacher, student, config), config);
    }

    static List<string> Metrics(string runDir) =>
        File.ReadAllLines(Path.Combine(runDir, TrainCheckpoint.MetricsFile))
            .Select(l => { var o = JsonNode.Parse(l)!.AsObject(); foreach (var k in Volatile) o.Remove(k); return o.ToJsonString(); })
            .ToList();

    static readonly Lazy<(string RunDir, List<TrainProgress> Events)> reference = new(() =>
    {
        var runDir = TestPaths.NewTempDir("trainer-reference");
        var events = new List<TrainProgress>();
        var (teacher, student, objective, config) = Setup();
        using (teacher)
        using (student)
        using (var data = new TokenDataset(TrainingFixtures.StoriesData))
            TrainLoop.Run(objective, data, config, runDir, OpaqueJson.EmptyObject, resume: false, new SyncProgress(events.Add));
        return (runDir, events);
    });

    [Fact]
    public void RunUntil_Save_AndResumeInAnotherTrainer_GiveTheSameLinesCheckpointsAndWeights()
    {
        var (referenceDir, _) = reference.Value;
        var runDir = TestPaths.NewTempDir("trainer-pieces");
        using var data = new TokenDataset(TrainingFixtures.StoriesData);

        var (teacher1, student1, objective1, config) = Setup();
        using (teacher1)
        using (student1)
        using (var first = new Trainer(objective1, data, config, runDir, OpaqueJson.EmptyObject))
        {
            first.StartOver();
            var paused = first.RunUntil(3);
            Assert.Equal((3L, 6L, 192L, false), (paused.Step, paused.TotalSteps, paused.Tokens, paused.Completed));
            Assert.Empty(TrainCheckpoint.List(runDir));                        // checkpoint_every 4: none yet
            Assert.Equal(Path.Combine(runDir, TrainCheckpoint.CheckpointsDir, "step-00000003"), first.Save());
        }

        var (teacher2, student2, objective2, _) = Setup();
        using (teacher2)
        using (student2)
        using (var second = new Trainer(objective2, data, config, runDir, OpaqueJson.EmptyObject))
        {
            second.Resume(TrainCheckpoint.Latest(runDir)!);
            Assert.Equal(3, second.StepNumber);
            var done = second.RunUntil(long.MaxValue);
            Assert.Equal((6L, true), (done.Step, done.Completed));
        }

        Assert.Equal(Metrics(referenceDir), Metrics(runDir));
        // Checkpoints at 4 and 6 (keep_checkpoints 2 dropped step 3), byte for byte the reference's.
        Assert.Equal([4L, 6L], TrainCheckpoint.List(runDir).Select(c => c.Step));
        foreach (var step in new[] { "step-00000004", "step-00000006" })
            foreach (var file in new[] { "model.safetensors", TrainCheckpoint.OptimizerFile, TrainCheckpoint.TrainerStateFile, "config.json" })
                Assert.Equal(File.ReadAllBytes(Path.Combine(referenceDir, TrainCheckpoint.CheckpointsDir, step, file)),
                             File.ReadAllBytes(Path.Combine(runDir, TrainCheckpoint.CheckpointsDir, step, file)));
    }

    [Fact]
    public void Progress_ReportsEachEventOnce_InTheLoopsOrder()
    {
        var events = reference.Value.Events;
        var expected = new List<(TrainEvent, long)> { (TrainEvent.Start, 0), (TrainEvent.Line, 0) };
        for (long s = 1; s <= 6; s++)
        {
            expected.Add((TrainEvent.Step, s));
            expected.Add((TrainEvent.Line, s));
            if (s is 4 or 6) expected.Add((TrainEvent.Checkpoint, s));
        }
        expected.Add((TrainEvent.Done, 6));
        Assert.Equal(expected, events.Select(e => (e.Event, e.Step)));

        // A line's event carries the line and its loss; a checkpoint's its directory; val_loss is the last evaluation.
        var lines = File.ReadAllLines(Path.Combine(reference.Value.RunDir, TrainCheckpoint.MetricsFile)).Select(l => JsonNode.Parse(l)!).ToList();
        var lineEvents = events.Where(e => e.Event == TrainEvent.Line).ToList();
        Assert.Equal(lines.Select(l => (double)l["loss"]!), lineEvents.Select(e => e.Loss!.Value));
        Assert.Equal(lines.Select(l => (long)l["step"]!), lineEvents.Select(e => e.Line!.Step));
        Assert.Equal((double)lines[4]["val_loss"]!, lineEvents[5].ValLoss!.Value);                  // step 5: the value of step 4
        Assert.All(events, e => Assert.Equal(e.Event is TrainEvent.Checkpoint or TrainEvent.Done, e.Checkpoint is not null));
        Assert.Equal(Path.Combine(reference.Value.RunDir, TrainCheckpoint.CheckpointsDir, "step-00000006"), events[^1].Checkpoint);
        Assert.All(events, e => Assert.Equal((6L, 384L, e.Step * 64), (e.TotalSteps, e.TotalTokens, e.Tokens)));
    }

    [Fact]
    public void Step_AndEvaluate_AloneGiveTheLoopsLossesAndWriteNothing()
    {
        var lines = File.ReadAllLines(Path.Combine(reference.Value.RunDir, TrainCheckpoint.MetricsFile)).Select(l => JsonNode.Parse(l)!).ToList();
        var runDir = TestPaths.NewTempDir("trainer-steps");
        var (teacher, student, objective, config) = Setup();
        using (teacher)
        using (student)
        using (var data = new TokenDataset(TrainingFixtures.StoriesData))
        using (var trainer = new Trainer(objective, data, config, runDir, OpaqueJson.EmptyObject))
        {
            int threads = TorchSharp.torch.get_num_threads();
            TorchSharp.torch.set_num_threads(1);                              // the reference's threads=1
            try
            {
                Assert.Equal((double)lines[0]["val_loss"]!, trainer.Evaluate().MeanLoss);
                Assert.Equal((double)lines[1]["loss"]!, trainer.Step());          // grad_accum 1: the line's mean is the step's loss
                Assert.Equal((double)lines[2]["loss"]!, trainer.Step());
                Assert.Equal((double)lines[2]["val_loss"]!, trainer.Evaluate().MeanLoss);
                Assert.Equal(2, trainer.StepNumber);
            }
            finally { TorchSharp.torch.set_num_threads(threads); }
        }
        Assert.Empty(Directory.GetFileSystemEntries(runDir));
    }

    [Fact]
    public void Step_WithPhaseHook_GivesTheLoopsLossesToTheBit_AndReportsEachPhaseInOrder()
    {
        var lines = File.ReadAllLines(Path.Combine(reference.Value.RunDir, TrainCheckpoint.MetricsFile)).Select(l => JsonNode.Parse(l)!).ToList();
        var runDir = TestPaths.NewTempDir("trainer-phases");
        var (teacher, student, objective, config) = Setup();
        var recorder = new PhaseRecorder();
        using (teacher)
        using (student)
        using (var data = new TokenDataset(TrainingFixtures.StoriesData))
        using (var trainer = new Trainer(objective, data, config, runDir, OpaqueJson.EmptyObject) { Phases = recorder })
        {
            int threads = TorchSharp.torch.get_num_threads();
            TorchSharp.torch.set_num_threads(1);                              // the reference's threads=1
            try
            {
                Assert.Equal((double)lines[1]["loss"]!, trainer.Step());          // timing changes no number
                Assert.Equal((double)lines[2]["loss"]!, trainer.Step());
                Assert.Equal((double)lines[2]["val_loss"]!, trainer.Evaluate().MeanLoss);
            }
            finally { TorchSharp.torch.set_num_threads(threads); }
        }
        // Per step: the teacher's and the student's hidden states; per chunk of logits_chunk positions the teacher's
        // logits, the student's logits and loss, their push through the LM head; the backward into the body; clipping
        // and AdamW, which also clears the gradients for the next step. Only the first step zeroes them on its own
        // (an optimizer phase first). Evaluation reports nothing.
        int chunks = (int)Math.Ceiling(2 * 32 / (double)config.LogitsChunk);
        var step = new List<string> { PhaseTimes.TeacherForward, PhaseTimes.StudentForward };
        for (int c = 0; c < chunks; c++) step.AddRange([PhaseTimes.TeacherForward, PhaseTimes.StudentForward, PhaseTimes.Backward]);
        step.AddRange([PhaseTimes.Backward, PhaseTimes.Optimizer]);
        Assert.Equal([PhaseTimes.Optimizer, .. step, .. step], recorder.Phases);
    }

    [Fact]
    public void OnBatches_StepsAsTheTokenFolderTrainer_AndRefusesWhatNeedsTheFolder()
    {
        var lines = File.ReadAllLines(Path.Combine(reference.Value.RunDir, TrainCheckpoint.MetricsFile)).Select(l => JsonNode.Parse(l)!).ToList();
        var (teacher, student, objective, config) = Setup();
        using (teacher)
        using (student)
        using (var data = new TokenDataset(TrainingFixtures.StoriesData))
        {
            // the windows the token-folder trainer's sampler draws, given as a batch source
            var sampler = new WindowSampler(data.Train.WindowCount(config.SeqLen), config.Seed);
            using var trainer = Trainer.OnBatches(objective, config, () => data.TrainBatch(sampler.Next(config.BatchSize), config.SeqLen));
            int threads = TorchSharp.torch.get_num_threads();
            TorchSharp.torch.set_num_threads(1);                              // the reference's threads=1
            try
            {
                Assert.Equal((double)lines[1]["loss"]!, trainer.Step());
                Assert.Equal((double)lines[2]["loss"]!, trainer.Step());
            }
            finally { TorchSharp.torch.set_num_threads(threads); }
            foreach (Action refused in new Action[] { () => trainer.RunUntil(3), () => trainer.Evaluate(), () => trainer.Save(), () => trainer.StartOver() })
                Assert.Contains("batch source", Assert.Throws<InvalidOperationException>(refused).Message);
            Assert.Equal(2, trainer.StepNumber);
        }
    }

    sealed class SyncProgress(Action<TrainProgress> report) : IProgress<TrainProgress>
    {
        public void Report(TrainProgress value) => report(value);
    }
}
