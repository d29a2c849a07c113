using TorchSharp;
using static TorchSharp.torch;
using static HybridDistill.Modules.BatchedProducts;

namespace HybridDistill.Attention;

// The chunked (WY / UT) form of Gated DeltaNet, method.md section 3 steps 1-5: the kernel of training and prefill,
// checked against Naive (GatedDeltaNet.cs) on outputs and gradients by the kernel tests.

public sealed partial class GatedDeltaNet
{
    /// <summary>
    /// The chunked (WY / UT) form of method.md section 3, steps 1-5, for training and prefill. T is padded to a
    /// multiple of <paramref name="chunkSize"/> with zero q/k/v, beta = 0 and g = 0 (which leave the state
    /// unchanged). Returns the output [B, H, T, Dv] and the final state [B, H, Dk, Dv]. Differentiable with
    /// respect to all six inputs through a hand-written backward (<see cref="ChunkedFunction"/>); only the
    /// state recurrence across chunks is a loop, everything else is batched over all chunks.
    /// </summary>
    public static (Tensor Output, Tensor FinalState) Chunked(Tensor q, Tensor k, Tensor v, Tensor beta, Tensor g, Tensor? initialState = null, int chunkSize = 64)
    {
        var (batch, heads, _, dk, dv) = CheckSequenceShapes(q, k, v, beta, g, initialState);
        if (chunkSize < 1) throw new ArgumentOutOfRangeException(nameof(chunkSize), chunkSize, "chunk size must be positive");
        using var scope = NewDisposeScope();
        var state = initialState ?? zeros(batch, heads, dk, dv, dtype: q.dtype, device: q.device); // [B, H, Dk, Dv]
        bool needsGrad = is_grad_enabled() && new[] { q, k, v, beta, g, state }.Any(t => t.requires_grad);
        Tensor output, finalState;
        if (needsGrad)
        {
            var results = ChunkedFunction.apply(q, k, v, beta, g, state, chunkSize);
            (output, finalState) = (results[0], results[1]);
        }
        else
        {
            using var noGrad = no_grad();
            (output, finalState, _, _) = ChunkedForward(q, k, v, beta, g, state, chunkSize);
        }
        return (scope.MoveToOuter(output), scope.MoveToOuter(finalState));
    }

    // ---------------------------------------------------------------------------------------------------------
    // Chunked form with a hand-written backward. Per chunk (leading [B, H, n] batch dims omitted), with
    // Q, K [c, Dk], V [c, Dv], b = beta [c, 1], D = Gamma of step 2, A = (I + M)^-1 of step 3,
    // U = A (b V), W = A (b e^gamma K) of step 4, P = (Q K^T) * D and Kd = K * e^(gamma_last - gamma), step 5 is
    //   O_i     = P U + (Q e^gamma - P W) S_i                 = IntraOutput + QueryToState S_i
    //   S_{i+1} = (e^gamma_last I - Kd^T W) S_i + Kd^T U       = Transition_i S_i + Injection_i
    // so everything but the S recurrence is batched over all chunks. U and W are kept side by side in one
    // tensor UW [c, Dv + Dk], and so are the gradients that pair with them: every product that U and W (or
    // their gradients) enter with the same left or right factor is one product over [U | W] instead of two
    // (P [U | W], Kd^T [U | W], A [bV | b e^gamma K], [dO | -dQueryToState] [U | W]^T, ...), and products
    // that are added to a term are added in place (Modules/BatchedProducts.cs, which on CPU also replaces
    // MKL's batched sgemm for these shapes). Every fresh output costs page faults, on this CPU about as much as
    // the 64 x 64 products that fill it, so the forward makes 5 fresh product outputs instead of 9 and the
    // backward 7 instead of 18.
    // The forward saves the products (D, K K^T, P, A, UW, QueryToState, Transition) and the chunk-start
    // states S_i; the backward recomputes only elementwise terms. Memory per call: about 9 tensors the size
    // of [B, H, T, 64].
    // ---------------------------------------------------------------------------------------------------------

    /// <summary>Chunked inputs and the state-free terms of steps 1-5, for all chunks at once (no autograd).</summary>
    sealed class ChunkTerms
    {
        public required Tensor Q, K, V, Beta, Gamma, Decay, KeyKey, P, A, UW, QueryToState, Transition;
        public Tensor? IntraOutput, Injection;                                // forward only
        public required long Length;
    }

