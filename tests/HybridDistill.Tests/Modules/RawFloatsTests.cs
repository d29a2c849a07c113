using HybridDistill.Modules;
using static TorchSharp.torch;

namespace HybridDistill.Tests.Modules;

public class RawFloatsTests
{
    [Fact]
    public void Of_GivesMemoryOrder_AndWritesThrough()
    {
        using var rowMajor = arange(6, dtype: float32).reshape(2, 3);                 // [[0,1,2],[3,4,5]]
        Assert.Equal(new float[] { 0, 1, 2, 3, 4, 5 }, RawFloats.Of(rowMajor).ToArray());
        using var columnMajor = rowMajor.t().contiguous().t();                       // same values, strides [1, 2]
        Assert.Equal(new float[] { 0, 3, 1, 4, 2, 5 }, RawFloats.Of(columnMajor).ToArray());
        RawFloats.Of(columnMajor)[1] = 30;                                            // element [1, 0] in memory order
        Assert.Equal(30f, columnMajor[1, 0].item<float>());
    }

    [Fact]
    public void Of_RefusesWhatIsNotDenseFp32OnTheCpu()
    {
        using var doubles = ones(4, dtype: float64);
        Assert.Throws<ArgumentException>(() => RawFloats.Of(doubles).Length);
        using var strided = ones(4, 6).narrow(1, 0, 3);                               // every other run skipped
        Assert.Throws<ArgumentException>(() => RawFloats.Of(strided).Length);
    }
}
