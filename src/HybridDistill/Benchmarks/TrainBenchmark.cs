// Training-step throughput of stage 1 or stage 2 on a random-weight teacher, against this machine's sgemm peak
// measured in the same run (MachineLimits; the model-shaped matmul is a second, named figure). FLOPs per step = B*T x (teacher forward + 3 x student forward), per token:
//   teacher forward   2 (non-embedding params + lm_head params) + 2 L d T   (ForwardBenchmark.FlopsPerToken)
//                     (stage 1 stops before the LM head: 2 x the decoder layers' params + 2 L d T)
//   student forward   stage 2: the same formula over the student, counting only softmax layers in the 2 L d T
//                     term (a GDN layer counts its projections, which are its parameters);
//                     stage 1: 2 x the trained attention layers' parameters (the rest is the teacher's pass)
//   backward = 2 x forward, so the student's forward + backward = 3 x its forward.
using HybridDistill.Config;
using HybridDistill.Models;
using HybridDistill.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace HybridDistill.Benchmarks;

public sealed record TrainBenchmarkResult(
    int Stage, int Seq, int Batch, IReadOnlyList<string> LayerTypes, int Steps, double StepMs, double TokensPerSecond,
    IReadOnlyDictionary<string, double> PhaseMs, double TeacherGflopPerToken, double StudentForwardGflopPerToken,
    double AchievedGflops, double MatmulGflops, MachineLimits Limits, long OptimizerBytes)
{
    /// <summary>Step GFLOP/s over the same run's sgemm peak.</summary>
    public double FractionOfSgemmPeak => AchievedGflops / Limits.SgemmPeakGflops;

    /// <summary>The optimizer phase's share of the step (dropping the gradients, their norm and clipping, the AdamW update).</summary>
    public double OptimizerFraction => PhaseMs.GetValueOrDefault(PhaseTimes.Optimizer) / StepMs;

    /// <summary>The least time the optimizer phase can take on this machine: <see cref="OptimizerBytes"/> at the same run's read bandwidth.</summary>
    public double OptimizerFloorMs => Limits.ReadMs(OptimizerBytes);

    /// <summary>Bytes the optimizer phase moves at least per trainable fp32 element (<see cref="OptimizerBytes"/> over the
    /// element count): the gradient norm reads g (4); the update reads g, p, m, v (16) and writes p, m, v (12).</summary>
    public const int OptimizerBytesPerElement = 32;
}

