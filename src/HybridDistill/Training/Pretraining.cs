// Training a Llama-architecture model from scratch on synthetic corpora, as a curriculum of phases
// (hybrid pretrain --recipe FILE --out DIR). The recipe:
//   { "description": "...",
//     "model":  { Hugging Face config.json keys of the model to train (llama family) },
//     "init_seed": 0,
//     "corpus": { SynthRecipe keys shared by every phase: tokenizer, text, seed, ... },
//     "train":  { TrainConfig keys shared by every phase (the pretrain key set) },
//     "phases": [ { "name": "...", "corpus": { per-phase SynthRecipe keys }, "train": { per-phase TrainConfig keys } }, ... ] }
// A phase's corpus and train objects are its own keys over the shared ones; seq_len is the corpus's, and
// train_windows defaults to train_tokens / seq_len (each window seen once). Phase 1 starts from weights drawn
// with init_seed; every later phase from the previous phase's final weights, with a fresh optimizer.
// Layout of OUT:
//   OUT/run_config.json                 the recipe and every phase's resolved corpus and config
//   OUT/data/NN-name/                   the phase's corpus (hybrid corpus synth's layout)
//   OUT/phases/NN-name/                 the phase's run (metrics.jsonl, checkpoints/, final model), as distill writes it
//   OUT/metrics.jsonl                   every phase's lines in order, with "phase" and cumulative "total_step"/"total_tokens"
//   OUT/wall_time.json                  seconds spent per sitting (a run may be resumed several times)
//   OUT/config.json, model.safetensors, tokenizer files: the final model (written when the last phase finishes)
using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using HybridDistill.Checkpoints;
using HybridDistill.Config;
using HybridDistill.Data;
using HybridDistill.Models;
using TorchSharp;

namespace HybridDistill.Training;

public sealed record PretrainRequest
{
    public required string RecipeFile { get; init; }
    public required string Out { get; init; }
    /// <summary>--set key=value applied to every phase's train config.</summary>
    public IReadOnlyList<string> Overrides { get; init; } = [];
    public bool Resume { get; init; }
    /// <summary>Where the model trains (built on the CPU, then moved); not part of the run's settings, so a run may be
    /// resumed on another device.</summary>
    public ComputeDevice Device { get; init; } = ComputeDevice.Cpu;
}

/// <summary>One phase of a pretraining recipe, resolved.</summary>
public sealed record PretrainPhase(int Index, string Name, SynthRecipe Corpus, TrainConfig Train)
{
    public string Folder => $"{Index + 1:D2}-{Name}";
}

/// <summary>What the command shows while pretraining runs.</summary>
public sealed record PretrainEvent(PretrainPhase Phase, int PhaseCount, string Message);

public sealed record PretrainOutcome(string OutDir, bool Completed, IReadOnlyList<PretrainPhase> Phases, double WallSeconds);

public static class Pretraining
{
    public const string WallTimeFile = "wall_time.json";

    static readonly string[] TopKeys = ["description", "model", "init_seed", "corpus", "train", "phases"];
    static readonly string[] PhaseKeys = ["name", "corpus", "train"];

