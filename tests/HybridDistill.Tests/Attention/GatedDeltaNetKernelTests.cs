using HybridDistill.Attention;
using TorchSharp;
using static TorchSharp.torch;

namespace HybridDistill.Tests.Attention;

// Chunked and step paths against the naive per-token loop (method.md section 3): outputs, final state and the
// gradients of q, k, v, beta, g and the initial state, each within max|fast - naive| <= 1e-4 * max(1, max|naive|).
public sealed class GatedDeltaNetKernelTests
{
    const long B = 2, H = 2, Dk = 16, Dv = 16;
    const double Tolerance = 1e-4;

    public enum Gates { Moderate, NearOne, Strong }

    /// <summary>Inputs in fp64 (q, k L2-normalised, q scaled), made leaves with <see cref="Leaves"/>.</summary>
    sealed record Inputs(Tensor Q, Tensor K, Tensor V, Tensor Beta, Tensor G, Tensor? State);

    static Inputs MakeInputs(long length, Gates gates = Gates.Moderate, bool withState = true, int seed = 0)
    {
        manual_seed(seed);
        var q = nn.functional.normalize(randn(B, H, length, Dk, dtype: float64), dim: -1) * Math.Pow(Dk, -0.5);
        var k = nn.functional.normalize(randn(B, H, length, Dk, dtype: float64), dim: -1);
        var v = randn(B, H, length, Dv, dtype: float64);
        var beta = sigmoid(randn(B, H, length, dtype: float64));
        var u = rand(B, H, length, dtype: float64);
        var g = gates switch
        {
            Gates.NearOne => -1e-4 * (0.5 + u),
            Gates.Strong => -20.0 * (0.5 + u),
            _ => -0.3 * u,
        };
        var state = withState ? randn(B, H, Dk, Dv, dtype: float64) : null;
        return new Inputs(q, k, v, beta, g, state);
    }

    // Fresh leaf copies in the requested dtype, requiring grad.
    static Inputs Leaves(Inputs x, ScalarType dtype) => new(
        Leaf(x.Q, dtype), Leaf(x.K, dtype), Leaf(x.V, dtype), Leaf(x.Beta, dtype), Leaf(x.G, dtype),
        x.State is null ? null : Leaf(x.State, dtype));

    static Tensor Leaf(Tensor t, ScalarType dtype) => t.to(dtype).detach().clone().requires_grad_(true);

    delegate (Tensor Output, Tensor State) Kernel(Tensor q, Tensor k, Tensor v, Tensor beta, Tensor g, Tensor? state);

    /// <summary>Output, final state and gradients of a fixed random linear loss, all as fp64.</summary>
    static Dictionary<string, Tensor> Run(Kernel kernel, Inputs x, ScalarType dtype)
    {
        var leaf = Leaves(x, dtype);
        var (output, state) = kernel(leaf.Q, leaf.K, leaf.V, leaf.Beta, leaf.G, leaf.State);
        manual_seed(1234);
        var outputWeight = randn(output.shape, dtype: float64).to(dtype);
        var stateWeight = randn(state.shape, dtype: float64).to(dtype);
        var loss = (output * outputWeight).sum() + (state * stateWeight).sum();
        loss.backward();
        var result = new Dictionary<string, Tensor>
        {
            ["output"] = output.detach().to(float64),
            ["state"] = state.detach().to(float64),
            ["dq"] = leaf.Q.grad!.to(float64),
            ["dk"] = leaf.K.grad!.to(float64),
            ["dv"] = leaf.V.grad!.to(float64),
            ["dbeta"] = leaf.Beta.grad!.to(float64),
            ["dg"] = leaf.G.grad!.to(float64),
        };
        if (leaf.State is not null) result["dstate"] = leaf.State.grad!.to(float64);
        return result;
    }

    static void AssertClose(Dictionary<string, Tensor> reference, Dictionary<string, Tensor> fast, string what, double tolerance = Tolerance)
    {
        Assert.Equal(reference.Keys.OrderBy(s => s), fast.Keys.OrderBy(s => s));
        foreach (var (name, expected) in reference)
        {
            var actual = fast[name];
            Assert.Equal(expected.shape, actual.shape);
            Assert.False(actual.isnan().any().item<bool>(), $"{what}: {name} has NaN");
            Assert.False(expected.isnan().any().item<bool>(), $"{what}: reference {name} has NaN");
            double error = (actual - expected).abs().max().item<double>();
            double scale = Math.Max(1.0, expected.abs().max().item<double>());
            Assert.True(error <= tolerance * scale, $"{what}: {name} max|fast - naive| = {error:E3} > {tolerance:E0} * {scale:G4}");
        }
    }

