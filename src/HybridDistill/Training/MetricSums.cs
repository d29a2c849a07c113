using System.Text.Json.Serialization;

namespace HybridDistill.Training;

/// <summary>
/// Sums of reported values since the last metrics line: the line holds their means. A checkpoint saves them, so a
/// resumed run's first line has the same mean as the uninterrupted run's.
/// </summary>
public sealed class MetricSums
{
    public double Weight;
    public double Loss;
    public Dictionary<string, double> Extras = new(StringComparer.Ordinal);
    /// <summary>What each extra's sum is divided by: the batch weights, or the token counts it came with.</summary>
    public Dictionary<string, double> ExtraWeights = new(StringComparer.Ordinal);
    public double[]? Layers;
    public double GradNorm;
    public long Steps;

    public void Add(LossReport r, double weight = 1)
    {
        Weight += weight;
        Loss += r.Loss * weight;
        foreach (var (k, v) in r.Extras)
        {
            if (k.EndsWith(LossReport.CountSuffix, StringComparison.Ordinal)) continue;
            double w = r.Extras.TryGetValue(k + LossReport.CountSuffix, out var count) ? count : weight;
            Extras[k] = Extras.GetValueOrDefault(k) + v * w;
            ExtraWeights[k] = ExtraWeights.GetValueOrDefault(k) + w;
        }
        if (r.LayerLosses is not null)
        {
            Layers ??= new double[r.LayerLosses.Count];
            for (int i = 0; i < Layers.Length; i++) Layers[i] += r.LayerLosses[i] * weight;
        }
    }

    public double MeanLoss => Weight == 0 ? double.NaN : Loss / Weight;
    public IEnumerable<(string Name, double Mean)> MeanExtras() =>
        Extras.OrderBy(e => e.Key, StringComparer.Ordinal).Select(e => (e.Key, e.Value / ExtraWeights.GetValueOrDefault(e.Key, Weight)));
    public double[]? LayerMeans() => Layers?.Select(v => v / Weight).ToArray();

    /// <summary>The sums as trainer_state.json's "metric_sums" holds them.</summary>
    public MetricSumsFile ToFile() => new(Weight, Loss, new Dictionary<string, double>(Extras, StringComparer.Ordinal),
        new Dictionary<string, double>(ExtraWeights, StringComparer.Ordinal), Layers?.ToArray(), GradNorm, Steps);

    /// <summary>The sums of a trainer_state.json; a file without extra_weights (older versions) weighs every extra by the batch weights.</summary>
    public static MetricSums FromFile(MetricSumsFile file) => new()
    {
        Weight = file.Weight,
        Loss = file.Loss,
        Extras = new Dictionary<string, double>(file.Extras, StringComparer.Ordinal),
        ExtraWeights = file.ExtraWeights is { } ew
            ? new Dictionary<string, double>(ew, StringComparer.Ordinal)
            : file.Extras.Keys.ToDictionary(k => k, _ => file.Weight, StringComparer.Ordinal),
        Layers = file.Layers?.ToArray(),
        GradNorm = file.GradNorm,
        Steps = file.Steps,
    };
}

/// <summary>trainer_state.json's "metric_sums": <see cref="MetricSums"/> as stored (extras in the order they first came).</summary>
public sealed record MetricSumsFile(
    [property: JsonRequired] double Weight, [property: JsonRequired] double Loss,
    [property: JsonRequired] IReadOnlyDictionary<string, double> Extras, IReadOnlyDictionary<string, double>? ExtraWeights,
    IReadOnlyList<double>? Layers, [property: JsonRequired] double GradNorm, [property: JsonRequired] long Steps)
{
    public bool Equals(MetricSumsFile? other) => other is not null && Weight.Equals(other.Weight) && Loss.Equals(other.Loss)
        && Extras.SequenceEqual(other.Extras) && (ExtraWeights ?? Extras).SequenceEqual(other.ExtraWeights ?? other.Extras) && (ExtraWeights is null) == (other.ExtraWeights is null)
        && (Layers ?? []).SequenceEqual(other.Layers ?? []) && (Layers is null) == (other.Layers is null)
        && GradNorm.Equals(other.GradNorm) && Steps == other.Steps;

    public override int GetHashCode() => HashCode.Combine(Weight, Loss, GradNorm, Steps);
}