    /// <summary>Reads and checks a pretraining recipe: the model config, and every phase's corpus and train config.</summary>
    public static (JsonObject Json, ModelConfig Model, long InitSeed, IReadOnlyList<PretrainPhase> Phases) LoadRecipe(string path, IReadOnlyList<string>? overrides = null)
    {
        var full = Path.GetFullPath(path);
        var json = SynthRecipe.LoadObject(full);
        foreach (var (key, _) in json)
            if (!TopKeys.Contains(key))
                throw new InputException($"{full}: unknown key \"{key}\" (known: {string.Join(", ", TopKeys)}).");
        if (json["model"] is not JsonObject modelJson) throw new InputException($"{full}: \"model\" is required: the config.json keys of the model to train.");
        ModelConfig model;
        try { model = ModelConfig.FromJson(modelJson); }
        catch (InputException e) { throw new InputException($"{full}: model: {e.Message}", e); }
        if (model.LayerTypes.Any(t => t != LayerKinds.Softmax))
            throw new InputException($"{full}: model: pretraining trains softmax-attention teachers; remove layer_types.");
        long initSeed = (long)(SynthRecipe.Number(json["init_seed"]) ?? 0);
        if (json["phases"] is not JsonArray phasesJson || phasesJson.Count == 0)
            throw new InputException($"{full}: \"phases\" is required: a list of {{\"name\", \"corpus\", \"train\"}} objects.");
        var sharedCorpus = json["corpus"] as JsonObject ?? [];
        var sharedTrain = json["train"] as JsonObject ?? [];
        var baseDir = Path.GetDirectoryName(full)!;
        var phases = new List<PretrainPhase>();
        var names = new HashSet<string>();
        for (int i = 0; i < phasesJson.Count; i++)
        {
            if (phasesJson[i] is not JsonObject p) throw new InputException($"{full}: phases[{i}] should be an object.");
            foreach (var (key, _) in p)
                if (!PhaseKeys.Contains(key))
                    throw new InputException($"{full}: phases[{i}]: unknown key \"{key}\" (known: {string.Join(", ", PhaseKeys)}).");
            string name = p["name"] is JsonValue n && n.TryGetValue<string>(out var nm) && nm.Length > 0 && nm.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_')
                ? nm : throw new InputException($"{full}: phases[{i}].name is required: letters, digits, '-' or '_'.");
            if (!names.Add(name)) throw new InputException($"{full}: two phases are named \"{name}\".");
            string where = $"{full} [phase {name}]";
            var trainJson = Merge(sharedTrain, p["train"] as JsonObject);
            var corpusJson = Merge(sharedCorpus, p["corpus"] as JsonObject);
            if (corpusJson["seq_len"] is null) throw new InputException($"{where}: corpus.seq_len is required.");
            int seqLen = (int)(SynthRecipe.Number(corpusJson["seq_len"]) ?? throw new InputException($"{where}: corpus.seq_len should be a number."));
            if (trainJson["seq_len"] is JsonNode sl && SynthRecipe.Number(sl) != seqLen)
                throw new InputException($"{where}: train.seq_len {sl} differs from corpus.seq_len {seqLen}; leave train.seq_len out.");
            trainJson["seq_len"] = seqLen;
            var train = TrainConfig.Resolve(Stage.Pretrain, trainJson, overrides, where);
            if (train.SeqLen != seqLen) throw new InputException($"{where}: --set seq_len cannot change a phase's corpus length ({seqLen}).");
            if (seqLen > model.MaxPositionEmbeddings)
                throw new InputException($"{where}: seq_len {seqLen} exceeds the model's max_position_embeddings ({model.MaxPositionEmbeddings}).");
            corpusJson["train_windows"] ??= (train.TrainTokens + seqLen - 1) / seqLen;
            var corpus = SynthRecipe.FromJson(corpusJson, baseDir, where + " corpus");
            phases.Add(new PretrainPhase(i, name, corpus, train));
        }
        return (json, model, initSeed, phases);
    }

    static JsonObject Merge(JsonObject shared, JsonObject? own)
    {
        var merged = (JsonObject)shared.DeepClone();
        if (own is not null)
            foreach (var (key, value) in own) merged[key] = value?.DeepClone();
        return merged;
    }