    static (Tensor, Tensor) Naive(Tensor q, Tensor k, Tensor v, Tensor beta, Tensor g, Tensor? s) => GatedDeltaNet.Naive(q, k, v, beta, g, s);

    static Kernel ChunkedKernel(int chunkSize) => (q, k, v, beta, g, s) => GatedDeltaNet.Chunked(q, k, v, beta, g, s, chunkSize);

    static (Tensor, Tensor) StepLoop(Tensor q, Tensor k, Tensor v, Tensor beta, Tensor g, Tensor? s)
    {
        var state = s ?? zeros(B, H, Dk, Dv, dtype: q.dtype);
        var outputs = new List<Tensor>();
        for (long t = 0; t < q.shape[2]; t++)
        {
            var (o, next) = GatedDeltaNet.Step(q.select(2, t), k.select(2, t), v.select(2, t), beta.select(2, t), g.select(2, t), state);
            outputs.Add(o);
            state = next;
        }
        return (stack(outputs, 2), state);
    }

    [Theory]
    [InlineData(Gates.Moderate)]
    [InlineData(Gates.Strong)]
    public void NaiveFp32_MatchesNaiveFp64(Gates gates)
    {
        var x = MakeInputs(200, gates);
        var reference = Run(Naive, x, float64);
        AssertClose(reference, Run(Naive, x, float32), "naive fp32 vs fp64");
    }

    [Theory]
    [InlineData(1)]
    [InlineData(63)]
    [InlineData(64)]
    [InlineData(65)]
    [InlineData(200)]
    public void Chunked_MatchesNaive(int length)
    {
        var x = MakeInputs(length);
        var reference = Run(Naive, x, float32);
        AssertClose(reference, Run(ChunkedKernel(64), x, float32), $"chunked T={length}");
    }

    [Theory]
    [InlineData(65)]
    [InlineData(200)]
    public void ChunkedWithChunkSize16_MatchesNaive(int length)
    {
        var x = MakeInputs(length, seed: 7);
        var reference = Run(Naive, x, float32);
        AssertClose(reference, Run(ChunkedKernel(16), x, float32), $"chunked c=16 T={length}");
    }

