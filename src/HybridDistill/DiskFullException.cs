namespace HybridDistill;

/// <summary>
/// The file system ran out of space while a file was being written. The message names the file, the bytes that
/// write needed and the bytes left, and what to do next (<see cref="Advice"/>: by default "free space and run
/// again"; a training run says that --resume continues from its last complete checkpoint). The file that failed
/// was never renamed into place, so every earlier file is intact. The CLI prints the message and exits with code 1.
/// </summary>
public sealed class DiskFullException : IOException
{
    /// <summary>errno ENOSPC on Linux: .NET's IOException carries it as its HResult.</summary>
    public const int Enospc = 28;

    public string FilePath { get; }
    /// <summary>The size of the write that failed; when the writer could not know it, the bytes it had written (a lower bound).</summary>
    public long BytesNeeded { get; }
    public bool SizeKnown { get; }
    public long? BytesFree { get; }
    public string Advice { get; }

    public DiskFullException(string filePath, long bytesNeeded, bool sizeKnown, long? bytesFree, string? advice = null, Exception? inner = null)
        : base(Describe(filePath, bytesNeeded, sizeKnown, bytesFree, advice ?? DefaultAdvice), inner)
    {
        FilePath = filePath;
        BytesNeeded = bytesNeeded;
        SizeKnown = sizeKnown;
        BytesFree = bytesFree;
        Advice = advice ?? DefaultAdvice;
        HResult = Enospc;
    }

    public const string DefaultAdvice = "Free space (or choose an --out on another file system) and run the command again";

    /// <summary>The same failure with other advice (e.g. how a training run continues).</summary>
    public DiskFullException WithAdvice(string advice) => new(FilePath, BytesNeeded, SizeKnown, BytesFree, advice, InnerException);

    /// <summary>True for the IOException .NET throws on ENOSPC ("No space left on device").</summary>
    public static bool IsDiskFull(Exception e) =>
        e is IOException io && (io.HResult == Enospc || io.Message.Contains("No space left on device", StringComparison.Ordinal));

    static string Describe(string path, long needed, bool sizeKnown, long? free, string advice)
    {
        string size = sizeKnown ? $"{needed:N0} bytes" : $"at least {needed:N0} bytes";
        string left = free is long f ? $", {f:N0} bytes free there" : "";
        return $"no space left on the device while writing {path} ({size} needed{left}). {advice}.";
    }
}
