using HybridDistill.Attention;
using TorchSharp;
using static TorchSharp.torch;

namespace HybridDistill.Tests.Attention;

public class GatedLinearAttentionTests
{
    const long Batch = 2, Heads = 2, KeyDim = 16, ValueDim = 16;
    static readonly string[] Names = { "q", "k", "v", "gk", "initialState" };

    /// <summary>
    /// Per-step log decay regimes and the sub-chunk scheme each one selects (chunk 64): weak and realistic
    /// (logsigmoid(x)/16): whole chunk; medium: 16; strong (~ -5): 8; severe (~ -10): 4; extreme: pairwise.
    /// </summary>
    static Tensor Decay(string regime, long tokens)
    {
        var jitter = torch.rand(Batch, Heads, tokens, KeyDim) + 0.5; // [0.5, 1.5)
        return regime switch
        {
            "weak" => jitter * -1e-3,
            "realistic" => nn.functional.logsigmoid(torch.randn(Batch, Heads, tokens, KeyDim) * 2) / 16,
            "medium" => jitter * -2,   // chunk spans > 60, 16-token spans <= 48
            "strong" => jitter * -5,   // 16-token spans ~80 > 60, 8-token spans <= 60
            "severe" => jitter * -10,  // 8-token spans ~80, 4-token spans <= 60
            "extreme" => jitter * -60, // 4-token spans ~240: pairwise diagonal blocks
            _ => throw new ArgumentException(regime),
        };
    }

    static Tensor[] Inputs(long tokens, string regime, int seed)
    {
        torch.manual_seed(seed);
        var q = torch.randn(Batch, Heads, tokens, KeyDim) * Math.Pow(KeyDim, -0.5);
        var k = torch.randn(Batch, Heads, tokens, KeyDim);
        var v = torch.randn(Batch, Heads, tokens, ValueDim);
        var gk = Decay(regime, tokens);
        var state = torch.randn(Batch, Heads, KeyDim, ValueDim);
        return new[] { q, k, v, gk, state };
    }

    /// <summary>Outputs, final state and gradients of every input of one kernel run.</summary>
    static (Tensor Output, Tensor State, Tensor[] Grads) Run(
        Func<Tensor, Tensor, Tensor, Tensor, Tensor, (Tensor, Tensor)> kernel, Tensor[] inputs, Tensor[] weights)
    {
        var leaves = KernelAssert.Leaves(inputs);
        var (output, state) = kernel(leaves[0], leaves[1], leaves[2], leaves[3], leaves[4]);
        var grads = KernelAssert.Gradients(new[] { output, state }, weights, leaves);
        return (output.detach(), state.detach(), grads);
    }

    static void AssertMatchesNaive(Func<Tensor, Tensor, Tensor, Tensor, Tensor, (Tensor, Tensor)> fast, long tokens, string regime, int seed = 1)
    {
        using var scope = torch.NewDisposeScope();
        var inputs = Inputs(tokens, regime, seed);
        var weights = new[] { torch.randn(Batch, Heads, tokens, ValueDim), torch.randn(Batch, Heads, KeyDim, ValueDim) };
        var reference = Run((q, k, v, g, s) => GatedLinearAttention.Naive(q, k, v, g, s), inputs, weights);
        var actual = Run(fast, inputs, weights);
        string tag = $"T={tokens} {regime}";
        KernelAssert.Close(actual.Output, reference.Output, $"{tag} output");
        KernelAssert.Close(actual.State, reference.State, $"{tag} final state");
        for (int i = 0; i < Names.Length; i++)
            KernelAssert.Close(actual.Grads[i], reference.Grads[i], $"{tag} grad {Names[i]}");
    }

