using System.Diagnostics;

namespace HybridDistill.Training;

/// <summary>
/// The Trainer's phase hook: where one training step reports the wall time of its phases ("teacher_forward",
/// "student_forward", "backward", "optimizer"). The Trainer hands it to the objective with each micro-batch, and the
/// objective to the chunked loss, where the teacher's and the student's logits interleave chunk by chunk; the Trainer
/// times the optimizer phase itself. Phases never nest, so their sum is the part of the step they cover.
/// </summary>
public interface ITrainPhaseObserver
{
    void Add(string phase, double milliseconds);
}

/// <summary>
/// Wall time per phase of a training step, summed over the steps observed (the training benchmark gives one to its
/// Trainer). CPU torch ops are synchronous, so a phase's time is the time of its ops.
/// </summary>
public sealed class PhaseTimes : ITrainPhaseObserver
{
    public const string TeacherForward = "teacher_forward";
    public const string StudentForward = "student_forward";
    public const string Backward = "backward";
    public const string Optimizer = "optimizer";

    private readonly Dictionary<string, double> ms = new(StringComparer.Ordinal);

    public IReadOnlyDictionary<string, double> Milliseconds => ms;

    public void Add(string phase, double milliseconds) => ms[phase] = ms.GetValueOrDefault(phase) + milliseconds;

    public void Clear() => ms.Clear();

    /// <summary>Times one phase until disposed and reports it to its observer (none: a no-op).</summary>
    public readonly struct Phase : IDisposable
    {
        private readonly ITrainPhaseObserver? observer;
        private readonly string name;
        private readonly long start;

        internal Phase(ITrainPhaseObserver observer, string name)
        {
            this.observer = observer;
            this.name = name;
            start = Stopwatch.GetTimestamp();
        }

        public void Dispose() => observer?.Add(name, Stopwatch.GetElapsedTime(start).TotalMilliseconds);
    }
}

public static class TrainPhaseObserverExtensions
{
    /// <summary>Times <paramref name="phase"/> until the returned handle is disposed; a no-op handle when there is no observer.</summary>
    public static PhaseTimes.Phase Time(this ITrainPhaseObserver? observer, string phase) =>
        observer is null ? default : new PhaseTimes.Phase(observer, phase);
}
