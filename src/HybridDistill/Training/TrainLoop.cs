// The one training loop all stages share. Per optimizer step s = 1..S (S from the token budget):
//   lr_g = peak_g x LrSchedule(s);  grads = 0
//   for each of grad_accum micro-batches: windows from the seeded sampler -> objective.ForwardBackward(batch, 1/grad_accum)
//   clip the global gradient norm; AdamW step
//   every log_every steps: a metrics.jsonl line (loss = mean since the previous line)
//   every eval_every steps (and at step 0, before any update, and at the end): validation loss on that line
//   every checkpoint_every steps (and at the end, and when cancelled): a checkpoint
// A checkpoint is a directory checkpoints/step-NNNNNNNN written under a temporary name and renamed, holding the
// model (config.json, model.safetensors), the optimizer's moments, and trainer_state.json (step, tokens, sampler
// position, torch RNG state, the metric sums since the last line, the resolved config). Resuming loads the newest
// one, drops metrics lines after it, and continues with bit-identical numbers.
using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using HybridDistill.Checkpoints;
using HybridDistill.Config;
using HybridDistill.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace HybridDistill.Training;

/// <summary>What the loop reports: an event ("start", "step", "line", "checkpoint", "done", "interrupted") and where it is.</summary>
public sealed record TrainProgress(
    string Event, long Step, long TotalSteps, long Tokens, long TotalTokens, double? Loss, double? ValLoss, double Lr,
    double TokensPerSecond, JsonObject? Line = null, string? Checkpoint = null);

public sealed record TrainResult(long Step, long TotalSteps, long Tokens, bool Completed, double? LastValLoss, string? LastCheckpoint);

public static class TrainLoop
{
    public const string MetricsFile = "metrics.jsonl";
    public const string CheckpointsDir = "checkpoints";
    public const string TrainerStateFile = "trainer_state.json";
    public const string OptimizerFile = "optimizer.safetensors";

    /// <summary>
    /// Trains <paramref name="objective"/>'s student on <paramref name="data"/> for <paramref name="config"/>'s budget,
    /// writing metrics.jsonl and checkpoints under <paramref name="runDir"/>. With <paramref name="resume"/>, continues
    /// from the newest checkpoint there (a fresh start when there is none). Cancellation saves a checkpoint and returns
    /// with Completed false.
    /// </summary>
    public static TrainResult Run(ITrainingObjective objective, TokenDataset data, TrainConfig config, string runDir, JsonObject runConfig,
        bool resume, IProgress<TrainProgress>? progress = null, CancellationToken cancellation = default)
    {
        int threadsBefore = get_num_threads();
        if (config.Threads > 0) set_num_threads(config.Threads);
        try
        {
            return RunLoop(objective, data, config, runDir, runConfig, resume, progress, cancellation);
        }
        catch (DiskFullException e)
        {
            // The file that did not fit was never renamed into place, so every complete checkpoint is intact; the
            // half-made checkpoint directory goes at once to give its space back.
            DeleteTemporaryCheckpoints(runDir);
            throw e.WithAdvice(ResumeAdvice(runDir));
        }
        finally
        {
            if (config.Threads > 0) set_num_threads(threadsBefore);
        }
    }

