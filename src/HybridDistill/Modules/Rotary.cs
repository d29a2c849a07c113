using HybridDistill.Config;
using static TorchSharp.torch;

namespace HybridDistill.Modules;

/// <summary>cos/sin tables for a span of positions, each [T, D] in HF's rotate-half layout (frequencies repeated twice).</summary>
public sealed record RotaryTables(Tensor Cos, Tensor Sin);

/// <summary>
/// Rotary position embedding, Hugging Face's rotate-half convention: the pair (i, i + D/2) of each head is
/// rotated by angle <c>position * inv_freq[i]</c>. Frequencies follow <c>rope_theta</c> and, when set,
/// <c>rope_scaling</c> of type <c>linear</c> (positions divided by the factor) or <c>llama3</c>
/// (long wavelengths divided by the factor, short ones kept, a smooth blend between).
/// </summary>
public sealed class Rotary
{
    private readonly float[] invFreq;

    public Rotary(ModelConfig config)
    {
        invFreq = InverseFrequencies(config.HeadDim, config.RopeTheta, config.RopeScaling);
    }

    public static float[] InverseFrequencies(int headDim, double theta, RopeScaling? scaling)
    {
        var inv = new double[headDim / 2];
        for (int i = 0; i < inv.Length; i++) inv[i] = 1.0 / Math.Pow(theta, 2.0 * i / headDim);
        if (scaling?.Type == "linear")
            for (int i = 0; i < inv.Length; i++) inv[i] /= scaling.Factor;
        else if (scaling?.Type == "llama3")
        {
            double oldContext = scaling.OriginalMaxPositionEmbeddings;
            double lowFreqWavelen = oldContext / scaling.LowFreqFactor;
            double highFreqWavelen = oldContext / scaling.HighFreqFactor;
            for (int i = 0; i < inv.Length; i++)
            {
                double wavelen = 2 * Math.PI / inv[i];
                if (wavelen < highFreqWavelen) continue;
                if (wavelen > lowFreqWavelen) { inv[i] /= scaling.Factor; continue; }
                double smooth = (oldContext / wavelen - scaling.LowFreqFactor) / (scaling.HighFreqFactor - scaling.LowFreqFactor);
                inv[i] = (1 - smooth) * inv[i] / scaling.Factor + smooth * inv[i];
            }
        }
        return inv.Select(x => (float)x).ToArray();
    }

    /// <summary>Tables for positions <c>start .. start + length - 1</c>.</summary>
    public RotaryTables Tables(long start, long length, Device device)
    {
        using var scope = NewDisposeScope();
        var positions = arange(start, start + length, dtype: float32, device: device);   // [T]
        var freqs = outer(positions, tensor(invFreq, device: device));                    // [T, D/2]
        var angles = cat([freqs, freqs], -1);                                              // [T, D]
        return new RotaryTables(scope.MoveToOuter(angles.cos()), scope.MoveToOuter(angles.sin()));
    }

    /// <summary>x [B, H, T, D] rotated by the tables [T, D].</summary>
    public static Tensor Apply(Tensor x, RotaryTables tables)
    {
        using var scope = NewDisposeScope();
        long half = x.size(-1) / 2;
        var x1 = x.narrow(-1, 0, half);
        var x2 = x.narrow(-1, half, half);
        var rotated = cat([-x2, x1], -1);                                                  // [B, H, T, D]
        return scope.MoveToOuter(x * tables.Cos + rotated * tables.Sin);
    }
}
