// Gated linear attention (GLA, as in flash-linear-attention's GLA layer): kernels as pure tensor functions.
//
// Per batch b and head h (q already scaled by Dk^-1/2, gk_t <= 0 is a per-key-channel log decay):
//   S_t = diag(exp(gk_t)) S_{t-1} + k_t v_t^T          S: [Dk, Dv]
//   o_t = S_t^T q_t                                      o: [Dv]
// Shapes: q, k, gk [B, H, T, Dk]; v [B, H, T, Dv]; state [B, H, Dk, Dv]; output [B, H, T, Dv].
//
// Chunked form. Split T into chunks of C tokens; inside a chunk let b_t = gk_0 + ... + gk_t and S0 the state
// before the chunk:
//   o_t = (q_t * exp(b_t))^T S0 + sum_{j<=t} [ sum_d q_td k_jd exp(b_td - b_jd) ] v_j
//   S_C = diag(exp(b_{C-1})) S0 + sum_j (k_j * exp(b_{C-1} - b_j)) v_j^T
// The inter-chunk terms only ever exponentiate sums of gk (<= 0): safe. The intra-chunk scores need a pairwise,
// per-channel decay; writing exp(b_t - b_j) = exp(b_t - r) * exp(r - b_j) turns them into one matmul, but for
// r <= b_j the second factor grows like exp(total decay since r) and overflows fp32 once that passes ~88.
// Scheme (exact for any decay): cut the chunk into sub-chunks of s tokens and factor through sub-chunk edges,
//   score(t in I, j in J) = [q_t exp(decay from start of I through t)] . [exp(E_IJ) * k_j exp(decay after j to end of J)]
// with E_IJ = decay strictly between J and I (<= 0) for J < I, and E_II = -(total decay of I) (>= 0) for the
// diagonal block. Every factor except exp(E_II) is <= 1 (no overflow; underflow only where the true product is
// below fp32 range anyway).
// - s is the largest of C, 16, 8, 4 for which every sub-chunk's span (-E_II) is <= MaxFactoredExponent (60:
//   factors within [e^-60, e^60], far from fp32 limits, with room for the gradients). Cost: the scaled keys are a
//   [C/s, C, Dk] tensor per chunk, so s = C (the usual case: gk of -0.01..-0.9 per step) is cheapest.
// - if even 4-token spans exceed 60 (gk below about -15 per step), s = 8 and the diagonal blocks are computed
//   pairwise, exactly, from exp(b_t - b_j) for j < t, one sub-diagonal t - j = d at a time (7 batched steps).
// Precision: exponents are sub-chunk-local cumulative sums, their differences inside one sub-chunk, or sums of
// whole sub-chunk totals (a 0/1 matmul), never differences of long cumulative sums, so a strong decay over the
// chunk does not cost digits (the error of an exponent is about one ulp of one sub-chunk's span).
// Everything is batched over chunks; only the inter-chunk state recurrence loops (T / C steps).

using TorchSharp;
using static TorchSharp.torch;

namespace HybridDistill.Attention;

public sealed partial class GatedLinearAttention
{
    /// <summary>Sub-chunk lengths tried (largest first) when a whole chunk cannot be factored safely.</summary>
    static readonly long[] SubChunkSizes = { 16, 8, 4 };

    /// <summary>Sub-chunk length of the pairwise fallback (s - 1 sub-diagonals plus scaled keys [C/s, C, Dk]).</summary>
    const long PairwiseSubChunkSize = 8;

    /// <summary>Largest log-decay span (sum of -gk over a block) for which exp(b_t - r) * exp(r - b_j) is used.</summary>
    internal const double MaxFactoredExponent = 60;

