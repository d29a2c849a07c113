namespace HybridDistill.Tests;

/// <summary>Locates the repository's assets/ folder and temporary folders for tests.</summary>
public static class TestPaths
{
    public static string RepoRoot { get; } = FindRepoRoot();

    public static string Assets(params string[] parts) =>
        Path.GetFullPath(Path.Combine(new[] { RepoRoot, "assets" }.Concat(parts).ToArray()));

    public static string NewTempDir(string name)
    {
        var dir = Path.Combine(Path.GetTempPath(), "hybriddistill-tests", name + "-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        return dir;
    }

    static string FindRepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir != null && !File.Exists(Path.Combine(dir.FullName, "HybridDistill.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("HybridDistill.sln not found above " + AppContext.BaseDirectory);
    }
}