    [Theory]
    [InlineData(48, 40, 64)]   // [U | W] is 88 wide: one full 64-column panel of the CPU products and a part
    [InlineData(8, 72, 13)]
    public void ChunkedWithKeyAndValueWidthsApart_MatchesNaive(int dk, int dv, int chunkSize)
    {
        // The chunked form keeps U [c, Dv] and W [c, Dk] side by side; distinct widths catch a swapped split.
        manual_seed(21);
        long length = 150;
        var x = new Inputs(
            nn.functional.normalize(randn(B, H, length, dk, dtype: float64), dim: -1) * Math.Pow(dk, -0.5),
            nn.functional.normalize(randn(B, H, length, dk, dtype: float64), dim: -1),
            randn(B, H, length, dv, dtype: float64),
            sigmoid(randn(B, H, length, dtype: float64)),
            -0.3 * rand(B, H, length, dtype: float64),
            randn(B, H, dk, dv, dtype: float64));
        AssertClose(Run(Naive, x, float32), Run(ChunkedKernel(chunkSize), x, float32), $"chunked Dk={dk} Dv={dv} c={chunkSize}");
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void ChunkedGradientsWhenOnlyOneResultIsUsed_MatchNaive(bool useOutput)
    {
        // The other result's gradient arrives undefined in the hand-written backward and must count as zero.
        var x = MakeInputs(130, seed: 9);
        Dictionary<string, Tensor> Grads(Kernel kernel)
        {
            var leaf = Leaves(x, float32);
            var (output, state) = kernel(leaf.Q, leaf.K, leaf.V, leaf.Beta, leaf.G, leaf.State);
            manual_seed(99);
            var used = useOutput ? output : state;
            (used * randn(used.shape)).sum().backward();
            // q does not reach the final state: the naive loop leaves its gradient undefined, i.e. zero.
            Tensor Grad(Tensor t) => t.grad is null ? zeros_like(t, dtype: float64) : t.grad.to(float64);
            return new Dictionary<string, Tensor>
            {
                ["dq"] = Grad(leaf.Q), ["dk"] = Grad(leaf.K), ["dv"] = Grad(leaf.V),
                ["dbeta"] = Grad(leaf.Beta), ["dg"] = Grad(leaf.G), ["dstate"] = Grad(leaf.State!),
            };
        }
        AssertClose(Grads(Naive), Grads(ChunkedKernel(64)), useOutput ? "output only" : "final state only");
    }

    [Fact]
    public void ChunkedWithoutGradients_EqualsChunkedWithGradients()
    {
        var x = MakeInputs(150, seed: 10);
        var leaf = Leaves(x, float32);
        var (o1, s1) = GatedDeltaNet.Chunked(leaf.Q, leaf.K, leaf.V, leaf.Beta, leaf.G, leaf.State);
        Assert.True(o1.requires_grad && s1.requires_grad);
        using (no_grad())
        {
            var (o2, s2) = GatedDeltaNet.Chunked(leaf.Q, leaf.K, leaf.V, leaf.Beta, leaf.G, leaf.State);
            Assert.False(o2.requires_grad);
            Assert.Equal(0.0, (o1.detach() - o2).abs().max().item<float>());
            Assert.Equal(0.0, (s1.detach() - s2).abs().max().item<float>());
        }
    }

    [Fact]
    public void ChunkedInFp64_AgreesWithNaiveToRoundoff()
    {
        // The algebra of steps 1-5 is exact: in fp64 the chunked form equals the loop to ~1e-12.
        var x = MakeInputs(200, seed: 3);
        AssertClose(Run(Naive, x, float64), Run(ChunkedKernel(64), x, float64), "chunked fp64", tolerance: 1e-10);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(63)]
    [InlineData(64)]
    [InlineData(65)]
    [InlineData(200)]
    public void StepLoop_MatchesNaive(int length)
    {
        var x = MakeInputs(length, seed: 1);
        var reference = Run(Naive, x, float32);
        AssertClose(reference, Run(StepLoop, x, float32), $"step loop T={length}");
    }

    [Theory]
    [InlineData(Gates.NearOne)]
    [InlineData(Gates.Strong)]
    public void ExtremeGates_MatchNaiveWithoutNaN(Gates gates)
    {
        var x = MakeInputs(200, gates, seed: 2);
        var reference = Run(Naive, x, float32);
        AssertClose(reference, Run(ChunkedKernel(64), x, float32), $"chunked {gates}");
        AssertClose(reference, Run(StepLoop, x, float32), $"step loop {gates}");
    }

    [Fact]
    public void WithoutAnInitialState_StartsFromZero()
    {
        var x = MakeInputs(100, withState: false, seed: 4);
        var reference = Run(Naive, x, float32);
        AssertClose(reference, Run(ChunkedKernel(64), x, float32), "chunked, no initial state");
        var withZeros = x with { State = zeros(B, H, Dk, Dv, dtype: float64) };
        var (o, s) = GatedDeltaNet.Naive(withZeros.Q, withZeros.K, withZeros.V, withZeros.Beta, withZeros.G, withZeros.State);
        Assert.True(o.allclose(reference["output"], rtol: 0, atol: 1e-5));
        Assert.True(s.allclose(reference["state"], rtol: 0, atol: 1e-5));
    }

    [Fact]
    public void SplittingTheSequenceAndCarryingTheState_EqualsOnePass()
    {
        var x = MakeInputs(200, seed: 5);
        var q = x.Q.to(float32); var k = x.K.to(float32); var v = x.V.to(float32);
        var beta = x.Beta.to(float32); var g = x.G.to(float32); var s0 = x.State!.to(float32);
        var (whole, finalState) = GatedDeltaNet.Chunked(q, k, v, beta, g, s0);
        (Tensor, Tensor, Tensor, Tensor, Tensor) Part(long start, long count) =>
            (q.narrow(2, start, count), k.narrow(2, start, count), v.narrow(2, start, count), beta.narrow(2, start, count), g.narrow(2, start, count));
        var a = Part(0, 77);
        var b = Part(77, 123);
        var (first, middleState) = GatedDeltaNet.Chunked(a.Item1, a.Item2, a.Item3, a.Item4, a.Item5, s0);
        var (second, endState) = GatedDeltaNet.Chunked(b.Item1, b.Item2, b.Item3, b.Item4, b.Item5, middleState);
        var joined = cat([first, second], 2);
        double scale = Math.Max(1.0, whole.abs().max().item<float>());
        Assert.True((joined - whole).abs().max().item<float>() <= Tolerance * scale);
        Assert.True((endState - finalState).abs().max().item<float>() <= Tolerance * Math.Max(1.0, finalState.abs().max().item<float>()));

        // Prefill with the chunked path, then decode the rest one token at a time with Step.
        var state = middleState;
        var decoded = new List<Tensor>();
        for (long t = 0; t < 123; t++)
        {
            var (o, next) = GatedDeltaNet.Step(b.Item1.select(2, t), b.Item2.select(2, t), b.Item3.select(2, t), b.Item4.select(2, t), b.Item5.select(2, t), state);
            decoded.Add(o);
            state = next;
        }
        Assert.True((stack(decoded, 2) - second).abs().max().item<float>() <= Tolerance * scale);
        Assert.True((state - finalState).abs().max().item<float>() <= Tolerance * Math.Max(1.0, finalState.abs().max().item<float>()));
    }

    [Fact]
    public void UnitLowerInverse_IsTheNeumannSeries()
    {
        manual_seed(11);
        // M = strictly_lower(diag(beta) K K^T * decay) for unit-norm keys, as in step 3; M is nilpotent (M^c = 0), so
        // (I + M)^-1 = I - M + M^2 - ... - M^(c-1) exactly: the reference, summed in fp64.
        var keys = nn.functional.normalize(randn(3, 5, 64, 32), dim: -1);
        var m = (rand(3, 5, 64, 1) * keys.matmul(keys.transpose(-1, -2))).tril(-1);
        var m64 = m.to(float64);
        var term = torch.eye(64, dtype: float64).expand_as(m64).clone();
        var series = term.clone();
        for (int power = 1; power < 64; power++)
        {
            term = term.matmul(m64).neg();
            series = series + term;
        }
        var inverse = GatedDeltaNet.InvertUnitLower(m);
        double scale = Math.Max(1.0, series.abs().max().item<double>());
        Assert.True((inverse.to(float64) - series).abs().max().item<double>() <= 1e-5 * scale);
        Assert.True((inverse.matmul(m + torch.eye(64)) - torch.eye(64)).abs().max().item<float>() < 1e-4);
    }

    [Theory]
    [InlineData(64)]
    [InlineData(13)]
    [InlineData(1)]
    public void UnitLowerInverse_RawForwardSubstitution_EqualsTheTriangularSolve(int c)
    {
        // the raw path (contiguous fp32 CPU, outside autograd) against libtorch's solve, with and without zero entries
        // (the padded tail of a last chunk has beta = 0), and (I + M) A = I
        manual_seed(12);
        var keys = nn.functional.normalize(randn(2, 3, c, 16), dim: -1);
        var m = (rand(2, 3, c, 1) * keys.matmul(keys.transpose(-1, -2))).tril(-1);             // [2, 3, c, c]
        m[0, 1] = m[0, 1] * (arange(c) < c / 2).to(float32).unsqueeze(-1);                    // rows past c/2: beta = 0
        using var _ = no_grad();
        var raw = GatedDeltaNet.InvertUnitLower(m);
        var solved = GatedDeltaNet.InvertUnitLowerBySolve(m);
        Assert.True((raw - solved).abs().max().item<float>() <= 1e-5f * Math.Max(1f, solved.abs().max().item<float>()));
        Assert.True((raw.matmul(m + torch.eye(c)) - torch.eye(c)).abs().max().item<float>() < 1e-4);
        Assert.True(raw.triu(1).eq(0).all().item<bool>(), "the inverse is lower triangular");
    }

    /// <summary>Tensors created minus tensors disposed on this thread (TorchSharp counts both per thread). Unlike the
    /// process-wide Tensor.TotalCount, it does not move when the finalizer thread disposes earlier tests' unreachable
    /// tensors, so it changes only with what this test's thread makes and frees, whenever the GC runs (with
    /// Tensor.TotalCount, even after a forced collection, the test failed once: 13319 expected, 10956 found).</summary>
    static long LiveTensorsOfThisThread() => DisposeScopeManager.Statistics.ThreadTotalLiveCount;

    [Fact]
    public void Kernels_FreeTheirIntermediates()
    {
        var x = MakeInputs(100, seed: 6);
        var q = x.Q.to(float32); var k = x.K.to(float32); var v = x.V.to(float32);
        var beta = x.Beta.to(float32); var g = x.G.to(float32); var s0 = x.State!.to(float32);
        var (q0, k0, v0, beta0, g0) = (q.select(2, 0), k.select(2, 0), v.select(2, 0), beta.select(2, 0), g.select(2, 0));
        long before = LiveTensorsOfThisThread();
        var (o1, s1) = GatedDeltaNet.Chunked(q, k, v, beta, g, s0);
        var (o2, s2) = GatedDeltaNet.Naive(q, k, v, beta, g, s0);
        var (o3, s3) = GatedDeltaNet.Step(q0, k0, v0, beta0, g0, s0);
        Assert.Equal(before + 6, LiveTensorsOfThisThread());
        foreach (var t in new[] { o1, s1, o2, s2, o3, s3 }) t.Dispose();
        Assert.Equal(before, LiveTensorsOfThisThread());

        // Forward and hand-written backward inside a caller's scope leave nothing behind but the leaves' gradients.
        var leaves = new[] { q, k, v, beta, g, s0 }.Select(t => t.detach().requires_grad_(true)).ToArray();
        before = LiveTensorsOfThisThread();
        using (var scope = NewDisposeScope())
        {
            var (o, s) = GatedDeltaNet.Chunked(leaves[0], leaves[1], leaves[2], leaves[3], leaves[4], leaves[5]);
            (o.sum() + s.sum()).backward();
        }
        Assert.Equal(before, LiveTensorsOfThisThread());
        Assert.All(leaves, t => Assert.True(t.grad is not null && t.grad.abs().sum().item<float>() > 0));
    }

    [Fact]
    public void MismatchedShapes_AreRejected()
    {
        var x = MakeInputs(10);
        Assert.Throws<ArgumentException>(() => GatedDeltaNet.Chunked(x.Q, x.K.narrow(2, 0, 9), x.V, x.Beta, x.G));
        Assert.Throws<ArgumentException>(() => GatedDeltaNet.Naive(x.Q, x.K, x.V, x.Beta.unsqueeze(-1), x.G));
        Assert.Throws<ArgumentException>(() => GatedDeltaNet.Step(x.Q.select(2, 0), x.K.select(2, 0), x.V.select(2, 0), x.Beta.select(2, 0), x.G.select(2, 0), zeros(B, H, Dk, Dv + 1)));
    }

    [Theory]
    [InlineData(Gates.Moderate, 16, 16)]
    [InlineData(Gates.NearOne, 16, 16)]
    [InlineData(Gates.Strong, 16, 16)]
    [InlineData(Gates.Moderate, 12, 20)]     // not a multiple of the SIMD width: the scalar tail
    public void StepInPlace_MatchesStep_OverSeveralTokens(Gates gates, int dk, int dv)
    {
        manual_seed(7);
        using var _ = no_grad();
        var state = randn(B, H, dk, dv);
        var reference = state.clone();
        for (int t = 0; t < 6; t++)
        {
            var q = nn.functional.normalize(randn(B, H, dk), dim: -1) * Math.Pow(dk, -0.5);
            var k = nn.functional.normalize(randn(B, H, dk), dim: -1);
            var v = randn(B, H, dv);
            var beta = sigmoid(randn(B, H));
            var u = rand(B, H);
            var g = gates switch { Gates.NearOne => -1e-4 * (0.5 + u), Gates.Strong => -20.0 * (0.5 + u), _ => -0.3 * u };
            var (expected, next) = GatedDeltaNet.Step(q, k, v, beta, g, reference);
            var output = GatedDeltaNet.StepInPlace(q, k, v, beta, g, state);
            reference = next;
            foreach (var (name, fast, slow) in new[] { ("output", output, expected), ("state", state, reference) })
            {
                double error = (fast - slow).abs().max().item<float>();
                double scale = Math.Max(1.0, slow.abs().max().item<float>());
                Assert.True(error <= Tolerance * scale, $"token {t} {name}: max|in place - step| = {error:E3}");
            }
        }
        Assert.False(state.isnan().any().item<bool>());
    }
}
