using System.Diagnostics;

namespace HybridDistill.Training;

/// <summary>
/// Wall time per phase of a training step ("teacher_forward", "student_forward", "backward", "optimizer"), summed
/// over the steps measured. Objectives time their phases when given one (the training benchmark does); CPU torch
/// ops are synchronous, so a phase's time is the time of its ops.
/// </summary>
public sealed class PhaseTimes
{
    public const string TeacherForward = "teacher_forward";
    public const string StudentForward = "student_forward";
    public const string Backward = "backward";
    public const string Optimizer = "optimizer";

    private readonly Dictionary<string, double> ms = new(StringComparer.Ordinal);

    public IReadOnlyDictionary<string, double> Milliseconds => ms;

    /// <summary>Times <paramref name="phase"/> until the returned handle is disposed.</summary>
    public Phase Measure(string phase) => new(this, phase);

    public void Add(string phase, double milliseconds) => ms[phase] = ms.GetValueOrDefault(phase) + milliseconds;

    public void Clear() => ms.Clear();

    public readonly struct Phase : IDisposable
    {
        private readonly PhaseTimes? owner;
        private readonly string name;
        private readonly long start;

        internal Phase(PhaseTimes owner, string name)
        {
            this.owner = owner;
            this.name = name;
            start = Stopwatch.GetTimestamp();
        }

        public void Dispose() => owner?.Add(name, Stopwatch.GetElapsedTime(start).TotalMilliseconds);
    }
}

public static class PhaseTimesExtensions
{
    /// <summary>A timing handle, or a no-op one when there is no timer.</summary>
    public static PhaseTimes.Phase Time(this PhaseTimes? timer, string phase) => timer?.Measure(phase) ?? default;
}
