using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using HybridDistill.Tests.Training;

namespace HybridDistill.Tests.Cli;

/// <summary>`hybrid run` as a child process: interrupted (Ctrl-C, then a kill) and rerun, it ends with the summary an
/// uninterrupted run gives, without redoing finished steps; two runs on one folder share its steps; a changed setting
/// is reported, not ignored.</summary>
public class RunCliTests
{
    static string[] Args(string outDir, params string[] extra) =>
    [
        "run", "--teacher", TrainingFixtures.StoriesTeacher, "--methods", "uniform-last", "--budgets", "1L", "--eval-limit", "2",
        "--set", "stage1.train_tokens=4096", "--set", "stage2.train_tokens=8192", "--set", "stage2.checkpoint_every=1",
        "--set", "log_every=1", "--set", "threads=1", "--out", outDir, .. extra,
    ];

    /// <summary>Starts `hybrid ARGS`, and sends <paramref name="signal"/> once stderr has <paramref name="marker"/> followed by a checkpoint line.</summary>
    static (int Code, string Err) RunAndSignal(string[] args, string marker, string signal)
    {
        using var p = HybridProcess.Start(args);
        var err = new StringBuilder();
        bool sent = false;
        p.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (err)
            {
                err.AppendLine(e.Data);
                var text = err.ToString();
                int at = text.IndexOf(marker, StringComparison.Ordinal);
                if (!sent && at >= 0 && text.IndexOf(": checkpoint ", at, StringComparison.Ordinal) >= 0)
                {
                    sent = true;
                    using var kill = Process.Start("kill", ["-s", signal, p.Id.ToString()]);
                    kill.WaitForExit();
                }
            }
        };
        p.BeginErrorReadLine();
        _ = p.StandardOutput.ReadToEndAsync();
        Assert.True(p.WaitForExit(300_000), "hybrid run did not finish in 300 s");
        p.WaitForExit();
        lock (err)
        {
            Assert.True(sent, $"never saw {marker} and a checkpoint:\n{err}");
            return (p.ExitCode, err.ToString());
        }
    }

    static IEnumerable<string> Figures(string summaryPath) =>
        JsonNode.Parse(File.ReadAllText(summaryPath))!["rows"]!.AsArray().Select(r =>
            $"{r!["model"]} {r["method"]} {r["k"]} recall_avg={r["recall_avg"]} recall={r["recall"]!.ToJsonString()} kl={r["kl"]} ppl={r["ppl"]}");

    [Fact]
    public async Task InterruptedAndKilled_RerunEndsWithTheSameSummary_AndAChangedSettingIsReported()
    {
        var dir = TestPaths.NewTempDir("run-cli");
        string reference = Path.Combine(dir, "reference"), interrupted = Path.Combine(dir, "interrupted");

        var whole = HybridProcess.Run(Args(reference));
        Assert.True(whole.Code == 0, whole.Err);

        // Ctrl-C in the first stage-2 run: it saves a checkpoint, the run exits 130 and says how to resume
        var first = RunAndSignal(Args(interrupted), "- models/all-linear-s0", HybridProcess.InterruptSignal);
        Assert.True(first.Code == 130, first.Err);
        Assert.Contains("Run the same command again to resume", first.Err);
        Assert.False(File.Exists(Path.Combine(interrupted, "summary.json")));

        // rerun: finished steps skipped, the interrupted one resumed; killed outright in the next stage-2 run
        var second = RunAndSignal(Args(interrupted), "- models/softmax-4-s0", "KILL");
        Assert.Equal(137, second.Code);
        Assert.Contains("- stage1: done, skipped", second.Err);
        Assert.Contains("- models/all-linear-s0 (resuming)", second.Err);

        var third = HybridProcess.Run(Args(interrupted));
        Assert.True(third.Code == 0, third.Err);
        Assert.Contains("- models/all-linear-s0: done, skipped", third.Err);
        Assert.Contains("- models/softmax-4-s0 (resuming)", third.Err);
        Assert.Equal(Figures(Path.Combine(reference, "summary.json")), Figures(Path.Combine(interrupted, "summary.json")));

        // two processes on one folder share the steps (each done once) and end with the same summary
        string shared = Path.Combine(dir, "shared");
        using (var a = HybridProcess.Start(Args(shared)))
        {
            var errA = a.StandardError.ReadToEndAsync();
            _ = a.StandardOutput.ReadToEndAsync();
            Thread.Sleep(1500);
            using var b = HybridProcess.Start(Args(shared));
            var errB = b.StandardError.ReadToEndAsync();      // both drained at once: each may wait for the other's steps
            _ = b.StandardOutput.ReadToEndAsync();
            Assert.True(a.WaitForExit(300_000) && b.WaitForExit(300_000), "the two runs did not finish in 300 s");
            var (resultA, resultB) = ((Code: a.ExitCode, Err: await errA), (Code: b.ExitCode, Err: await errB));
            Assert.True(resultA.Code == 0, resultA.Err);
            Assert.True(resultB.Code == 0, resultB.Err);
            var doneA = resultA.Err.Split('\n').Where(l => l.Contains(" took ")).Select(l => l.Trim().Split(' ')[0]).ToHashSet();
            var doneB = resultB.Err.Split('\n').Where(l => l.Contains(" took ")).Select(l => l.Trim().Split(' ')[0]).ToHashSet();
            Assert.Empty(doneA.Intersect(doneB));
            Assert.Contains("models/all-linear-s0", doneA.Union(doneB));
            Assert.Contains("in progress in process", resultA.Err + resultB.Err);
        }
        Assert.Equal(Figures(Path.Combine(reference, "summary.json")), Figures(Path.Combine(shared, "summary.json")));

        // a changed setting stops the run at the first step it changes, naming the step and the setting
        var changed = HybridProcess.Run(Args(interrupted, "--set", "stage2.lr_attention=0.002"));
        Assert.Equal(2, changed.Code);
        Assert.Contains("step \"models/all-linear-s0\" was made with other inputs: set was", changed.Err);
        Assert.Contains("--force", changed.Err);
        Assert.Single(changed.Err.Trim().Split('\n'), l => l.StartsWith("error:"));
    }
}
