using System.Diagnostics;

namespace HybridDistill.Tests.Cli;

/// <summary>The built `hybrid` program (copied beside the tests) as a child process.</summary>
internal static class HybridProcess
{
    /// <summary>
    /// The signal that stands for Ctrl-C: SIGINT, unless this test process was started with SIGINT ignored (a
    /// non-interactive shell's background job, e.g. `bash .ci/run &`), which every child inherits and cannot undo; then
    /// SIGTERM, which the CLI handles through the same code (Interrupt, RunCommand). Seen here: run in the background, the
    /// SIGINT tests received exit 0 because the signal never reached the child.
    /// </summary>
    public static string InterruptSignal { get; } = SigIntIgnored() ? "TERM" : "INT";

    static bool SigIntIgnored()
    {
        const string status = "/proc/self/status";
        if (!File.Exists(status)) return false;
        var line = File.ReadLines(status).FirstOrDefault(l => l.StartsWith("SigIgn:"));
        return line is not null && (Convert.ToUInt64(line["SigIgn:".Length..].Trim(), 16) & (1UL << (2 - 1))) != 0;   // bit of signal 2
    }

    static string Program => Path.Combine(AppContext.BaseDirectory, "hybrid");

    /// <summary>Starts `hybrid ARGS` with stdout and stderr redirected.</summary>
    public static Process Start(params string[] args)
    {
        var info = new ProcessStartInfo(Program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) info.ArgumentList.Add(a);
        return Process.Start(info)!;
    }

    /// <summary>Waits for a started process (at most <paramref name="timeoutMs"/>) and returns its exit code and output.</summary>
    public static (int Code, string Out, string Err) Finish(Process p, int timeoutMs = 180_000)
    {
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        Assert.True(p.WaitForExit(timeoutMs), $"hybrid did not finish in {timeoutMs / 1000} s");
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>Runs `hybrid ARGS` to the end.</summary>
    public static (int Code, string Out, string Err) Run(params string[] args)
    {
        using var p = Start(args);
        return Finish(p);
    }
}