    static TrainResult RunLoop(ITrainingObjective objective, TokenDataset data, TrainConfig config, string runDir, JsonObject runConfig,
        bool resume, IProgress<TrainProgress>? progress, CancellationToken cancellation)
    {
        var student = objective.Student;
        data.CheckFits(student.Config.VocabSize, config.SeqLen, runConfig["teacher"]?.ToString() ?? "the teacher");
        Directory.CreateDirectory(runDir);
        var metricsPath = Path.Combine(runDir, MetricsFile);
        long totalSteps = config.TotalSteps;
        long tokensPerStep = config.TokensPerStep;

        using var optimizer = new AdamWOptimizer(objective.ParameterGroups(config), config.Beta1, config.Beta2, config.Eps, config.WeightDecay, config.WeightDecay1d);
        var trainable = optimizer.Parameters.ToList();
        var sums = new MetricSums();
        long step = 0;
        var sampler = new WindowSampler(data.Train.WindowCount(config.SeqLen), config.Seed);
        string? lastCheckpoint = null;

        var latest = resume ? LatestCheckpoint(runDir) : null;
        if (latest is not null)
        {
            (step, var position) = LoadCheckpoint(latest, student, optimizer, sums);
            sampler = new WindowSampler(data.Train.WindowCount(config.SeqLen), config.Seed, position);
            TruncateMetrics(metricsPath, step);
            lastCheckpoint = latest;
        }
        else
        {
            if (File.Exists(metricsPath)) File.Delete(metricsPath);
            var stale = Path.Combine(runDir, CheckpointsDir);
            if (Directory.Exists(stale)) Directory.Delete(stale, recursive: true);
        }
        DeleteTemporaryCheckpoints(runDir);

        long tokens = step * tokensPerStep;
        double? lastVal = null;
        var clock = Stopwatch.StartNew();
        long intervalStartTokens = tokens;
        double intervalStart = 0;
        double Lr() => optimizer.CurrentLr[0];
        double Rate() => (tokens - intervalStartTokens) / Math.Max(1e-9, clock.Elapsed.TotalSeconds - intervalStart);
        progress?.Report(new TrainProgress("start", step, totalSteps, tokens, totalSteps * tokensPerStep, null, null, Lr(), 0));

        if (step == 0)
        {
            // Step 0: the first batch's loss before any update, and a validation pass.
            var first = new MetricSums();
            var peek = new WindowSampler(sampler.WindowCount, sampler.Seed, sampler.Position);
            for (int a = 0; a < config.GradAccum; a++)
            {
                using var scope = NewDisposeScope();
                var batch = data.TrainBatch(peek.Next(config.BatchSize), config.SeqLen);
                first.Add(objective.Evaluate(batch));
            }
            var (val, line) = WriteLine(step, 0, first, optimizer, evaluate: true);
            lastVal = val;
            progress?.Report(new TrainProgress("line", step, totalSteps, tokens, totalSteps * tokensPerStep, line["loss"]!.GetValue<double>(), val, Lr(), 0, line));
        }

        bool savedAtStep = latest is not null;
        while (step < totalSteps)
        {
            if (cancellation.IsCancellationRequested)
            {
                if (!savedAtStep) lastCheckpoint = SaveCheckpoint(step);
                progress?.Report(new TrainProgress("interrupted", step, totalSteps, tokens, totalSteps * tokensPerStep, null, lastVal, Lr(), 0, Checkpoint: lastCheckpoint));
                return new TrainResult(step, totalSteps, tokens, false, lastVal, lastCheckpoint);
            }
            step++;
            savedAtStep = false;
            double scale = LrSchedule.Scale(config.LrSchedule, step, totalSteps, config.WarmupSteps, config.MinLrRatio);
            optimizer.ZeroGrad();
            double stepLoss = 0;
            for (int a = 0; a < config.GradAccum; a++)
            {
                using var scope = NewDisposeScope();
                var batch = data.TrainBatch(sampler.Next(config.BatchSize), config.SeqLen);
                var report = objective.ForwardBackward(batch, 1.0 / config.GradAccum);
                if (!double.IsFinite(report.Loss))
                    throw new InputException($"the loss became {report.Loss} at step {step}: training diverged. Lower the learning rate or grad_clip and start again.");
                sums.Add(report);
                stepLoss += report.Loss / config.GradAccum;
            }
            sums.GradNorm += ClipGradients(trainable, config.GradClip);
            sums.Steps++;
            optimizer.Step(scale);
            tokens += tokensPerStep;
            bool last = step == totalSteps;
            progress?.Report(new TrainProgress("step", step, totalSteps, tokens, totalSteps * tokensPerStep, stepLoss, lastVal, Lr(), Rate()));

            bool evaluate = step % config.EvalEvery == 0 || last;
            if (evaluate || step % config.LogEvery == 0)
            {
                var (val, line) = WriteLine(step, tokens, sums, optimizer, evaluate);
                if (val is not null) lastVal = val;
                progress?.Report(new TrainProgress("line", step, totalSteps, tokens, totalSteps * tokensPerStep, line["loss"]!.GetValue<double>(), lastVal, Lr(), Rate(), line));
                sums = new MetricSums();
                intervalStartTokens = tokens;
                intervalStart = clock.Elapsed.TotalSeconds;
            }
            if (step % config.CheckpointEvery == 0 || last)
            {
                lastCheckpoint = SaveCheckpoint(step);
                savedAtStep = true;
                progress?.Report(new TrainProgress("checkpoint", step, totalSteps, tokens, totalSteps * tokensPerStep, null, lastVal, Lr(), Rate(), Checkpoint: lastCheckpoint));
            }
        }
        progress?.Report(new TrainProgress("done", step, totalSteps, tokens, totalSteps * tokensPerStep, null, lastVal, Lr(), 0, Checkpoint: lastCheckpoint));
        return new TrainResult(step, totalSteps, tokens, true, lastVal, lastCheckpoint);

        // ---- local steps -----------------------------------------------------------------------------

        (double? Val, JsonObject Line) WriteLine(long atStep, long atTokens, MetricSums interval, AdamWOptimizer opt, bool evaluate)
        {
            var line = new JsonObject
            {
                ["step"] = atStep,
                ["tokens"] = atTokens,
                ["loss"] = interval.MeanLoss,
                ["lr"] = opt.CurrentLr[0],
            };
            if (opt.Groups.Count > 1)
                line["lrs"] = new JsonObject(opt.Groups.Select((g, i) => KeyValuePair.Create(g.Name, (JsonNode?)opt.CurrentLr[i])));
            foreach (var (name, value) in interval.MeanExtras()) line[name] = value;
            if (interval.Steps > 0) line["grad_norm"] = interval.GradNorm / interval.Steps;
            if (interval.LayerMeans() is double[] layers) line["layer_losses"] = ToArray(layers);
            double? val = null;
            if (evaluate)
            {
                var v = Evaluate(objective, data, config);
                val = v.MeanLoss;
                line["val_loss"] = v.MeanLoss;
                foreach (var (name, value) in v.MeanExtras()) line["val_" + name] = value;
                if (v.LayerMeans() is double[] vl) line["val_layer_losses"] = ToArray(vl);
            }
            line["elapsed_s"] = Math.Round(clock.Elapsed.TotalSeconds, 3);
            line["tokens_per_s"] = Math.Round(Rate(), 1);
            line["rss_mb"] = Math.Round(Evaluation.Measure.ResidentBytes() / 1048576.0, 1);
            AtomicFile.Append(metricsPath, Encoding.UTF8.GetBytes(line.ToJsonString() + "\n"));
            return (val, line);
        }

        string SaveCheckpoint(long atStep)
        {
            var dir = Path.Combine(runDir, CheckpointsDir);
            Directory.CreateDirectory(dir);
            var name = $"step-{atStep:D8}";
            var tmp = Path.Combine(dir, "." + name + ".tmp");
            if (Directory.Exists(tmp)) Directory.Delete(tmp, recursive: true);
            Directory.CreateDirectory(tmp);
            HfCheckpoint.Save(student, tmp);
            optimizer.Save(Path.Combine(tmp, OptimizerFile));
            var state = new JsonObject
            {
                ["step"] = atStep,
                ["tokens"] = atStep * tokensPerStep,
                ["total_steps"] = totalSteps,
                ["optimizer_steps"] = optimizer.StepCount,
                ["sampler"] = new JsonObject { ["epoch"] = sampler.Position.Epoch, ["index"] = sampler.Position.Index, ["seed"] = config.Seed },
                ["rng_state"] = Convert.ToBase64String(RngState()),
                ["metric_sums"] = sums.ToJson(),
                ["config"] = runConfig.DeepClone(),
            };
            AtomicFile.WriteAllBytes(Path.Combine(tmp, TrainerStateFile), Encoding.UTF8.GetBytes(state.ToJsonString(JsonOptions.Indented)));
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
            foreach (var stale in ListCheckpoints(runDir).SkipLast(config.KeepCheckpoints))
                Directory.Delete(stale.Path, recursive: true);
            return final;
        }
    }

