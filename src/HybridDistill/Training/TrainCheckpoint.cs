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
using System.Text.Json.Nodes;
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
    MetricSums Sums, JsonObject Config);

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
        var json = new JsonObject
        {
            ["step"] = state.Step,
            ["tokens"] = state.Tokens,
            ["total_steps"] = state.TotalSteps,
            ["optimizer_steps"] = state.OptimizerSteps,
            ["sampler"] = new JsonObject { ["epoch"] = state.Sampler.Epoch, ["index"] = state.Sampler.Index, ["seed"] = state.Seed },
            ["rng_state"] = Convert.ToBase64String(state.RngState),
            ["metric_sums"] = state.Sums.ToJson(),
            ["config"] = state.Config.DeepClone(),
        };
        AtomicFile.WriteAllBytes(Path.Combine(tmp, TrainerStateFile), Encoding.UTF8.GetBytes(json.ToJsonString(JsonOptions.Indented)));
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
        var statePath = Path.Combine(dir, TrainerStateFile);
        JsonObject state;
        try { state = JsonNode.Parse(File.ReadAllText(statePath)) as JsonObject ?? throw new JsonException("not an object"); }
        catch (JsonException e) { throw new InputException($"{statePath}: not valid JSON ({e.Message}); delete this checkpoint directory to resume from an older one.", e); }
        ModelWeights.LoadInto(dir, student.state_dict());
        optimizer.Load(Path.Combine(dir, OptimizerFile));
        if (optimizer.StepCount != (long)state["optimizer_steps"]!)
            throw new InputException($"{dir}: optimizer state and trainer_state.json disagree on the step; the checkpoint is inconsistent.");
        var sampler = (JsonObject)state["sampler"]!;
        return new TrainerState(
            (long)state["step"]!, (long)state["tokens"]!, (long)state["total_steps"]!, (long)state["optimizer_steps"]!,
            new SamplerPosition((long)sampler["epoch"]!, (long)sampler["index"]!), (long)sampler["seed"]!,
            Convert.FromBase64String((string)state["rng_state"]!), MetricSums.FromJson((JsonObject)state["metric_sums"]!),
            (JsonObject)state["config"]!.DeepClone());
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
                if (JsonNode.Parse(line) is JsonObject o && (long)o["step"]! <= step) kept.Append(line).Append('\n');
            }
            catch (JsonException) { }
        }
        AtomicFile.WriteAllBytes(path, Encoding.UTF8.GetBytes(kept.ToString()));
    }

    /// <summary>Appends one metrics line (one JSON object) to <paramref name="runDir"/>'s metrics.jsonl.</summary>
    public static void AppendMetrics(string runDir, JsonObject line) =>
        AtomicFile.Append(Path.Combine(runDir, MetricsFile), Encoding.UTF8.GetBytes(line.ToJsonString() + "\n"));

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
