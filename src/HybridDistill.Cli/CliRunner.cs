using HybridDistill;
using Spectre.Console;
using Spectre.Console.Cli;

namespace HybridDistill.Cli;

/// <summary>Runs the command app and turns failures into one readable line on stderr and an exit code.</summary>
public static class CliRunner
{
    public const int UserErrorExitCode = 2;

    public static int Run(CommandApp app, string[] args)
    {
        try
        {
            return app.Run(args);
        }
        catch (InputException e)
        {
            Console.Error.WriteLine("error: " + e.Message);
            return UserErrorExitCode;
        }
        catch (CommandParseException e)
        {
            Console.Error.WriteLine("error: " + e.Message + " (see hybrid --help)");
            return UserErrorExitCode;
        }
        catch (CommandRuntimeException e)
        {
            Console.Error.WriteLine("error: " + e.Message + " (see hybrid --help)");
            return UserErrorExitCode;
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine("interrupted.");
            return 130;
        }
    }

    /// <summary>Diagnostics, progress and tables that must not mix with a command's stdout (text or JSON).</summary>
    public static IAnsiConsole Stderr { get; } = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
}
