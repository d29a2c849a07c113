// A run directory's training files and their I/O. The run directory holds metrics.jsonl (one JSON line per log
// interval) and checkpoints/step-NNNNNNNN, each a directory written under a temporary name (.step-N.tmp) and renamed,
// so a kill never leaves a broken one:
//   config.json, model.safetensors   the student (HfCheckpoint)
//   optimizer.safetensors            AdamW's moments
//   trainer_state.json               step, tokens, total_steps, optimizer_steps, sampler position and seed,
//                                    torch RNG state, the metric sums since the last line, the resolved run config
// Resuming loads the newest complete one and drops the metrics lines after its step.
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using HybridDistill.Artifacts;
using HybridDistill.Checkpoints;
using HybridDistill.Config;
using HybridDistill.Data;
using HybridDistill.Models;
using static TorchSharp.torch;

namespace HybridDistill.Training;

/// <summary>One checkpoint of a run directory: its path and the optimizer step it holds.</summary>
public sealed record CheckpointInfo(string Path, long Step);

/// <summary>What trainer_state.json records beside the weights and the optimizer's moments.</summary>
public sealed record TrainerState(
    long Step, long Tokens, long TotalSteps, long OptimizerSteps, SamplerPosition Sampler, long Seed, byte[] RngState,
    MetricSums Sums, OpaqueJson Config)
{
    /// <summary>trainer_state.json's content.</summary>
    public TrainerStateFile ToFile() => new(Step, Tokens, TotalSteps, OptimizerSteps, new SamplerRecord(Sampler.Epoch, Sampler.Index, Seed),
        Convert.ToBase64String(RngState), Sums.ToFile(), Config);

    public static TrainerState FromFile(TrainerStateFile f) => new(f.Step, f.Tokens, f.TotalSteps, f.OptimizerSteps,
        new SamplerPosition(f.Sampler.Epoch, f.Sampler.Index), f.Sampler.Seed, Convert.FromBase64String(f.RngState), MetricSums.FromFile(f.MetricSums), f.Config ?? OpaqueJson.EmptyObject);
}

/// <summary>
/// trainer_state.json:
/// <code>
/// { "step", "tokens", "total_steps", "optimizer_steps", "sampler": {"epoch", "index", "seed"},
///   "rng_state": "base64 of the torch generator's state" (a string, as it always was: '+' is written \u002B), "metric_sums": {...}, "config": {the run's run_config.json record} }
/// </code>
/// </summary>
public sealed record TrainerStateFile(
    [property: JsonRequired] long Step, [property: JsonRequired] long Tokens, [property: JsonRequired] long TotalSteps,
    [property: JsonRequired] long OptimizerSteps, [property: JsonRequired] SamplerRecord Sampler, [property: JsonRequired] string RngState,
    [property: JsonRequired] MetricSumsFile MetricSums, OpaqueJson? Config)
{
    public bool Equals(TrainerStateFile? o) => o is not null && (Step, Tokens, TotalSteps, OptimizerSteps, Sampler) == (o.Step, o.Tokens, o.TotalSteps, o.OptimizerSteps, o.Sampler)
        && RngState == o.RngState && MetricSums.Equals(o.MetricSums) && Equals(Config, o.Config);

    public override int GetHashCode() => HashCode.Combine(Step, Tokens, Sampler);
}

/// <summary>Where the window sampler stands: epoch, index within the epoch, and the seed of its order.</summary>
public sealed record SamplerRecord([property: JsonRequired] long Epoch, [property: JsonRequired] long Index, [property: JsonRequired] long Seed);

public static class TrainCheckpoint
{
    public const string MetricsFile = "metrics.jsonl";
    public const string CheckpointsDir = "checkpoints";
    public const string TrainerStateFile = "trainer_state.json";
    public const string OptimizerFile = "optimizer.safetensors";

    /// <summary>Complete checkpoints of a run directory, oldest first (temporary directories are not checkpoints).</summary>
    public static IReadOnlyList<CheckpointInfo> List(string runDir)
    {
        var dir = Path.Combine(runDir, CheckpointsDir);
        if (!Directory.Exists(dir)) return [];
        var result = new List<CheckpointInfo>();
        foreach (var d in Directory.GetDirectories(dir))
        {
            var name = Path.GetFileName(d);
            if (name.StartsWith("step-") && long.TryParse(name[5..], out long s) && File.Exists(Path.Combine(d, TrainerStateFile)))
                result.Add(new CheckpointInfo(d, s));
        }
        return result.OrderBy(c => c.Step).ToList();
    }

    public static string? Latest(string runDir) => List(runDir).LastOrDefault()?.Path;

    /// <summary>What to do after a full disk stopped the run in <paramref name="runDir"/>.</summary>
    public static string ResumeAdvice(string runDir) => Latest(runDir) is string last
        ? $"The last complete checkpoint, {last}, is intact: free space and run the same command with --resume to continue from it"
        : "No checkpoint was complete yet: free space and run the same command with --resume to start the run again";

    /// <summary>Removes half-written checkpoint directories (a kill or a full disk left them).</summary>
    public static void DeleteTemporary(string runDir)
    {
        var dir = Path.Combine(runDir, CheckpointsDir);
        if (!Directory.Exists(dir)) return;
        foreach (var d in Directory.GetDirectories(dir).Where(d => Path.GetFileName(d).StartsWith('.')))
            Directory.Delete(d, recursive: true);
    }

