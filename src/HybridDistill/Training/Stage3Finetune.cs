// Stage 3 (optional fine-tune), method.md section 5: plain next-token cross-entropy of the student, no teacher,
// usually at a longer context. loss = mean over positions of -log softmax(z_t)[x_{t+1}], chunked over positions.
using HybridDistill.Data;
using HybridDistill.Models;
using static TorchSharp.torch;

namespace HybridDistill.Training;

public sealed class Stage3Finetune : ITrainingObjective
{
    private readonly TrainConfig config;

    public Stage3Finetune(HybridCausalLM student, TrainConfig config)
    {
        this.config = config;
        Student = student;
        foreach (var p in student.parameters()) p.requires_grad = true;
    }

    public HybridCausalLM Student { get; }
    public PhaseTimes? Timing { get; set; }

    public IReadOnlyList<ParameterGroup> ParameterGroups(TrainConfig c) =>
        [new ParameterGroup("all", Student.named_parameters().Select(p => (p.name, p.parameter)).ToList(), c.Lr)];

    public LossReport ForwardBackward(TrainingBatch batch, double lossScale) => Run(batch.Tokens, lossScale, backward: true);

    public LossReport Evaluate(TrainingBatch batch)
    {
        using var _ = no_grad();
        return Run(batch.Tokens, 0, backward: false);
    }

    LossReport Run(Tensor batch, double lossScale, bool backward)
    {
        using var scope = NewDisposeScope();
        long b = batch.shape[0], t = batch.shape[1] - 1;
        var ids = batch.narrow(1, 0, t);                                                       // [B, T + 1] -> [B, T]
        var targets = batch.narrow(1, 1, t).reshape(b * t);                                    // [B, T] -> [B*T]
        Tensor hidden;
        using (Timing.Time(PhaseTimes.StudentForward))
            hidden = Student.Hidden(ids, null).reshape(b * t, -1);                             // [B, T, d] -> [B*T, d]
        double ce = ChunkedLogitLoss.CrossEntropy(hidden, Student.LmHeadWeight, targets, config.LogitsChunk, lossScale, backward, Timing);
        return new LossReport(ce, LossReport.NoExtras);
    }
}
