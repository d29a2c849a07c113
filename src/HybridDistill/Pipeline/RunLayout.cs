using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Serialization;
using HybridDistill.Artifacts;

namespace HybridDistill.Pipeline;

/// <summary>
/// The folders and files of one <c>hybrid run</c> output directory, and when a step counts as done.
///   OUT/data/                    tokens (tokenize or corpus synth)
///   OUT/stage1/                  the all-linear stage-1 run
///   OUT/scores/METHOD/           one scoring method's scores.json (kl also scores-full.json)
///   OUT/selection.json           per method and budget, the softmax layers (and the model that has them)
///   OUT/models/MODEL/            one stage-2 run per distinct layout and distillation seed
///   OUT/eval/MODEL/eval.json     every model's evaluation (the teacher's too)
///   OUT/bench/bench_decode.json  decode speed and cache size of the teacher and one model per K
///   OUT/summary.json, OUT/report.md
///   OUT/steps/STEP.json          each step's record: its inputs (settings, fingerprints of files, digests of the steps
///                                it reads) and whether it finished (kept outside the step folders, whose contents
///                                belong to the command that writes them) A step is skipped only when it finished with the same inputs; a step whose recorded inputs
/// differ is reported by the differing input, and redone only when the caller forces it.
/// </summary>
public sealed class RunLayout(string root)
{
    public string StepsDir => Path.Combine(Root, "steps");
    public string StepRecordPath(string step) => Path.Combine(StepsDir, step.Replace('/', '-').Replace(' ', '-') + ".json");

    public string Root { get; } = Path.GetFullPath(root);
    public string Data => Path.Combine(Root, "data");
    public string Stage1 => Path.Combine(Root, "stage1");
    public string ScoresDir(string method) => Path.Combine(Root, "scores", method);
    public string Selection => Path.Combine(Root, "selection.json");
    public string Model(string modelId) => Path.Combine(Root, "models", modelId);
    public string Layout(string modelId) => Path.Combine(Root, "models", modelId + ".layout.json");
    public string Eval(string modelId) => Path.Combine(Root, "eval", modelId);
    public string EvalJson(string modelId) => Path.Combine(Eval(modelId), "eval.json");
    public string Bench => Path.Combine(Root, "bench");
    public string BenchDecodeJson => Path.Combine(Bench, "bench_decode.json");
    public string Summary => Path.Combine(Root, "summary.json");
    public string Report => Path.Combine(Root, "report.md");

    /// <summary>Where a step stands against the inputs it would run with now.</summary>
    /// <param name="output">the step's folder or file</param>
    public StepCheck Check(StepInputs inputs, string output)
    {
        string file = StepRecordPath(inputs.Step);
        bool anything = Directory.Exists(output) ? Directory.EnumerateFileSystemEntries(output).Any() : File.Exists(output);
        if (!File.Exists(file))
            return anything
                ? new StepCheck(StepStatus.Differs, "(record)", $"{output} exists without a record in {StepsDir}", "this run's inputs")
                : new StepCheck(StepStatus.NotStarted, null, null, null);
        var recorded = StepRecord.Load(file);
        foreach (var key in recorded.Inputs.Keys.Union(inputs.Values.Keys).Order(StringComparer.Ordinal))
        {
            recorded.Inputs.TryGetValue(key, out var before);
            inputs.Values.TryGetValue(key, out var now);
            if (before != now) return new StepCheck(StepStatus.Differs, key, before ?? "(none)", now ?? "(none)");
        }
        return new StepCheck(recorded.Finished ? StepStatus.Done : StepStatus.Started, null, null, null);
    }

    /// <summary>Writes the step's record (atomically) before it starts (<paramref name="finished"/> false) and after it ends.</summary>
    /// <param name="seconds">wall time of the sitting that finished the step (a resumed step: its last sitting only)</param>
    public void Record(StepInputs inputs, bool finished, double? seconds = null)
    {
        var record = new StepRecord(inputs.Step, finished, seconds, inputs.Values);
        ArtifactJson.Write(StepRecordPath(inputs.Step), record, ArtifactJson.Types.StepRecord);
    }