/// <summary>A named number of a metrics line: an objective's extra (kl, baseline_loss, acc_copy, ...) or a group's lr.</summary>
public readonly record struct NamedValue(string Name, double Value);

/// <summary>Where a line of pretraining's combined metrics.jsonl sits: its phase, and steps and tokens counted over all phases.</summary>
public sealed record PhasePosition(string Phase, long TotalStep, long TotalTokens);

/// <summary>
/// One line of metrics.jsonl (written by <see cref="Trainer"/>, one per log interval): the interval's means, the learning
/// rates, and on evaluation lines the validation means. Keys in the order of <see cref="Artifacts.MetricsLineConverter"/>:
/// <code>
/// {"step", "tokens", "loss", "lr", "lrs": {group: lr}, EXTRA..., "grad_norm", "layer_losses": [...],
///  "val_loss", "val_EXTRA"..., "val_layer_losses": [...], "elapsed_s", "tokens_per_s", "rss_mb"}
/// </code>
/// lrs only with several parameter groups; grad_norm once a step was taken; layer losses from stage 1; val_* on evaluation lines.
/// </summary>
[JsonConverter(typeof(Artifacts.MetricsLineConverter))]
public sealed record MetricsLine
{
    /// <summary>Pretraining's combined file only (OUT/metrics.jsonl): written first.</summary>
    public PhasePosition? Phase { get; init; }
    public required long Step { get; init; }
    public required long Tokens { get; init; }
    /// <summary>Mean training loss since the previous line (at step 0: step 1's batches before any update).</summary>
    public required double Loss { get; init; }
    /// <summary>The first group's learning rate.</summary>
    public required double Lr { get; init; }
    /// <summary>Every group's learning rate, when there are several.</summary>
    public IReadOnlyList<NamedValue>? Lrs { get; init; }
    /// <summary>The objective's extras, interval means, by name (ordinal order).</summary>
    public IReadOnlyList<NamedValue> Extras { get; init; } = [];
    public double? GradNorm { get; init; }
    /// <summary>Stage 1: mean loss per layer [L].</summary>
    public IReadOnlyList<double>? LayerLosses { get; init; }
    public double? ValLoss { get; init; }
    /// <summary>Validation extras by name (written val_NAME).</summary>
    public IReadOnlyList<NamedValue> ValExtras { get; init; } = [];
    public IReadOnlyList<double>? ValLayerLosses { get; init; }
    public required double ElapsedS { get; init; }
    public required double TokensPerS { get; init; }
    public required double RssMb { get; init; }

    /// <summary>A validation extra by its name without val_ (baseline_loss, acc_copy, ...), or null.</summary>
    public double? ValExtra(string name) => ValExtras.FirstOrDefault(e => e.Name == name) is { Name: not null } e ? e.Value : null;

    public bool Equals(MetricsLine? o) => o is not null && Phase == o.Phase && Step == o.Step && Tokens == o.Tokens && Loss.Equals(o.Loss)
        && Lr.Equals(o.Lr) && Same(Lrs, o.Lrs) && Extras.SequenceEqual(o.Extras) && GradNorm == o.GradNorm && Same(LayerLosses, o.LayerLosses)
        && ValLoss == o.ValLoss && ValExtras.SequenceEqual(o.ValExtras) && Same(ValLayerLosses, o.ValLayerLosses)
        && ElapsedS.Equals(o.ElapsedS) && TokensPerS.Equals(o.TokensPerS) && RssMb.Equals(o.RssMb);

    public override int GetHashCode() => HashCode.Combine(Phase, Step, Tokens, Loss);

    static bool Same<T>(IReadOnlyList<T>? a, IReadOnlyList<T>? b) => a is null ? b is null : b is not null && a.SequenceEqual(b);
}

/// <summary>The step of a metrics line, all that truncating metrics.jsonl on resume needs.</summary>
public sealed record MetricsLineStep([property: JsonRequired] long Step);
