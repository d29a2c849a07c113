using HybridDistill.Cli;
using Spectre.Console.Cli.Testing;
using Spectre.Console.Testing;

namespace HybridDistill.Tests.Cli;

/// <summary>
/// `hybrid ARGS` in this process: Program.cs's command tree (<see cref="CliApp.Configure"/>) on Spectre's
/// <see cref="CommandAppTester"/>, with <see cref="CliRunner"/>'s error handling and exit codes, and every console
/// injected: the commands' stdout, their stderr (a wide <see cref="TestConsole"/>, so lines do not wrap) and Spectre's
/// own help and usage. For argument errors, help text, exit codes and output; a test whose point is the process
/// (signals, two processes, the native environment) uses <see cref="HybridProcess"/>.
/// </summary>
internal static class CliHarness
{
    /// <returns>the exit code; stdout (the commands' output, then Spectre's help if any); stderr</returns>
    public static (int Code, string Out, string Err) Run(params string[] args)
    {
        var usage = new TestConsole();
        var err = new TestConsole();
        err.Profile.Width = 1000;
        var stdout = new StringWriter();
        var tester = new CommandAppTester(null, new CommandAppTesterSettings(), usage);
        tester.Configure(CliApp.Configure);
        int code = CliRunner.Run(args, a => tester.Run(a).ExitCode, new CliConsoles(stdout, err, err.Profile.Out.Writer));
        return (code, stdout.ToString() + usage.Output, err.Output);
    }
}