    public static PretrainOutcome Run(PretrainRequest request, IProgress<PretrainEvent>? events = null,
        Func<PretrainPhase, IProgress<TrainProgress>?>? trainProgress = null, CancellationToken cancellation = default)
    {
        var (recipeJson, model, initSeed, phases) = LoadRecipe(request.RecipeFile, request.Overrides);
        var outDir = Path.GetFullPath(request.Out);
        var runConfig = new JsonObject
        {
            ["kind"] = "pretrain",
            ["recipe_file"] = Path.GetFullPath(request.RecipeFile),
            ["recipe"] = recipeJson.DeepClone(),
            ["overrides"] = new JsonArray(request.Overrides.Select(o => (JsonNode)o).ToArray()),
            ["model"] = model.ToJson(),
            ["init_seed"] = initSeed,
            ["phases"] = new JsonArray(phases.Select(p => (JsonNode)new JsonObject
            {
                ["name"] = p.Name, ["corpus"] = p.Corpus.ToJson(), ["config"] = p.Train.ToJson(Stage.Pretrain),
            }).ToArray()),
        };
        PrepareOutDirectory(outDir, runConfig, request.Resume);
        var sitting = Stopwatch.StartNew();
        try
        {
            string? previous = null;
            foreach (var phase in phases)
            {
                cancellation.ThrowIfCancellationRequested();
                var phaseDir = Path.Combine(outDir, "phases", phase.Folder);
                if (!DistillRun.IsFinished(phaseDir))
                {
                    var dataDir = Path.Combine(outDir, "data", phase.Folder);
                    EnsureCorpus(phase, dataDir, events, phases.Count, cancellation);
                    events?.Report(new PretrainEvent(phase, phases.Count, $"training on {dataDir}"));
                    var result = TrainPhase(phase, model, initSeed, previous, dataDir, phaseDir, request.Device, trainProgress?.Invoke(phase), cancellation);
                    if (!result.Completed) return new PretrainOutcome(outDir, false, phases, AddSitting(outDir, sitting.Elapsed.TotalSeconds));
                }
                else events?.Report(new PretrainEvent(phase, phases.Count, "already finished"));
                previous = phaseDir;
            }
            WriteCombinedMetrics(outDir, phases);
            // The final model: the last phase's weights and tokenizer, config.json last (a complete model directory).
            HfCheckpoint.CopyTokenizerFiles(phases[^1].Corpus.Tokenizer, outDir);
            foreach (var name in Directory.GetFiles(previous!, "*.safetensors*").Select(Path.GetFileName))
                File.Copy(Path.Combine(previous!, name!), Path.Combine(outDir, name!), overwrite: true);
            double wall = AddSitting(outDir, sitting.Elapsed.TotalSeconds);
            AtomicFile.WriteAllBytes(Path.Combine(outDir, "config.json"), File.ReadAllBytes(Path.Combine(previous!, "config.json")));
            return new PretrainOutcome(outDir, true, phases, wall);
        }
        catch (OperationCanceledException)
        {
            return new PretrainOutcome(outDir, false, phases, AddSitting(outDir, sitting.Elapsed.TotalSeconds));
        }
    }

    static void EnsureCorpus(PretrainPhase phase, string dataDir, IProgress<PretrainEvent>? events, int count, CancellationToken cancellation)
    {
        var manifestPath = Path.Combine(dataDir, CorpusManifest.FileName);
        if (File.Exists(manifestPath))
        {
            var manifest = CorpusManifest.Load(dataDir);
            if (!JsonNode.DeepEquals(manifest.Synthetic, phase.Corpus.ToJson()))
                throw new InputException($"{dataDir}: holds a corpus made from another recipe. Delete it, or resume with the original recipe.");
            return;
        }
        events?.Report(new PretrainEvent(phase, count, $"generating {phase.Corpus.TrainWindows:N0} windows of {phase.Corpus.SeqLen} tokens"));
        if (Directory.Exists(dataDir)) Directory.Delete(dataDir, recursive: true);
        SyntheticCorpus.Build(phase.Corpus, dataDir, null, cancellation);
    }

    static TrainResult TrainPhase(PretrainPhase phase, ModelConfig config, long initSeed, string? previousDir, string dataDir, string phaseDir,
        ComputeDevice device, IProgress<TrainProgress>? progress, CancellationToken cancellation)
    {
        using var data = new TokenDataset(dataDir);
        using var model = new HybridCausalLM(config);
        if (previousDir is null) model.InitializeWeights(initSeed);
        else ModelWeights.LoadInto(previousDir, model.state_dict(), ignoreExtra: name => config.TieWordEmbeddings && name == "lm_head.weight");
        if (!device.IsCpu) model.to(device.Torch);                 // batches follow it (NextTokenObjective); saves copy to the CPU
        var runConfig = new JsonObject
        {
            ["stage"] = Stages.Name(Stage.Pretrain),
            ["phase"] = phase.Name,
            ["teacher"] = phase.Corpus.Tokenizer,
            ["data"] = dataDir,
            ["from"] = previousDir,
            ["init_seed"] = previousDir is null ? initSeed : null,
            ["config"] = phase.Train.ToJson(Stage.Pretrain),
        };
        bool started = File.Exists(Path.Combine(phaseDir, DistillRun.RunConfigFile));
        DistillRun.PrepareRunDirectory(phaseDir, runConfig, resume: true);                 // a started phase must keep its settings
        model.train();
        var objective = new NextTokenObjective(model, phase.Train);
        var result = TrainLoop.Run(objective, data, phase.Train, phaseDir, runConfig, resume: started, progress, cancellation);
        if (result.Completed) HfCheckpoint.Save(model, phaseDir, tokenizerSource: phase.Corpus.Tokenizer);
        return result;
    }

