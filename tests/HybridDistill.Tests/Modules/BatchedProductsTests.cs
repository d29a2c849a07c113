using HybridDistill.Modules;
using HybridDistill.Tests.Attention;
using static TorchSharp.torch;

namespace HybridDistill.Tests.Modules;

/// <summary>The raw-memory batched products against torch.matmul, on contiguous operands and on strided views.</summary>
public class BatchedProductsTests
{
    // batch dims, M, K, N. Rows not a multiple of the 4-row block, columns not a multiple of the 64-column panel,
    // the chunked GDN's own shapes (64 x 64 x 64, 64 x 64 x 128), a single matrix (one core gets no batch), K = 0.
    public static TheoryData<long[], int, int, int> Shapes => new()
    {
        { [2, 3], 64, 64, 64 },
        { [1, 8, 4], 64, 64, 128 },
        { [3], 13, 7, 70 },
        { [5], 1, 1, 1 },
        { [2, 2], 6, 129, 65 },
        { [1], 3, 64, 200 },
        { [4], 5, 0, 3 },
        { [2], 4, 16, 70 },                      // a transposed B: 8 x 8 blocks for the full panel, the 6-column one by elements
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Product_EqualsMatmul(long[] batch, int m, int k, int n)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var generator = new Generator(5);
        var a = randn([.. batch, m, k], generator: generator);                                   // [.., M, K]
        var b = randn([.. batch, k, n], generator: generator);                                   // [.., K, N]
        var reference = a.matmul(b);
        Assert.True(BatchedProducts.Fits(a, b));
        KernelAssert.Close(BatchedProducts.Product(a, b), reference, "contiguous", tolerance: 1e-5);

        // The same operands as views: A through a transpose, B through a transpose and a narrow of a wider tensor.
        var aT = a.transpose(-1, -2).contiguous().transpose(-1, -2);                              // [.., M, K], column-major
        var wideB = randn([.. batch, n, k + 3], generator: generator);                           // [.., N, K+3]
        wideB.narrow(-1, 2, k).copy_(b.transpose(-1, -2));
        var bView = wideB.narrow(-1, 2, k).transpose(-1, -2);                                    // [.., K, N], strided
        Assert.False(bView.is_contiguous() && k > 1 && n > 1);
        KernelAssert.Close(BatchedProducts.Product(aT, bView), reference, "views", tolerance: 1e-5);
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void AddProduct_AddsIntoARowContiguousView(long[] batch, int m, int k, int n)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var generator = new Generator(9);
        var a = randn([.. batch, m, k], generator: generator);
        var b = randn([.. batch, k, n], generator: generator);
        var wide = randn([.. batch, m, n + 5], generator: generator);                            // [.., M, N+5]
        var before = wide.clone();
        BatchedProducts.AddProduct(a, b, wide.narrow(-1, 3, n));
        KernelAssert.Close(wide.narrow(-1, 3, n), before.narrow(-1, 3, n) + a.matmul(b), "accumulated", tolerance: 1e-5);
        Assert.True(wide.narrow(-1, 0, 3).eq(before.narrow(-1, 0, 3)).all().item<bool>(), "columns left of the view changed");
        Assert.True(wide.narrow(-1, n + 3, 2).eq(before.narrow(-1, n + 3, 2)).all().item<bool>(), "columns right of the view changed");
    }

    [Fact]
    public void Product_KeepsAutogradWhereGradientsAreWanted()
    {
        using var scope = NewDisposeScope();
        var generator = new Generator(3);
        var a = randn([2, 64, 64], generator: generator).requires_grad_();
        var b = randn([2, 64, 64], generator: generator);
        Assert.False(BatchedProducts.Fits(a, b));
        BatchedProducts.Product(a, b).sum().backward();
        using var noGrad = no_grad();
        KernelAssert.Close(a.grad!, ones(2, 64, 64).matmul(b.transpose(-1, -2)), "dA", tolerance: 1e-5);
    }

    [Fact]
    public void AddProduct_IntoAColumnMajorView_FallsBackToTorch()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var generator = new Generator(4);
        var a = randn([3, 64, 20], generator: generator);
        var b = randn([3, 20, 48], generator: generator);
        var c = randn([3, 48, 64], generator: generator).transpose(-1, -2);                      // [3, 64, 48], column-major
        var expected = c + a.matmul(b);
        BatchedProducts.AddProduct(a, b, c);
        KernelAssert.Close(c, expected, "column-major accumulator", tolerance: 1e-5);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void ProductInto_OverwritesItsHalfOfAWiderTensor(bool rowContiguous)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var generator = new Generator(6);
        var a = randn([2, 3, 64, 32], generator: generator);
        var b = randn([2, 3, 32, 70], generator: generator);
        // Row-contiguous: the right half of [.., 64, 70 + 9]; otherwise a column-major view (torch.matmul fallback).
        var wide = rowContiguous ? randn([2, 3, 64, 79], generator: generator) : randn([2, 3, 79, 64], generator: generator).transpose(-1, -2);
        var before = wide.clone();
        var into = wide.narrow(-1, 9, 70);
        Assert.Equal(rowContiguous, into.stride(-1) == 1);
        BatchedProducts.ProductInto(a, b, into);
        KernelAssert.Close(into, a.matmul(b), "written", tolerance: 1e-5);
        Assert.True(wide.narrow(-1, 0, 9).eq(before.narrow(-1, 0, 9)).all().item<bool>(), "the other half changed");
    }
}