    /// <summary>
    /// Reference: the per-token recurrence in the input dtype (fp32), differentiable. q, k, gk [B, H, T, Dk] (q
    /// already scaled), v [B, H, T, Dv], initialState [B, H, Dk, Dv] (zeros when null). Returns the output
    /// [B, H, T, Dv] and the state after the last token [B, H, Dk, Dv].
    /// </summary>
    public static (Tensor Output, Tensor FinalState) Naive(Tensor q, Tensor k, Tensor v, Tensor gk, Tensor? initialState = null)
    {
        var (batch, heads, tokens, keyDim, valueDim) = CheckSequenceShapes(q, k, v, gk, initialState);
        using var scope = torch.NewDisposeScope();
        var state = initialState ?? torch.zeros(batch, heads, keyDim, valueDim, dtype: q.dtype, device: q.device);
        // unbind, not select per step: select's backward writes a full-size zero gradient per token (O(T^2)).
        var (qs, ks, vs, gks) = (q.unbind(2), k.unbind(2), v.unbind(2), gk.unbind(2)); // [B, H, T, D] -> T x [B, H, D]
        var outputs = new Tensor[tokens];
        for (long t = 0; t < tokens; t++)
        {
            var previous = state;
            using (var stepScope = torch.NewDisposeScope())
            {
                var (output, next) = StepCore(qs[t], ks[t], vs[t], gks[t], state);
                (outputs[t], state) = stepScope.MoveToOuter(output, next);
            }
            // Only the handle goes: autograd keeps its own reference to the tensor it needs.
            if (!ReferenceEquals(previous, initialState)) previous.Dispose();
        }
        var all = torch.stack(outputs, 2); // T x [B, H, Dv] -> [B, H, T, Dv]
        return scope.MoveToOuter(all, state);
    }

    /// <summary>
    /// One decoding step: q, k, gk [B, H, Dk], v [B, H, Dv], state [B, H, Dk, Dv]. Returns the output [B, H, Dv]
    /// and the new state (the input state is not modified).
    /// </summary>
    public static (Tensor Output, Tensor NewState) Step(Tensor q, Tensor k, Tensor v, Tensor gk, Tensor state)
    {
        if (q.dim() != 3 || v.dim() != 3 || state.dim() != 4)
            throw new ArgumentException($"GLA Step expects q, k, gk [B, H, Dk], v [B, H, Dv], state [B, H, Dk, Dv]; got q {Shape(q)}, v {Shape(v)}, state {Shape(state)}.");
        long batch = q.shape[0], heads = q.shape[1], keyDim = q.shape[2], valueDim = v.shape[2];
        RequireShape(k, "k", batch, heads, keyDim);
        RequireShape(gk, "gk", batch, heads, keyDim);
        RequireShape(v, "v", batch, heads, valueDim);
        RequireShape(state, "state", batch, heads, keyDim, valueDim);
        using var scope = torch.NewDisposeScope();
        var (output, next) = StepCore(q, k, v, gk, state);
        return scope.MoveToOuter(output, next);
    }

    static (Tensor Output, Tensor NewState) StepCore(Tensor q, Tensor k, Tensor v, Tensor gk, Tensor state)
    {
        var decay = gk.exp().unsqueeze(-1);                               // [B, H, Dk] -> [B, H, Dk, 1]
        var update = k.unsqueeze(-1) * v.unsqueeze(-2);                   // [B, H, Dk, 1] * [B, H, 1, Dv] -> [B, H, Dk, Dv]
        var next = decay * state + update;                                // [B, H, Dk, Dv]
        var output = q.unsqueeze(-2).matmul(next).squeeze(-2);            // [B, H, 1, Dk] @ [B, H, Dk, Dv] -> [B, H, Dv]
        return (output, next);
    }

    /// <summary>
    /// Chunked form of <see cref="Naive"/> (same arguments and results), differentiable through autograd. T is
    /// padded to a multiple of <paramref name="chunkSize"/> (a multiple of 16, or at most 16). gk must be <= 0.
    /// </summary>
    public static (Tensor Output, Tensor FinalState) Chunked(Tensor q, Tensor k, Tensor v, Tensor gk, Tensor? initialState = null, int chunkSize = 64)
        => ChunkedCore(q, k, v, gk, initialState, chunkSize, null);

