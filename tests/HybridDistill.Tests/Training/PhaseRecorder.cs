using HybridDistill.Training;

namespace HybridDistill.Tests.Training;

/// <summary>A phase hook that keeps every phase in the order they end (phases never nest: also the order they start).</summary>
sealed class PhaseRecorder : ITrainPhaseObserver
{
    public List<string> Phases { get; } = [];
    public List<double> Milliseconds { get; } = [];

    public void Add(string phase, double milliseconds)
    {
        Phases.Add(phase);
        Milliseconds.Add(milliseconds);
    }
}
