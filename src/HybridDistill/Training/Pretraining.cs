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
using System.Text.Json;
using System.Text.Json.Serialization;
using HybridDistill.Artifacts;
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

/// <summary>A pretraining recipe file as written (the layout at the top of this file); unknown keys land in Unknown.</summary>
public sealed record PretrainRecipeFile
{
    public string? Description { get; init; }
    public OpaqueJson? Model { get; init; }
    public double? InitSeed { get; init; }
    public OpaqueJson? Corpus { get; init; }
    public OpaqueJson? Train { get; init; }
    public IReadOnlyList<PretrainRecipePhase>? Phases { get; init; }
    // (extension data needs a setter: init-only properties are bound like constructor parameters)
    [JsonExtensionData] public Dictionary<string, object>? Unknown { get; set; }
}

/// <summary>One phase of a pretraining recipe file: its name and its own corpus and train keys.</summary>
public sealed record PretrainRecipePhase
{
    public string? Name { get; init; }
    public OpaqueJson? Corpus { get; init; }
    public OpaqueJson? Train { get; init; }
    [JsonExtensionData] public Dictionary<string, object>? Unknown { get; set; }
}

/// <summary>The corpus length of a phase's merged corpus keys, read before the rest (train_windows defaults from it).</summary>
public sealed record CorpusSeqLen(double? SeqLen);

/// <summary>
/// OUT/run_config.json of a pretraining run: the recipe as written, the overrides, the resolved model config, and every
/// phase's resolved corpus and config.
/// </summary>
public sealed record PretrainRunConfig(string Kind, string RecipeFile, OpaqueJson Recipe, IReadOnlyList<string> Overrides, OpaqueJson Model,
    long InitSeed, IReadOnlyList<PretrainPhaseRecord> Phases)
{
    public bool Equals(PretrainRunConfig? o) => o is not null && (Kind, RecipeFile, InitSeed) == (o.Kind, o.RecipeFile, o.InitSeed)
        && Recipe.Equals(o.Recipe) && Overrides.SequenceEqual(o.Overrides) && Model.Equals(o.Model) && Phases.SequenceEqual(o.Phases);

    public override int GetHashCode() => HashCode.Combine(Kind, RecipeFile, InitSeed);
}

/// <summary>A phase in OUT/run_config.json: its name, corpus recipe and train config, resolved.</summary>
public sealed record PretrainPhaseRecord(string Name, SynthRecipeRecord Corpus, OpaqueJson Config)
{
    public bool Equals(PretrainPhaseRecord? o) => o is not null && Name == o.Name && Config.Equals(o.Config)
        && OpaqueJson.Of(Corpus, ArtifactJson.Types.SynthRecipeRecord).Equals(OpaqueJson.Of(o.Corpus, ArtifactJson.Types.SynthRecipeRecord));

    public override int GetHashCode() => HashCode.Combine(Name, Config);
}

/// <summary>What a resumed pretraining run must keep from OUT/run_config.json: the recipe's model and the init seed.</summary>
public sealed record PretrainRunIdentity(OpaqueJson? Recipe, long? InitSeed);

/// <summary>OUT/phases/NN-name/run_config.json: one phase's run, as the trainer's checkpoints also record it.</summary>
public sealed record PretrainPhaseRunConfig(string Stage, string Phase, string Teacher, string Data, string? From, long? InitSeed, OpaqueJson Config);

/// <summary>OUT/wall_time.json: seconds of each sitting (one per start or --resume), and their total.</summary>
public sealed record WallTimeRecord([property: JsonRequired] IReadOnlyList<double> Sittings, double TotalSeconds)
{
    public bool Equals(WallTimeRecord? o) => o is not null && Sittings.SequenceEqual(o.Sittings) && TotalSeconds.Equals(o.TotalSeconds);
    public override int GetHashCode() => TotalSeconds.GetHashCode();
}

public sealed record PretrainOutcome(string OutDir, bool Completed, IReadOnlyList<PretrainPhase> Phases, double WallSeconds);

public static class Pretraining
{
    public const string WallTimeFile = "wall_time.json";

    static readonly string[] TopKeys = ["description", "model", "init_seed", "corpus", "train", "phases"];
    static readonly string[] PhaseKeys = ["name", "corpus", "train"];