    public static TheoryData<long, string> Cases()
    {
        var data = new TheoryData<long, string>();
        foreach (var tokens in new long[] { 1, 63, 64, 65, 200 })
            foreach (var regime in new[] { "weak", "realistic", "medium", "strong" })
                data.Add(tokens, regime);
        data.Add(65, "severe");
        data.Add(200, "severe");
        data.Add(65, "extreme");
        data.Add(200, "extreme");
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Chunked_MatchesNaiveOutputsStateAndGradients(long tokens, string regime) =>
        AssertMatchesNaive((q, k, v, g, s) => GatedLinearAttention.Chunked(q, k, v, g, s), tokens, regime);

    [Theory]
    [InlineData(64L, false, "realistic")]
    [InlineData(16L, false, "realistic")]
    [InlineData(16L, false, "medium")]
    [InlineData(8L, false, "strong")]
    [InlineData(4L, false, "severe")]
    [InlineData(16L, true, "realistic")]
    [InlineData(8L, true, "strong")]
    [InlineData(8L, true, "extreme")]
    [InlineData(4L, true, "extreme")]
    [InlineData(64L, true, "medium")]
    public void EveryIntraChunkScheme_MatchesNaive(long sub, bool pairwise, string regime)
    {
        foreach (var tokens in new long[] { 65, 200 })
            AssertMatchesNaive((q, k, v, g, s) => GatedLinearAttention.ChunkedCore(q, k, v, g, s, 64, (sub, pairwise)), tokens, regime);
    }

    [Theory]
    [InlineData(8)]
    [InlineData(16)]
    [InlineData(32)]
    [InlineData(128)]
    public void OtherChunkSizes_MatchNaive(int chunkSize)
    {
        AssertMatchesNaive((q, k, v, g, s) => GatedLinearAttention.Chunked(q, k, v, g, s, chunkSize), 65, "realistic");
        AssertMatchesNaive((q, k, v, g, s) => GatedLinearAttention.Chunked(q, k, v, g, s, chunkSize), 65, "strong");
    }

    [Theory]
    [InlineData(1L, "realistic")]
    [InlineData(65L, "realistic")]
    [InlineData(200L, "weak")]
    [InlineData(200L, "strong")]
    public void StepLoop_MatchesNaive(long tokens, string regime) =>
        AssertMatchesNaive((q, k, v, g, s) =>
        {
            var state = s;
            var outputs = new List<Tensor>();
            for (long t = 0; t < tokens; t++)
            {
                var (output, next) = GatedLinearAttention.Step(q.select(2, t), k.select(2, t), v.select(2, t), g.select(2, t), state);
                outputs.Add(output);
                state = next;
            }
            return (torch.stack(outputs, 2), state); // T x [B, H, Dv] -> [B, H, T, Dv]
        }, tokens, regime);

    [Theory]
    [InlineData("realistic")]
    [InlineData("strong")]
    public void TwoCallsWithCarriedState_EqualOnePass(string regime)
    {
        using var scope = torch.NewDisposeScope();
        var inputs = Inputs(200, regime, 7);
        var (whole, wholeState) = GatedLinearAttention.Chunked(inputs[0], inputs[1], inputs[2], inputs[3], inputs[4]);
        foreach (var split in new long[] { 1, 64, 77 })
        {
            Tensor Part(Tensor t, long start, long length) => t.narrow(2, start, length);
            var (first, middle) = GatedLinearAttention.Chunked(
                Part(inputs[0], 0, split), Part(inputs[1], 0, split), Part(inputs[2], 0, split), Part(inputs[3], 0, split), inputs[4]);
            long rest = 200 - split;
            var (second, final) = GatedLinearAttention.Chunked(
                Part(inputs[0], split, rest), Part(inputs[1], split, rest), Part(inputs[2], split, rest), Part(inputs[3], split, rest), middle);
            KernelAssert.Close(torch.cat(new[] { first, second }, 2), whole, $"split {split} output");
            KernelAssert.Close(final, wholeState, $"split {split} state");
        }
        var (naive, naiveState) = GatedLinearAttention.Naive(inputs[0], inputs[1], inputs[2], inputs[3], inputs[4]);
        KernelAssert.Close(whole, naive, "one pass vs naive output");
        KernelAssert.Close(wholeState, naiveState, "one pass vs naive state");
    }

    [Fact]
    public void WithoutInitialState_StartsFromZero()
    {
        using var scope = torch.NewDisposeScope();
        var inputs = Inputs(70, "realistic", 3);
        var zero = torch.zeros(Batch, Heads, KeyDim, ValueDim);
        var (expected, expectedState) = GatedLinearAttention.Naive(inputs[0], inputs[1], inputs[2], inputs[3], zero);
        var (naive, naiveState) = GatedLinearAttention.Naive(inputs[0], inputs[1], inputs[2], inputs[3]);
        var (chunked, chunkedState) = GatedLinearAttention.Chunked(inputs[0], inputs[1], inputs[2], inputs[3]);
        KernelAssert.Close(naive, expected, "naive output");
        KernelAssert.Close(naiveState, expectedState, "naive state");
        KernelAssert.Close(chunked, expected, "chunked output");
        KernelAssert.Close(chunkedState, expectedState, "chunked state");
    }

    [Fact]
    public void OneTokenNaive_EqualsTheFormula()
    {
        using var scope = torch.NewDisposeScope();
        var inputs = Inputs(1, "realistic", 5);
        var (q, k, v, gk, s0) = (inputs[0].select(2, 0), inputs[1].select(2, 0), inputs[2].select(2, 0), inputs[3].select(2, 0), inputs[4]);
        var expectedState = gk.exp().unsqueeze(-1) * s0 + k.unsqueeze(-1) * v.unsqueeze(-2);   // [B, H, Dk, Dv]
        var expected = (q.unsqueeze(-1) * expectedState).sum(2);                                 // sum over Dk -> [B, H, Dv]
        var (output, state) = GatedLinearAttention.Naive(inputs[0], inputs[1], inputs[2], inputs[3], s0);
        KernelAssert.Close(output.select(2, 0), expected, "output", 1e-6);
        KernelAssert.Close(state, expectedState, "state", 1e-6);
    }

    [Theory]
    [InlineData("weak", 64L, false)]
    [InlineData("realistic", 64L, false)]
    [InlineData("medium", 16L, false)]
    [InlineData("strong", 8L, false)]
    [InlineData("severe", 4L, false)]
    [InlineData("extreme", 8L, true)]
    public void Scheme_FollowsTheDecayStrength(string regime, long sub, bool pairwise)
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(11);
        Assert.Equal((sub, pairwise), GatedLinearAttention.ChooseSubChunks(Decay(regime, 256), 64));
    }