    /// <summary>Removes the metrics and checkpoints of an earlier run in <paramref name="runDir"/>.</summary>
    public static void Clear(string runDir)
    {
        var metrics = Path.Combine(runDir, MetricsFile);
        if (File.Exists(metrics)) File.Delete(metrics);
        var checkpoints = Path.Combine(runDir, CheckpointsDir);
        if (Directory.Exists(checkpoints)) Directory.Delete(checkpoints, recursive: true);
    }

    /// <summary>
    /// Writes checkpoints/step-NNNNNNNN of <paramref name="runDir"/> (under a temporary name, then renamed; an
    /// existing one of the same step is replaced) and keeps the newest <paramref name="keep"/>; returns its path.
    /// </summary>
    public static string Write(string runDir, HybridCausalLM student, AdamWOptimizer optimizer, TrainerState state, int keep)
    {
        var dir = Path.Combine(runDir, CheckpointsDir);
        Directory.CreateDirectory(dir);
        var name = $"step-{state.Step:D8}";
        var tmp = Path.Combine(dir, "." + name + ".tmp");
        if (Directory.Exists(tmp)) Directory.Delete(tmp, recursive: true);
        Directory.CreateDirectory(tmp);
        HfCheckpoint.Save(student, tmp);
        optimizer.Save(Path.Combine(tmp, OptimizerFile));
        ArtifactJson.Write(Path.Combine(tmp, TrainerStateFile), state.ToFile(), ArtifactJson.Types.TrainerStateFile);
        var final = Path.Combine(dir, name);
        if (Directory.Exists(final))
        {
            var old = Path.Combine(dir, "." + name + ".old");
            if (Directory.Exists(old)) Directory.Delete(old, recursive: true);
            Directory.Move(final, old);
            Directory.Move(tmp, final);
            Directory.Delete(old, recursive: true);
        }
        else Directory.Move(tmp, final);
        foreach (var stale in List(runDir).SkipLast(keep))
            Directory.Delete(stale.Path, recursive: true);
        return final;
    }

    /// <summary>
    /// Loads checkpoint <paramref name="dir"/>'s weights into <paramref name="student"/> and moments into
    /// <paramref name="optimizer"/>; returns its trainer state (the torch RNG state is the caller's to restore).
    /// </summary>
    public static TrainerState Read(string dir, HybridCausalLM student, AdamWOptimizer optimizer)
    {
        var state = TrainerState.FromFile(ArtifactJson.Read(Path.Combine(dir, TrainerStateFile), ArtifactJson.Types.TrainerStateFile,
            "a trainer_state.json", "delete this checkpoint directory to resume from an older one"));
        ModelWeights.LoadInto(dir, student.state_dict());
        optimizer.Load(Path.Combine(dir, OptimizerFile));
        if (optimizer.StepCount != state.OptimizerSteps)
            throw new InputException($"{dir}: optimizer state and trainer_state.json disagree on the step; the checkpoint is inconsistent.");
        return state;
    }

    /// <summary>Keeps the metrics lines up to <paramref name="step"/> (and drops a torn last line), atomically.</summary>
    public static void TruncateMetrics(string runDir, long step)
    {
        var path = Path.Combine(runDir, MetricsFile);
        if (!File.Exists(path)) return;
        var kept = new StringBuilder();
        foreach (var line in File.ReadLines(path))
        {
            try
            {
                if (ArtifactJson.ParseLine(line, ArtifactJson.Types.MetricsLineStep).Step <= step) kept.Append(line).Append('\n');
            }
            catch (JsonException) { }
        }
        AtomicFile.WriteAllBytes(path, Encoding.UTF8.GetBytes(kept.ToString()));
    }

    /// <summary>Appends one metrics line (one JSON object) to <paramref name="runDir"/>'s metrics.jsonl.</summary>
    public static void AppendMetrics(string runDir, MetricsLine line) =>
        AtomicFile.Append(Path.Combine(runDir, MetricsFile), ArtifactJson.Line(line, ArtifactJson.Types.MetricsLine));

    /// <summary>The lines of a metrics.jsonl; an error naming the file and line when one is not a metrics line.</summary>
    public static IReadOnlyList<MetricsLine> ReadMetrics(string path)
    {
        var lines = new List<MetricsLine>();
        int number = 0;
        foreach (var line in File.ReadLines(path))
        {
            number++;
            if (line.Length == 0) continue;
            try { lines.Add(ArtifactJson.ParseLine(line, ArtifactJson.Types.MetricsLine)); }
            catch (JsonException e) { throw new InputException($"{path}: line {number} is not a metrics line ({e.Message}); train the run again.", e); }
        }
        return lines;
    }

    /// <summary>The torch generator's state, as trainer_state.json keeps it.</summary>
    public static byte[] RngState()
    {
        using var state = get_rng_state();
        return state.data<byte>().ToArray();
    }

    public static void SetRngState(byte[] bytes)
    {
        using var state = tensor(bytes, dtype: uint8);
        set_rng_state(state);
    }
}
