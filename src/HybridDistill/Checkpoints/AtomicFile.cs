namespace HybridDistill.Checkpoints;

/// <summary>
/// The one layer that writes files the project must not lose (models, checkpoints, results, metrics). A file is
/// written under a temporary name unique to the writer (PATH.PID-THREAD.tmp), flushed to disk and renamed over
/// PATH, so a crash, a kill or a full disk leaves either the old file or the complete new one, never a half-written
/// PATH. A full disk (ENOSPC) becomes a <see cref="DiskFullException"/> naming PATH and the bytes needed, after the
/// temporary file is deleted. Tests (and HYBRID_INJECT_FAULT in the CLI) inject a <see cref="WriteFault"/> here: a
/// write that fails part-way, exactly where a real full disk would.
/// </summary>
internal static class AtomicFile
{
    /// <summary>Writes PATH through <paramref name="write"/>; <paramref name="size"/>, when known, is what a full disk reports as needed.</summary>
    internal static void Write(string path, Action<Stream> write, long? size = null)
    {
        var full = Path.GetFullPath(path);
        var parent = Path.GetDirectoryName(full);
        if (!string.IsNullOrEmpty(parent)) Directory.CreateDirectory(parent);
        // Unique per writer: two processes finishing the same file (e.g. two score slices both merging scores.json)
        // must not open one temporary file; the last rename wins and readers only ever see a whole file.
        var tmp = $"{full}.{Environment.ProcessId}-{Environment.CurrentManagedThreadId}.tmp";
        var fault = FaultFor(full);
        long written = 0;
        try
        {
            using (var file = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None, bufferSize: 1 << 20))
            {
                var counted = new CountingStream(file, fault, tmp);
                try
                {
                    write(counted);
                    file.Flush(flushToDisk: true);
                }
                finally { written = counted.Written; }
            }
            File.Move(tmp, full, overwrite: true);
        }
        catch (Exception e)
        {
            try { File.Delete(tmp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            if (e is IOException && DiskFullException.IsDiskFull(e) && e is not DiskFullException)
                throw new DiskFullException(full, size ?? written, size is not null, FreeBytes(parent), inner: e);
            throw;
        }
    }

    internal static void WriteAllBytes(string path, ReadOnlySpan<byte> bytes)
    {
        var copy = bytes.ToArray();
        Write(path, s => s.Write(copy), copy.Length);
    }

    /// <summary>Copies a file through the same layer (atomic, full disk reported with the file's size).</summary>
    internal static void Copy(string source, string destination)
    {
        using var input = File.OpenRead(source);
        Write(destination, input.CopyTo, input.Length);
    }

    /// <summary>
    /// Appends <paramref name="bytes"/> to PATH (created when missing) and flushes to disk. When the append fails
    /// (a full disk) the file is cut back to its old length, so it never ends in a torn line.
    /// </summary>
    internal static void Append(string path, ReadOnlySpan<byte> bytes)
    {
        var full = Path.GetFullPath(path);
        var copy = bytes.ToArray();
        var fault = FaultFor(full);
        using var file = new FileStream(full, FileMode.Append, FileAccess.Write, FileShare.Read);
        long before = file.Length;
        try
        {
            new CountingStream(file, fault, full).Write(copy);
            file.Flush(flushToDisk: true);
        }
        catch (Exception e)
        {
            try { file.SetLength(before); } catch (IOException) { }
            if (e is IOException && DiskFullException.IsDiskFull(e) && e is not DiskFullException)
                throw new DiskFullException(full, copy.Length, sizeKnown: true, FreeBytes(Path.GetDirectoryName(full)), inner: e);
            throw;
        }
    }

    static long? FreeBytes(string? directory)
    {
        try { return directory is null ? null : new DriveInfo(directory).AvailableFreeSpace; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException) { return null; }
    }

    // ---- fault injection -----------------------------------------------------------------------------

    /// <summary>The faults armed for the calling flow (an AsyncLocal, so parallel tests and other threads' writes are untouched).</summary>
    static readonly AsyncLocal<ArmedFault?> armed = new();

    sealed class ArmedFault(WriteFault fault)
    {
        public readonly WriteFault Fault = fault;
        public int Seen;
    }

    /// <summary>Arms <paramref name="fault"/> for writes made by this flow until the result is disposed.</summary>
    internal static IDisposable InjectFault(WriteFault fault)
    {
        var previous = armed.Value;
        armed.Value = new ArmedFault(fault);
        return new Disarm(() => armed.Value = previous);
    }

    sealed class Disarm(Action undo) : IDisposable
    {
        public void Dispose() => undo();
    }

    /// <summary>The fault to raise while writing PATH, if this is the armed fault's occurrence of its file name.</summary>
    static WriteFault? FaultFor(string full)
    {
        if (armed.Value is not { } a || !string.Equals(Path.GetFileName(full), a.Fault.FileName, StringComparison.Ordinal)) return null;
        return Interlocked.Increment(ref a.Seen) == a.Fault.Occurrence ? a.Fault : null;
    }

    /// <summary>Passes writes through, counts their bytes and, with a fault, fails once <see cref="WriteFault.AfterBytes"/> have gone through.</summary>
    sealed class CountingStream(Stream inner, WriteFault? fault, string path) : Stream
    {
        public long Written;

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            if (fault is not null && Written + buffer.Length > fault.AfterBytes)
            {
                int part = (int)Math.Max(0, fault.AfterBytes - Written);
                inner.Write(buffer[..part]);
                inner.Flush();
                Written += part;
                throw fault.Raise(path);
            }
            inner.Write(buffer);
            Written += buffer.Length;
        }

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));
        public override void Flush() => inner.Flush();
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => Written;
        public override long Position { get => Written; set => throw new NotSupportedException(); }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
    }
}

