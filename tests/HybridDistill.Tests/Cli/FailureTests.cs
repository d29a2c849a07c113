using System.Diagnostics;
using System.Text.Json.Nodes;
using HybridDistill.Checkpoints;
using HybridDistill.Cli;
using HybridDistill.Tests.Training;
using HybridDistill.Training;
using Xunit.Abstractions;

namespace HybridDistill.Tests.Cli;

/// <summary>
/// Failures that never lose work, through the `hybrid` program: a disk that fills during a checkpoint (injected at
/// the file-writing layer on every run, and a real 3.6 MB tmpfs where the machine lets the test mount one) keeps the
/// previous checkpoint and `--resume` finishes the same model as an uninterrupted run; an unexpected exception is
/// one line and a crash log, exit 1; a libtorch out-of-memory says what to reduce.
/// </summary>
public class FailureTests(ITestOutputHelper output)
{
    // A 4-step stage-3 run (~1 s) with checkpoints at steps 2 and 4: 3.15 MB each (model 1.04 MB, optimizer 2.09 MB).
    static string[] Stage3(string run) =>
    [
        "distill", "stage3", "--teacher", TrainingFixtures.StoriesTeacher, "--data", TrainingFixtures.StoriesData, "--out", run,
        "--set", "seq_len=32", "--set", "batch_size=2", "--set", "train_tokens=256", "--set", "log_every=1",
        "--set", "eval_every=1000", "--set", "eval_tokens=64", "--set", "checkpoint_every=2", "--set", "threads=1",
    ];

    /// <summary>The same run without any failure (in this process, one program start fewer): what a resumed run must reproduce byte for byte.</summary>
    static readonly Lazy<string> reference = new(() =>
    {
        var run = Path.Combine(TestPaths.NewTempDir("failure-reference"), "run");
        var args = Stage3(run);
        var outcome = DistillRun.Run(new DistillRequest
        {
            Stage = Stage.Stage3, Teacher = TrainingFixtures.StoriesTeacher, Data = TrainingFixtures.StoriesData, Out = run,
            Overrides = args.Where((_, i) => i > 0 && args[i - 1] == "--set").ToArray(),
        });
        Assert.True(outcome.Result.Completed);
        return run;
    });

    static (int Code, string Out, string Err) Hybrid(string? fault, params string[] args)
    {
        var info = new ProcessStartInfo(Path.Combine(AppContext.BaseDirectory, "hybrid"))
        { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) info.ArgumentList.Add(a);
        info.Environment[CliRunner.FaultVariable] = fault ?? "";
        using var p = Process.Start(info)!;
        return HybridProcess.Finish(p);
    }

