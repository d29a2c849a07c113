// Losses over the vocabulary computed a chunk of positions at a time, so [positions, vocab] logits of the
// whole batch never exist (for a 150k vocabulary and 8k positions that would be 5 GB per model).
//
// Forward KL of stage 2, per position n, temperature tau, p = softmax(z_teacher / tau), q = softmax(z_student / tau):
//   KL_n = sum_v p_v (log p_v - log q_v);   loss = tau^2 / N * sum_n KL_n   (+ ce_weight * CE, optional)
// Gradient with respect to the student's logits (computed here in closed form, chunk by chunk):
//   dloss / dz_student = tau / N * (q - p)      (+ ce_weight / N * (softmax(z_student) - onehot(target)))
// Each chunk's logit gradient is pushed through the LM head with autograd (z = h W^T), into a detached copy
// of the final hidden states; one backward of the hidden states then carries the summed gradient into the
// body of the network. Peak memory: one chunk of logits per model plus their softmaxes.
// Every [c, V] pass costs (an exp pass over 1024 x 32000 takes about 80 ms on one core here), so each chunk uses
// the fused log_softmax kernel once per model, one exp per model, sums over v as batched dot products (no [c, V]
// product is formed), and builds the gradient in place in the student's log-probabilities.
using static TorchSharp.torch;

namespace HybridDistill.Training;

/// <summary>Sums over positions of one <see cref="ChunkedLogitLoss"/> call, each divided by the number of positions N.</summary>
public sealed record LogitLossValues(double Kl, double Ce);

public static class ChunkedLogitLoss
{
    /// <summary>
    /// Stage 2's distillation loss over positions. <paramref name="studentHidden"/> [N, d] (part of the student's
    /// graph when <paramref name="backward"/>), <paramref name="teacherHidden"/> [N, d] (no grad), the LM head
    /// weights [V, d], <paramref name="targets"/> [N] (needed for the CE value; may be null when ceWeight is 0).
    /// With <paramref name="backward"/>, adds the gradient of <c>gradScale x (KL + ceWeight x CE)</c> to every
    /// student parameter's .grad. Returns KL (scaled by tau^2) and the student's CE, both means over positions.
    /// <paramref name="phases"/> (the Trainer's hook, when it has one) is told each chunk's phases: the teacher's logits
    /// and softmax as teacher_forward, the student's logits, loss and closed-form logit gradient as student_forward, the
    /// pushes through the LM head and into the body as backward.
    /// </summary>
    public static LogitLossValues Distillation(Tensor studentHidden, Tensor studentHead, Tensor teacherHidden, Tensor teacherHead,
        Tensor? targets, int chunk, double temperature, double ceWeight, double gradScale, bool backward, ITrainPhaseObserver? phases = null)
    {
        if (ceWeight != 0 && targets is null) throw new ArgumentException("ce_weight needs targets");
        return Run(studentHidden, studentHead, teacherHidden, teacherHead, targets, chunk, temperature, ceWeight, gradScale, backward, phases);
    }

    /// <summary>Next-token cross-entropy of the student alone (stage 3), chunked the same way.</summary>
    public static double CrossEntropy(Tensor hidden, Tensor head, Tensor targets, int chunk, double gradScale, bool backward, ITrainPhaseObserver? phases = null) =>
        Run(hidden, head, null, null, targets, chunk, 1.0, 1.0, gradScale, backward, phases).Ce;

    static LogitLossValues Run(Tensor studentHidden, Tensor studentHead, Tensor? teacherHidden, Tensor? teacherHead, Tensor? targets,
        int chunk, double tau, double ceWeight, double gradScale, bool backward, ITrainPhaseObserver? phases)
    {
        long n = studentHidden.shape[0];
        bool kl = teacherHidden is not null;
        double klSum = 0, ceSum = 0;
        using var outer = NewDisposeScope();
        // The chunks differentiate into this leaf; its gradient then flows into the student once, at the end.
        var leaf = backward ? studentHidden.detach().requires_grad_(true) : studentHidden;
        for (long start = 0; start < n; start += chunk)
        {
            using var scope = NewDisposeScope();
            long c = Math.Min(chunk, n - start);
            Tensor? p = null;                                                                   // teacher probs [c, V]
            double negativeEntropy = 0;                                                          // sum over the chunk of sum_v p log p
            if (kl)
                using (phases.Time(PhaseTimes.TeacherForward))
                using (no_grad())
                {
                    var zt = nn.functional.linear(teacherHidden!.narrow(0, start, c), teacherHead!);   // [c, d] -> [c, V]
                    var logp = (tau == 1.0 ? zt : zt.div_(tau)).log_softmax(-1);                 // [c, V]
                    p = logp.exp();
                    negativeEntropy = RowDots(p, logp).sum().item<float>();
                }
            Tensor zs;
            Tensor? grad = null;                                                                 // dloss/dz [c, V]
            using (phases.Time(PhaseTimes.StudentForward))
            {
                zs = nn.functional.linear(leaf.narrow(0, start, c), studentHead);                 // [c, d] -> [c, V]
                using var _ = no_grad();
                var z = zs.detach();
                var logq = kl ? (tau == 1.0 ? z : z / tau).log_softmax(-1) : null;              // log softmax(z / tau) [c, V]
                Tensor? logq1 = null;                                                            // log softmax(z) [c, V]
                Tensor? t = null;                                                                // targets [c, 1]
                if (kl) klSum += (negativeEntropy - RowDots(p!, logq!).sum().item<float>()) * tau * tau;
                if (targets is not null)
                {
                    t = targets.narrow(0, start, c).unsqueeze(1);                                // [c] -> [c, 1]
                    logq1 = kl && tau == 1.0 ? logq : z.log_softmax(-1);
                    ceSum -= logq1!.gather(1, t).sum().item<float>();
                }
                if (backward)
                {
                    // d/dz of tau^2 KL is tau (q - p); of CE, softmax(z) - onehot; both / N, times gradScale.
                    double s = gradScale / n;
                    var minusOnehot = t is null ? null : full(c, 1, -1.0f, dtype: z.dtype, device: z.device);
                    if (kl && ceWeight != 0 && tau == 1.0)
                    {
                        grad = logq!.exp_().mul_(1 + ceWeight).sub_(p!);                         // (1 + w) q - p
                        grad.scatter_add_(1, t!, minusOnehot!.mul_(ceWeight)).mul_(s);           //   - w onehot
                    }
                    else
                    {
                        if (kl) grad = logq!.exp_().sub_(p!).mul_(tau * s);                      // tau (q - p)
                        if (ceWeight != 0)
                        {
                            var g = logq1!.exp_();                                               // softmax(z)
                            g.scatter_add_(1, t!, minusOnehot!).mul_(ceWeight * s);
                            grad = grad is null ? g : grad.add_(g);
                        }
                    }
                }
            }
            if (grad is not null)
                using (phases.Time(PhaseTimes.Backward))
                    zs.backward([grad]);
        }
        using (phases.Time(PhaseTimes.Backward))
            if (backward && leaf.grad is not null) studentHidden.backward([leaf.grad]);
        return new LogitLossValues(klSum / n, ceSum / n);
    }

    /// <summary>Row-wise dot products of a and b [c, V] -> [c], as a batched matrix-vector product (no [c, V] temporary).</summary>
    static Tensor RowDots(Tensor a, Tensor b) =>
        a.unsqueeze(1).bmm(b.unsqueeze(2)).reshape(a.shape[0]);                                 // [c, 1, V] x [c, V, 1] -> [c, 1, 1] -> [c]
}
