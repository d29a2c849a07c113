using HybridDistill.Config;

namespace HybridDistill.Training;

/// <summary>Learning-rate schedules after the linear warmup (lr_schedule).</summary>
public enum LrScheduleKind
{
    Constant,
    Cosine,
    Linear,
}

/// <summary>
/// The learning-rate multiplier of optimizer step s (1-based) out of S: linear warmup over the first W steps
/// (s / W), then constant 1, or a cosine / linear decay from 1 to the floor f reached at step S:
/// cosine f + (1 - f) (1 + cos(pi p)) / 2, linear f + (1 - f)(1 - p), with p = (s - 1 - W) / (S - W)
/// (so the first step after warmup runs at the peak and no step is wasted at exactly the floor when f = 0).
/// </summary>
public static class LrSchedule
{
    /// <summary>lr_schedule's words in recipes, --set and run_config.json.</summary>
    public static readonly SettingWords<LrScheduleKind> Words =
        new(("constant", LrScheduleKind.Constant), ("cosine", LrScheduleKind.Cosine), ("linear", LrScheduleKind.Linear));

    public static double Scale(LrScheduleKind schedule, long step, long totalSteps, long warmupSteps, double floor)
    {
        if (warmupSteps > 0 && step <= warmupSteps) return (double)step / warmupSteps;
        if (schedule == LrScheduleKind.Constant) return 1.0;
        long span = totalSteps - warmupSteps;
        double p = span <= 0 ? 1.0 : Math.Clamp((double)(step - 1 - warmupSteps) / span, 0.0, 1.0);
        return schedule switch
        {
            LrScheduleKind.Cosine => floor + (1 - floor) * 0.5 * (1 + Math.Cos(Math.PI * p)),
            LrScheduleKind.Linear => floor + (1 - floor) * (1 - p),
            _ => throw new ArgumentException($"unknown schedule {schedule}"),
        };
    }
}