    static (int Code, string Out, string Err) Shell(string file, params string[] args)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) info.ArgumentList.Add(a);
        using var p = Process.Start(info)!;
        return HybridProcess.Finish(p, 30_000);
    }

    static string Step(int step) => $"step-{step:D8}";

    /// <summary>The one "error:" line of stderr (progress lines come before it); no stack trace anywhere.</summary>
    static string ErrorLine(string stderr)
    {
        Assert.DoesNotContain("   at ", stderr);
        Assert.DoesNotContain("Unhandled exception", stderr);
        return Assert.Single(stderr.Split('\n'), l => l.StartsWith("error: "));
    }

    /// <summary>After a full disk at step 4: step 2 complete and byte-identical to the uninterrupted run's; nothing temporary left.</summary>
    static void AssertStoppedAtStep2WithIntactCheckpoint(string run)
    {
        Assert.Equal([2L], TrainCheckpoint.List(run).Select(c => c.Step));
        Assert.Empty(Directory.GetDirectories(Path.Combine(run, TrainCheckpoint.CheckpointsDir), ".*"));
        Assert.Empty(Directory.GetFiles(run, "*.tmp", SearchOption.AllDirectories));
        Assert.False(File.Exists(Path.Combine(run, "config.json")));
        foreach (var file in new[] { "model.safetensors", TrainCheckpoint.OptimizerFile, "config.json" })
            Assert.Equal(File.ReadAllBytes(Path.Combine(reference.Value, TrainCheckpoint.CheckpointsDir, Step(2), file)),
                         File.ReadAllBytes(Path.Combine(run, TrainCheckpoint.CheckpointsDir, Step(2), file)));
        using var model = HfCheckpoint.Load(Path.Combine(run, TrainCheckpoint.CheckpointsDir, Step(2)));
        Assert.Equal(5, model.Config.NumHiddenLayers);
    }

    /// <summary>A resumed run finished the budget with the uninterrupted run's exact weights, every step's metrics once.</summary>
    static void AssertResumedToTheReferenceModel(string run, (int Code, string Out, string Err) resumed)
    {
        Assert.True(resumed.Code == 0, resumed.Err);
        Assert.Contains("resuming at step 2", resumed.Err);
        Assert.Equal(File.ReadAllBytes(Path.Combine(reference.Value, "model.safetensors")), File.ReadAllBytes(Path.Combine(run, "model.safetensors")));
        using var model = HfCheckpoint.Load(run);
        var steps = File.ReadAllLines(Path.Combine(run, TrainCheckpoint.MetricsFile)).Select(l => (long)JsonNode.Parse(l)!["step"]!);
        Assert.Equal([0L, 1, 2, 3, 4], steps);
    }

    [Fact]
    public void InjectedDiskFull_PartWayThroughACheckpoint_KeepsThePreviousOne_AndResumeFinishesTheSameModel()
    {
        var run = Path.Combine(TestPaths.NewTempDir("failure-injected"), "run");
        // The 2nd optimizer.safetensors (step 4's checkpoint) fails after 64 KiB of its 2.09 MB, as a full disk would.
        var full = Hybrid("disk-full:optimizer.safetensors:2:65536", Stage3(run));
        Assert.Equal(1, full.Code);
        var line = ErrorLine(full.Err);
        output.WriteLine(line);
        var optimizerPath = Path.Combine(run, TrainCheckpoint.CheckpointsDir, "." + Step(4) + ".tmp", TrainCheckpoint.OptimizerFile);
        long optimizerBytes = new FileInfo(Path.Combine(reference.Value, TrainCheckpoint.CheckpointsDir, Step(2), TrainCheckpoint.OptimizerFile)).Length;
        Assert.StartsWith($"error: no space left on the device while writing {optimizerPath} ({optimizerBytes:N0} bytes needed, ", line);
        Assert.EndsWith($"The last complete checkpoint, {Path.Combine(run, TrainCheckpoint.CheckpointsDir, Step(2))}, is intact: " +
                        "free space and run the same command with --resume to continue from it.", line);
        AssertStoppedAtStep2WithIntactCheckpoint(run);

        AssertResumedToTheReferenceModel(run, Hybrid(null, [.. Stage3(run), "--resume"]));
    }

    [Fact]
    public void RealFullDisk_OnASmallTmpfs_KeepsThePreviousCheckpoint_AndResumeFinishesAfterSpaceIsFreed()
    {
        var mount = TestPaths.NewTempDir("failure-tmpfs");
        // 3.6 MB: run_config, metrics and step 2's checkpoint (3.15 MB) fit; step 4's does not.
        var mounted = Shell("mount", "-t", "tmpfs", "-o", "size=3600k", "tmpfs", mount);
        if (mounted.Code != 0)
        {
            output.WriteLine($"NOT RUN: this machine does not let the test mount a tmpfs ({mounted.Err.Trim()}); " +
                             "the injected-fault test checks the same guarantee.");
            return;
        }
        try
        {
            var run = Path.Combine(mount, "run");
            var full = Hybrid(null, Stage3(run));
            Assert.Equal(1, full.Code);
            var line = ErrorLine(full.Err);
            output.WriteLine("real tmpfs, 3600k: " + line);
            Assert.StartsWith($"error: no space left on the device while writing {Path.Combine(run, TrainCheckpoint.CheckpointsDir, "." + Step(4) + ".tmp")}", line);
            Assert.Contains(" bytes needed, ", line);
            Assert.Contains($"The last complete checkpoint, {Path.Combine(run, TrainCheckpoint.CheckpointsDir, Step(2))}, is intact", line);
            AssertStoppedAtStep2WithIntactCheckpoint(run);

            var grown = Shell("mount", "-o", "remount,size=16m", mount);     // free space
            Assert.True(grown.Code == 0, grown.Err);
            AssertResumedToTheReferenceModel(run, Hybrid(null, [.. Stage3(run), "--resume"]));
        }
        finally
        {
            if (Shell("umount", mount).Code != 0) Shell("umount", "-l", mount);
        }
    }

    [Fact]
    public void InjectedCrash_InATrainingRun_IsOneLine_WithTheFullTraceInACrashLogInTheRunFolder()
    {
        var run = Path.Combine(TestPaths.NewTempDir("failure-crash"), "run");
        var r = Hybrid("crash:optimizer.safetensors:1:100", Stage3(run));
        Assert.Equal(1, r.Code);
        var line = ErrorLine(r.Err);
        output.WriteLine(line);
        var log = Assert.Single(Directory.GetFiles(run, "crash-*.log"));
        // The fault names the temporary file it was writing: step 2's checkpoint, never renamed into place.
        Assert.StartsWith("error: hybrid distill stage3 failed (InvalidOperationException: injected fault after 100 bytes of " +
                          Path.Combine(run, TrainCheckpoint.CheckpointsDir, "." + Step(2) + ".tmp", TrainCheckpoint.OptimizerFile) + ".", line);
        Assert.EndsWith($"); full trace in {log}", line);
        var text = File.ReadAllText(log);
        Assert.Contains("command line: hybrid distill stage3 --teacher", text);
        Assert.Contains("System.InvalidOperationException: injected fault", text);
        Assert.Contains("at HybridDistill.Training.AdamWOptimizer.Save", text);
        Assert.Contains("at HybridDistill.Training.TrainLoop", text);
    }

    [Fact]
    public void UnwritableOutput_AndAnInjectedCrash_InConvert_AreOneLine_WithACrashLogInTheTempFolder_AndNoOutput()
    {
        var (code, _, err) = Hybrid(null, "convert", "--teacher", TrainingFixtures.StoriesTeacher, "--softmax-layers", "2", "--out", "/proc/hybrid-x");
        Assert.Equal(1, code);
        var line = ErrorLine(err);
        output.WriteLine(line);
        Assert.StartsWith("error: hybrid convert failed (", line);
        var log = CrashLogOf(line);
        Assert.Equal(Path.GetFullPath(Path.GetTempPath()), Path.GetDirectoryName(log) + "/");
        Assert.Contains("--out /proc/hybrid-x", File.ReadAllText(log));
        File.Delete(log);

        var parent = TestPaths.NewTempDir("failure-convert");
        var target = Path.Combine(parent, "hybrid");
        (code, _, err) = Hybrid("crash:model.safetensors", "convert", "--teacher", TrainingFixtures.StoriesTeacher, "--softmax-layers", "2", "--out", target);
        Assert.Equal(1, code);
        line = ErrorLine(err);
        output.WriteLine(line);
        Assert.StartsWith("error: hybrid convert failed (InvalidOperationException: injected fault after 0 bytes of ", line);
        log = CrashLogOf(line);
        Assert.Contains("at HybridDistill.Checkpoints.SafeTensorsWriter.Write", File.ReadAllText(log));
        File.Delete(log);
        Assert.Empty(Directory.EnumerateFileSystemEntries(parent));       // nothing half-written, not even a log
    }

    static string CrashLogOf(string line)
    {
        const string marker = "; full trace in ";
        var log = line[(line.IndexOf(marker, StringComparison.Ordinal) + marker.Length)..];
        Assert.Matches(@"crash-\d{8}-\d{6}-\d{3}\.log$", log);
        Assert.True(File.Exists(log), log);
        return log;
    }

    [Fact]
    public void LibtorchOutOfMemory_SaysWhatToReduce()
    {
        Exception? oom = null;
        try { using var huge = TorchSharp.torch.empty(1L << 42); }          // 16 TiB: refused by the allocator at once
        catch (Exception e) { oom = e; }
        Assert.NotNull(oom);
        Assert.True(CliRunner.IsOutOfMemory(oom), oom.GetType() + ": " + oom.Message);

        var dir = TestPaths.NewTempDir("failure-oom");
        var at = new DateTime(2026, 12, 3, 8, 0, 0, DateTimeKind.Utc);
        var line = CliRunner.Crash(["distill", "stage2", "--out", dir], oom, at);
        output.WriteLine(line);
        var log = Path.Combine(dir, "crash-20261203-080000-000.log");
        Assert.StartsWith($"error: hybrid distill stage2 failed ({oom.GetType().Name}: ", line);
        Assert.EndsWith($"; full trace in {log}. Out of memory: lower batch_size (raise grad_accum to keep the tokens per step) or seq_len, " +
                        "or logits_chunk in stages 2 and 3, with --set KEY=VALUE or in the recipe.", line);
        Assert.DoesNotContain('\n', line);
        Assert.Contains(oom.Message.Split('\n')[0], File.ReadAllText(log));

        // Not memory: no advice about it; an --out file (select's layout.json) puts the log beside it.
        line = CliRunner.Crash(["select", "--out", Path.Combine(dir, "layout.json")], new InvalidOperationException("boom"), at.AddSeconds(1));
        Assert.Equal($"error: hybrid select failed (InvalidOperationException: boom); full trace in {Path.Combine(dir, "crash-20261203-080001-000.log")}", line);
    }
}