    /// <summary>Mean validation loss (and extras) over the validation windows of <paramref name="config"/>.</summary>
    static MetricSums Evaluate(ITrainingObjective objective, TokenDataset data, TrainConfig config)
    {
        var sums = new MetricSums();
        foreach (var batch in data.ValidationBatches(config.SeqLen, config.BatchSize, config.EvalTokens))
        {
            using var scope = NewDisposeScope();
            batch.AttachTo(scope);
            sums.Add(objective.Evaluate(batch), weight: batch.Windows);
        }
        return sums;
    }

    /// <summary>Scales the gradients so their global L2 norm is at most <paramref name="maxNorm"/> (0: no clipping); returns the norm before.</summary>
    public static double ClipGradients(IReadOnlyList<Tensor> parameters, double maxNorm)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var grads = parameters.Select(p => p.grad).Where(g => g is not null).Select(g => g!).ToList();
        if (grads.Count == 0) return 0;
        var norm = stack(grads.Select(g => linalg.vector_norm(g, 2, null, false)).ToArray()).pow(2).sum().sqrt().item<float>();
        if (maxNorm > 0 && norm > maxNorm)
        {
            double coef = maxNorm / (norm + 1e-6);
            foreach (var g in grads) g.mul_(coef);
        }
        return norm;
    }

    // ---- checkpoints ---------------------------------------------------------------------------------

    public sealed record CheckpointInfo(string Path, long Step);

    /// <summary>Complete checkpoints of a run directory, oldest first (temporary directories are not checkpoints).</summary>
    public static IReadOnlyList<CheckpointInfo> ListCheckpoints(string runDir)
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

    public static string? LatestCheckpoint(string runDir) => ListCheckpoints(runDir).LastOrDefault()?.Path;

    /// <summary>What to do after a full disk stopped the run in <paramref name="runDir"/>.</summary>
    public static string ResumeAdvice(string runDir) => LatestCheckpoint(runDir) is string last
        ? $"The last complete checkpoint, {last}, is intact: free space and run the same command with --resume to continue from it"
        : "No checkpoint was complete yet: free space and run the same command with --resume to start the run again";

    static void DeleteTemporaryCheckpoints(string runDir)
    {
        var dir = Path.Combine(runDir, CheckpointsDir);
        if (!Directory.Exists(dir)) return;
        foreach (var d in Directory.GetDirectories(dir).Where(d => Path.GetFileName(d).StartsWith('.')))
            Directory.Delete(d, recursive: true);
    }

    static (long Step, SamplerPosition Position) LoadCheckpoint(string dir, Models.HybridCausalLM student, AdamWOptimizer optimizer, MetricSums sums)
    {
        var statePath = Path.Combine(dir, TrainerStateFile);
        JsonObject state;
        try { state = JsonNode.Parse(File.ReadAllText(statePath)) as JsonObject ?? throw new JsonException("not an object"); }
        catch (JsonException e) { throw new InputException($"{statePath}: not valid JSON ({e.Message}); delete this checkpoint directory to resume from an older one.", e); }
        ModelWeights.LoadInto(dir, student.state_dict());
        optimizer.Load(Path.Combine(dir, OptimizerFile));
        long step = (long)state["step"]!;
        if (optimizer.StepCount != (long)state["optimizer_steps"]!)
            throw new InputException($"{dir}: optimizer state and trainer_state.json disagree on the step; the checkpoint is inconsistent.");
        var sampler = (JsonObject)state["sampler"]!;
        SetRngState(Convert.FromBase64String((string)state["rng_state"]!));
        sums.Load((JsonObject)state["metric_sums"]!);
        return (step, new SamplerPosition((long)sampler["epoch"]!, (long)sampler["index"]!));
    }

    /// <summary>Keeps the metrics lines up to <paramref name="step"/> (and drops a torn last line), atomically.</summary>
    static void TruncateMetrics(string path, long step)
    {
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

    static byte[] RngState()
    {
        using var state = get_rng_state();
        return state.data<byte>().ToArray();
    }

    static void SetRngState(byte[] bytes)
    {
        using var state = tensor(bytes, dtype: uint8);
        set_rng_state(state);
    }

    static JsonArray ToArray(IEnumerable<double> values) => new(values.Select(v => (JsonNode)v).ToArray());

    /// <summary>Sums of reported values since the last metrics line (saved in checkpoints so a resumed line has the same mean).</summary>
    sealed class MetricSums
    {
        public double Weight;
        public double Loss;
        public Dictionary<string, double> Extras = new(StringComparer.Ordinal);
        /// <summary>What each extra's sum is divided by: the batch weights, or the token counts it came with.</summary>
        public Dictionary<string, double> ExtraWeights = new(StringComparer.Ordinal);
        public double[]? Layers;
        public double GradNorm;
        public long Steps;

        public void Add(LossReport r, double weight = 1)
        {
            Weight += weight;
            Loss += r.Loss * weight;
            foreach (var (k, v) in r.Extras)
            {
                if (k.EndsWith(LossReport.CountSuffix, StringComparison.Ordinal)) continue;
                double w = r.Extras.TryGetValue(k + LossReport.CountSuffix, out var count) ? count : weight;
                Extras[k] = Extras.GetValueOrDefault(k) + v * w;
                ExtraWeights[k] = ExtraWeights.GetValueOrDefault(k) + w;
            }
            if (r.LayerLosses is not null)
            {
                Layers ??= new double[r.LayerLosses.Count];
                for (int i = 0; i < Layers.Length; i++) Layers[i] += r.LayerLosses[i] * weight;
            }
        }

        public double MeanLoss => Weight == 0 ? double.NaN : Loss / Weight;
        public IEnumerable<(string, double)> MeanExtras() =>
            Extras.OrderBy(e => e.Key, StringComparer.Ordinal).Select(e => (e.Key, e.Value / ExtraWeights.GetValueOrDefault(e.Key, Weight)));
        public double[]? LayerMeans() => Layers?.Select(v => v / Weight).ToArray();

        public JsonObject ToJson() => new()
        {
            ["weight"] = Weight,
            ["loss"] = Loss,
            ["extras"] = new JsonObject(Extras.Select(e => KeyValuePair.Create(e.Key, (JsonNode?)e.Value))),
            ["extra_weights"] = new JsonObject(ExtraWeights.Select(e => KeyValuePair.Create(e.Key, (JsonNode?)e.Value))),
            ["layers"] = Layers is null ? null : ToArray(Layers),
            ["grad_norm"] = GradNorm,
            ["steps"] = Steps,
        };

        public void Load(JsonObject o)
        {
            Weight = (double)o["weight"]!;
            Loss = (double)o["loss"]!;
            Extras = ((JsonObject)o["extras"]!).ToDictionary(e => e.Key, e => (double)e.Value!, StringComparer.Ordinal);
            ExtraWeights = o["extra_weights"] is JsonObject ew
                ? ew.ToDictionary(e => e.Key, e => (double)e.Value!, StringComparer.Ordinal)
                : Extras.Keys.ToDictionary(k => k, _ => Weight, StringComparer.Ordinal);
            Layers = (o["layers"] as JsonArray)?.Select(n => (double)n!).ToArray();
            GradNorm = (double)o["grad_norm"]!;
            Steps = (long)o["steps"]!;
        }
    }
}
