namespace HybridDistill.Tests.Cli;

/// <summary>`hybrid run`'s argument errors and help, in this process (<see cref="CliHarness"/>); the run itself, its
/// signals and two processes sharing a folder are <see cref="RunCliTests"/>.</summary>
public class RunCommandTests
{
    [Fact]
    public void BadSettings_AreOneLineErrorsWithExitCode2_AndWriteNothing()
    {
        string outDir = Path.Combine(TestPaths.NewTempDir("run-args"), "run");
        foreach (var (extra, says) in new (string[] Extra, string Says)[]
        {
            (["--set", "last_n=2"], "error: --set last_n=2: no stage-1 or stage-2 setting is called last_n; for a scoring setting write score.last_n=2."),
            (["--set", "stage9.lr=1"], "error: --set stage9.lr=1: the section is stage1, stage2 or score."),
            (["--methods", "kl,best"], "error: --methods best: unknown method"),
            (["--budgets", "9L"], "error: --budgets"),
            (["--seeds", "0"], "error: --seeds must be at least 1."),
            (["--teacher", Path.Combine(Path.GetDirectoryName(outDir)!, "none")], "error: " + Path.Combine(Path.GetDirectoryName(outDir)!, "none") + ": teacher not found."),
        })
        {
            var (code, stdout, err) = CliHarness.Run(["run", "--teacher", TestPaths.Assets("stories260K"), "--out", outDir, .. extra]);
            Assert.True(code == 2, $"{string.Join(' ', extra)}: exit {code}, {err}");
            Assert.Equal("", stdout);
            Assert.StartsWith(says, err.Trim());
            Assert.Single(err.Trim().Split('\n'));
        }
        Assert.False(Directory.Exists(outDir));
    }

    [Fact]
    public void Help_ListsTheOptions()
    {
        var (code, stdout, err) = CliHarness.Run("run", "--help");
        Assert.True(code == 0, err);
        foreach (var option in new[] { "--teacher", "--data", "--recipe", "--budgets", "--methods", "--seeds", "--set", "--out", "--force", "--eval-limit", "--device" })
            Assert.Contains(option, stdout);
        Assert.Equal("", err);
    }
}
