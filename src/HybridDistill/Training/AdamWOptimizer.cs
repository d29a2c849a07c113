// AdamW (Loshchilov & Hutter), as torch.optim.AdamW computes it (amsgrad off), for step t:
//   m <- b1 m + (1 - b1) g;   v <- b2 v + (1 - b2) g^2
//   p <- p (1 - lr wd)                                   (decoupled weight decay)
//   p <- p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// (equal to torch's to rounding: the last line is evaluated as lr s / (1 - b1^t) * m / (sqrt(v) + eps s), s = sqrt(1 - b2^t))
// Written here rather than using TorchSharp's so that its whole state (m, v, t) is ours to save and restore
// bit-exactly: a resumed run continues with the same numbers as one that was never interrupted.
//
// Two ways to compute one step (equal to the rounding of a square root: see FusedAdamW):
//   StepWithTensorOps  the formulas as five tensor operations per parameter (lerp_, mul_/addcmul_, mul_, the
//                      denominator, addcdiv_): the reference, and the path on any device other than the CPU.
//   the fused step     (fp32 CPU) one pass over p, g, m, v per element, in slices the cores share: each element is
//                      read once and written once instead of six or seven times, which for 59M parameters is about
//                      1.6 GB of memory traffic instead of ~5 GB plus some 300 tensor calls (bench train, d512 stage
//                      2: optimizer phase 306-348 ms -> 52-64 ms). It evaluates the same float expressions in the same
//                      order as torch's CPU kernels, fused multiply-adds where they use them.
using HybridDistill.Checkpoints;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace HybridDistill.Training;

/// <summary>A named set of parameters sharing a learning rate.</summary>
public sealed record ParameterGroup(string Name, IReadOnlyList<(string Name, Parameter Parameter)> Parameters, double Lr);

public sealed class AdamWOptimizer : IDisposable
{
    private readonly Dictionary<string, (Tensor M, Tensor V)> moments = new(StringComparer.Ordinal);
    private readonly double[] currentLr;
    // Room for the largest parameter: the tensor-op step's denominator without a fresh allocation per step. Made on that
    // path's first step only, so the fused path does not hold a buffer the size of the largest matrix for nothing.
    private Tensor? scratch;

    public AdamWOptimizer(IReadOnlyList<ParameterGroup> groups, double beta1, double beta2, double eps, double weightDecay, bool decay1d)
    {
        if (groups.Count == 0 || groups.All(g => g.Parameters.Count == 0))
            throw new InputException("nothing to train: the stage selected no parameters (check layer_types: stage 1 trains the non-softmax layers).");
        var names = groups.SelectMany(g => g.Parameters.Select(p => p.Name)).ToList();
        var dup = names.GroupBy(n => n).FirstOrDefault(g => g.Count() > 1);
        if (dup is not null) throw new ArgumentException($"parameter {dup.Key} is in two groups");
        Groups = groups;
        Beta1 = beta1;
        Beta2 = beta2;
        Eps = eps;
        WeightDecay = weightDecay;
        Decay1d = decay1d;
        currentLr = groups.Select(g => g.Lr).ToArray();
        foreach (var group in groups)
            foreach (var (name, p) in group.Parameters)
                moments[name] = (zeros_like(p).DetachFromDisposeScope(), zeros_like(p).DetachFromDisposeScope());
        Fused = FusedAdamW.Supported && Parameters.All(p => FusedAdamW.CanUse(p));   // the moments are made like them
    }

    public IReadOnlyList<ParameterGroup> Groups { get; }
    public double Beta1 { get; }
    public double Beta2 { get; }
    public double Eps { get; }
    public double WeightDecay { get; }
    public bool Decay1d { get; }
    /// <summary>Optimizer steps taken (t of the bias corrections).</summary>
    public long StepCount { get; private set; }

    /// <summary>The learning rate each group used on the last step (peak x schedule).</summary>
    public IReadOnlyList<double> CurrentLr => currentLr;

    public IEnumerable<Parameter> Parameters => Groups.SelectMany(g => g.Parameters.Select(p => p.Parameter));

    /// <summary>
    /// Drops every gradient, as torch's zero_grad(set_to_none=True) does: the next backward hands its gradients over instead
    /// of adding them into zeroed ones. Against zeroing, this saves the pass that writes the zeros and, in the backward,
    /// the read-add-write of each accumulation (three passes over the gradients' bytes; bench train, d512 stage 2: see
    /// README, measured speed). The gradients that come back obey the parameters' layouts (autograd's layout contract), so
    /// the fused update still reads them in place. The numbers are those of zeroing: 0 + g is g to the bit. A parameter
    /// that receives no gradient in a step is then skipped by <see cref="Step"/> (no decay, no moment update), as in torch.
    /// </summary>
    public void ClearGrads()
    {
        foreach (var p in Parameters) p.grad = null;
    }

    /// <summary>Whether <see cref="Step"/> takes the fused single-pass path (true by default where every parameter is a
    /// dense fp32 CPU tensor, contiguous or column-major, and the CPU has SIMD); false forces the tensor-op reference.</summary>
    public bool Fused { get; set; }

    /// <summary>One update with every group's peak learning rate times <paramref name="lrScale"/>, the gradients multiplied
    /// by <paramref name="gradScale"/> first (gradient clipping; exactly as grad.mul_(gradScale) before the step). Parameters
    /// without a gradient are left as they are.</summary>
    public void Step(double lrScale, double gradScale = 1.0)
    {
        if (Fused) StepFused(lrScale, gradScale);
        else StepWithTensorOps(lrScale, gradScale);
    }

