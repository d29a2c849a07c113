using TorchSharp;
using static TorchSharp.torch;

namespace HybridDistill.Tests.Attention;

/// <summary>Comparisons of a fast kernel against its naive reference.</summary>
static class KernelAssert
{
    /// <summary>max|fast - reference| &lt;= tolerance * max(1, max|reference|), both finite.</summary>
    public static void Close(Tensor fast, Tensor reference, string what, double tolerance = 1e-4)
    {
        using var scope = torch.NewDisposeScope();
        Assert.Equal(reference.shape, fast.shape);
        Assert.True(fast.isfinite().all().item<bool>(), $"{what}: fast result has inf/NaN");
        Assert.True(reference.isfinite().all().item<bool>(), $"{what}: reference has inf/NaN");
        double scale = Math.Max(1.0, reference.abs().max().item<float>());
        double error = (fast - reference).abs().max().item<float>();
        Assert.True(error <= tolerance * scale, $"{what}: max|fast - reference| = {error:G4} > {tolerance:G2} * {scale:G4}");
    }

    /// <summary>Fresh leaves (copies of the given values) that require gradients.</summary>
    public static Tensor[] Leaves(params Tensor[] values) =>
        values.Select(value => value.detach().clone().requires_grad_(true)).ToArray();

    /// <summary>Gradients of sum(output_i * weight_i) with respect to the leaves.</summary>
    public static Tensor[] Gradients(Tensor[] outputs, Tensor[] weights, Tensor[] leaves)
    {
        var loss = outputs.Zip(weights, (output, weight) => (output * weight).sum()).Aggregate((a, b) => a + b);
        return torch.autograd.grad(new[] { loss }, leaves).ToArray();
    }
}
