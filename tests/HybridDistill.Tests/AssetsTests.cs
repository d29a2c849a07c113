using System.Security.Cryptography;
using System.Text.RegularExpressions;

namespace HybridDistill.Tests;

/// <summary>
/// assets/SHA256SUMS (sha256sum format, paths relative to assets/) against the files on disk: every listed file
/// must exist with that SHA-256, and every file under assets/ must be listed, except assets/README.md and
/// assets/SHA256SUMS (the embedded teacher's files included).
/// </summary>
public class AssetsTests
{
    [Fact]
    public void EveryAsset_MatchesSha256SumsAndNoneIsUnlisted()
    {
        var problems = AssetChecksums.Problems(TestPaths.Assets(), out int verified);
        Assert.True(problems.Count == 0, "assets/ disagrees with assets/SHA256SUMS:\n  " + string.Join("\n  ", problems));
        Assert.True(verified > 0, "assets/SHA256SUMS lists no files.");
    }

    [Fact]
    public void Checker_ReportsCorruptMissingUnlistedAndMalformed()
    {
        var root = TestPaths.NewTempDir("assets-checksums");
        Write(root, "a/model.bin", [1, 2, 3, 4]);
        Write(root, "b.txt", "hello\n"u8.ToArray());
        Write(root, "README.md", "not listed, allowed"u8.ToArray());
        Write(root, "teacher/weights.bin", [9]);
        string sums = $"{Sha(root, "a/model.bin")}  a/model.bin\n{Sha(root, "b.txt")} *b.txt\n{Sha(root, "teacher/weights.bin")}  teacher/weights.bin\n";
        File.WriteAllText(Path.Combine(root, "SHA256SUMS"), sums);

        Assert.Empty(AssetChecksums.Problems(root, out int verified));
        Assert.Equal(3, verified);

        // One flipped byte.
        var path = Path.Combine(root, "a", "model.bin");
        var bytes = File.ReadAllBytes(path);
        bytes[2] ^= 0x01;
        File.WriteAllBytes(path, bytes);
        var p = AssetChecksums.Problems(root, out _);
        Assert.Contains(p, x => x.StartsWith("a/model.bin: SHA-256", StringComparison.Ordinal));
        bytes[2] ^= 0x01;
        File.WriteAllBytes(path, bytes);
        Assert.Empty(AssetChecksums.Problems(root, out _));

        // The teacher's files are verified and must be listed like any other.
        Write(root, "teacher/weights.bin", [8]);
        Assert.Contains(AssetChecksums.Problems(root, out _), x => x.StartsWith("teacher/weights.bin: SHA-256", StringComparison.Ordinal));
        Write(root, "teacher/weights.bin", [9]);
        Write(root, "teacher/extra.bin", [7]);
        Assert.Contains("teacher/extra.bin: not listed in SHA256SUMS", AssetChecksums.Problems(root, out _));
        File.Delete(Path.Combine(root, "teacher", "extra.bin"));

        // Missing, unlisted (also a nested README.md), malformed and duplicate entries (lines 4 and 5: three lines precede them).
        File.Delete(Path.Combine(root, "b.txt"));
        Write(root, "c/extra.json", "{}"u8.ToArray());
        Write(root, "c/README.md", "x"u8.ToArray());
        File.AppendAllText(Path.Combine(root, "SHA256SUMS"), "not a checksum line\n" + $"{Sha(root, "a/model.bin")}  a/model.bin\n");
        p = AssetChecksums.Problems(root, out _);
        Assert.Contains("b.txt: listed but missing", p);
        Assert.Contains("c/extra.json: not listed in SHA256SUMS", p);
        Assert.Contains("c/README.md: not listed in SHA256SUMS", p);
        Assert.Contains(p, x => x.StartsWith("SHA256SUMS line 4:", StringComparison.Ordinal));
        Assert.Contains(p, x => x.StartsWith("SHA256SUMS line 5: a/model.bin listed twice", StringComparison.Ordinal));
        Assert.Equal(5, p.Count);

        // No SHA256SUMS at all.
        File.Delete(Path.Combine(root, "SHA256SUMS"));
        Assert.Contains(AssetChecksums.Problems(root, out _), x => x.StartsWith("SHA256SUMS: missing", StringComparison.Ordinal));
    }

    static void Write(string root, string relative, byte[] bytes)
    {
        var path = Path.Combine(root, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, bytes);
    }

    static string Sha(string root, string relative) => AssetChecksums.Sha256Hex(Path.Combine(root, relative));
}

/// <summary>Checks a folder against its SHA256SUMS the way <c>sha256sum -c</c> does, plus unlisted files.</summary>
public static partial class AssetChecksums
{
    public const string SumsFile = "SHA256SUMS";

    [GeneratedRegex(@"^(?<hash>[0-9a-fA-F]{64}) [ *](?<path>.+)$")]
    private static partial Regex SumsLine();

    /// <summary>Every disagreement, one line each (empty = all good); <paramref name="verified"/> counts matching files.</summary>
    public static List<string> Problems(string root, out int verified)
    {
        verified = 0;
        var problems = new List<string>();
        var sumsPath = Path.Combine(root, SumsFile);
        if (!File.Exists(sumsPath))
        {
            problems.Add($"{SumsFile}: missing in {root}");
            return problems;
        }

        var listed = new HashSet<string>(StringComparer.Ordinal);
        var lines = File.ReadAllLines(sumsPath);
        for (int i = 0; i < lines.Length; i++)
        {
            if (lines[i].Length == 0) continue;
            var m = SumsLine().Match(lines[i]);
            string rel = m.Success ? m.Groups["path"].Value : "";
            if (!m.Success || rel.StartsWith('/') || rel.StartsWith("./", StringComparison.Ordinal) || rel.Split('/').Contains(".."))
            {
                problems.Add($"{SumsFile} line {i + 1}: expected \"<64 hex digits>  <path relative to the folder>\", got \"{lines[i]}\"");
                continue;
            }
            if (!listed.Add(rel))
            {
                problems.Add($"{SumsFile} line {i + 1}: {rel} listed twice");
                continue;
            }
            var full = Path.Combine(root, rel.Replace('/', Path.DirectorySeparatorChar));
            if (!File.Exists(full))
            {
                problems.Add($"{rel}: listed but missing");
                continue;
            }
            string expected = m.Groups["hash"].Value.ToLowerInvariant(), actual = Sha256Hex(full);
            if (actual != expected) problems.Add($"{rel}: SHA-256 {actual}, SHA256SUMS says {expected}");
            else verified++;
        }

        var everything = new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0, IgnoreInaccessible = false };
        foreach (var file in Directory.EnumerateFiles(root, "*", everything))
        {
            var rel = Path.GetRelativePath(root, file).Replace(Path.DirectorySeparatorChar, '/');
            if (rel is "README.md" or SumsFile || listed.Contains(rel)) continue;
            problems.Add($"{rel}: not listed in {SumsFile}");
        }
        return problems;
    }

    public static string Sha256Hex(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }
}
