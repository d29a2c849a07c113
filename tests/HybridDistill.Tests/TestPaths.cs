namespace HybridDistill.Tests;

/// <summary>Locates the repository's assets/ folder and temporary folders for tests.</summary>
public static class TestPaths
{
    public static string RepoRoot { get; } = FindRepoRoot();

    public static string Assets(params string[] parts) =>
        Path.GetFullPath(Path.Combine(new[] { RepoRoot, "assets" }.Concat(parts).ToArray()));

    /// <summary>A new empty folder for one test, inside this test run's own folder. Each run first deletes the folders
    /// of earlier runs whose process has ended (before, every run left its ~185 folders behind: 21 GB after a day of
    /// runs filled this machine's disk and a suite run failed for want of space).</summary>
    public static string NewTempDir(string name)
    {
        var dir = Path.Combine(RunRoot.Value, name + "-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        return dir;
    }

    static readonly Lazy<string> RunRoot = new(() =>
    {
        var parent = Path.Combine(Path.GetTempPath(), "hybriddistill-tests");
        Directory.CreateDirectory(parent);
        foreach (var earlier in Directory.EnumerateDirectories(parent))
        {
            // "run-<pid>-<id>" of a process that is gone (a live pid, even a reused one, keeps its folder), or a
            // folder of the layout before run folders
            var parts = Path.GetFileName(earlier).Split('-');
            bool live = parts.Length == 3 && parts[0] == "run" && int.TryParse(parts[1], out int pid) && Directory.Exists($"/proc/{pid}");
            if (live) continue;
            try { Directory.Delete(earlier, recursive: true); }
            catch (IOException) { }                                            // another run's cleanup got there first
            catch (UnauthorizedAccessException) { }
        }
        var root = Path.Combine(parent, $"run-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..8]}");
        Directory.CreateDirectory(root);
        return root;
    });

    static string FindRepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir != null && !File.Exists(Path.Combine(dir.FullName, "HybridDistill.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("HybridDistill.sln not found above " + AppContext.BaseDirectory);
    }
}
