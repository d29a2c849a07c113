using HybridDistill.Models;
using HybridDistill.Tests.Models;
using HybridDistill.Training;
using static TorchSharp.torch;

namespace HybridDistill.Tests.Training;

public class ChunkedLogitLossTests
{
    /// <summary>Unchunked reference with plain autograd: mean over positions of tau^2 KL(p || q) + w CE.</summary>
    static Tensor ReferenceLoss(HybridCausalLM student, HybridCausalLM teacher, Tensor ids, Tensor targets, double tau, double ceWeight)
    {
        long n = ids.numel();
        Tensor zt;
        using (no_grad()) zt = teacher.forward(ids).reshape(n, -1);                   // [B, T, V] -> [N, V]
        var zs = student.forward(ids).reshape(n, -1);                                   // [B, T, V] -> [N, V]
        var logp = (zt / tau).log_softmax(-1);
        var logq = (zs / tau).log_softmax(-1);
        var kl = (logp.exp() * (logp - logq)).sum() * (tau * tau) / n;
        var ce = nn.functional.cross_entropy(zs, targets.reshape(n));
        return kl + ceWeight * ce;
    }

    static (HybridCausalLM Student, HybridCausalLM Teacher, Tensor Ids, Tensor Targets) Models(bool tied)
    {
        var config = TinyConfigs.Llama(layers: 2) with { TieWordEmbeddings = tied };
        var teacher = new HybridCausalLM(config);
        teacher.InitializeWeights(seed: 1, std: 0.3);
        var student = new HybridCausalLM(config);
        student.InitializeWeights(seed: 2, std: 0.3);
        manual_seed(5);
        var ids = randint(0, config.VocabSize, [3, 23], dtype: int64);
        var targets = randint(0, config.VocabSize, [3, 23], dtype: int64);
        return (student, teacher, ids, targets);
    }

    [Theory]
    [InlineData(true, 1.0, 0.0, 7)]
    [InlineData(false, 1.0, 0.0, 16)]
    [InlineData(true, 2.0, 0.5, 10)]
    [InlineData(false, 1.0, 0.3, 69)]
    public void ChunkedDistillation_EqualsUnchunked_ValuesAndGradients(bool tied, double tau, double ceWeight, int chunk)
    {
        var (student, teacher, ids, targets) = Models(tied);
        long n = ids.numel();

        var reference = ReferenceLoss(student, teacher, ids, targets, tau, ceWeight);
        reference.backward();
        double refValue = reference.item<float>();
        var refGrads = student.named_parameters().ToDictionary(p => p.name, p => p.parameter.grad!.clone());
        foreach (var p in student.parameters()) p.grad!.zero_();

        Tensor th;
        using (no_grad()) th = teacher.Hidden(ids, null).reshape(n, -1);              // [B, T, d] -> [N, d]
        var sh = student.Hidden(ids, null).reshape(n, -1);
        var v = ChunkedLogitLoss.Distillation(sh, student.LmHeadWeight, th, teacher.LmHeadWeight, targets.reshape(n),
            chunk, tau, ceWeight, gradScale: 1.0, backward: true);
        double chunked = v.Kl + ceWeight * v.Ce;

        Assert.True(Math.Abs(chunked - refValue) <= 1e-5 * Math.Abs(refValue), $"chunked {chunked} vs unchunked {refValue}");
        foreach (var (name, p) in student.named_parameters())
        {
            var g = p.grad!;
            double scale = refGrads[name].abs().max().item<float>();
            double diff = (g - refGrads[name]).abs().max().item<float>();
            Assert.True(diff <= 1e-5 * scale + 1e-9, $"{name}: max |chunked - unchunked| = {diff}, max |grad| = {scale}");
        }

        // Evaluation path (no graph) gives the same values.
        using (no_grad())
        {
            var sh2 = student.Hidden(ids, null).reshape(n, -1);
            var e = ChunkedLogitLoss.Distillation(sh2, student.LmHeadWeight, th, teacher.LmHeadWeight, targets.reshape(n), chunk, tau, ceWeight, 1.0, backward: false);
            Assert.Equal(v.Kl, e.Kl, 6);
            Assert.Equal(v.Ce, e.Ce, 6);
        }
    }