public static class TrainBenchmark
{
    /// <summary>Times <paramref name="steps"/> training steps after a warm-up one, on <paramref name="device"/> (default: the CPU;
    /// models are built on the CPU and moved; on CUDA each step's clock is read after a synchronize); reports the median
    /// step and its per-phase split (<see cref="PhaseTimes"/>, through the Trainer's phase hook). The split is not
    /// synchronised, so on CUDA it shows launch times rather than kernel times.
    /// <paramref name="limits"/>: the machine's ceilings, measured now when null.</summary>
    public static TrainBenchmarkResult Run(ModelConfig teacherConfig, int stage, int seq, int batch, int steps = 3,
        IProgress<string>? progress = null, Device? device = null, MachineLimits? limits = null)
    {
        if (stage is not (1 or 2)) throw new InputException($"--stage must be 1 or 2, got {stage}.");
        if (seq > teacherConfig.MaxPositionEmbeddings)
            throw new InputException($"--seq {seq} exceeds the model's context ({teacherConfig.MaxPositionEmbeddings}).");
        progress?.Report("building the random teacher and the student");
        using var teacher = new HybridCausalLM(teacherConfig.WithLayerTypes(Enumerable.Repeat(LayerKinds.Softmax, teacherConfig.NumHiddenLayers).ToArray()));
        teacher.InitializeWeights(seed: 0);
        teacher.eval();
        var layerTypes = stage == 1
            ? Enumerable.Repeat(LayerKinds.GatedDeltaNet, teacherConfig.NumHiddenLayers).ToArray()
            : BenchmarkLayouts.QuarterHybrid(teacherConfig.NumHiddenLayers);
        using var student = StudentBuilder.Build(teacher, layerTypes, null, seed: 0);
        if (device is not null && device.type != TorchSharp.DeviceType.CPU)
        {
            teacher.to(device);
            student.to(device);
        }
        student.train();
        var stageKind = stage == 1 ? Training.Stage.Stage1 : Training.Stage.Stage2;
        var config = TrainConfig.Resolve(stageKind, null, [$"seq_len={seq}", $"batch_size={batch}", "grad_accum=1"]);
        ITrainingObjective objective = stage == 1 ? new Stage1Alignment(teacher, student) : new Stage2Distillation(teacher, student, config);

        manual_seed(0);
        using var ids = randint(0, teacherConfig.VocabSize, [batch, seq + 1], dtype: int64, device: device);   // [B, T + 1], every step
        // The Trainer's own step (schedule, clipping, fused AdamW) on the same windows every time.
        using var trainer = Trainer.OnBatches(objective, config, () => new Data.TrainingBatch(ids));
        var timing = new PhaseTimes();

        if (limits is null)
        {
            progress?.Report("machine limits (sgemm peak, read bandwidth)");
            limits = MachineLimits.Measure(device);
        }
        progress?.Report("model-shape matmul");
        double matmul = Measure.MatmulGflops((long)batch * seq, teacherConfig.HiddenSize, teacherConfig.IntermediateSize, device: device);
        progress?.Report("warm-up step");
        trainer.Step();                                                   // no phase hook during the warm-up step
        trainer.Phases = timing;
        var runs = new (double Ms, Dictionary<string, double> Phases)[steps];
        for (int i = 0; i < steps; i++)
        {
            progress?.Report($"step {i + 1}/{steps}");
            timing.Clear();
            Measure.Synchronize(device);
            var sw = System.Diagnostics.Stopwatch.StartNew();
            trainer.Step();
            Measure.Synchronize(device);
            runs[i] = (sw.Elapsed.TotalMilliseconds, new Dictionary<string, double>(timing.Milliseconds));
        }
        // The median step and its own phases: they lie inside it, so they sum to at most its time (a mean of the phases
        // beside a median step would not, on a busy machine).
        var median = runs.OrderBy(r => r.Ms).ElementAt(steps / 2);
        double stepMs = median.Ms;
        var phases = new[] { PhaseTimes.TeacherForward, PhaseTimes.StudentForward, PhaseTimes.Backward, PhaseTimes.Optimizer }
            .ToDictionary(p => p, p => median.Phases.GetValueOrDefault(p));

        double teacherFlops = stage == 1
            ? 2.0 * teacher.Layers.Sum(l => l.parameters().Sum(p => p.numel())) + 2.0 * teacherConfig.NumHiddenLayers * teacherConfig.HiddenSize * seq
            : ForwardBenchmark.FlopsPerToken(teacher, seq);
        double studentFlops = stage == 1 ? Stage1StudentFlopsPerToken(student) : StudentFlopsPerToken(student, seq);
        double stepFlops = (double)batch * seq * (teacherFlops + 3 * studentFlops);
        double achieved = stepFlops / (stepMs * 1e-3) / 1e9;
        return new TrainBenchmarkResult(stage, seq, batch, layerTypes, steps, stepMs, batch * seq / (stepMs * 1e-3), phases,
            teacherFlops / 1e9, studentFlops / 1e9, achieved, matmul, limits,
            OptimizerBytes: trainer.TrainableElements * TrainBenchmarkResult.OptimizerBytesPerElement);
    }

    /// <summary>Forward FLOPs per token of a hybrid: 2 x (non-embedding + lm_head params) + 2 x softmax layers x d x T.</summary>
    public static double StudentFlopsPerToken(HybridCausalLM model, long tokens)
    {
        var c = model.Config;
        long lmHead = (long)c.VocabSize * c.HiddenSize;
        long nonEmbedding = model.NonEmbeddingParameters;
        long weights = c.TieWordEmbeddings ? nonEmbedding + lmHead : nonEmbedding;
        int softmaxLayers = c.LayerTypes.Count(t => t is LayerKinds.Softmax or LayerKinds.SlidingWindow);
        return 2.0 * weights + 2.0 * softmaxLayers * c.HiddenSize * tokens;
    }

    /// <summary>Stage 1's student forward per token: 2 x the parameters of its non-softmax attention layers.</summary>
    public static double Stage1StudentFlopsPerToken(HybridCausalLM student)
    {
        long parameters = 0;
        for (int l = 0; l < student.Config.NumHiddenLayers; l++)
            if (student.Config.LayerTypes[l] != LayerKinds.Softmax)
                parameters += student.Layers[l].Attention.parameters().Sum(p => p.numel());
        return 2.0 * parameters;
    }
}
