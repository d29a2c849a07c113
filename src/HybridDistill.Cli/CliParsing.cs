namespace HybridDistill.Cli;

/// <summary>Small parsers for option values, with errors that name the option.</summary>
public static class CliParsing
{
    /// <summary>The help text of every command's --device option.</summary>
    public const string DeviceHelp = "Where the model runs: cpu (default), cuda or cuda:N (needs a build with -p:TorchBackend=cuda).";

    /// <summary>The help text of the bench commands' --device option.</summary>
    public const string BenchDeviceHelp = DeviceHelp + " On cuda every timed span starts and ends with torch.cuda.synchronize() " +
                                          "(kernels run asynchronously), so the times cover the GPU's work.";

    public static int[] IntList(string text, string option)
    {
        try
        {
            return text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(int.Parse).ToArray();
        }
        catch (FormatException)
        {
            throw new InputException($"{option} expects comma-separated integers, got \"{text}\".");
        }
    }
}

/// <summary>An IProgress that reports on the calling thread (Progress&lt;T&gt; posts to the thread pool, out of order).</summary>
public sealed class SyncProgress<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}