    // Pads T to a multiple of c and reshapes [B, H, T, D] -> [B, H, n, c, D] (beta, g -> [B, H, n, c]).
    static (Tensor Q, Tensor K, Tensor V, Tensor Beta, Tensor G) ToChunks(Tensor q, Tensor k, Tensor v, Tensor beta, Tensor g, long c)
    {
        long batch = q.shape[0], heads = q.shape[1], length = q.shape[2], dk = q.shape[3], dv = v.shape[3];
        long n = (length + c - 1) / c, padding = n * c - length;
        return (PadTime(q, padding).reshape(batch, heads, n, c, dk),            // [B, H, T, Dk] -> [B, H, n, c, Dk]
                PadTime(k, padding).reshape(batch, heads, n, c, dk),            // [B, H, T, Dk] -> [B, H, n, c, Dk]
                PadTime(v, padding).reshape(batch, heads, n, c, dv),            // [B, H, T, Dv] -> [B, H, n, c, Dv]
                PadTime(beta.unsqueeze(-1), padding).reshape(batch, heads, n, c), // [B, H, T] -> [B, H, n, c]
                PadTime(g.unsqueeze(-1), padding).reshape(batch, heads, n, c)); // [B, H, T] -> [B, H, n, c]
    }

    // [B, H, T, D] -> [B, H, T + padding, D] with zeros.
    static Tensor PadTime(Tensor x, long padding) => padding == 0 ? x : nn.functional.pad(x, [0, 0, 0, padding]);

    // [B, H, n, c, D] -> [B, H, T, D], contiguous.
    static Tensor FromChunks(Tensor x, long length)
    {
        var flat = x.reshape(x.shape[0], x.shape[1], x.shape[2] * x.shape[3], x.shape[4]); // [B, H, n, c, D] -> [B, H, n*c, D]
        return flat.shape[2] == length ? flat : flat.narrow(2, 0, length).contiguous(); // [B, H, n*c, D] -> [B, H, T, D]
    }

    static ChunkTerms ComputeChunkTerms(Tensor q, Tensor k, Tensor v, Tensor beta, Tensor g, long c)
    {
        var (qc, kc, vc, bc, gc) = ToChunks(q, k, v, beta, g, c);
        long dk = kc.shape[^1], dv = vc.shape[^1];
        var gamma = gc.cumsum(-1);                                             // 1. [B, H, n, c]
        var expGamma = gamma.exp().unsqueeze(-1);                              // [B, H, n, c] -> [B, H, n, c, 1]
        var decay = DecayMatrix(gamma);                                        // 2. [B, H, n, c, c]
        var b = bc.unsqueeze(-1);                                              // [B, H, n, c] -> [B, H, n, c, 1]
        var kt = kc.transpose(-1, -2);                                         // [B, H, n, c, Dk] -> [B, H, n, Dk, c]
        var keyKey = Product(kc, kt);                                          // K K^T: [B, H, n, c, c]
        var m = (keyKey * b).mul_(decay).tril_(-1);                            // 3. M: [B, H, n, c, c]
        var a = InvertUnitLower(m);                                            // (I + M)^-1: [B, H, n, c, c]
        m.Dispose();
        var scaled = cat([vc, kc], -1).mul_(b);                                // [b V | b K]: [B, H, n, c, Dv+Dk]
        scaled.narrow(-1, dv, dk).mul_(expGamma);                              // [b V | b e^gamma K]
        var uw = Product(a, scaled);                                           // 4. [U | W] = A [b V | b e^gamma K]
        scaled.Dispose();
        var p = Product(qc, kt).mul_(decay);                                   // 5. P = (Q K^T) * D: [B, H, n, c, c]
        var pUW = Product(p, uw);                                              // [P U | P W]: [B, H, n, c, Dv+Dk]
        var intraOutput = pUW.narrow(-1, 0, dv);                               // P U: [B, H, n, c, Dv]
        var queryToState = (qc * expGamma).sub_(pUW.narrow(-1, dv, dk));       // Q e^gamma - P W: [B, H, n, c, Dk]
        var (gammaLast, _, kd) = DecayedKeys(kc, gamma);                       // [B, H, n, 1], [B, H, n, c, Dk]
        var kdtUW = Product(kd.transpose(-1, -2), uw);                         // [Kd^T U | Kd^T W]: [B, H, n, Dk, Dv+Dk]
        kd.Dispose();
        var injection = kdtUW.narrow(-1, 0, dv);                               // Kd^T U: [B, H, n, Dk, Dv]
        var transition = (torch.eye(dk, dtype: q.dtype, device: q.device)     // [Dk, Dk]
                          * gammaLast.exp().unsqueeze(-1))                     // [B, H, n, 1] -> [B, H, n, 1, 1]
                         .sub_(kdtUW.narrow(-1, dv, dk));                      // e^gamma_last I - Kd^T W: [B, H, n, Dk, Dk]
        return new ChunkTerms
        {
            Q = qc, K = kc, V = vc, Beta = bc, Gamma = gamma, Decay = decay, KeyKey = keyKey, P = p, A = a,
            UW = uw, QueryToState = queryToState, Transition = transition, IntraOutput = intraOutput, Injection = injection,
            Length = q.shape[2],
        };
    }

