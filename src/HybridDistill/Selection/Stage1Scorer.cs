// stage1 (GA-S1, method.md section 7): each layer's own stage-1 alignment error, measured on held-out windows
// with the finished stage-1 student (teacher-forced per layer, as stage 1 trained it):
//   err_l = mean over tokens of ||o_teacher_l - Attn_student_l(n_l)||_2 / sqrt(d_model)      (Stage1Alignment)
//   score(l) = err_l   (a layer the linear attention imitates worst is the one to keep softmax);
// a layer that is already softmax in the stage-1 student scores 0 (it is the teacher's attention).
using HybridDistill.Artifacts;
using HybridDistill.Checkpoints;
using HybridDistill.Config;
using HybridDistill.Training;
using static TorchSharp.torch;

namespace HybridDistill.Selection;

public sealed class Stage1Scorer : ILayerScorer
{
    public const long DefaultBudgetTokens = 16_384;

    public string Name => "stage1";
    public string Description => "each layer's stage-1 alignment error on held-out windows (--stage1, --data, --budget-tokens).";
    public IReadOnlyList<ScorerSetting> Settings { get; } =
    [
        new("window", "256", "input tokens per window (at most the teacher's context)"),
        new("batch", "8", "windows per forward pass"),
    ];

    public LayerScores Score(ScoringContext context)
    {
        context.Accept(Settings);
        string teacherDir = HfCheckpoint.ResolveModelDirectory(context.RequireTeacher());
        string stage1Dir = HfCheckpoint.ResolveModelDirectory(context.RequireStage1());
        var source = context.RequireData();
        long budget = context.BudgetTokensOr(DefaultBudgetTokens);
        int window = context.SettingInt("window", min: 1);
        int batch = context.SettingInt("batch", min: 1);
        var config = context.TeacherConfig();
        if (window > config.MaxPositionEmbeddings)
            throw new InputException($"--set window={window} exceeds the teacher's context ({config.MaxPositionEmbeddings}).");
        var windows = source.Open(teacherDir, window + 1, budget);       // T inputs + the last target, as training reads them

        using var teacher = HfCheckpoint.Load(teacherDir, context.Device.Torch);
        using var student = HfCheckpoint.Load(stage1Dir, context.Device.Torch);      // batches follow it (Stage1Alignment)
        if (student.Config.NumHiddenLayers != config.NumHiddenLayers)
            throw new InputException($"{stage1Dir}: {student.Config.NumHiddenLayers} layers, the teacher {config.NumHiddenLayers}: not a stage-1 run of this teacher.");
        teacher.eval();
        student.eval();
        var objective = new Stage1Alignment(teacher, student);
        var trained = objective.TrainedLayers;
        var sums = new double[trained.Count];
        double baseline = 0, weight = 0;
        for (int start = 0; start < windows.Count; start += batch)
        {
            context.Cancellation.ThrowIfCancellationRequested();
            using var scope = NewDisposeScope();
            int n = Math.Min(batch, windows.Count - start);
            var report = objective.Evaluate(new Data.TrainingBatch(windows.Batch(start, n)));                    // [n, T + 1]
            for (int i = 0; i < sums.Length; i++) sums[i] += report.LayerLosses![i] * n;
            baseline += report.Extras["baseline_loss"] * n;
            weight += n;
        }
        var scores = new double[config.NumHiddenLayers];
        for (int i = 0; i < trained.Count; i++) scores[trained[i]] = sums[i] / weight;
        var details = Enumerable.Range(0, config.NumHiddenLayers).Select(l =>
            (OpaqueJson?)OpaqueJson.Of(new Stage1LayerDetail(scores[l], student.Config.LayerTypes[l]), ArtifactJson.Types.Stage1LayerDetail)).ToArray();
        var provenance = new Stage1Provenance(context.TeacherFingerprint(), new Stage1Run(stage1Dir, student.Config.LayerTypes.ToArray()),
            windows.Describe(), budget, context.ResolvedSettings(), baseline / weight);
        return LayerScores.FromScores(Name, scores, OpaqueJson.Of(provenance, ArtifactJson.Types.Stage1Provenance)) with { Details = details };
    }
}

/// <summary>stage1's measurement of one layer: its alignment error (0 for a layer stage 1 did not train) and its kind.</summary>
public sealed record Stage1LayerDetail(double AlignmentError, string Kind);

public sealed record Stage1Run(string Path, IReadOnlyList<string> LayerTypes);

/// <summary>stage1's provenance; mean_zero_output_error: the error of an attention output of zeros, for scale.</summary>
public sealed record Stage1Provenance(ModelFingerprint Teacher, Stage1Run Stage1, WindowsDescription Data, long BudgetTokens,
    IReadOnlyDictionary<string, string> Settings, double MeanZeroOutputError);