    /// <summary>Reads and checks a pretraining recipe: the model config, and every phase's corpus and train config.</summary>
    public static (OpaqueJson Json, ModelConfig Model, long InitSeed, IReadOnlyList<PretrainPhase> Phases) LoadRecipe(string path, IReadOnlyList<string>? overrides = null)
    {
        var full = Path.GetFullPath(path);
        var json = OpaqueJson.Load(full, "recipe");
        PretrainRecipeFile recipe;
        try { recipe = json.As(ArtifactJson.Types.PretrainRecipeFile); }
        catch (JsonException e) { throw new InputException($"{full}: not a pretraining recipe ({e.Message}); see recipes/default-teacher.json.", e); }
        if (recipe.Unknown?.Keys.FirstOrDefault() is string unknown)
            throw new InputException($"{full}: unknown key \"{unknown}\" (known: {string.Join(", ", TopKeys)}).");
        ModelConfig model;
        try { model = ModelConfig.FromJson((recipe.Model ?? throw new JsonException("no model")).ToObject()); }
        catch (JsonException) { throw new InputException($"{full}: \"model\" is required: the config.json keys of the model to train."); }
        catch (InputException e) { throw new InputException($"{full}: model: {e.Message}", e); }
        if (model.LayerTypes.Any(t => t != LayerKinds.Softmax))
            throw new InputException($"{full}: model: pretraining trains softmax-attention teachers; remove layer_types.");
        long initSeed = (long)(recipe.InitSeed ?? 0);
        if (recipe.Phases is not { Count: > 0 } phasesJson)
            throw new InputException($"{full}: \"phases\" is required: a list of {{\"name\", \"corpus\", \"train\"}} objects.");
        var sharedCorpus = recipe.Corpus ?? OpaqueJson.EmptyObject;
        var sharedTrain = recipe.Train ?? OpaqueJson.EmptyObject;
        var baseDir = Path.GetDirectoryName(full)!;
        var phases = new List<PretrainPhase>();
        var names = new HashSet<string>();
        for (int i = 0; i < phasesJson.Count; i++)
        {
            var p = phasesJson[i] ?? throw new InputException($"{full}: phases[{i}] should be an object.");
            if (p.Unknown?.Keys.FirstOrDefault() is string key)
                throw new InputException($"{full}: phases[{i}]: unknown key \"{key}\" (known: {string.Join(", ", PhaseKeys)}).");
            string name = p.Name is { Length: > 0 } nm && nm.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_')
                ? nm : throw new InputException($"{full}: phases[{i}].name is required: letters, digits, '-' or '_'.");
            if (!names.Add(name)) throw new InputException($"{full}: two phases are named \"{name}\".");
            string where = $"{full} [phase {name}]";
            OpaqueJson trainJson, corpusJson;
            int seqLen;
            try
            {
                trainJson = sharedTrain.Merged(p.Train);
                corpusJson = sharedCorpus.Merged(p.Corpus);
                seqLen = (int)(corpusJson.As(ArtifactJson.Types.CorpusSeqLen).SeqLen ?? throw new InputException($"{where}: corpus.seq_len is required."));
            }
            catch (JsonException e) { throw new InputException($"{where}: corpus and train should be objects, corpus.seq_len a number ({e.Message}).", e); }
            var train = TrainConfig.ResolvePhase(trainJson, seqLen, overrides, where);
            if (seqLen > model.MaxPositionEmbeddings)
                throw new InputException($"{where}: seq_len {seqLen} exceeds the model's max_position_embeddings ({model.MaxPositionEmbeddings}).");
            corpusJson = corpusJson.WithDefault("train_windows", (train.TrainTokens + seqLen - 1) / seqLen);
            var corpus = SynthRecipe.FromJson(corpusJson, baseDir, where + " corpus");
            phases.Add(new PretrainPhase(i, name, corpus, train));
        }
        return (json, model, initSeed, phases);
    }