    /// <param name="scheme">Sub-chunk length and pairwise diagonal; null picks from the decays (tests force one).</param>
    internal static (Tensor Output, Tensor FinalState) ChunkedCore(Tensor q, Tensor k, Tensor v, Tensor gk, Tensor? initialState, int chunkSize, (long Sub, bool Pairwise)? scheme)
    {
        var (batch, heads, tokens, keyDim, valueDim) = CheckSequenceShapes(q, k, v, gk, initialState);
        if (chunkSize < 1 || (chunkSize > 16 && chunkSize % 16 != 0))
            throw new ArgumentOutOfRangeException(nameof(chunkSize), chunkSize, "GLA chunk size must be a multiple of 16 or at most 16.");
        using var scope = torch.NewDisposeScope();

        if (gk.max().item<float>() > 0)
            throw new ArgumentException("GLA gk is a log decay and must be <= 0 everywhere (use logsigmoid(...) / normalizer).", nameof(gk));

        long chunk = chunkSize, chunks = (tokens + chunk - 1) / chunk, padded = chunks * chunk;
        if (padded != tokens)
        {
            // Zero padding at the end: k = v = 0 adds nothing to the state and gk = 0 does not decay it.
            var pad = new long[] { 0, 0, 0, padded - tokens };
            q = nn.functional.pad(q, pad);   // [B, H, T, Dk] -> [B, H, N*C, Dk]
            k = nn.functional.pad(k, pad);   // [B, H, T, Dk] -> [B, H, N*C, Dk]
            v = nn.functional.pad(v, pad);   // [B, H, T, Dv] -> [B, H, N*C, Dv]
            gk = nn.functional.pad(gk, pad); // [B, H, T, Dk] -> [B, H, N*C, Dk]
        }

        var (sub, pairwiseDiagonal) = scheme ?? ChooseSubChunks(gk, chunk);
        if (chunk % sub != 0) throw new ArgumentException($"Sub-chunk {sub} does not divide chunk {chunk}.");
        long subs = chunk / sub;

        var qSub = q.reshape(batch, heads, chunks, subs, sub, keyDim);    // [B, H, N*C, Dk] -> [B, H, N, nS, s, Dk]
        var kSub = k.reshape(batch, heads, chunks, subs, sub, keyDim);    // [B, H, N*C, Dk] -> [B, H, N, nS, s, Dk]
        var vChunk = v.reshape(batch, heads, chunks, chunk, valueDim);   // [B, H, N*C, Dv] -> [B, H, N, C, Dv]
        var gkSub = gk.reshape(batch, heads, chunks, subs, sub, keyDim);  // [B, H, N*C, Dk] -> [B, H, N, nS, s, Dk]

        // Log decay from the start of t's sub-chunk through t (inclusive), and each sub-chunk's total.
        var local = gkSub.cumsum(4);                                       // [B, H, N, nS, s, Dk]
        var subTotal = local.select(4, sub - 1);                           // [B, H, N, nS, Dk]
        // Sums of whole sub-chunk totals, each entry summing only its own terms (a 0/1 matmul, see DecaySums).
        var sums = DecaySums(subs, q.dtype, q.device).matmul(subTotal);   // [R, nS] @ [B, H, N, nS, Dk] -> [B, H, N, R, Dk]
        var blockExponent = sums.narrow(3, 0, subs * subs)
            .reshape(batch, heads, chunks, subs, subs, keyDim);            // [B, H, N, nS*nS, Dk] -> [B, H, N, nS(I), nS(J), Dk]
        var beforeSub = sums.narrow(3, subs * subs, subs);                 // [B, H, N, nS, Dk]: chunk start -> start of I
        var afterSub = sums.narrow(3, subs * subs + subs, subs);           // [B, H, N, nS, Dk]: end of J -> chunk end
        var chunkTotal = sums.select(3, subs * subs + 2 * subs);           // [B, H, N, Dk]

        // Every factor below has an exponent <= 0 except exp(blockExponent) on the diagonal (see the header).
        var qLocal = qSub * local.exp();                                   // [B, H, N, nS, s, Dk]: q_t * exp(decay from start of I through t)
        var kEnd = kSub * (subTotal.unsqueeze(4) - local).exp();          // [B, H, N, nS, s, Dk]: k_j * exp(decay after j to end of J)

        // Inter-chunk: chunk updates, the state recurrence, and the outputs' share of the carried state.
        var kToChunkEnd = (subs == 1 ? kEnd : kEnd * afterSub.exp().unsqueeze(4))
            .reshape(batch, heads, chunks, chunk, keyDim);                 // [B, H, N, nS, s, Dk] -> [B, H, N, C, Dk]
        var chunkUpdate = kToChunkEnd.transpose(-1, -2).matmul(vChunk);    // [B, H, N, Dk, C] @ [B, H, N, C, Dv] -> [B, H, N, Dk, Dv]
        var chunkDecay = chunkTotal.exp().unsqueeze(-1);                   // [B, H, N, Dk] -> [B, H, N, Dk, 1]

        var state = initialState ?? torch.zeros(batch, heads, keyDim, valueDim, dtype: q.dtype, device: q.device);
        var startStates = new Tensor[chunks];
        // unbind, not select per chunk: select's backward writes a full-size zero gradient per chunk.
        var (decays, updates) = (chunkDecay.unbind(2), chunkUpdate.unbind(2)); // -> N x [B, H, Dk, 1], N x [B, H, Dk, Dv]
        for (long n = 0; n < chunks; n++)
        {
            startStates[n] = state;
            state = decays[n] * state + updates[n];                        // [B, H, Dk, 1] * [B, H, Dk, Dv] + [B, H, Dk, Dv]
        }
        var carried = torch.stack(startStates, 2);                         // N x [B, H, Dk, Dv] -> [B, H, N, Dk, Dv]

        var qFromStart = (subs == 1 ? qLocal : qLocal * beforeSub.exp().unsqueeze(4))
            .reshape(batch, heads, chunks, chunk, keyDim);                 // [B, H, N, nS, s, Dk] -> [B, H, N, C, Dk]
        var outputInter = qFromStart.matmul(carried);                      // [B, H, N, C, Dk] @ [B, H, N, Dk, Dv] -> [B, H, N, C, Dv]

        // Intra-chunk scores: score[t in I, j in J] = qLocal_t . (exp(blockExponent[I, J]) * kEnd_j).
        if (pairwiseDiagonal) blockExponent = blockExponent.clamp_max(0); // diagonal blocks are replaced below
        var kScaled = (kEnd.unsqueeze(3) * blockExponent.exp().unsqueeze(5))
            .reshape(batch, heads, chunks, subs, chunk, keyDim);           // [B, H, N, 1, nS, s, Dk] * [B, H, N, nS, nS, 1, Dk] -> [B, H, N, nS, C, Dk]
        var scores = qLocal.matmul(kScaled.transpose(-1, -2));            // [B, H, N, nS, s, Dk] @ [B, H, N, nS, Dk, C] -> [B, H, N, nS, s, C]

        if (!pairwiseDiagonal)
        {
            scores = scores.reshape(batch, heads, chunks, chunk, chunk)   // [B, H, N, nS, s, C] -> [B, H, N, C, C]
                * torch.ones(chunk, chunk, dtype: q.dtype, device: q.device).tril();
        }
        else
        {
            // Diagonal blocks exactly, one sub-diagonal at a time: score[t, t - d] = sum q_t k_{t-d} exp(b_t - b_{t-d}),
            // with the exponent a difference of sub-chunk-local sums (<= 0). s - 1 batched steps, only j < t computed.
            var diagonal = (qSub * kSub).sum(-1).diag_embed();                 // [B, H, N, nS, s] -> [B, H, N, nS, s, s] (t == j: no decay)
            for (long offset = 1; offset < sub; offset++)
            {
                long length = sub - offset;
                var decay = (local.narrow(4, offset, length) - local.narrow(4, 0, length)).exp(); // [B, H, N, nS, s-d, Dk]
                var band = (qSub.narrow(4, offset, length) * decay * kSub.narrow(4, 0, length))
                    .sum(-1);                                                  // [B, H, N, nS, s-d, Dk] -> [B, H, N, nS, s-d]
                diagonal = diagonal + band.diag_embed(-offset);                // -> [B, H, N, nS, s, s]
            }
            var blockEye = torch.eye(subs, dtype: q.dtype, device: q.device)
                .reshape(subs, 1, subs, 1);                                // [nS, nS] -> [nS, 1, nS, 1]
            var diagonalPlaced = (diagonal.unsqueeze(5) * blockEye)        // [B, H, N, nS, s, 1, s] * [nS, 1, nS, 1] -> [B, H, N, nS, s, nS, s]
                .reshape(batch, heads, chunks, chunk, chunk);              // -> [B, H, N, C, C]
            var earlierBlocks = torch.ones(subs, subs, dtype: q.dtype, device: q.device).tril(-1)
                .reshape(subs, 1, subs, 1)
                .expand(new long[] { subs, sub, subs, sub })
                .reshape(chunk, chunk);                                    // [nS, nS] -> [C, C]: 1 where J < I
            scores = scores.reshape(batch, heads, chunks, chunk, chunk)   // [B, H, N, nS, s, C] -> [B, H, N, C, C]
                * earlierBlocks + diagonalPlaced;
        }
        var outputIntra = scores.matmul(vChunk);                           // [B, H, N, C, C] @ [B, H, N, C, Dv] -> [B, H, N, C, Dv]

        var output = (outputInter + outputIntra)
            .reshape(batch, heads, padded, valueDim)                       // [B, H, N, C, Dv] -> [B, H, N*C, Dv]
            .narrow(2, 0, tokens);                                         // -> [B, H, T, Dv]
        return scope.MoveToOuter(output, state);
    }

