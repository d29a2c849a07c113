using System.Diagnostics;
using System.Text.Json.Nodes;
using HybridDistill.Checkpoints;
using HybridDistill.Tests.Training;
using HybridDistill.Training;

namespace HybridDistill.Tests.Cli;

/// <summary>The `hybrid` program as a child process: tokenize, a stage interrupted by SIGINT and resumed, errors.</summary>
public class DistillCliTests
{
    static Process Start(params string[] args) => HybridProcess.Start(args);

    static (int Code, string Out, string Err) Run(params string[] args) => HybridProcess.Run(args);

    [Fact]
    public async Task Tokenize_ThenStage3_InterruptedBySigint_ResumesToAFinishedModel()
    {
        var dir = TestPaths.NewTempDir("cli-distill");
        var data = Path.Combine(dir, "data");
        var tok = Run("tokenize", "--model", TrainingFixtures.StoriesTeacher, "--input", TestPaths.Assets("text", "tinystories_val_slice.txt"), "--out", data);
        Assert.True(tok.Code == 0, tok.Err);
        Assert.Equal(Path.Combine(data, "manifest.json"), tok.Out.Trim());

        var run = Path.Combine(dir, "run");
        string[] stage3 =
        [
            "distill", "stage3", "--teacher", TrainingFixtures.StoriesTeacher, "--data", data, "--out", run,
            // 150 steps long enough (~30 ms each on one thread) that the run cannot finish between the 4th metrics
            // line and the signal: with 16-token steps it sometimes did (exit 0 instead of 130).
            "--set", "seq_len=128", "--set", "batch_size=4", "--set", "train_tokens=76800", "--set", "log_every=1",
            "--set", "eval_every=1000", "--set", "eval_tokens=64", "--set", "checkpoint_every=1000", "--set", "threads=1",
        ];
        using (var p = Start(stage3))
        {
            var stderr = p.StandardError.ReadToEndAsync();
            var metrics = Path.Combine(run, TrainCheckpoint.MetricsFile);
            var clock = Stopwatch.StartNew();
            while (!(File.Exists(metrics) && File.ReadAllLines(metrics).Length >= 4) && clock.Elapsed.TotalSeconds < 120 && !p.HasExited)
                Thread.Sleep(100);
            Assert.False(p.HasExited, p.HasExited ? await stderr : "");
            using (var kill = System.Diagnostics.Process.Start("kill", ["-s", HybridProcess.InterruptSignal, p.Id.ToString()])) kill.WaitForExit();
            Assert.True(p.WaitForExit(60_000));
            Assert.Equal(130, p.ExitCode);
            Assert.Contains("--resume", await stderr);
        }
        var checkpoints = TrainCheckpoint.List(run);
        Assert.Single(checkpoints);
        long stoppedAt = checkpoints[0].Step;
        Assert.True(stoppedAt is >= 3 and < 150, $"stopped at {stoppedAt}");
        Assert.False(File.Exists(Path.Combine(run, "config.json")));

        // Resume with other settings is refused; with the same arguments it finishes the budget.
        var mismatch = Run([.. stage3, "--resume", "--set", "lr=0.5"]);
        Assert.Equal(2, mismatch.Code);
        Assert.Contains("different settings", mismatch.Err);
        // train_tokens is part of the resolved config, so a resumed run must keep it: finish the original budget.
        var resumed = Run([.. stage3, "--resume"]);
        Assert.True(resumed.Code == 0, resumed.Err);
        Assert.Contains($"resuming at step {stoppedAt}", resumed.Err);
        using var model = HfCheckpoint.Load(run);
        Assert.Equal(Enumerable.Repeat("softmax", 5), model.Config.LayerTypes);
        var lines = File.ReadAllLines(Path.Combine(run, TrainCheckpoint.MetricsFile)).Select(l => (long)JsonNode.Parse(l)!["step"]!).ToList();
        Assert.Equal(Enumerable.Range(0, 151).Select(i => (long)i), lines);    // every step once, none lost or doubled
    }

    [Fact]
    public void ValidationAndInputErrors_ExitWithCode2_AndOneLine()
    {
        var dir = TestPaths.NewTempDir("cli-errors");
        var missingData = CliHarness.Run("distill", "stage1", "--teacher", TrainingFixtures.StoriesTeacher, "--data", Path.Combine(dir, "nope"), "--out", Path.Combine(dir, "run"));
        Assert.Equal(2, missingData.Code);
        Assert.StartsWith("error: ", missingData.Err);
        Assert.Contains("hybrid tokenize", missingData.Err);
        Assert.False(Directory.Exists(Path.Combine(dir, "run")));
        var noTeacher = CliHarness.Run("distill", "stage2", "--data", dir, "--out", dir);
        Assert.Equal(2, noTeacher.Code);
        Assert.Contains("--teacher", noTeacher.Err);
        var help = CliHarness.Run("distill", "stage1", "--help");
        Assert.Equal(0, help.Code);
        Assert.Contains("--recipe", help.Out);
    }
}
