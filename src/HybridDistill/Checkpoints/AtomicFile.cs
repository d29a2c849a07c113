namespace HybridDistill.Checkpoints;

/// <summary>
/// Writes a file under a temporary name unique to the writer (PATH.PID-THREAD.tmp), flushes it to disk and renames it over PATH, so a crash or kill leaves either
/// the old file or the complete new one, never a half-written PATH.
/// </summary>
internal static class AtomicFile
{
    internal static void Write(string path, Action<Stream> write)
    {
        var full = Path.GetFullPath(path);
        var parent = Path.GetDirectoryName(full);
        if (!string.IsNullOrEmpty(parent)) Directory.CreateDirectory(parent);
        // Unique per writer: two processes finishing the same file (e.g. two score slices both merging scores.json)
        // must not open one temporary file; the last rename wins and readers only ever see a whole file.
        var tmp = $"{full}.{Environment.ProcessId}-{Environment.CurrentManagedThreadId}.tmp";
        try
        {
            using (var stream = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None, bufferSize: 1 << 20))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(tmp, full, overwrite: true);
        }
        catch
        {
            try { File.Delete(tmp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw;
        }
    }

    internal static void WriteAllBytes(string path, ReadOnlySpan<byte> bytes)
    {
        var copy = bytes.ToArray();
        Write(path, s => s.Write(copy));
    }
}
