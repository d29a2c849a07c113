using System.Runtime.InteropServices;
using HybridDistill;
using HybridDistill.Checkpoints;
using Spectre.Console;
using Spectre.Console.Cli;

namespace HybridDistill.Cli;

/// <summary>
/// Runs the command app and turns every failure into one readable line on stderr and an exit code, never a bare
/// .NET stack trace: bad input exits 2; a full disk exits 1 naming the file and the bytes it needed; anything
/// unexpected exits 1 with a crash log (the full trace) in the output folder, or in the temp folder.
/// </summary>
public static class CliRunner
{
    public const int UserErrorExitCode = 2;
    public const int FailureExitCode = 1;

    /// <summary>Arms a <see cref="WriteFault"/> for the whole command (e.g. disk-full:optimizer.safetensors:2:4096): how tests and demos fail a write on purpose.</summary>
    public const string FaultVariable = "HYBRID_INJECT_FAULT";

    /// <summary>Runs <paramref name="app"/> on the process's own stdout and stderr.</summary>
    public static int Run(CommandApp app, string[] args) => Run(args, a => app.Run(a), CliConsoles.Process);

    /// <summary>
    /// Runs a command app (<paramref name="run"/>: e.g. a CommandApp's or a test's CommandAppTester's Run) with the
    /// commands' output and this runner's error lines going to <paramref name="consoles"/>.
    /// </summary>
    public static int Run(string[] args, Func<string[], int> run, CliConsoles consoles)
    {
        var outer = current.Value;
        current.Value = consoles;
        try
        {
            return RunCore(args, run);
        }
        finally
        {
            current.Value = outer;
        }
    }

    static int RunCore(string[] args, Func<string[], int> run)
    {
        try
        {
            using var fault = Environment.GetEnvironmentVariable(FaultVariable) is { Length: > 0 } spec
                ? AtomicFile.InjectFault(WriteFault.Parse(spec, FaultVariable)) : null;
            return run(args);
        }
        catch (InputException e)
        {
            StderrText.WriteLine("error: " + e.Message);
            return UserErrorExitCode;
        }
        catch (CommandParseException e)
        {
            StderrText.WriteLine("error: " + e.Message + " (see hybrid --help)");
            return UserErrorExitCode;
        }
        catch (CommandRuntimeException e)
        {
            StderrText.WriteLine("error: " + e.Message + " (see hybrid --help)");
            return UserErrorExitCode;
        }
        catch (OperationCanceledException)
        {
            StderrText.WriteLine("interrupted.");
            return 130;
        }
        catch (DiskFullException e)
        {
            StderrText.WriteLine("error: " + e.Message);
            return FailureExitCode;
        }
        catch (Exception e) when (DiskFullException.IsDiskFull(e))
        {
            // A write outside the file-writing layer (its size unknown): the system's message names the file.
            StderrText.WriteLine($"error: no space left on the device ({FirstLine(e.Message)}). {DiskFullException.DefaultAdvice}.");
            return FailureExitCode;
        }
        catch (Exception e)
        {
            StderrText.WriteLine(Crash(args, e, DateTime.UtcNow));
            return FailureExitCode;
        }
    }

    /// <summary>
    /// Writes the crash log for <paramref name="e"/> and returns the one line to print:
    /// "error: hybrid COMMAND failed (TYPE: MESSAGE); full trace in PATH", plus what to reduce when libtorch ran out of memory.
    /// </summary>
    internal static string Crash(string[] args, Exception e, DateTime utcNow)
    {
        string what = ("hybrid " + string.Join(' ', args.TakeWhile(a => !a.StartsWith('-')).Take(2))).TrimEnd();
        var log = $"{what} failed at {utcNow:yyyy-MM-dd HH:mm:ss} UTC\n" +
                  $"command line: hybrid {string.Join(' ', args.Select(Quote))}\n" +
                  $"working directory: {Environment.CurrentDirectory}\n" +
                  $".NET {Environment.Version} on {RuntimeInformation.OSDescription}, process {Environment.ProcessId}\n\n" +
                  e + "\n";
        var name = $"crash-{utcNow:yyyyMMdd-HHmmss-fff}.log";
        string where = "";
        foreach (var folder in new[] { OutputFolder(args), Path.GetTempPath() })
        {
            if (folder is null || !Directory.Exists(folder)) continue;
            var path = Path.Combine(folder, name);
            try
            {
                File.WriteAllText(path, log);
                where = "; full trace in " + path;
                break;
            }
            catch (Exception io) when (io is IOException or UnauthorizedAccessException) { }
        }
        if (where.Length == 0) where = "; no crash log could be written, trace:\n" + e;
        var line = $"error: {what} failed ({e.GetType().Name}: {FirstLine(e.Message)}){where}";
        if (IsOutOfMemory(e))
            line += ". Out of memory: lower batch_size (raise grad_accum to keep the tokens per step) or seq_len, " +
                    "or logits_chunk in stages 2 and 3, with --set KEY=VALUE or in the recipe.";
        return line;
    }

