using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace HybridDistill.Modules;

/// <summary>RMSNorm: <c>x / sqrt(mean(x^2) + eps) * weight</c> over the last dimension, computed in fp32.</summary>
public sealed class RmsNorm : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private readonly double eps;
    // eps as a native Scalar held by the module. An implicit double -> Scalar conversion in `t + eps` makes a Scalar
    // that nothing disposes and that the garbage collector may finalise (free) while libtorch still reads it: one
    // test run died of "INTERNAL ASSERT FAILED at Scalar.h:279" inside this forward. (x.square() needs none.)
    private readonly Scalar epsScalar;

    public RmsNorm(long size, double eps, string name = "RmsNorm") : base(name)
    {
        this.eps = eps;
        epsScalar = eps.ToScalar();
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
        var y = x * rsqrt(x.square().mean([-1L], keepdim: true).add(epsScalar)) * weight;
        return scope.MoveToOuter(y);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) epsScalar.Dispose();
        base.Dispose(disposing);
    }
}
