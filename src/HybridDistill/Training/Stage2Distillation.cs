// Stage 2 (KL distribution matching of the hybrid), method.md section 5:
//   loss = mean over positions of tau^2 KL(softmax(z_teacher / tau) || softmax(z_student / tau))
//          (+ ce_weight x next-token cross-entropy of the student, off by default)
// over the full vocabulary, computed in chunks of positions (ChunkedLogitLoss). The teacher runs under no_grad;
// every student parameter trains, in two groups: attention (linear and softmax layers, and each layer's
// pre-attention norm input_layernorm) at lr_attention, everything else at lr_other.
using HybridDistill.Data;
using HybridDistill.Models;
using static TorchSharp.torch;

namespace HybridDistill.Training;

public sealed class Stage2Distillation : ITrainingObjective
{
    private readonly HybridCausalLM teacher;
    private readonly TrainConfig config;

    public Stage2Distillation(HybridCausalLM teacher, HybridCausalLM student, TrainConfig config)
    {
        this.teacher = teacher;
        this.config = config;
        Student = student;
        foreach (var p in teacher.parameters()) p.requires_grad = false;
        foreach (var p in student.parameters()) p.requires_grad = true;
    }

    public HybridCausalLM Student { get; }

    /// <summary>The teacher's <see cref="TeacherOutputCache.TeacherKey"/>: with it and a cache (this one's, else the
    /// process's shared one when enabled), the teacher's outputs for a batch are computed once for every run on that batch.</summary>
    public string? TeacherKey { get; init; }

    public TeacherOutputCache? Cache { get; init; }

    public IReadOnlyList<ParameterGroup> ParameterGroups(TrainConfig c)
    {
        var all = Student.named_parameters().Select(p => (p.name, p.parameter)).ToList();
        return
        [
            new ParameterGroup("attention", all.Where(p => StudentBuilder.IsAttentionGroup(p.name)).ToList(), c.LrAttention),
            new ParameterGroup("other", all.Where(p => !StudentBuilder.IsAttentionGroup(p.name)).ToList(), c.LrOther),
        ];
    }

    public LossReport ForwardBackward(TrainingBatch batch, double lossScale, ITrainPhaseObserver? phases = null) =>
        Run(batch.Tokens.to(Student.LmHeadWeight.device), lossScale, backward: true, phases);          // batches are read on the CPU

    public LossReport Evaluate(TrainingBatch batch)
    {
        using var _ = no_grad();
        return Run(batch.Tokens.to(Student.LmHeadWeight.device), 0, backward: false, phases: null);
    }

    LossReport Run(Tensor batch, double lossScale, bool backward, ITrainPhaseObserver? phases)
    {
        using var scope = NewDisposeScope();
        long b = batch.shape[0], t = batch.shape[1] - 1;
        var ids = batch.narrow(1, 0, t);                                                       // [B, T + 1] -> [B, T]
        var targets = batch.narrow(1, 1, t).reshape(b * t);                                    // [B, T] -> [B*T]
        Tensor teacherHidden;
        using (no_grad())
        using (phases.Time(PhaseTimes.TeacherForward))
            teacherHidden = (TeacherKey is not null && (Cache ?? TeacherOutputCache.Shared) is { } cache
                ? cache.GetOrCompute(TeacherKey, ids, () => teacher.Hidden(ids, null))
                : teacher.Hidden(ids, null)).reshape(b * t, -1);                               // [B, T, d] -> [B*T, d]
        Tensor studentHidden;
        using (phases.Time(PhaseTimes.StudentForward))
            studentHidden = Student.Hidden(ids, null).reshape(b * t, -1);                      // [B, T, d] -> [B*T, d]
        var values = ChunkedLogitLoss.Distillation(studentHidden, Student.LmHeadWeight, teacherHidden, teacher.LmHeadWeight,
            targets, config.LogitsChunk, config.Temperature, config.CeWeight, lossScale, backward, phases);
        double loss = values.Kl + config.CeWeight * values.Ce;
        return new LossReport(loss, new Dictionary<string, double> { ["kl"] = values.Kl, ["ce"] = values.Ce });
    }
}
