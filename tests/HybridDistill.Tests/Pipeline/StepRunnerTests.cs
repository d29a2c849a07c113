using HybridDistill.Pipeline;

namespace HybridDistill.Tests.Pipeline;

/// <summary>The rules hybrid run's steps follow: skip when done with the same inputs, stop on changed inputs unless
/// forced, resume or redo an interrupted step, leave a step another live process holds to it.</summary>
public class StepRunnerTests
{
    /// <summary>Events in the order they were reported, on the reporting thread (Progress&lt;T&gt; would post them later).</summary>
    sealed class Collect(List<StepEvent> events) : IProgress<StepEvent>
    {
        public void Report(StepEvent value) => events.Add(value);
    }

    static StepInputs Inputs(string lr = "1e-3") => StepInputs.Of("models/softmax-3-s0", ("lr", lr), ("seed", "0"));

    [Fact]
    public void FinishedWithTheSameInputs_IsSkipped_ChangedInputsStopUnlessForced()
    {
        var layout = new RunLayout(TestPaths.NewTempDir("steps"));
        string output = layout.Model("softmax-3-s0");
        int calls = 0;
        void Work(bool resume) { calls++; Directory.CreateDirectory(output); File.WriteAllText(Path.Combine(output, "model"), $"run {calls}"); }
        var events = new List<StepEvent>();
        var runner = new StepRunner(layout, force: false, new Collect(events));

        runner.Run(Inputs(), output, resumable: true, Work);
        runner.Run(Inputs(), output, resumable: true, Work);
        Assert.Equal(1, calls);
        Assert.Equal([StepEventKind.Started, StepEventKind.Finished, StepEventKind.Skipped], events.Select(e => e.Kind));

        var e = Assert.Throws<InputException>(() => runner.Run(Inputs("2e-3"), output, resumable: true, Work));
        Assert.Contains("step \"models/softmax-3-s0\" was made with other inputs: lr was 1e-3, now 2e-3", e.Message);
        Assert.Equal(1, calls);

        new StepRunner(layout, force: true).Run(Inputs("2e-3"), output, resumable: true, Work);
        Assert.Equal(2, calls);
        Assert.Equal("run 2", File.ReadAllText(Path.Combine(output, "model")));
        Assert.Equal(StepStatus.Done, layout.Check(Inputs("2e-3"), output).Status);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void AnInterruptedStep_ResumesWhenItCan_ElseStartsOverOnAClearedOutput(bool resumable)
    {
        var layout = new RunLayout(TestPaths.NewTempDir("steps"));
        string output = layout.Model("softmax-3-s0");
        var runner = new StepRunner(layout, force: false);
        Assert.Throws<OperationCanceledException>(() => runner.Run(Inputs(), output, resumable, _ =>
        {
            Directory.CreateDirectory(output);
            File.WriteAllText(Path.Combine(output, "checkpoint"), "step 7");
            throw new OperationCanceledException();
        }));
        Assert.Equal(StepStatus.Started, layout.Check(Inputs(), output).Status);

        bool? resumed = null;
        bool checkpointSeen = false;
        runner.Run(Inputs(), output, resumable, resume => { resumed = resume; checkpointSeen = File.Exists(Path.Combine(output, "checkpoint")); });
        Assert.Equal(resumable, resumed);
        Assert.Equal(resumable, checkpointSeen);
        Assert.Equal(StepStatus.Done, layout.Check(Inputs(), output).Status);
    }

    [Fact]
    public void AStepHeldByAnotherLiveProcess_IsLeftToIt_AndWaitedFor()
    {
        var layout = new RunLayout(TestPaths.NewTempDir("steps"));
        string output = layout.Model("softmax-3-s0");
        Directory.CreateDirectory(layout.StepsDir);
        string lockPath = layout.StepRecordPath(Inputs().Step) + ".lock";
        File.WriteAllText(lockPath, "1");                          // process 1 (init) is always alive
        var events = new List<StepEvent>();
        var runner = new StepRunner(layout, force: false, new Collect(events));
        int calls = 0;
        runner.Run(Inputs(), output, resumable: true, _ => calls++);
        Assert.Equal(0, calls);
        Assert.Equal(new StepEvent(StepEventKind.HeldElsewhere, Inputs().Step, Detail: "1"), events.Single());

        // the other process finishes the step and lets go: waiting ends without doing it again
        layout.Record(Inputs(), finished: true);
        File.Delete(lockPath);
        runner.AwaitOthers();
        Assert.Equal(0, calls);

        // a lock whose process has died is taken over
        var other = Inputs("5e-4") with { Step = "models/softmax-4-s0" };
        File.WriteAllText(layout.StepRecordPath(other.Step) + ".lock", "2147483646");
        runner.Run(other, layout.Model("softmax-4-s0"), resumable: true, _ => calls++);
        Assert.Equal(1, calls);
        Assert.False(File.Exists(layout.StepRecordPath(other.Step) + ".lock"));
    }
}