    // D_ij = exp(gamma_i - gamma_j) for i >= j else 0, masked before exp: [B, H, n, c] -> [B, H, n, c, c].
    static Tensor DecayMatrix(Tensor gamma)
    {
        long c = gamma.shape[^1];
        var above = ones(c, c, dtype: ScalarType.Bool, device: gamma.device).triu(1); // [c, c], true for j > i
        return (gamma.unsqueeze(-1) - gamma.unsqueeze(-2))                     // [B, H, n, c, 1] - [B, H, n, 1, c] -> [B, H, n, c, c]
               .masked_fill_(above, double.NegativeInfinity).exp_();
    }

    // gamma_last [B, H, n, 1], exp(gamma_last - gamma) [B, H, n, c, 1] and Kd = K * exp(gamma_last - gamma) [B, H, n, c, Dk].
    static (Tensor GammaLast, Tensor KeyDecay, Tensor Kd) DecayedKeys(Tensor kc, Tensor gamma)
    {
        var gammaLast = gamma.narrow(-1, gamma.shape[^1] - 1, 1);              // [B, H, n, 1]
        var keyDecay = (gammaLast - gamma).exp_().unsqueeze(-1);               // [B, H, n, c] -> [B, H, n, c, 1]
        return (gammaLast, keyDecay, kc * keyDecay);
    }

    /// <summary>Forward of <see cref="Chunked"/> without autograd: output, final state, chunk-start states and the terms.</summary>
    static (Tensor Output, Tensor FinalState, Tensor StatesBefore, ChunkTerms Terms) ChunkedForward(Tensor q, Tensor k, Tensor v, Tensor beta, Tensor g, Tensor state, long chunkSize)
    {
        var t = ComputeChunkTerms(q, k, v, beta, g, chunkSize);
        var (statesBefore, finalState) = ScanForward(t.Transition, t.Injection!, state);
        AddProduct(t.QueryToState, statesBefore, t.IntraOutput!);              // P U + QueryToState S_i: [B, H, n, c, Dv]
        var output = FromChunks(t.IntraOutput!, t.Length);                     // [B, H, n, c, Dv] -> [B, H, T, Dv]
        return (output, finalState, statesBefore, t);
    }

    // S_{i+1} = Transition_i S_i + Injection_i, one batched product added in place per chunk. The chunk-start
    // states are written into one [B, H, n, Dk, Dv] tensor that starts as [S_0, Injection_0, ..., Injection_{n-2}]
    // (no per-chunk outputs, no stacked copy); S_n is its own tensor, so a kept final state holds nothing else.
    static (Tensor StatesBefore, Tensor FinalState) ScanForward(Tensor transition, Tensor injection, Tensor state)
    {
        long n = transition.shape[2];
        var statesBefore = empty(injection.shape, dtype: injection.dtype, device: injection.device); // [B, H, n, Dk, Dv]
        statesBefore.select(2, 0).copy_(state);
        statesBefore.narrow(2, 1, n - 1).copy_(injection.narrow(2, 0, n - 1));
        for (long i = 0; i < n - 1; i++)
            AddProduct(transition.select(2, i), statesBefore.select(2, i), statesBefore.select(2, i + 1)); // S_{i+1} += Transition_i S_i
        var finalState = injection.select(2, n - 1).clone();                  // [B, H, Dk, Dv]
        AddProduct(transition.select(2, n - 1), statesBefore.select(2, n - 1), finalState);
        return (statesBefore, finalState);
    }

