// One stage of the pipeline as the `hybrid distill stageN` command runs it, start to finish:
//   resolve the config (defaults -> recipe section -> --set), load the teacher, decide the student's layout,
//   build the student (StudentBuilder), check or write the run directory's run_config.json, run the shared
//   TrainLoop, and when the budget is done write the final model at the top of the run directory:
//   OUT/config.json, OUT/model.safetensors, the teacher's tokenizer files     (a loadable model directory)
//   OUT/run_config.json, OUT/metrics.jsonl, OUT/checkpoints/step-NNNNNNNN/    (the run's record)
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using HybridDistill.Artifacts;
using HybridDistill.Checkpoints;
using HybridDistill.Config;
using HybridDistill.Data;
using HybridDistill.Models;
using TorchSharp;

namespace HybridDistill.Training;

public sealed record DistillRequest
{
    public required Stage Stage { get; init; }
    public required string Teacher { get; init; }
    public required string Data { get; init; }
    public required string Out { get; init; }
    /// <summary>The previous stage's run (or any student model directory) to start from.</summary>
    public string? From { get; init; }
    /// <summary>Layers that keep softmax attention (overrides the recipe's softmax_layers and the layout file's).</summary>
    public IReadOnlyList<int>? SoftmaxLayers { get; init; }
    /// <summary>A JSON file with "softmax_layers" and/or "layer_types".</summary>
    public string? LayoutFile { get; init; }
    public string? RecipeFile { get; init; }
    public IReadOnlyList<string> Overrides { get; init; } = [];
    public bool Resume { get; init; }
    /// <summary>Weights of the finished model (BF16 halves the file); checkpoints for --resume stay F32 either way.</summary>
    public StoredDType OutputDType { get; init; } = StoredDType.F32;
    /// <summary>Where teacher and student train (built on the CPU, then moved); not part of the run's settings, so a
    /// run may be resumed on another device.</summary>
    public ComputeDevice Device { get; init; } = ComputeDevice.Cpu;
}

/// <summary>
/// run_config.json of a distillation stage: what the run is, so that --resume can check it is asked for the same run.
/// <code>
/// { "stage", "teacher", "data", "from", "layer_types": [...], "softmax_layers": [...],
///   "config": {the resolved TrainConfig of the stage}, "recipe_file", "recipe": {the recipe file as written}, "overrides": ["key=value", ...] }
/// </code>
/// </summary>
public sealed record DistillRunConfig(string Stage, string Teacher, string Data, string? From, IReadOnlyList<string> LayerTypes,
    IReadOnlyList<int> SoftmaxLayers, OpaqueJson Config, string? RecipeFile, OpaqueJson Recipe, IReadOnlyList<string> Overrides)
{
    public bool Equals(DistillRunConfig? o) => o is not null && (Stage, Teacher, Data, From, RecipeFile) == (o.Stage, o.Teacher, o.Data, o.From, o.RecipeFile)
        && LayerTypes.SequenceEqual(o.LayerTypes) && SoftmaxLayers.SequenceEqual(o.SoftmaxLayers) && Config.Equals(o.Config)
        && Recipe.Equals(o.Recipe) && Overrides.SequenceEqual(o.Overrides);

    public override int GetHashCode() => HashCode.Combine(Stage, Teacher, Data, From);
}

public sealed record DistillOutcome(string RunDirectory, TrainResult Result, IReadOnlyList<string> LayerTypes, bool AlreadyFinished);

public static class DistillRun
{
    public const string RunConfigFile = "run_config.json";

    public static DistillOutcome Run(DistillRequest request, IProgress<TrainProgress>? progress = null, CancellationToken cancellation = default)
    {
        var recipe = request.RecipeFile is null ? Recipe.Empty : Recipe.Load(request.RecipeFile);
        var config = recipe.Resolve(request.Stage, request.Overrides);
        var runDir = Path.GetFullPath(request.Out);
        var teacherDir = HfCheckpoint.ResolveModelDirectory(request.Teacher);
        var fromDir = request.From is null ? null : HfCheckpoint.ResolveModelDirectory(request.From);

        using var teacher = HfCheckpoint.Load(teacherDir);
        var fromConfig = fromDir is null ? null : ModelConfig.Load(fromDir);
        var layerTypes = Layout(request.Stage, teacher.Config, fromConfig, config, request.SoftmaxLayers, request.LayoutFile);

        var runConfig = new DistillRunConfig(Stages.Name(request.Stage), teacherDir, Path.GetFullPath(request.Data), fromDir, layerTypes,
            Enumerable.Range(0, layerTypes.Count).Where(l => layerTypes[l] == LayerKinds.Softmax).ToArray(),
            config.ToRecord(request.Stage), recipe.Path, recipe.Record, request.Overrides.ToArray());
        var runType = ArtifactJson.Types.DistillRunConfig;
        // Everything that can fail on bad input is checked before the run directory is touched.
        using var data = new TokenDataset(request.Data);
        data.CheckFits(teacher.Config.VocabSize, config.SeqLen, teacherDir);
        if (request.Resume && IsFinished(runDir))
        {
            PrepareRunDirectory(runDir, runConfig, runType, resume: true);      // only checks the arguments match
            var ckpt = TrainCheckpoint.Latest(runDir);
            var result = new TrainResult(config.TotalSteps, config.TotalSteps, config.TotalSteps * config.TokensPerStep, true, null, ckpt);
            return new DistillOutcome(runDir, result, layerTypes, AlreadyFinished: true);
        }
        using var student = StudentBuilder.Build(teacher, layerTypes, fromDir, config.Seed, config.KvExpand, config.DropQkvBias);
        if (!request.Device.IsCpu)
        {
            teacher.to(request.Device.Torch);
            student.to(request.Device.Torch);
        }
        PrepareRunDirectory(runDir, runConfig, runType, request.Resume);
        student.train();
        teacher.eval();
        ITrainingObjective objective = request.Stage switch
        {
            Stage.Stage1 => new Stage1Alignment(teacher, student),
            Stage.Stage2 => new Stage2Distillation(teacher, student, config) { TeacherKey = TeacherOutputCache.TeacherKey(teacherDir) },
            _ => new NextTokenObjective(student, config),
        };
        var trainResult = TrainLoop.Run(objective, data, config, runDir, OpaqueJson.Of(runConfig, runType), request.Resume, progress, cancellation,
            teacher: teacherDir);
        if (trainResult.Completed)
        {
            // config.json goes last: a run directory whose final model did not fit is not finished, and --resume
            // (from the checkpoint at the last step) writes the model again without training.
            try { HfCheckpoint.Save(student, runDir, tokenizerSource: teacherDir, request.OutputDType); }
            catch (DiskFullException e) { throw e.WithAdvice(TrainCheckpoint.ResumeAdvice(runDir)); }
        }
        return new DistillOutcome(runDir, trainResult, layerTypes, AlreadyFinished: false);
    }