    [Fact]
    public void Distillation_WithPhaseHook_SameValuesAndGradientsToTheBit_AndThreePhasesPerChunk()
    {
        var (student, teacher, ids, targets) = Models(tied: false);
        long n = ids.numel();                                                           // 69 positions: chunks of 30, 30, 9
        Tensor th;
        using (no_grad()) th = teacher.Hidden(ids, null).reshape(n, -1);              // [B, T, d] -> [N, d]
        (LogitLossValues Values, Dictionary<string, Tensor> Grads) Run(ITrainPhaseObserver? phases)
        {
            foreach (var p in student.parameters()) p.grad?.zero_();
            var sh = student.Hidden(ids, null).reshape(n, -1);                         // [B, T, d] -> [N, d]
            var v = ChunkedLogitLoss.Distillation(sh, student.LmHeadWeight, th, teacher.LmHeadWeight, targets.reshape(n),
                30, 2.0, 0.5, gradScale: 1.0, backward: true, phases);
            return (v, student.named_parameters().ToDictionary(p => p.name, p => p.parameter.grad!.clone()));
        }

        var plain = Run(null);
        var recorder = new PhaseRecorder();
        var hooked = Run(recorder);

        Assert.Equal(plain.Values, hooked.Values);
        foreach (var (name, g) in plain.Grads)
            Assert.True(g.equal(hooked.Grads[name]).all().item<bool>(), $"{name}: the gradient changed with the phase hook");
        string[] chunk = [PhaseTimes.TeacherForward, PhaseTimes.StudentForward, PhaseTimes.Backward];
        Assert.Equal([.. chunk, .. chunk, .. chunk, PhaseTimes.Backward], recorder.Phases);   // the last: into the body
        Assert.All(recorder.Milliseconds, ms => Assert.True(ms >= 0));
    }

    [Fact]
    public void KlOfIdenticalModels_IsZero_AndCeMatchesTorch()
    {
        var (student, teacher, ids, targets) = Models(tied: true);
        long n = ids.numel();
        using var _ = no_grad();
        var h = teacher.Hidden(ids, null).reshape(n, -1);
        var v = ChunkedLogitLoss.Distillation(h, teacher.LmHeadWeight, h, teacher.LmHeadWeight, targets.reshape(n), 8, 1.0, 0.0, 1.0, false);
        Assert.True(Math.Abs(v.Kl) < 1e-6);
        double ce = nn.functional.cross_entropy(teacher.forward(ids).reshape(n, -1), targets.reshape(n)).item<float>();
        Assert.Equal(ce, v.Ce, 5);
        double ce3 = ChunkedLogitLoss.CrossEntropy(h, teacher.LmHeadWeight, targets.reshape(n), 5, 1.0, false);
        Assert.Equal(ce, ce3, 5);
    }

    [Fact]
    public void ChunkedCrossEntropy_GradientsEqualAutograd()
    {
        var (student, _, ids, targets) = Models(tied: false);
        long n = ids.numel();
        var reference = nn.functional.cross_entropy(student.forward(ids).reshape(n, -1), targets.reshape(n));
        reference.backward();
        var refGrads = student.named_parameters().ToDictionary(p => p.name, p => p.parameter.grad!.clone());
        foreach (var p in student.parameters()) p.grad!.zero_();
        var h = student.Hidden(ids, null).reshape(n, -1);
        double ce = ChunkedLogitLoss.CrossEntropy(h, student.LmHeadWeight, targets.reshape(n), 11, 1.0, true);
        Assert.True(Math.Abs(ce - reference.item<float>()) <= 1e-5 * ce);
        foreach (var (name, p) in student.named_parameters())
        {
            double scale = refGrads[name].abs().max().item<float>();
            Assert.True((p.grad! - refGrads[name]).abs().max().item<float>() <= 1e-5 * scale + 1e-9, name);
        }
    }
}