    /// <summary>
    /// Claims a step for this process (OUT/steps/STEP.lock, created exclusively, holding the process id), so that several
    /// processes running the same comparison share its steps instead of doing one twice. Null when a live process
    /// holds it (<paramref name="owner"/> its id); a lock whose process has died is taken over. Dispose to release.
    /// </summary>
    public IDisposable? TryLock(string step, out int? owner)
    {
        owner = null;
        string path = StepRecordPath(step) + ".lock";
        Directory.CreateDirectory(StepsDir);
        for (int attempt = 0; attempt < 2; attempt++)
        {
            try
            {
                var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.Read);
                var id = Encoding.UTF8.GetBytes(Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture));
                stream.Write(id);
                stream.Flush();
                return new StepLock(stream, path);
            }
            catch (IOException) when (File.Exists(path))
            {
                int? holder = int.TryParse(ReadOrEmpty(path), out int pid) ? pid : null;
                if (holder is int h && h != Environment.ProcessId && IsAlive(h)) { owner = h; return null; }
                try { File.Delete(path); } catch (IOException) { } // a dead holder (or an unreadable lock): take it over
            }
        }
        return null;
    }

    static string ReadOrEmpty(string path)
    {
        try { return File.ReadAllText(path).Trim(); } catch (IOException) { return ""; }
    }

    static bool IsAlive(int pid)
    {
        try { using var p = System.Diagnostics.Process.GetProcessById(pid); return !p.HasExited; }
        catch (ArgumentException) { return false; }
        catch (InvalidOperationException) { return false; }
    }

    sealed class StepLock(FileStream stream, string path) : IDisposable
    {
        public void Dispose()
        {
            stream.Dispose();
            try { File.Delete(path); } catch (IOException) { }
        }
    }

    /// <summary>A short digest of a finished step's inputs, so the steps that read its output can record which one they read.</summary>
    public static string Digest(StepInputs inputs)
    {
        var text = string.Join("\n", inputs.Values.Select(p => p.Key + "=" + p.Value));
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(inputs.Step + "\n" + text)))[..16];
    }

    /// <summary>sha256 of a file's bytes (hex, first 16 digits), or of each file of a folder in name order.</summary>
    public static string Fingerprint(string path)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var files = Directory.Exists(path)
            ? Directory.EnumerateFiles(path).Order(StringComparer.Ordinal).ToArray()
            : [path];
        foreach (var file in files)
        {
            sha.AppendData(Encoding.UTF8.GetBytes(Path.GetFileName(file) + "\n"));
            using var stream = File.OpenRead(file);
            var buffer = new byte[1 << 20];
            int read;
            while ((read = stream.Read(buffer)) > 0) sha.AppendData(buffer, 0, read);
        }
        return Convert.ToHexStringLower(sha.GetHashAndReset())[..16];
    }
}

public enum StepStatus { NotStarted, Started, Done, Differs }

/// <summary><see cref="RunLayout.Check"/>'s answer; for <see cref="StepStatus.Differs"/> the first differing input.</summary>
public sealed record StepCheck(StepStatus Status, string? Key, string? Recorded, string? Current);

/// <summary>A step's name and its inputs as text (settings, file fingerprints, digests of the steps it reads).</summary>
public sealed record StepInputs(string Step, SortedDictionary<string, string> Values)
{
    public static StepInputs Of(string step, params (string Key, string Value)[] values) =>
        new(step, new SortedDictionary<string, string>(values.ToDictionary(v => v.Key, v => v.Value), StringComparer.Ordinal));
}

/// <summary>The content of a step's record (OUT/steps/STEP.json): <c>{"step", "finished", "seconds", "inputs": {key: text}}</c>.</summary>
/// <param name="Seconds">wall time of the sitting that finished the step; null before it finishes</param>
public sealed record StepRecord(
    [property: JsonRequired] string Step, [property: JsonRequired] bool Finished, double? Seconds,
    [property: JsonRequired] IReadOnlyDictionary<string, string> Inputs)
{
    public static StepRecord Load(string path) =>
        ArtifactJson.Read(path, ArtifactJson.Types.StepRecord, "a step record", "delete it or rerun with --force");
}
