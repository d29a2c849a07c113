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
    /// </summary>
    public static LogitLossValues Distillation(Tensor studentHidden, Tensor studentHead, Tensor teacherHidden, Tensor teacherHead,
        Tensor? targets, int chunk, double temperature, double ceWeight, double gradScale, bool backward)
    {
        if (ceWeight != 0 && targets is null) throw new ArgumentException("ce_weight needs targets");
        return Run(studentHidden, studentHead, teacherHidden, teacherHead, targets, chunk, temperature, ceWeight, gradScale, backward);
    }

    /// <summary>Next-token cross-entropy of the student alone (stage 3), chunked the same way.</summary>
    public static double CrossEntropy(Tensor hidden, Tensor head, Tensor targets, int chunk, double gradScale, bool backward) =>
        Run(hidden, head, null, null, targets, chunk, 1.0, 1.0, gradScale, backward).Ce;

    static LogitLossValues Run(Tensor studentHidden, Tensor studentHead, Tensor? teacherHidden, Tensor? teacherHead, Tensor? targets,
        int chunk, double tau, double ceWeight, double gradScale, bool backward)
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
            var hs = leaf.narrow(0, start, c);                                                  // [c, d]
            var zs = nn.functional.linear(hs, studentHead);                                      // [c, V]
            Tensor? grad = null;                                                                 // dloss/dz [c, V]
            using (no_grad())
            {
                var zsd = zs.detach();
                Tensor? logq1 = null;                                                            // log softmax(z) [c, V]
                if (kl)
                {
                    var logp = nn.functional.linear(teacherHidden!.narrow(0, start, c), teacherHead!).div_(tau).log_softmax(-1); // [c, V]
                    var logq = (tau == 1.0 ? zsd : zsd / tau).log_softmax(-1);                   // [c, V]
                    if (tau == 1.0) logq1 = logq;
                    var p = logp.exp();
                    klSum += (p * (logp - logq)).sum().item<float>() * tau * tau;
                    if (backward) grad = logq.exp().sub_(p).mul_(tau * gradScale / n);
                }
                if (targets is not null)
                {
                    logq1 ??= zsd.log_softmax(-1);
                    var t = targets.narrow(0, start, c).unsqueeze(1);                            // [c] -> [c, 1]
                    ceSum -= logq1.gather(1, t).sum().item<float>();
                    if (backward && ceWeight != 0)
                    {
                        var g = logq1.exp();
                        g.scatter_add_(1, t, full(c, 1, -1.0f, dtype: g.dtype));                 // softmax - onehot
                        g.mul_(ceWeight * gradScale / n);
                        grad = grad is null ? g : grad.add_(g);
                    }
                }
            }
            if (grad is not null) zs.backward([grad]);
        }
        if (backward && leaf.grad is not null) studentHidden.backward([leaf.grad]);
        return new LogitLossValues(klSum / n, ceSum / n);
    }
}