    // Reverse of ScanForward: G_n = dS_n; dInjection_i = G_{i+1}; G_i = Transition_i^T G_{i+1} + dStatesBefore_i.
    // dInjection [B, H, n, Dk, Dv] (a view whose rows are contiguous) comes holding [dStatesBefore_1, ...,
    // dStatesBefore_{n-1}, dS_n] and initialState holding dStatesBefore_0; both are completed in place, G_i (i >= 1)
    // into dInjection_{i-1} and G_0 into initialState.
    static void ScanBackward(Tensor transition, Tensor dInjection, Tensor dInitialState)
    {
        long n = transition.shape[2];
        for (long i = n - 1; i >= 1; i--)
            AddProduct(transition.select(2, i).transpose(-1, -2), dInjection.select(2, i), dInjection.select(2, i - 1)); // G_i += Transition_i^T G_{i+1}
        AddProduct(transition.select(2, 0).transpose(-1, -2), dInjection.select(2, 0), dInitialState);
    }

    /// <summary>
    /// Gradients of the chunked form with respect to q, k, v, beta, g and the initial state, given the saved
    /// terms and the gradients of the output and of the final state (either may be undefined, meaning zero).
    /// </summary>
    static Tensor[] ChunkedBackward(ChunkTerms t, Tensor statesBefore, Tensor? dOutput, Tensor? dFinalState)
    {
        long batch = t.Q.shape[0], heads = t.Q.shape[1], n = t.Q.shape[2], c = t.Q.shape[3], dk = t.Q.shape[4], dv = t.V.shape[4];
        var dO = dOutput is null
            ? zeros([batch, heads, n, c, dv], dtype: t.Q.dtype, device: t.Q.device) // [B, H, n, c, Dv]
            : PadTime(dOutput, n * c - t.Length).reshape(batch, heads, n, c, dv).contiguous(); // [B, H, T, Dv] -> [B, H, n, c, Dv]
        var dFinal = dFinalState ?? zeros(batch, heads, dk, dv, dtype: t.Q.dtype, device: t.Q.device); // [B, H, Dk, Dv]
        var expGamma = t.Gamma.exp().unsqueeze(-1);                            // [B, H, n, c] -> [B, H, n, c, 1]
        var b = t.Beta.unsqueeze(-1);                                          // [B, H, n, c] -> [B, H, n, c, 1]
        var (gammaLast, keyDecay, kd) = DecayedKeys(t.K, t.Gamma);             // [B, H, n, 1], [B, H, n, c, 1], [B, H, n, c, Dk]

        // Step 5: O_i = P U + QueryToState S_i, S_{i+1} = Transition_i S_i + Kd^T U; the reverse scan gives
        // dInjection_i = dS_{i+1}. Minus signs are folded into nQ = -dQueryToState and nT = -dTransition.
        // [dInjection | nT] and [dO | nQ] are filled in place (each product written into its half) because the
        // products below take them whole.
        var dInjnT = empty([batch, heads, n, dk, dv + dk], dtype: dO.dtype, device: dO.device); // [dInjection | nT]: [B, H, n, Dk, Dv+Dk]
        var dInjection = dInjnT.narrow(-1, 0, dv);                             // [B, H, n, Dk, Dv]
        var queryToStateT = t.QueryToState.transpose(-1, -2);                  // [B, H, n, Dk, c]
        // dStatesBefore_i = QueryToState_i^T dO_i, written where the scan wants it: chunk i >= 1 at dInjection_{i-1}.
        ProductInto(queryToStateT.narrow(2, 1, n - 1), dO.narrow(2, 1, n - 1), dInjection.narrow(2, 0, n - 1));
        dInjection.select(2, n - 1).copy_(dFinal);
        var dInitialState = Product(queryToStateT.select(2, 0), dO.select(2, 0)); // [B, H, Dk, Dv]
        ScanBackward(t.Transition, dInjection, dInitialState);
        var statesT = statesBefore.transpose(-1, -2);                          // [B, H, n, Dk, Dv] -> [B, H, n, Dv, Dk]
        var nT = dInjnT.narrow(-1, dv, dk);                                    // -dTransition: [B, H, n, Dk, Dk]
        ProductInto(dInjection, statesT, nT);
        nT.neg_();
        var dOnQ = empty([batch, heads, n, c, dv + dk], dtype: dO.dtype, device: dO.device); // [dO | nQ]: [B, H, n, c, Dv+Dk]
        dOnQ.narrow(-1, 0, dv).copy_(dO);
        var nQ = dOnQ.narrow(-1, dv, dk);                                      // -dQueryToState: [B, H, n, c, Dk]
        ProductInto(dO, statesT, nQ);
        dO.Dispose();                                                          // from here on it is the left half of dOnQ
        nQ.neg_();
        var dGammaLast = gammaLast.exp()                                       // from e^gamma_last I: [B, H, n, 1]
                         .mul_(nT.diagonal(0, -2, -1).sum(-1, keepdim: true)).neg_();
        var dQ = (nQ * expGamma).neg_();                                       // from Q e^gamma: [B, H, n, c, Dk]
        var dExpGamma = SumOfProduct(nQ, t.Q).neg_();                          // [B, H, n, c, 1]
        var pt = t.P.transpose(-1, -2);                                        // [B, H, n, c, c]
        var uwT = t.UW.transpose(-1, -2);                                      // [B, H, n, Dv+Dk, c]
        var dP = Product(dOnQ, uwT);                                           // dO U^T + nQ W^T: [B, H, n, c, c]
        var dUW = Product(pt, dOnQ);                                           // [dU | dW]: [B, H, n, c, Dv+Dk]
        dOnQ.Dispose();
        AddProduct(kd, dInjnT, dUW);
        var dKd = Product(t.UW, dInjnT.transpose(-1, -2));                     // U dInjection^T + W nT^T: [B, H, n, c, Dk]
        dInjnT.Dispose();
        var dKeyDecayLog = SumOfProduct(dKd, kd).squeeze(-1);                  // d(gamma_last - gamma): [B, H, n, c]
        var dK = dKd.mul_(keyDecay);                                           // [B, H, n, c, Dk]
        dGammaLast.add_(dKeyDecayLog.sum(-1, keepdim: true));
        var dGamma = dKeyDecayLog.neg_();                                      // [B, H, n, c]

        // P = (Q K^T) * D.
        var dLogDecay = dP * t.P;                                              // d(gamma_i - gamma_j) = dD * D = dP * (Q K^T) * D: [B, H, n, c, c]
        var dQueryKey = dP.mul_(t.Decay);                                      // [B, H, n, c, c]
        AddProduct(dQueryKey, t.K, dQ);
        AddProduct(dQueryKey.transpose(-1, -2), t.Q, dK);
        dQueryKey.Dispose();

        // Step 4: U = A (b V), W = A (b e^gamma K), so [d(b V) | d(b e^gamma K)] = A^T [dU | dW].
        var dBVK = Product(t.A.transpose(-1, -2), dUW);                        // [B, H, n, c, Dv+Dk]
        dUW.Dispose();
        var dBV = dBVK.narrow(-1, 0, dv);                                      // d(b V): [B, H, n, c, Dv]
        var dBK = dBVK.narrow(-1, dv, dk);                                     // d(b e^gamma K): [B, H, n, c, Dk]
        var dV = dBV * b;                                                      // [B, H, n, c, Dv]
        var dBKK = SumOfProduct(dBK, t.K);                                     // [B, H, n, c, 1]
        var dBeta = SumOfProduct(dBV, t.V).add_(dBKK * expGamma);              // [B, H, n, c, 1]
        dK.addcmul_(dBK, b * expGamma, 1);
        dExpGamma.add_(dBKK.mul_(b));
        // Step 3: A = (I + M)^-1 gives dM = -A^T dA A^T = -(d(b V) U^T + d(b e^gamma K) W^T), strictly lower.
        var dM = Product(dBVK, uwT).neg_().tril_(-1);                          // [B, H, n, c, c]
        dBVK.Dispose();
        // M = b_i (K K^T)_ij D_ij.
        var dMDecay = dM.mul_(t.Decay);                                        // dM * D: [B, H, n, c, c]
        using (var dMTerm = dMDecay * t.KeyKey)                                // dM * D * K K^T
        {
            dBeta.add_(dMTerm.sum(-1, keepdim: true));
            dLogDecay.addcmul_(dMTerm, b, 1);
        }
        var dKeyKey = dMDecay.mul_(b);                                         // [B, H, n, c, c]
        using (var symmetric = dKeyKey.add(dKeyKey.transpose(-1, -2)))         // K K^T enters through both of its factors
            AddProduct(symmetric, t.K, dK);
        dKeyKey.Dispose();

        // Step 2: D_ij = exp(gamma_i - gamma_j); step 1: gamma = cumsum(g), so dg is a reverse cumulative sum.
        dGamma.add_(dLogDecay.sum(-1)).sub_(dLogDecay.sum(-2));
        dLogDecay.Dispose();
        dGamma.add_(dExpGamma.mul_(expGamma).squeeze(-1));
        dGamma.narrow(-1, c - 1, 1).add_(dGammaLast);
        var dG = dGamma.flip(-1).cumsum(-1).flip(-1);                          // [B, H, n, c]

        return
        [
            FromChunks(dQ, t.Length), FromChunks(dK, t.Length), FromChunks(dV, t.Length),
            FromChunks(dBeta, t.Length).squeeze(-1),                           // [B, H, T, 1] -> [B, H, T]
            FromChunks(dG.unsqueeze(-1), t.Length).squeeze(-1),                // [B, H, n, c] -> [B, H, T]
            dInitialState,
        ];
    }

