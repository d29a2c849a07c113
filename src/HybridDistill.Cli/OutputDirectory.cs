namespace HybridDistill.Cli;

/// <summary>Writes a whole output directory under a temporary name and renames it at the end: a failure leaves nothing half-written.</summary>
public static class OutputDirectory
{
    public static void WriteAtomically(string target, bool force, Action<string> write)
    {
        var full = Path.GetFullPath(target);
        if (Directory.Exists(full) && Directory.EnumerateFileSystemEntries(full).Any() && !force)
            throw new InputException($"{full} already exists and is not empty; choose another --out or pass --force.");
        var parent = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(parent);
        var tmp = Path.Combine(parent, "." + Path.GetFileName(full) + ".tmp-" + Environment.ProcessId);
        if (Directory.Exists(tmp)) Directory.Delete(tmp, recursive: true);
        try
        {
            write(tmp);
            if (Directory.Exists(full)) Directory.Delete(full, recursive: true);
            Directory.Move(tmp, full);
        }
        catch
        {
            if (Directory.Exists(tmp)) Directory.Delete(tmp, recursive: true);
            throw;
        }
    }
}