    /// <summary>
    /// The student's layer_types for a stage. Stage 1: every layer linear_kind (a layout file may say otherwise).
    /// Stages 2 and 3: softmax at the chosen layers (--softmax-layers, else the recipe's softmax_layers for stage 2,
    /// else --from's softmax layers), each other layer keeps --from's linear kind or takes linear_kind.
    /// A layout file (LayerLayout: "layer_types", as hybrid select writes it) is taken as it is.
    /// </summary>
    public static IReadOnlyList<string> Layout(Stage stage, ModelConfig teacher, ModelConfig? from, TrainConfig config,
        IReadOnlyList<int>? softmaxLayers, string? layoutFile)
    {
        int layers = teacher.NumHiddenLayers;
        IReadOnlyList<int>? chosen = softmaxLayers;
        if (layoutFile is not null)
        {
            if (softmaxLayers is not null)
                throw new InputException("give --softmax-layers or --layout, not both.");
            var layout = LayerLayout.Load(Path.GetFullPath(layoutFile));
            if (layout.LayerTypes.Count != layers)
                throw new InputException($"{layoutFile}: layer_types has {layout.LayerTypes.Count} entries, the teacher {layers} layers.");
            return layout.LayerTypes;
        }
        if (stage == Stage.Stage2) chosen ??= config.SoftmaxLayers.Count > 0 ? config.SoftmaxLayers : null;
        if (stage == Stage.Stage3 && chosen is null)
            return (from ?? teacher).LayerTypes;
        if (stage != Stage.Stage1 && chosen is null && from is not null)
            chosen = Enumerable.Range(0, layers).Where(l => from.LayerTypes[l] == LayerKinds.Softmax).ToArray();
        chosen ??= [];
        foreach (int l in chosen)
            if (l < 0 || l >= layers)
                throw new InputException($"softmax layer {l} does not exist: the teacher has layers 0..{layers - 1}.");
        var linearKind = config.LinearKind;
        return Enumerable.Range(0, layers).Select(l =>
            chosen.Contains(l) ? LayerKinds.Softmax
            : stage != Stage.Stage1 && from is not null && from.LayerTypes[l] != LayerKinds.Softmax ? from.LayerTypes[l]
            : linearKind).ToArray();
    }

    /// <summary>True when the run directory holds the final model (config.json at its top).</summary>
    public static bool IsFinished(string runDir) =>
        File.Exists(Path.Combine(runDir, "config.json")) && File.Exists(Path.Combine(runDir, RunConfigFile));

    /// <summary>Writes run_config.json into a new run directory; on resume, checks the stored one names the same
    /// settings (threads aside: a run may be resumed with another thread count) and lists the ones that differ; without resume, refuses a directory that holds a run.</summary>
    internal static void PrepareRunDirectory<T>(string runDir, T runConfig, JsonTypeInfo<T> type, bool resume)
    {
        var path = Path.Combine(runDir, RunConfigFile);
        if (resume)
        {
            if (File.Exists(path))
            {
                IReadOnlyList<string> differences;
                try { differences = ArtifactJson.Differences(File.ReadAllBytes(path), runConfig, type, "config.threads"); }
                catch (JsonException e) { throw new InputException($"{path}: not valid JSON ({e.Message}).", e); }
                if (differences.Count > 0)
                    throw new InputException(
                        $"{path}: --resume with different settings ({string.Join("; ", differences.Take(5))}). " +
                        "Resume with the original arguments, or start a new run in another --out directory.");
                return;
            }
        }
        else if (File.Exists(path) || Directory.Exists(Path.Combine(runDir, TrainCheckpoint.CheckpointsDir)))
            throw new InputException($"{runDir}: already holds a run. Pass --resume to continue it, or choose another --out directory.");
        Directory.CreateDirectory(runDir);
        ArtifactJson.Write(path, runConfig, type);
    }
}