    /// <summary>
    /// Sub-chunk length and whether diagonal blocks need the exact pairwise form: the largest of C, 16, 8, 4 (that
    /// divides C) whose every block has a log-decay span &lt;= MaxFactoredExponent, else the pairwise fallback.
    /// gk [B, H, N*C, Dk] (already padded).
    /// </summary>
    internal static (long Sub, bool Pairwise) ChooseSubChunks(Tensor gk, long chunk)
    {
        using var scope = torch.NewDisposeScope();
        long batch = gk.shape[0], heads = gk.shape[1], tokens = gk.shape[2], keyDim = gk.shape[3];
        var candidates = new[] { chunk }.Concat(SubChunkSizes.Where(s => s < chunk && chunk % s == 0)).ToArray();
        foreach (var sub in candidates)
        {
            double span = -gk.reshape(batch, heads, tokens / sub, sub, keyDim) // [B, H, N*C, Dk] -> [B, H, N*C/s, s, Dk]
                .sum(3).min().item<float>();
            if (span <= MaxFactoredExponent) return (sub, false);
        }
        var small = candidates.Where(s => s <= PairwiseSubChunkSize).DefaultIfEmpty(candidates[^1]).First();
        return (small, true);
    }

    /// <summary>
    /// [R, n] matrix (R = n*n + 2n + 1) turning sub-chunk totals into the log decays the chunk needs:
    /// rows (I, J): for J &lt; I the sub-chunks strictly between (decay from the end of J to the start of I, &lt;= 0);
    /// for J == I minus its own total (>= 0, the diagonal block's key factor); 0 for J &gt; I (unused).
    /// Then n rows "before I" (m &lt; I), n rows "after J" (m &gt; J) and one row with every sub-chunk (the chunk).
    /// </summary>
    static Tensor DecaySums(long subs, ScalarType dtype, Device device)
    {
        var matrix = new float[(subs * subs + 2 * subs + 1) * subs];
        for (long i = 0; i < subs; i++)
            for (long j = 0; j < subs; j++)
                for (long m = 0; m < subs; m++)
                    matrix[(i * subs + j) * subs + m] = j < m && m < i ? 1 : (i == j && m == i ? -1 : 0);
        for (long i = 0; i < subs; i++)
            for (long m = 0; m < subs; m++)
            {
                matrix[(subs * subs + i) * subs + m] = m < i ? 1 : 0;
                matrix[(subs * subs + subs + i) * subs + m] = m > i ? 1 : 0;
                matrix[(subs * subs + 2 * subs) * subs + m] = 1;
            }
        return torch.tensor(matrix, dtype: ScalarType.Float32, device: device)
            .reshape(subs * subs + 2 * subs + 1, subs)                     // [R*n] -> [R, n]
            .to_type(dtype);
    }

