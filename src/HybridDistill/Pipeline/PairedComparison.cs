using HybridDistill.Data;
using HybridDistill.Evaluation;

namespace HybridDistill.Pipeline;

/// <summary>recall_avg(A) - recall_avg(B) over the same prompts and seeds, with a 95% bootstrap interval.</summary>
public sealed record PairedDifference(double Difference, double Lo, double Hi, int Prompts, int Seeds);

/// <summary>
/// Paired comparison of two methods' models on the same evaluation prompts, seed by seed (model A of seed s against
/// model B of seed s): the difference of recall_avg (each task's pooled accuracy at the recall length, averaged over
/// the tasks, then over seeds), and a percentile bootstrap over prompts: each resample draws every task's prompts
/// with replacement, the same draw for both models and every seed, so prompt difficulty cancels in the pairs.
/// </summary>
public static class PairedComparison
{
    public static PairedDifference Compare(RunLayout layout, int length, IReadOnlyList<(string ModelA, string ModelB)> pairsBySeed,
        int resamples = 2000, ulong seed = 0)
    {
        // perTask[t][pair] = (A's per-prompt proportions, B's), prompt order shared
        var perTask = RecallAverage.Tasks.Select(task => pairsBySeed.Select(p =>
            (A: Load(layout, p.ModelA, task, length), B: Load(layout, p.ModelB, task, length))).ToArray()).ToArray();
        foreach (var (task, pairs) in RecallAverage.Tasks.Zip(perTask))
            foreach (var (a, b) in pairs)
                if (a.Count != b.Count) throw new InputException($"{task} @{length}: {a.Count} and {b.Count} prompts; the models were not evaluated on the same prompts.");

        double Statistic(Func<int, int, int> promptOf)
        {
            double total = 0;
            for (int s = 0; s < pairsBySeed.Count; s++)
            {
                double perSeed = 0;
                for (int t = 0; t < perTask.Length; t++)
                {
                    var (a, b) = perTask[t][s];
                    Proportion pa = default, pb = default;
                    for (int i = 0; i < a.Count; i++) { int j = promptOf(t, i); pa += a[j]; pb += b[j]; }
                    perSeed += pa.Accuracy - pb.Accuracy;
                }
                total += perSeed / perTask.Length;
            }
            return total / pairsBySeed.Count;
        }

        double observed = Statistic((_, i) => i);
        var rng = new SplitMix64(seed);
        var draws = new double[resamples];
        var counts = perTask.Select(p => p[0].A.Count).ToArray();
        var index = counts.Select(n => new int[n]).ToArray();
        for (int r = 0; r < resamples; r++)
        {
            for (int t = 0; t < counts.Length; t++)
                for (int i = 0; i < counts[t]; i++) index[t][i] = (int)rng.NextBelow(counts[t]);
            draws[r] = Statistic((t, i) => index[t][i]);
        }
        Array.Sort(draws);
        return new PairedDifference(observed, draws[(int)(0.025 * (resamples - 1))], draws[(int)Math.Ceiling(0.975 * (resamples - 1))],
            counts.Sum(), pairsBySeed.Count);
    }

    static IReadOnlyList<Proportion> Load(RunLayout layout, string model, string task, int length)
    {
        string path = layout.EvalJson(model);
        if (!File.Exists(path)) throw new InputException($"{path}: missing; evaluate {model} first.");
        return RecallAverage.PerPrompt(EvalFile.Load(path), task, length, path);
    }
}
