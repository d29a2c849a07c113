namespace HybridDistill.Training;

/// <summary>
/// The learning-rate multiplier of optimizer step s (1-based) out of S: linear warmup over the first W steps
/// (s / W), then constant 1, or a cosine / linear decay from 1 to the floor f reached at step S:
/// cosine f + (1 - f) (1 + cos(pi p)) / 2, linear f + (1 - f)(1 - p), with p = (s - 1 - W) / (S - W)
/// (so the first step after warmup runs at the peak and no step is wasted at exactly the floor when f = 0).
/// </summary>
public static class LrSchedule
{
    public static double Scale(string schedule, long step, long totalSteps, long warmupSteps, double floor)
    {
        if (warmupSteps > 0 && step <= warmupSteps) return (double)step / warmupSteps;
        if (schedule == LrSchedules.Constant) return 1.0;
        long span = totalSteps - warmupSteps;
        double p = span <= 0 ? 1.0 : Math.Clamp((double)(step - 1 - warmupSteps) / span, 0.0, 1.0);
        return schedule switch
        {
            LrSchedules.Cosine => floor + (1 - floor) * 0.5 * (1 + Math.Cos(Math.PI * p)),
            LrSchedules.Linear => floor + (1 - floor) * (1 - p),
            _ => throw new ArgumentException($"unknown schedule {schedule}"),
        };
    }
}
