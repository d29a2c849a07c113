using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace HybridDistill.Modules;

/// <summary>RMSNorm: <c>x / sqrt(mean(x^2) + eps) * weight</c> over the last dimension, computed in fp32.</summary>
public sealed class RmsNorm : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private readonly double eps;

    public RmsNorm(long size, double eps, string name = "RmsNorm") : base(name)
    {
        this.eps = eps;
        weight = new Parameter(ones(size));
        RegisterComponents();
    }

    public Parameter Weight => weight;
    public double Eps => eps;

    public override Tensor forward(Tensor x)
    {
        if (DecodeKernels.CanNormalize(x, weight)) return DecodeKernels.RmsNorm(x, weight, eps);   // a decoding token: one pass
        using var scope = NewDisposeScope();
        // [..., N] -> [..., N]
        var y = x * rsqrt(x.pow(2).mean([-1L], keepdim: true) + eps) * weight;
        return scope.MoveToOuter(y);
    }
}
