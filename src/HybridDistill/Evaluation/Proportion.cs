namespace HybridDistill.Evaluation;

/// <summary>
/// An accuracy k/n with its 95% Wilson score interval:
/// centre = (p + z²/2n) / (1 + z²/n), half-width = z·sqrt(p(1-p)/n + z²/4n²) / (1 + z²/n), z = 1.959964.
/// Trials are treated as independent (queries sharing one prompt are not quite; the interval is then a little narrow).
/// </summary>
public readonly record struct Proportion(int Correct, int Count)
{
    public const double Z95 = 1.959963984540054;

    public double Accuracy => Count == 0 ? 0 : (double)Correct / Count;

    public (double Lo, double Hi) Wilson
    {
        get
        {
            if (Count == 0) return (0, 1);
            double n = Count, p = Accuracy, z2 = Z95 * Z95;
            double denominator = 1 + z2 / n;
            double centre = (p + z2 / (2 * n)) / denominator;
            double half = Z95 * Math.Sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denominator;
            return (Math.Max(0, centre - half), Math.Min(1, centre + half));
        }
    }

    /// <summary>Standard error of the mean of the 0/1 outcomes with the sample (n - 1) variance, sqrt(p (1 - p) / (n - 1)),
    /// as lm-evaluation-harness reports <c>acc_stderr</c>; null (lm-eval's "N/A") for fewer than two outcomes.</summary>
    public double? Stderr => Count < 2 ? null : Math.Sqrt(Accuracy * (1 - Accuracy) / (Count - 1));

    /// <summary>
    /// 95% interval of a.Accuracy - b.Accuracy from the two Wilson intervals (Newcombe's hybrid score method):
    /// d - sqrt((p_a - lo_a)^2 + (hi_b - p_b)^2) .. d + sqrt((hi_a - p_a)^2 + (p_b - lo_b)^2).
    /// </summary>
    public static (double Lo, double Hi) DifferenceInterval(Proportion a, Proportion b)
    {
        double d = a.Accuracy - b.Accuracy;
        var (loA, hiA) = a.Wilson;
        var (loB, hiB) = b.Wilson;
        return (d - Math.Sqrt(Math.Pow(a.Accuracy - loA, 2) + Math.Pow(hiB - b.Accuracy, 2)),
                d + Math.Sqrt(Math.Pow(hiA - a.Accuracy, 2) + Math.Pow(b.Accuracy - loB, 2)));
    }

    public static Proportion operator +(Proportion a, Proportion b) => new(a.Correct + b.Correct, a.Count + b.Count);
}
