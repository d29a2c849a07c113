using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace HybridDistill.Modules;

/// <summary>
/// Causal depthwise convolution over time (kernel K, no bias) followed by SiLU, as flash-linear-attention's
/// ShortConvolution: y_t = silu(sum_{j<K} w[c, j] x_{t-K+1+j}). Decoding carries the last K-1 inputs.
/// Parameter: <c>weight</c> [C, 1, K].
/// </summary>
public sealed class ShortConvolution : nn.Module
{
    private readonly Parameter weight;

    public ShortConvolution(long channels, int kernelSize) : base("ShortConvolution")
    {
        KernelSize = kernelSize;
        // PyTorch Conv1d's default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = K for depthwise.
        double bound = 1.0 / Math.Sqrt(kernelSize);
        weight = new Parameter(empty(channels, 1, kernelSize).uniform_(-bound, bound));
        RegisterComponents();
    }

    public int KernelSize { get; }
    public Parameter Weight => weight;

    /// <summary>x [B, T, C] -> [B, T, C]. <paramref name="cache"/> [B, C, K-1] holds the previous inputs (zeros at the start) and is updated in place.</summary>
    public Tensor forward(Tensor x, Tensor? cache)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], t = x.shape[1], c = x.shape[2];
        var xt = x.transpose(1, 2);                                                          // [B, T, C] -> [B, C, T]
        var history = cache ?? zeros(b, c, KernelSize - 1, device: x.device);
        var padded = cat([history, xt], 2);                                                  // [B, C, K-1+T]
        var y = nn.functional.conv1d(padded, weight, groups: c);                              // [B, C, T]
        if (cache is not null)
            using (no_grad()) cache.copy_(padded.narrow(2, t, KernelSize - 1));
        return scope.MoveToOuter(nn.functional.silu(y).transpose(1, 2));                   // [B, C, T] -> [B, T, C]
    }
}
