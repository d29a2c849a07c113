using HybridDistill.Config;

namespace HybridDistill.Benchmarks;

/// <summary>The hybrid layouts the benchmarks measure, defined once.</summary>
public static class BenchmarkLayouts
{
    /// <summary>"hybrid-25": softmax at every fourth layer counted from the end (layers 3 and 7 of 8), GDN elsewhere;
    /// stage 2's student in bench train and the 25% model of bench decode.</summary>
    public static IReadOnlyList<string> QuarterHybrid(int layers) =>
        Enumerable.Range(0, layers).Select(l => (l + 1) % 4 == 0 ? LayerKinds.Softmax : LayerKinds.GatedDeltaNet).ToArray();
}