    // sum(x * y, -1, keepdim) [.., 1] without keeping the product [.., D] past the sum.
    static Tensor SumOfProduct(Tensor x, Tensor y)
    {
        using var product = x * y;
        return product.sum(-1, keepdim: true);
    }

    /// <summary>Autograd node for <see cref="Chunked"/>: forward and hand-written backward.</summary>
    internal sealed class ChunkedFunction : autograd.MultiTensorFunction<ChunkedFunction>
    {
        public override string Name => "GatedDeltaNetChunked";

        // vars: q, k, v, beta, g, initial state, chunk size (int).
        public override List<Tensor> forward(autograd.AutogradContext ctx, params object[] vars)
        {
            var (q, k, v, beta, g, state) = ((Tensor)vars[0], (Tensor)vars[1], (Tensor)vars[2], (Tensor)vars[3], (Tensor)vars[4], (Tensor)vars[5]);
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();                                      // the node is the graph: nothing inside is recorded
            var (output, finalState, statesBefore, t) = ChunkedForward(q, k, v, beta, g, state, (int)vars[6]);
            var saved = new List<Tensor>
            {
                t.Q, t.K, t.V, t.Beta, t.Gamma, t.Decay, t.KeyKey, t.P, t.A, t.UW, t.QueryToState, t.Transition, statesBefore,
            };
            ctx.save_for_backward(saved);
            ctx.save_data("length", t.Length);
            // Undefined output gradients stay undefined (treated as zero) instead of TorchSharp zero-filling them
            // from cached outputs that live in the caller's dispose scope.
            ctx.set_materialize_grads(false);
            // Saved tensors are captured after forward returns, so they must outlive this scope too.
            scope.MoveToOuter(saved.Append(output).Append(finalState));
            return [output, finalState];
        }

        public override List<Tensor> backward(autograd.AutogradContext ctx, List<Tensor> gradOutputs)
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();                                      // the hand-written backward is not differentiated again
            var s = ctx.get_saved_variables();
            var terms = new ChunkTerms
            {
                Q = s[0], K = s[1], V = s[2], Beta = s[3], Gamma = s[4], Decay = s[5], KeyKey = s[6], P = s[7],
                A = s[8], UW = s[9], QueryToState = s[10], Transition = s[11], Length = (long)ctx.get_data("length"),
            };
            static Tensor? Defined(Tensor grad) => grad is null || grad.IsInvalid ? null : grad;
            var grads = ChunkedBackward(terms, s[12], Defined(gradOutputs[0]), Defined(gradOutputs[1]));
            scope.MoveToOuter(grads);
            return [.. grads, null!];
        }
    }
}