    public static PretrainOutcome Run(PretrainRequest request, IProgress<PretrainEvent>? events = null,
        Func<PretrainPhase, IProgress<TrainProgress>?>? trainProgress = null, CancellationToken cancellation = default)
    {
        var (recipeJson, model, initSeed, phases) = LoadRecipe(request.RecipeFile, request.Overrides);
        var outDir = Path.GetFullPath(request.Out);
        var runConfig = new PretrainRunConfig("pretrain", Path.GetFullPath(request.RecipeFile), recipeJson, request.Overrides.ToArray(),
            OpaqueJson.FromNode(model.ToJson()), initSeed,
            phases.Select(p => new PretrainPhaseRecord(p.Name, p.Corpus.ToRecord(), p.Train.ToRecord(Stage.Pretrain))).ToArray());
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
            if (manifest.Synthetic is null || !manifest.Synthetic.Equals(OpaqueJson.Of(phase.Corpus.ToRecord(), ArtifactJson.Types.SynthRecipeRecord)))
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
        var runConfig = new PretrainPhaseRunConfig(Stages.Name(Stage.Pretrain), phase.Name, phase.Corpus.Tokenizer, dataDir, previousDir,
            previousDir is null ? initSeed : null, phase.Train.ToRecord(Stage.Pretrain));
        var runType = ArtifactJson.Types.PretrainPhaseRunConfig;
        bool started = File.Exists(Path.Combine(phaseDir, DistillRun.RunConfigFile));
        DistillRun.PrepareRunDirectory(phaseDir, runConfig, runType, resume: true);        // a started phase must keep its settings
        model.train();
        var objective = new NextTokenObjective(model, phase.Train);
        var result = TrainLoop.Run(objective, data, phase.Train, phaseDir, OpaqueJson.Of(runConfig, runType), resume: started, progress,
            cancellation, teacher: phase.Corpus.Tokenizer);
        if (result.Completed) HfCheckpoint.Save(model, phaseDir, tokenizerSource: phase.Corpus.Tokenizer);
        return result;
    }

    /// <summary>Starts OUT, or on --resume checks the model is the same one. Phases may change until they start: a started
    /// phase's corpus and config are checked against its own records (EnsureCorpus, TrainPhase).</summary>
    static void PrepareOutDirectory(string outDir, PretrainRunConfig runConfig, bool resume)
    {
        var path = Path.Combine(outDir, DistillRun.RunConfigFile);
        if (File.Exists(path))
        {
            if (!resume)
                throw new InputException($"{outDir}: already holds a pretraining run. Pass --resume to continue it, or choose another --out.");
            var stored = ArtifactJson.Read(path, ArtifactJson.Types.PretrainRunIdentity, "a pretraining run_config.json", "choose another --out");
            // The recipe's own model object (not the resolved config, whose JSON form may gain keys between versions).
            if (!Equals(ModelOf(stored.Recipe), ModelOf(runConfig.Recipe)) || stored.InitSeed != runConfig.InitSeed)
                throw new InputException($"{path}: --resume with a different model or init_seed. Resume with the original recipe, or choose another --out.");
        }
        else if (Directory.Exists(outDir) && Directory.EnumerateFileSystemEntries(outDir).Any())
            throw new InputException($"{outDir}: not empty and holds no pretraining run. Choose another --out.");
        Directory.CreateDirectory(outDir);
        ArtifactJson.Write(path, runConfig, ArtifactJson.Types.PretrainRunConfig);
    }

    static OpaqueJson? ModelOf(OpaqueJson? recipe)
    {
        try { return recipe?.As(ArtifactJson.Types.PretrainRecipeFile).Model; }
        catch (JsonException) { return null; }
    }

    /// <summary>Adds this sitting's seconds to wall_time.json; returns the total so far.</summary>
    static double AddSitting(string outDir, double seconds)
    {
        var path = Path.Combine(outDir, WallTimeFile);
        var before = File.Exists(path)
            ? ArtifactJson.Read(path, ArtifactJson.Types.WallTimeRecord, "a wall_time.json", "delete it (it only sums the sittings' seconds)").Sittings
            : [];
        double[] sittings = [.. before, Math.Round(seconds, 1)];
        double total = sittings.Sum();
        ArtifactJson.Write(path, new WallTimeRecord(sittings, Math.Round(total, 1)), ArtifactJson.Types.WallTimeRecord);
        return total;
    }

    /// <summary>OUT/metrics.jsonl: every phase's lines in order, with the phase name and cumulative steps and tokens.</summary>
    static void WriteCombinedMetrics(string outDir, IReadOnlyList<PretrainPhase> phases)
    {
        var bytes = new List<byte>();
        long stepOffset = 0, tokenOffset = 0;
        foreach (var phase in phases)
        {
            long lastStep = 0, lastTokens = 0;
            foreach (var line in TrainCheckpoint.ReadMetrics(Path.Combine(outDir, "phases", phase.Folder, TrainCheckpoint.MetricsFile)))
            {
                (lastStep, lastTokens) = (line.Step, line.Tokens);
                var combined = line with { Phase = new PhasePosition(phase.Name, stepOffset + lastStep, tokenOffset + lastTokens) };
                bytes.AddRange(ArtifactJson.Line(combined, ArtifactJson.Types.MetricsLine));
            }
            stepOffset += lastStep;
            tokenOffset += lastTokens;
        }
        AtomicFile.WriteAllBytes(Path.Combine(outDir, TrainCheckpoint.MetricsFile), bytes.ToArray());
    }
}