    /// <summary>The reference: the update as tensor operations (any device). Scales the gradients in place.</summary>
    public void StepWithTensorOps(double lrScale, double gradScale = 1.0)
    {
        if (gradScale != 1.0)
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            foreach (var p in Parameters) p.grad?.mul_(gradScale);
        }
        StepCount++;
        double bc1 = 1 - Math.Pow(Beta1, StepCount);
        double bc2Sqrt = Math.Sqrt(1 - Math.Pow(Beta2, StepCount));
        using var _ = no_grad();
        var first = Parameters.First();
        scratch ??= empty([Parameters.Max(p => p.numel())], dtype: first.dtype, device: first.device).DetachFromDisposeScope();
        using var mixing = tensor(1 - Beta1, dtype: float32, device: scratch.device);   // lerp weight (0-dim), on the parameters' device
        for (int gi = 0; gi < Groups.Count; gi++)
        {
            double lr = Groups[gi].Lr * lrScale;
            currentLr[gi] = lr;
            foreach (var (name, p) in Groups[gi].Parameters)
            {
                using var scope = NewDisposeScope();
                var grad = p.grad;
                if (grad is null) continue;
                var (m, v) = moments[name];
                m.lerp_(grad, mixing);                                            // b1 m + (1 - b1) g
                v.mul_(Beta2).addcmul_(grad, grad, value: 1 - Beta2);
                if (WeightDecay != 0 && (Decay1d || p.dim() >= 2)) p.mul_(1 - lr * WeightDecay);
                // m_hat / (sqrt(v_hat) + eps) = s m / (bc1 (sqrt(v) + eps s)) with s = sqrt(1 - b2^t): two passes fewer.
                var denom = scratch.narrow(0, 0, v.numel()).view(v.shape)        // [max numel] -> the parameter's shape
                    .copy_(v).sqrt_().add_(Eps * bc2Sqrt);
                p.addcdiv_(m, denom, value: -lr * bc2Sqrt / bc1);
            }
        }
    }

    void StepFused(double lrScale, double gradScale)
    {
        StepCount++;
        double bc1 = 1 - Math.Pow(Beta1, StepCount);
        double bc2Sqrt = Math.Sqrt(1 - Math.Pow(Beta2, StepCount));
        using var _ = no_grad();
        using var scope = NewDisposeScope();                                     // the .grad handles
        var work = new List<FusedAdamW.Slot>();
        for (int gi = 0; gi < Groups.Count; gi++)
        {
            double lr = Groups[gi].Lr * lrScale;
            currentLr[gi] = lr;
            var constants = new FusedAdamW.Constants(
                GradScale: (float)gradScale, Mixing: (float)(1 - Beta1), Beta2: (float)Beta2, SquareWeight: (float)(1 - Beta2),
                EpsScaled: (float)(Eps * bc2Sqrt), StepSize: (float)(-lr * bc2Sqrt / bc1), Decay: 1f);
            foreach (var (name, p) in Groups[gi].Parameters)
            {
                var grad = p.grad;
                if (grad is null) continue;
                var (m, v) = moments[name];
                if (!FusedAdamW.SameDenseLayout(p, grad, m, v))
                {
                    // a gradient laid out unlike its parameter (autograd normally matches them): give it the parameter's layout
                    grad = empty_like(p).copy_(grad);
                    if (!FusedAdamW.SameDenseLayout(p, grad, m, v))
                        throw new InvalidOperationException($"fused AdamW: parameter {name} and its state are not laid out alike.");
                }
                bool decay = WeightDecay != 0 && (Decay1d || p.dim() >= 2);
                work.Add(new FusedAdamW.Slot(p, grad, m, v, decay ? constants with { Decay = (float)(1 - lr * WeightDecay) } : constants));
            }
        }
        FusedAdamW.Run(work, Math.Max(1, get_num_threads()));
    }

    /// <summary>Writes m and v of every parameter (as "exp_avg.NAME", "exp_avg_sq.NAME") to a safetensors file.</summary>
    public void Save(string path)
    {
        var tensors = moments.OrderBy(kv => kv.Key, StringComparer.Ordinal)
            .SelectMany(kv => new[]
            {
                new KeyValuePair<string, Tensor>("exp_avg." + kv.Key, kv.Value.M),
                new KeyValuePair<string, Tensor>("exp_avg_sq." + kv.Key, kv.Value.V),
            });
        SafeTensorsWriter.Write(path, tensors, new Dictionary<string, string> { ["step"] = StepCount.ToString() });
    }

    /// <summary>Restores what <see cref="Save"/> wrote; every parameter must be present with its shape.</summary>
    public void Load(string path)
    {
        using var reader = SafeTensorsReader.Open(path);
        if (!reader.Metadata.TryGetValue("step", out var stepText) || !long.TryParse(stepText, out var step))
            throw new InputException($"{path}: no optimizer step in the metadata: not an optimizer state written by this program.");
        using var _ = no_grad();
        foreach (var (name, (m, v)) in moments)
        {
            foreach (var (prefix, target) in new[] { ("exp_avg.", m), ("exp_avg_sq.", v) })
            {
                if (!reader.Contains(prefix + name))
                    throw new InputException($"{path}: no state for parameter {name}: the checkpoint was written for another layout or stage.");
                using var t = reader.ReadTensor(prefix + name);
                if (!t.shape.SequenceEqual(target.shape))
                    throw new InputException($"{path}: state of {name} has shape [{string.Join(", ", t.shape)}], the parameter [{string.Join(", ", target.shape)}].");
                target.copy_(t);
            }
        }
        StepCount = step;
    }

    public void Dispose()
    {
        scratch?.Dispose();
        foreach (var (m, v) in moments.Values)
        {
            m.Dispose();
            v.Dispose();
        }
        moments.Clear();
    }
}
