// Next-token cross-entropy of one model, no teacher: stage 3's fine-tune (method.md section 5) and pretraining from
// scratch (hybrid pretrain). Each target counts by its loss class (LossClasses) when the corpus has them (a synthetic
// corpus); otherwise every weight is 1 and this is plain mean cross-entropy. Per micro-batch, with w_n the weight
// of target n (text_weight, answer_weight or 0):
//   loss = sum_n w_n CE_n / sum_n w_n,     dloss/dz_n = w_n (softmax(z_n) - onehot(x_{n+1})) / sum_n w_n
// computed a chunk of logits_chunk positions at a time (full logits never exist). Side values, averaged over the
// tokens they cover: text_ce and answer_ce, and acc_<kind>, the share of answer tokens of that episode kind whose
// argmax is right (teacher-forced): where the phase change of in-context recall shows in metrics.jsonl.
using HybridDistill.Data;
using HybridDistill.Models;
using static TorchSharp.torch;

namespace HybridDistill.Training;

public sealed class NextTokenObjective : ITrainingObjective
{
    private readonly TrainConfig config;

    public NextTokenObjective(HybridCausalLM model, TrainConfig config)
    {
        this.config = config;
        Student = model;
        foreach (var p in model.parameters()) p.requires_grad = true;
    }

    public HybridCausalLM Student { get; }

    public IReadOnlyList<ParameterGroup> ParameterGroups(TrainConfig c) =>
        [new ParameterGroup("all", Student.named_parameters().Select(p => (p.name, p.parameter)).ToList(), c.Lr)];

    public LossReport ForwardBackward(TrainingBatch batch, double lossScale, ITrainPhaseObserver? phases = null) => Run(batch, lossScale, backward: true, phases);

    public LossReport Evaluate(TrainingBatch batch)
    {
        using var _ = no_grad();
        return Run(batch, 0, backward: false, phases: null);
    }

    LossReport Run(TrainingBatch batch, double lossScale, bool backward, ITrainPhaseObserver? phases)
    {
        using var scope = NewDisposeScope();
        var device = Student.LmHeadWeight.device;
        var tokens = batch.Tokens.to(device);                                                  // batches are read on the CPU
        long b = tokens.shape[0], t = tokens.shape[1] - 1, n = b * t;
        var ids = tokens.narrow(1, 0, t);                                                      // [B, T + 1] -> [B, T]
        var targets = tokens.narrow(1, 1, t).reshape(n);                                       // [B*T]
        var codes = batch.Classes?.to(device).narrow(1, 1, t).reshape(n);                                 // [B*T] uint8, or null
        var weights = codes is null ? ones(n, device: device) : LossClasses.Weights(codes, config.TextWeight, config.AnswerWeight);   // [B*T]
        double totalWeight = weights.sum().item<float>();
        if (totalWeight <= 0) return new LossReport(0, LossReport.NoExtras);

        Tensor hidden;
        using (phases.Time(PhaseTimes.StudentForward))
            hidden = Student.Hidden(ids, null).reshape(n, -1);                                 // [B, T, d] -> [B*T, d]
        var leaf = backward ? hidden.detach().requires_grad_(true) : hidden;
        var ce = empty(n, device: device);                                                     // per-target CE [B*T]
        var correct = codes is null ? null : empty(n, dtype: @bool, device: device);          // argmax right [B*T]
        for (long start = 0; start < n; start += config.LogitsChunk)
        {
            using var chunkScope = NewDisposeScope();
            long c = Math.Min(config.LogitsChunk, n - start);
            Tensor z;
            using (phases.Time(PhaseTimes.StudentForward))
                z = nn.functional.linear(leaf.narrow(0, start, c), Student.LmHeadWeight);      // [c, d] -> [c, V]
            using var _ = no_grad();
            var logq = z.detach().log_softmax(-1);                                             // [c, V]
            var target = targets.narrow(0, start, c).unsqueeze(1);                             // [c, 1]
            ce.narrow(0, start, c).copy_(logq.gather(1, target).squeeze(1).neg());
            correct?.narrow(0, start, c).copy_(logq.argmax(-1).eq(target.squeeze(1)));
            if (!backward) continue;
            // dloss/dz = w (softmax(z) - onehot) / W, times the accumulation scale
            var grad = logq.exp_();
            grad.scatter_add_(1, target, full(c, 1, -1.0f, device: device));
            grad.mul_(weights.narrow(0, start, c).unsqueeze(1) * (lossScale / totalWeight));
            using (phases.Time(PhaseTimes.Backward))
                z.backward([grad]);
        }
        using (phases.Time(PhaseTimes.Backward))
            if (backward && leaf.grad is not null) hidden.backward([leaf.grad]);

        double loss = (ce * weights).sum().item<float>() / totalWeight;
        return new LossReport(loss, codes is null ? LossReport.NoExtras : Extras(ce, correct!, codes));
    }

    /// <summary>Mean CE of text and answer targets, and answer accuracy per episode kind; each value carries the
    /// number of tokens it averages (<see cref="LossReport.ExtraCounts"/>), so batches without a kind do not dilute it.</summary>
    static IReadOnlyDictionary<string, double> Extras(Tensor ce, Tensor correct, Tensor codes)
    {
        var result = new Dictionary<string, double>();
        var role = codes.bitwise_and(3);
        var kind = codes.bitwise_right_shift(2);
        void Mean(string name, Tensor mask, Tensor values)
        {
            long count = mask.sum().item<long>();
            if (count == 0) return;
            result[name] = values.masked_select(mask).to(float64).mean().item<double>();
            result[name + LossReport.CountSuffix] = count;
        }
        Mean("text_ce", role.eq((byte)TokenRole.Text), ce);
        var answers = role.eq((byte)TokenRole.Answer);
        Mean("answer_ce", answers, ce);
        foreach (var k in LossClasses.Kinds)
            Mean("acc_" + LossClasses.Name(k), answers.logical_and(kind.eq((byte)k)), correct);
        return result;
    }
}
