using HybridDistill.Attention;
using static TorchSharp.torch;

namespace HybridDistill.Tests.Attention;

/// <summary>One decoding token's attention over the raw KV cache against the cache append and SDPA it replaces.</summary>
public class SoftmaxAttentionDecodeTests
{
    // GQA 6:2 with a head size that is no multiple of the SIMD width, lengths 1 and odd; MHA 8 heads of 64 (a register
    // strip of eight vectors in the weighted sum of values) at a length that splits the heads between the cores (2 x 8 x 520 x 64
    // multiply-adds >= 2^18).
    public static TheoryData<int, int, int, int, int> Shapes => new()
    {
        { 2, 6, 2, 12, 1 },
        { 2, 6, 2, 12, 7 },
        { 1, 6, 2, 12, 301 },
        { 1, 8, 8, 64, 520 },
        { 3, 4, 1, 20, 97 },
        { 1, 4, 2, 40, 33 },                     // five 8-float vectors: a strip of four in registers, the fifth by rows
        { 1, 2, 2, 104, 45 },                    // thirteen: strips of eight and four, the last by rows
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void AttendToken_EqualsAppendThenSdpa(int batch, int heads, int kvHeads, int d, int length)
    {
        using var scope = NewDisposeScope();
        var generator = new Generator(31);
        var pastK = randn([batch, kvHeads, length - 1, d], generator: generator);             // [B, Hkv, L-1, D]
        var pastV = randn([batch, kvHeads, length - 1, d], generator: generator);
        var q = randn([batch, heads, 1, d], generator: generator) * 2;                        // [B, H, 1, D]: peaked softmax too
        var k = randn([batch, kvHeads, 1, d], generator: generator);
        var v = randn([batch, kvHeads, 1, d], generator: generator);
        using var fastCache = new KvCache(batch, kvHeads, length + 3, d, CPU);
        using var referenceCache = new KvCache(batch, kvHeads, length + 3, d, CPU);
        fastCache.Append(pastK, pastV);
        var (keys, values) = referenceCache.Append(cat([pastK, k], 2), cat([pastV, v], 2));  // [B, Hkv, L, D]
        var reference = SoftmaxAttention.Attend(q, keys, values, length - 1);                 // [B, H, 1, D]

        using var _ = no_grad();
        Assert.True(SoftmaxAttention.CanAttendToken(q, k, v, fastCache));
        var fast = SoftmaxAttention.AttendToken(q, k, v, fastCache);
        KernelAssert.Close(fast, reference, $"B={batch} H={heads}:{kvHeads} D={d} L={length}", tolerance: 1e-5);
        Assert.Equal(length, fastCache.Length);
        var (fastKeys, fastValues) = fastCache.Stores;
        Assert.True(fastKeys.narrow(2, 0, length).equal(keys).all().item<bool>(), "the token's keys land at position L-1");
        Assert.True(fastValues.narrow(2, 0, length).equal(values).all().item<bool>(), "the token's values land at position L-1");
    }

    [Fact]
    public void CanAttendToken_RefusesAutogradAndFullCache()
    {
        using var scope = NewDisposeScope();
        var q = randn([1, 2, 1, 8]);
        var k = randn([1, 2, 1, 8]);
        using var cache = new KvCache(1, 2, 2, 8, CPU);
        Assert.False(SoftmaxAttention.CanAttendToken(q, k, k, cache), "autograd on: the tensor path must serve");
        using var _ = no_grad();
        Assert.True(SoftmaxAttention.CanAttendToken(q, k, k, cache));
        Assert.False(SoftmaxAttention.CanAttendToken(q.to(float64), k, k, cache), "fp64 query");
        cache.Append(randn([1, 2, 2, 8]), randn([1, 2, 2, 8]));
        Assert.False(SoftmaxAttention.CanAttendToken(q, k, k, cache), "full cache: Append names the overflow");
    }
}
