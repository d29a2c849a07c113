using HybridDistill.Attention;
using TorchSharp;
using static TorchSharp.torch;

namespace HybridDistill.Tests.Attention;

public class SlidingWindowAttentionTests
{
    const long Batch = 2, Heads = 2, HeadDim = 16;

    static Tensor[] Inputs(long tokens, int seed)
    {
        torch.manual_seed(seed);
        return new[]
        {
            torch.randn(Batch, Heads, tokens, HeadDim) * 1.5, // sharper softmax than unit scale
            torch.randn(Batch, Heads, tokens, HeadDim),
            torch.randn(Batch, Heads, tokens, HeadDim),
        };
    }

    public static TheoryData<long, int> Cases()
    {
        var data = new TheoryData<long, int>();
        foreach (var tokens in new long[] { 1, 63, 64, 65, 200 })
            foreach (var window in new[] { 1, 16, 64, 300 })
                data.Add(tokens, window);
        return data;
    }

    static void AssertMatchesNaive(Func<Tensor, Tensor, Tensor, Tensor> fast, long tokens, int window, int seed = 1)
    {
        using var scope = torch.NewDisposeScope();
        var inputs = Inputs(tokens, seed);
        var weight = torch.randn(Batch, Heads, tokens, HeadDim);
        var referenceLeaves = KernelAssert.Leaves(inputs);
        var reference = SlidingWindowAttention.Naive(referenceLeaves[0], referenceLeaves[1], referenceLeaves[2], window);
        var referenceGrads = KernelAssert.Gradients(new[] { reference }, new[] { weight }, referenceLeaves);
        var leaves = KernelAssert.Leaves(inputs);
        var actual = fast(leaves[0], leaves[1], leaves[2]);
        var grads = KernelAssert.Gradients(new[] { actual }, new[] { weight }, leaves);
        string tag = $"T={tokens} window={window}";
        KernelAssert.Close(actual, reference, $"{tag} output");
        string[] names = { "q", "k", "v" };
        for (int i = 0; i < 3; i++) KernelAssert.Close(grads[i], referenceGrads[i], $"{tag} grad {names[i]}");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Masked_MatchesNaiveOutputsAndGradients(long tokens, int window) =>
        AssertMatchesNaive((q, k, v) => SlidingWindowAttention.Masked(q, k, v, window), tokens, window);

    [Theory]
    [InlineData(200L, 16, 16L)]   // blocks of 16: every block but the first needs keys from the block before
    [InlineData(200L, 150, 16L)]  // window much longer than a block: the first blocks see left padding
    [InlineData(200L, 64, 7L)]    // blocks much shorter than the window, ragged last block
    [InlineData(130L, 5, 100L)]   // two blocks, the second ragged
    [InlineData(200L, 16, 64L)]   // the default block for window 16
    [InlineData(65L, 1, 64L)]
    public void BlockedPath_MatchesNaiveForSeveralQueryBlocks(long tokens, int window, long block) =>
        AssertMatchesNaive((q, k, v) => SlidingWindowAttention.MaskedCore(q, k, v, window, block, denseUpTo: 0), tokens, window);

    [Theory]
    [InlineData(1L, 1)]
    [InlineData(65L, 65)]
    [InlineData(65L, 300)]
    [InlineData(200L, 200)]
    [InlineData(200L, 1000)]
    public void WindowAtLeastT_EqualsFullCausalAttention(long tokens, int window)
    {
        using var scope = torch.NewDisposeScope();
        var inputs = Inputs(tokens, 3);
        var causal = nn.functional.scaled_dot_product_attention(inputs[0], inputs[1], inputs[2], is_casual: true);
        KernelAssert.Close(SlidingWindowAttention.Naive(inputs[0], inputs[1], inputs[2], window), causal, "naive");
        KernelAssert.Close(SlidingWindowAttention.Masked(inputs[0], inputs[1], inputs[2], window), causal, "masked");
    }

    [Fact]
    public void NaiveWindowOne_ReturnsTheValues()
    {
        using var scope = torch.NewDisposeScope();
        var inputs = Inputs(20, 4);
        KernelAssert.Close(SlidingWindowAttention.Naive(inputs[0], inputs[1], inputs[2], 1), inputs[2], "window 1", 1e-6);
    }

    [Fact]
    public void Naive_EqualsADenseBandedSoftmax()
    {
        using var scope = torch.NewDisposeScope();
        const long tokens = 40; const int window = 7;
        var (q, k, v) = (Inputs(tokens, 5)[0], Inputs(tokens, 5)[1], Inputs(tokens, 5)[2]);
        var position = torch.arange(tokens);
        var distance = position.reshape(tokens, 1) - position.reshape(1, tokens);     // t - j: [T, T]
        var allowed = distance.ge(0).logical_and(distance.lt(window));
        var scores = q.matmul(k.transpose(-1, -2)) / Math.Sqrt(HeadDim);              // [B, H, T, T]
        var expected = scores.masked_fill(allowed.logical_not(), double.NegativeInfinity).softmax(-1).matmul(v);
        KernelAssert.Close(SlidingWindowAttention.Naive(q, k, v, window), expected, "naive vs dense", 1e-5);
    }

    [Theory]
    [InlineData(1L, 70L, 16)]
    [InlineData(10L, 70L, 16)]
    [InlineData(16L, 70L, 16)]
    [InlineData(40L, 70L, 16)]
    [InlineData(5L, 30L, 1)]
    [InlineData(20L, 50L, 300)]
    public void PrefillThenSteps_EqualNaiveOverTheWholeSequence(long prefill, long tokens, int window)
    {
        using var scope = torch.NewDisposeScope();
        var (q, k, v) = (Inputs(tokens, 6)[0], Inputs(tokens, 6)[1], Inputs(tokens, 6)[2]);
        var expected = SlidingWindowAttention.Naive(q, k, v, window);
        using var cache = new SlidingWindowCache(Batch, Heads, window, HeadDim);
        var outputs = new List<Tensor>
        {
            SlidingWindowAttention.Prefill(q.narrow(2, 0, prefill), k.narrow(2, 0, prefill), v.narrow(2, 0, prefill), cache),
        };
        for (long t = prefill; t < tokens; t++)
        {
            outputs.Add(SlidingWindowAttention.Step(q.narrow(2, t, 1), k.narrow(2, t, 1), v.narrow(2, t, 1), cache));
            Assert.Equal(t + 1, cache.Count);
            Assert.Equal(Math.Min(t + 1, window), cache.Length);
        }
        KernelAssert.Close(torch.cat(outputs, 2), expected, "prefill + steps");
    }

    [Fact]
    public void Cache_KeepsTheLastWindowTokensInTheirRingSlots()
    {
        using var scope = torch.NewDisposeScope();
        const int window = 16;
        var (_, k, v) = (Inputs(40, 8)[0], Inputs(40, 8)[1], Inputs(40, 8)[2]);
        using var cache = new SlidingWindowCache(Batch, Heads, window, HeadDim);
        Assert.Equal(2 * Batch * Heads * window * HeadDim * 4, cache.Bytes);
        cache.Append(k.narrow(2, 0, 3), v.narrow(2, 0, 3));
        cache.Append(k.narrow(2, 3, 30), v.narrow(2, 3, 30));      // longer than the window: keeps tokens 17..32
        for (long t = 33; t < 40; t++) cache.Append(k.narrow(2, t, 1), v.narrow(2, t, 1));
        Assert.Equal(40, cache.Count);
        var (keys, values) = cache.Valid();
        for (long p = 40 - window; p < 40; p++)
        {
            KernelAssert.Close(keys.select(2, p % window), k.select(2, p), $"key of token {p}", 0);
            KernelAssert.Close(values.select(2, p % window), v.select(2, p), $"value of token {p}", 0);
        }
        cache.Reset();
        Assert.Equal(0, cache.Count);
        Assert.Equal(0, cache.Length);
        Assert.Throws<InvalidOperationException>(() => SlidingWindowAttention.Step(k.narrow(2, 0, 1), cache));
    }

    [Fact]
    public void Prefill_RejectsANonEmptyCache_AndAppendRejectsWrongShapes()
    {
        using var scope = torch.NewDisposeScope();
        var (q, k, v) = (Inputs(10, 9)[0], Inputs(10, 9)[1], Inputs(10, 9)[2]);
        using var cache = new SlidingWindowCache(Batch, Heads, 4, HeadDim);
        SlidingWindowAttention.Prefill(q, k, v, cache);
        Assert.Throws<InvalidOperationException>(() => SlidingWindowAttention.Prefill(q, k, v, cache));
        Assert.Throws<ArgumentException>(() => cache.Append(k.narrow(3, 0, 8), v.narrow(3, 0, 8)));
    }

    [Fact]
    public void Kernels_LeaveNoLiveTensorsBehind()
    {
        using var scope = torch.NewDisposeScope();
        var (q, k, v) = (Inputs(100, 10)[0], Inputs(100, 10)[1], Inputs(100, 10)[2]);
        var (qp, kp, vp) = (q.narrow(2, 0, 50), k.narrow(2, 0, 50), v.narrow(2, 0, 50));
        var (qs, ks, vs) = (q.narrow(2, 50, 1), k.narrow(2, 50, 1), v.narrow(2, 50, 1));
        var statistics = DisposeScopeManager.Statistics;
        long before = statistics.ThreadTotalLiveCount;
        using (var cache = new SlidingWindowCache(Batch, Heads, 16, HeadDim))
        {
            SlidingWindowAttention.Masked(q, k, v, 16).Dispose();
            SlidingWindowAttention.Naive(q, k, v, 16).Dispose();
            SlidingWindowAttention.Prefill(qp, kp, vp, cache).Dispose();
            SlidingWindowAttention.Step(qs, ks, vs, cache).Dispose();
            Assert.Equal(before + 2, statistics.ThreadTotalLiveCount); // the cache's two buffers
        }
        Assert.Equal(before, statistics.ThreadTotalLiveCount);
    }
}
