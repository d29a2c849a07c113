using HybridDistill.Artifacts;
using HybridDistill.Data;

namespace HybridDistill.Training;

/// <summary>Training a whole budget in one call: the entry distill, pretrain and the tests use (the loop is <see cref="Trainer"/>).</summary>
public static class TrainLoop
{
    /// <summary>
    /// Trains <paramref name="objective"/>'s student on <paramref name="data"/> for <paramref name="config"/>'s budget,
    /// writing metrics.jsonl and checkpoints under <paramref name="runDir"/>. With <paramref name="resume"/>, continues
    /// from the newest checkpoint there (a fresh start when there is none). Cancellation saves a checkpoint and returns
    /// with Completed false. <paramref name="runConfig"/> and <paramref name="teacher"/> as <see cref="Trainer"/> takes them.
    /// </summary>
    public static TrainResult Run(ITrainingObjective objective, TokenDataset data, TrainConfig config, string runDir, OpaqueJson runConfig,
        bool resume, IProgress<TrainProgress>? progress = null, CancellationToken cancellation = default, string? teacher = null)
    {
        using var trainer = new Trainer(objective, data, config, runDir, runConfig, progress, teacher);
        trainer.ResumeOrStartOver(resume);
        return trainer.RunUntil(config.TotalSteps, cancellation);
    }
}