    [Fact]
    public void Chunked_RejectsPositiveLogDecay()
    {
        using var scope = torch.NewDisposeScope();
        var inputs = Inputs(10, "realistic", 2);
        var gk = inputs[3].clone();
        gk[0, 0, 3, 2] = torch.tensor(0.5f);
        Assert.Throws<ArgumentException>(() => GatedLinearAttention.Chunked(inputs[0], inputs[1], inputs[2], gk, inputs[4]));
    }

    [Fact]
    public void Kernels_LeaveNoLiveTensorsBehind()
    {
        using var scope = torch.NewDisposeScope();
        var inputs = Inputs(100, "strong", 10);
        var statistics = DisposeScopeManager.Statistics;
        long before = statistics.ThreadTotalLiveCount;
        var (o1, s1) = GatedLinearAttention.Chunked(inputs[0], inputs[1], inputs[2], inputs[3], inputs[4]);
        var (o2, s2) = GatedLinearAttention.Naive(inputs[0], inputs[1], inputs[2], inputs[3]);
        var (o3, s3) = GatedLinearAttention.Step(inputs[0].select(2, 0), inputs[1].select(2, 0), inputs[2].select(2, 0), inputs[3].select(2, 0), inputs[4]);
        Assert.Equal(before + 6 + 4, statistics.ThreadTotalLiveCount); // 6 results + 4 select views
        foreach (var t in new[] { o1, s1, o2, s2, o3, s3 }) t.Dispose();
        Assert.Equal(before + 4, statistics.ThreadTotalLiveCount);
    }
}
