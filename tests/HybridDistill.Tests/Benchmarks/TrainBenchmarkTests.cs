using HybridDistill.Benchmarks;
using HybridDistill.Models;
using HybridDistill.Tests.Models;
using HybridDistill.Training;

namespace HybridDistill.Tests.Benchmarks;

public class TrainBenchmarkTests
{
    [Fact]
    public void QuarterHybrid_KeepsEveryFourthLayerFromTheEnd()
    {
        Assert.Equal(new[] { "gdn", "gdn", "gdn", "softmax", "gdn", "gdn", "gdn", "softmax" }, BenchmarkLayouts.QuarterHybrid(8));
        Assert.Equal(new[] { "gdn", "gdn", "gdn", "softmax", "gdn" }, BenchmarkLayouts.QuarterHybrid(5));
    }

    [Fact]
    public void StudentFlops_CountProjectionsAndOnlySoftmaxAttentionScores()
    {
        var config = TinyConfigs.Llama(layers: 4);                       // d 32, vocab 50, tied
        using var teacher = new HybridCausalLM(config);
        using var student = StudentBuilder.Build(teacher, BenchmarkLayouts.QuarterHybrid(4), null, 0);
        long nonEmbedding = student.parameters().Sum(p => p.numel()) - 50 * 32;
        // tied: the LM head's V*d is added back; one softmax layer contributes 2 d T per token
        Assert.Equal(2.0 * (nonEmbedding + 50 * 32) + 2.0 * 1 * 32 * 100, TrainBenchmark.StudentFlopsPerToken(student, 100));
        long gdnAttention = Enumerable.Range(0, 3).Sum(l => student.Layers[l].Attention.parameters().Sum(p => p.numel()));
        Assert.Equal(2.0 * gdnAttention, TrainBenchmark.Stage1StudentFlopsPerToken(student));
    }

    [Fact]
    public void TinyRun_ReportsEveryPhase_AndConsistentThroughput()
    {
        var config = TinyConfigs.Llama(layers: 4);
        foreach (int stage in new[] { 1, 2 })
        {
            var limits = new MachineLimits(SgemmPeakGflops: 200, SgemmSize: 2048, ReadBandwidthGBps: 30, ReadBytes: 1 << 30, Threads: 2);
            var r = TrainBenchmark.Run(config, stage, seq: 32, batch: 2, steps: 1, limits: limits);
            Assert.Equal(64 / (r.StepMs * 1e-3), r.TokensPerSecond, 6);
            foreach (var phase in new[] { PhaseTimes.TeacherForward, PhaseTimes.StudentForward, PhaseTimes.Backward, PhaseTimes.Optimizer })
                Assert.True(r.PhaseMs[phase] > 0, $"stage {stage}: {phase}");
            Assert.True(r.PhaseMs.Values.Sum() <= r.StepMs, $"stage {stage}: the phases of the median step lie inside it");
            Assert.True(r.AchievedGflops > 0 && r.MatmulGflops > 0);
            Assert.Equal(r.AchievedGflops / 200, r.FractionOfSgemmPeak, 12);
            Assert.Equal(r.PhaseMs[PhaseTimes.Optimizer] / r.StepMs, r.OptimizerFraction, 12);
            // the optimizer's floor: 32 bytes per trained element (stage 1: the GDN layers' attention; stage 2: the whole
            // student) at the given 30 GB/s
            using var teacher = new HybridCausalLM(config);
            using var student = StudentBuilder.Build(teacher, stage == 1 ? Enumerable.Repeat("gdn", 4).ToArray() : BenchmarkLayouts.QuarterHybrid(4), null, 0);
            long trained = stage == 1 ? student.Layers.Sum(l => l.Attention.parameters().Sum(p => p.numel())) : student.parameters().Sum(p => p.numel());
            Assert.Equal(32 * trained, r.OptimizerBytes);
            Assert.Equal(32.0 * trained / 30e9 * 1e3, r.OptimizerFloorMs, 9);
        }
    }
}