    static (long Batch, long Heads, long Tokens, long KeyDim, long ValueDim) CheckSequenceShapes(Tensor q, Tensor k, Tensor v, Tensor gk, Tensor? initialState)
    {
        if (q.dim() != 4 || v.dim() != 4)
            throw new ArgumentException($"GLA expects q, k, gk [B, H, T, Dk] and v [B, H, T, Dv]; got q {Shape(q)}, v {Shape(v)}.");
        long batch = q.shape[0], heads = q.shape[1], tokens = q.shape[2], keyDim = q.shape[3], valueDim = v.shape[3];
        if (tokens < 1) throw new ArgumentException("GLA needs at least one token (q has T = 0).");
        RequireShape(k, "k", batch, heads, tokens, keyDim);
        RequireShape(gk, "gk", batch, heads, tokens, keyDim);
        RequireShape(v, "v", batch, heads, tokens, valueDim);
        if (initialState is not null) RequireShape(initialState, "initialState", batch, heads, keyDim, valueDim);
        return (batch, heads, tokens, keyDim, valueDim);
    }

    static void RequireShape(Tensor tensor, string name, params long[] expected)
    {
        if (!tensor.shape.SequenceEqual(expected))
            throw new ArgumentException($"GLA {name} has shape {Shape(tensor)}, expected [{string.Join(", ", expected)}].");
    }

    static string Shape(Tensor tensor) => "[" + string.Join(", ", tensor.shape) + "]";
}
