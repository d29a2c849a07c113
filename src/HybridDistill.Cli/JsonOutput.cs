using System.Text.Json.Nodes;
using HybridDistill.Checkpoints;
using HybridDistill.Config;

namespace HybridDistill.Cli;

/// <summary>
/// Where a command's <c>--json [PATH]</c> goes: no value prints the JSON alone on stdout; a directory gets
/// <c>DIR/defaultName</c>; anything else is the file to write.
/// </summary>
public static class JsonOutput
{
    /// <summary>Writes <paramref name="json"/>; returns the file written, or null when it went to stdout.</summary>
    public static string? Write(JsonNode json, string? target, string defaultName)
    {
        string text = json.ToJsonString(JsonOptions.Indented);
        if (string.IsNullOrEmpty(target))
        {
            Console.Out.WriteLine(text);
            return null;
        }
        string path = Directory.Exists(target) || target.EndsWith('/') ? Path.Combine(target, defaultName) : target;
        AtomicFile.WriteAllBytes(path, System.Text.Encoding.UTF8.GetBytes(text));      // creates the folder; never half-written
        return Path.GetFullPath(path);
    }
}
