using System.Text.Json.Nodes;
using HybridDistill.Benchmarks;
using HybridDistill.Checkpoints;
using HybridDistill.Config;
using Spectre.Console;

namespace HybridDistill.Cli;

/// <summary>
/// Where a command's <c>--json [PATH]</c> goes: no value prints the JSON alone on stdout; a directory gets
/// <c>DIR/defaultName</c>; anything else is the file to write.
/// </summary>
public static class JsonOutput
{
    /// <summary>Writes <paramref name="json"/>; returns the file written, or null when it went to stdout.</summary>
    public static string? Write(JsonNode json, string? target, string defaultName) =>
        Write(json.ToJsonString(JsonOptions.Indented), target, defaultName);

    /// <summary>Writes JSON <paramref name="text"/>; returns the file written, or null when it went to stdout.</summary>
    public static string? Write(string text, string? target, string defaultName)
    {
        if (string.IsNullOrEmpty(target))
        {
            CliRunner.Stdout.WriteLine(text);
            return null;
        }
        string path = Directory.Exists(target) || target.EndsWith('/') ? Path.Combine(target, defaultName) : target;
        AtomicFile.WriteAllBytes(path, System.Text.Encoding.UTF8.GetBytes(text));      // creates the folder; never half-written
        return Path.GetFullPath(path);
    }
}

/// <summary>How every bench command shows the machine's ceilings it measured in the same run.</summary>
public static class MachineLimitsOutput
{

    /// <summary>Achieved GFLOP/s against the same run's sgemm peak and, second, against the model-shaped matmul.</summary>
    public static void AddThroughputRows(Table table, double achievedGflops, double modelShapeGflops, MachineLimits m)
    {
        table.AddRow("achieved GFLOP/s", $"{achievedGflops:F1}");
        table.AddRow("sgemm peak GFLOP/s (same run)", $"{m.SgemmPeakGflops:F1}");
        table.AddRow("achieved / sgemm peak", $"{achievedGflops / m.SgemmPeakGflops:P0}");
        table.AddRow("model-shape matmul GFLOP/s (same run)", $"{modelShapeGflops:F1}");
        table.AddRow("achieved / model-shape matmul", $"{achievedGflops / modelShapeGflops:P0}");
    }

    public static string Line(MachineLimits m) =>
        $"this machine, same run: sgemm peak {m.SgemmPeakGflops:F1} GFLOP/s ({m.SgemmSize}^2, preallocated output, best of 5), " +
        $"read bandwidth {m.ReadBandwidthGBps:F1} GB/s ({m.ReadBytes >> 20} MiB), {m.Threads} threads";
}
