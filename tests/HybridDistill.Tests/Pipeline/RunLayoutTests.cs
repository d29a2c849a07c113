using HybridDistill.Pipeline;

namespace HybridDistill.Tests.Pipeline;

public class RunLayoutTests
{
    [Fact]
    public void AStep_IsDoneOnlyWhenItFinishedWithTheSameInputs()
    {
        var layout = new RunLayout(TestPaths.NewTempDir("layout"));
        var inputs = StepInputs.Of("models/softmax-3-s0", ("seed", "0"), ("softmax_layers", "3"));
        string output = layout.Model("softmax-3-s0");
        Assert.Equal(StepStatus.NotStarted, layout.Check(inputs, output).Status);

        layout.Record(inputs, finished: false);
        Directory.CreateDirectory(output);
        File.WriteAllText(Path.Combine(output, "partial"), "x");
        Assert.Equal(StepStatus.Started, layout.Check(inputs, output).Status);

        layout.Record(inputs, finished: true);
        Assert.Equal(StepStatus.Done, layout.Check(inputs, output).Status);

        var changed = layout.Check(StepInputs.Of("models/softmax-3-s0", ("seed", "1"), ("softmax_layers", "3")), output);
        Assert.Equal((StepStatus.Differs, "seed", "0", "1"), (changed.Status, changed.Key, changed.Recorded, changed.Current));
        var added = layout.Check(StepInputs.Of("models/softmax-3-s0", ("seed", "0"), ("softmax_layers", "3"), ("set", "lr=1")), output);
        Assert.Equal((StepStatus.Differs, "set", "(none)"), (added.Status, added.Key, added.Recorded));
    }

    [Fact]
    public void AnOutputWithoutARecord_IsNotTakenForDone()
    {
        var layout = new RunLayout(TestPaths.NewTempDir("layout"));
        Directory.CreateDirectory(layout.Stage1);
        File.WriteAllText(Path.Combine(layout.Stage1, "model.safetensors"), "not ours");
        var check = layout.Check(StepInputs.Of("stage1", ("teacher", "abc")), layout.Stage1);
        Assert.Equal((StepStatus.Differs, "(record)"), (check.Status, check.Key));
    }

    [Fact]
    public void Digest_ChangesWithAnyInput_AndFingerprint_WithAnyByte()
    {
        var a = RunLayout.Digest(StepInputs.Of("stage1", ("teacher", "abc"), ("set", "")));
        Assert.Equal(a, RunLayout.Digest(StepInputs.Of("stage1", ("set", ""), ("teacher", "abc"))));
        Assert.NotEqual(a, RunLayout.Digest(StepInputs.Of("stage1", ("teacher", "abd"), ("set", ""))));
        Assert.NotEqual(a, RunLayout.Digest(StepInputs.Of("stage2", ("teacher", "abc"), ("set", ""))));

        var dir = TestPaths.NewTempDir("fingerprint");
        File.WriteAllText(Path.Combine(dir, "a.txt"), "hello");
        string before = RunLayout.Fingerprint(dir);
        File.WriteAllText(Path.Combine(dir, "a.txt"), "hellp");
        Assert.NotEqual(before, RunLayout.Fingerprint(dir));
    }
}