    /// <summary>Starts OUT, or on --resume checks the model is the same one. Phases may change until they start: a started
    /// phase's corpus and config are checked against its own records (EnsureCorpus, TrainPhase).</summary>
    static void PrepareOutDirectory(string outDir, JsonObject runConfig, bool resume)
    {
        var path = Path.Combine(outDir, DistillRun.RunConfigFile);
        if (File.Exists(path))
        {
            if (!resume)
                throw new InputException($"{outDir}: already holds a pretraining run. Pass --resume to continue it, or choose another --out.");
            var stored = JsonNode.Parse(File.ReadAllText(path));
            // The recipe's own model object (not the resolved config, whose JSON form may gain keys between versions).
            if (!JsonNode.DeepEquals(stored?["recipe"]?["model"], runConfig["recipe"]?["model"]) || !JsonNode.DeepEquals(stored?["init_seed"], runConfig["init_seed"]))
                throw new InputException($"{path}: --resume with a different model or init_seed. Resume with the original recipe, or choose another --out.");
        }
        else if (Directory.Exists(outDir) && Directory.EnumerateFileSystemEntries(outDir).Any())
            throw new InputException($"{outDir}: not empty and holds no pretraining run. Choose another --out.");
        Directory.CreateDirectory(outDir);
        AtomicFile.WriteAllBytes(path, Encoding.UTF8.GetBytes(runConfig.ToJsonString(JsonOptions.Indented)));
    }

    /// <summary>Adds this sitting's seconds to wall_time.json; returns the total so far.</summary>
    static double AddSitting(string outDir, double seconds)
    {
        var path = Path.Combine(outDir, WallTimeFile);
        var json = File.Exists(path) ? JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? [] : [];
        var sittings = json["sittings"] as JsonArray ?? [];
        sittings.Add(Math.Round(seconds, 1));
        double total = sittings.Sum(s => (double)s!);
        var updated = new JsonObject { ["sittings"] = sittings.DeepClone(), ["total_seconds"] = Math.Round(total, 1) };
        AtomicFile.WriteAllBytes(path, Encoding.UTF8.GetBytes(updated.ToJsonString(JsonOptions.Indented)));
        return total;
    }

    /// <summary>OUT/metrics.jsonl: every phase's lines in order, with the phase name and cumulative steps and tokens.</summary>
    static void WriteCombinedMetrics(string outDir, IReadOnlyList<PretrainPhase> phases)
    {
        var text = new StringBuilder();
        long stepOffset = 0, tokenOffset = 0;
        foreach (var phase in phases)
        {
            var path = Path.Combine(outDir, "phases", phase.Folder, TrainCheckpoint.MetricsFile);
            long lastStep = 0, lastTokens = 0;
            foreach (var line in File.ReadLines(path))
            {
                if (JsonNode.Parse(line) is not JsonObject o) continue;
                lastStep = (long)o["step"]!;
                lastTokens = (long)o["tokens"]!;
                var combined = new JsonObject { ["phase"] = phase.Name, ["total_step"] = stepOffset + lastStep, ["total_tokens"] = tokenOffset + lastTokens };
                foreach (var (k, v) in o) combined[k] = v?.DeepClone();
                text.Append(combined.ToJsonString()).Append('\n');
            }
            stepOffset += lastStep;
            tokenOffset += lastTokens;
        }
        AtomicFile.WriteAllBytes(Path.Combine(outDir, TrainCheckpoint.MetricsFile), Encoding.UTF8.GetBytes(text.ToString()));
    }
}