    /// <summary>Where a crash log goes: the command's existing --out folder (its parent for an --out file such as layout.json).
    /// A folder that does not exist is not made for it: the command removed its unfinished output, and a folder
    /// holding only a log would stop the next run with "not empty".</summary>
    internal static string? OutputFolder(string[] args)
    {
        string? value = null;
        for (int i = 0; i < args.Length; i++)
        {
            if (args[i] == "--out" && i + 1 < args.Length) value = args[i + 1];
            else if (args[i].StartsWith("--out=", StringComparison.Ordinal)) value = args[i]["--out=".Length..];
        }
        if (string.IsNullOrEmpty(value)) return null;
        var full = Path.GetFullPath(value);
        if (Directory.Exists(full)) return full;
        return Path.HasExtension(full) && Path.GetDirectoryName(full) is string parent && Directory.Exists(parent) ? parent : null;
    }

    /// <summary>libtorch's allocator failure (an ExternalException "DefaultCPUAllocator: can't allocate memory") or .NET's own.</summary>
    internal static bool IsOutOfMemory(Exception e) =>
        e is OutOfMemoryException
        || e.Message.Contains("DefaultCPUAllocator: can't allocate memory", StringComparison.Ordinal)
        || e.Message.Contains("out of memory", StringComparison.OrdinalIgnoreCase)
        || (e.InnerException is { } inner && IsOutOfMemory(inner));

    static string FirstLine(string message)
    {
        var line = message.Split('\n', 2)[0].Trim();
        return line.Length > 300 ? line[..300] + "..." : line;
    }

    static string Quote(string arg) => arg.Length > 0 && arg.All(c => char.IsLetterOrDigit(c) || "-_./=,:%@".Contains(c)) ? arg : "'" + arg.Replace("'", "'\\''") + "'";

    static readonly AsyncLocal<CliConsoles?> current = new();

    /// <summary>Diagnostics, progress and tables that must not mix with a command's stdout (text or JSON).</summary>
    public static IAnsiConsole Stderr => (current.Value ?? CliConsoles.Process).Err;

    /// <summary>Stderr as plain text (no markup, no wrapping): error lines, Markdown.</summary>
    public static TextWriter StderrText => (current.Value ?? CliConsoles.Process).ErrText;

    /// <summary>A command's output proper (paths, JSON, generated text).</summary>
    public static TextWriter Stdout => (current.Value ?? CliConsoles.Process).Out;
}

/// <summary>
/// Where the commands of one <see cref="CliRunner.Run(string[], Func{string[], int}, CliConsoles)"/> write: their output
/// proper (<paramref name="Out"/>) and diagnostics (<paramref name="Err"/>, and the same stream as plain text,
/// <paramref name="ErrText"/>). The process's own by default; a test passes its own.
/// </summary>
public sealed record CliConsoles(TextWriter Out, IAnsiConsole Err, TextWriter ErrText)
{
    static readonly Lazy<IAnsiConsole> processErr = new(() => AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) }));

    /// <summary>stdout and stderr of this process (Console.Out and Console.Error as they are now).</summary>
    public static CliConsoles Process => new(Console.Out, processErr.Value, Console.Error);
}