public enum WriteFaultKind
{
    /// <summary>The IOException .NET throws on ENOSPC (HResult 28, "No space left on device").</summary>
    DiskFull,
    /// <summary>An unexpected exception (stands for any bug or crash in the middle of a write).</summary>
    Crash,
}

/// <summary>
/// A write that fails on purpose: the <see cref="Occurrence"/>-th write of a file named <see cref="FileName"/>
/// (any folder) fails after <see cref="AfterBytes"/> bytes reached the disk. Spelled "disk-full:NAME[:N[:BYTES]]"
/// or "crash:NAME[:N[:BYTES]]" (N defaults to 1, BYTES to 0) in the CLI's HYBRID_INJECT_FAULT.
/// </summary>
public sealed record WriteFault(WriteFaultKind Kind, string FileName, int Occurrence = 1, long AfterBytes = 0)
{
    internal Exception Raise(string path) => Kind switch
    {
        WriteFaultKind.DiskFull => new IOException($"No space left on device : '{path}' (injected fault)", DiskFullException.Enospc),
        _ => new InvalidOperationException($"injected fault after {AfterBytes} bytes of {path}"),
    };

    public static WriteFault Parse(string spec, string source)
    {
        var parts = spec.Split(':');
        WriteFaultKind? kind = parts[0] switch { "disk-full" => WriteFaultKind.DiskFull, "crash" => WriteFaultKind.Crash, _ => null };
        int occurrence = 1;
        long after = 0;
        if (kind is null || parts.Length is < 2 or > 4 || parts[1].Length == 0
            || (parts.Length > 2 && (!int.TryParse(parts[2], out occurrence) || occurrence < 1))
            || (parts.Length > 3 && (!long.TryParse(parts[3], out after) || after < 0)))
            throw new InputException($"{source}: '{spec}' is not a fault; write disk-full:FILE_NAME[:OCCURRENCE[:AFTER_BYTES]] or crash:FILE_NAME[:OCCURRENCE[:AFTER_BYTES]], e.g. disk-full:optimizer.safetensors:2:4096.");
        return new WriteFault(kind.Value, parts[1], occurrence, after);
    }
}
