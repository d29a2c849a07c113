using TorchSharp;
using static TorchSharp.torch;

namespace HybridDistill.Attention;

// Gated DeltaNet (GDN) kernels, method.md section 3. Per batch b and head h, with state S [Dk, Dv]:
//   S <- exp(g_t) S;   u_t = beta_t (v_t - S^T k_t);   S <- S + k_t u_t^T;   o_t = S^T q_t
// equivalently S_t = alpha_t (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T with alpha_t = exp(g_t).
// Layout is head-first: q, k [B, H, T, Dk] (L2-normalised, q already scaled by Dk^-1/2), v [B, H, T, Dv],
// beta [B, H, T] in (0, 1), g [B, H, T] log-decay (<= 0), state [B, H, Dk, Dv].
// Three paths with one answer: Naive (per-token loop, the reference), Chunked (WY/UT form for training and
// prefill), Step (one token, for decoding). All compute in the dtype of the inputs (fp32 in the project;
// the tests also run Naive in fp64 as a check on the fp32 reference).

/// <summary>Gated DeltaNet attention: the recurrence kernels (naive, chunked, one-token step).</summary>
public sealed partial class GatedDeltaNet
{
    /// <summary>Ways to form the unit-lower-triangular inverse (I + M)^-1 of step 3 (see <see cref="Chunked"/>).</summary>
    internal enum TriangularInverse
    {
        /// <summary><c>torch.linalg.solve_triangular</c> against the identity, batched over all chunks.</summary>
        Solve,
        /// <summary>Product form (I - M)(I + M^2)(I + M^4)...: exact because M is nilpotent.</summary>
        RepeatedSquaring,
        /// <summary>Product form on diagonal blocks of 16, then forward substitution over the block rows.</summary>
        Blocked,
    }

    /// <summary>
    /// The executable reference: a per-token loop of the recurrence, differentiable by autograd.
    /// Returns the output o [B, H, T, Dv] and the final state [B, H, Dk, Dv].
    /// </summary>
    public static (Tensor Output, Tensor FinalState) Naive(Tensor q, Tensor k, Tensor v, Tensor beta, Tensor g, Tensor? initialState = null)
    {
        var (batch, heads, length, dk, dv) = CheckSequenceShapes(q, k, v, beta, g, initialState);
        using var scope = NewDisposeScope();
        var state = initialState ?? zeros(batch, heads, dk, dv, dtype: q.dtype, device: q.device); // [B, H, Dk, Dv]
        var outputs = new Tensor[length];
        for (long t = 0; t < length; t++)
        {
            var alpha = g.select(2, t).exp().unsqueeze(-1).unsqueeze(-1);       // [B, H] -> [B, H, 1, 1]
            state = state * alpha;
            var kt = k.select(2, t).unsqueeze(-2);                             // [B, H, Dk] -> [B, H, 1, Dk]
            var recalled = kt.matmul(state);                                   // S^T k: [B, H, 1, Dv]
            var u = beta.select(2, t).unsqueeze(-1).unsqueeze(-1)              // [B, H] -> [B, H, 1, 1]
                    * (v.select(2, t).unsqueeze(-2) - recalled);               // [B, H, Dv] -> [B, H, 1, Dv]
            state = state + kt.transpose(-1, -2).matmul(u);                    // k u^T: [B, H, Dk, Dv]
            outputs[t] = q.select(2, t).unsqueeze(-2).matmul(state);           // S^T q: [B, H, 1, Dv]
        }
        var output = cat(outputs, 2);                                          // T x [B, H, 1, Dv] -> [B, H, T, Dv]
        return (scope.MoveToOuter(output), scope.MoveToOuter(state));
    }

    /// <summary>
    /// One decoding step. q, k [B, H, Dk], v [B, H, Dv], beta, g [B, H], state [B, H, Dk, Dv].
    /// Returns the output [B, H, Dv] and the new state [B, H, Dk, Dv] (the input state is not modified).
    /// </summary>
    public static (Tensor Output, Tensor NewState) Step(Tensor q, Tensor k, Tensor v, Tensor beta, Tensor g, Tensor state)
    {
        CheckStepShapes(q, k, v, beta, g, state);
        using var scope = NewDisposeScope();
        var decayed = state * g.exp().unsqueeze(-1).unsqueeze(-1);            // [B, H] -> [B, H, 1, 1]; [B, H, Dk, Dv]
        var kt = k.unsqueeze(-2);                                              // [B, H, Dk] -> [B, H, 1, Dk]
        var u = beta.unsqueeze(-1).unsqueeze(-1)                               // [B, H] -> [B, H, 1, 1]
                * (v.unsqueeze(-2) - kt.matmul(decayed));                      // [B, H, Dv] -> [B, H, 1, Dv]
        var newState = decayed + kt.transpose(-1, -2).matmul(u);               // [B, H, Dk, Dv]
        var output = q.unsqueeze(-2).matmul(newState).squeeze(-2);             // [B, H, 1, Dv] -> [B, H, Dv]
        return (scope.MoveToOuter(output), scope.MoveToOuter(newState));
    }

    /// <summary>
    /// The chunked (WY / UT) form of method.md section 3, steps 1-5, differentiable by autograd. T is padded
    /// to a multiple of <paramref name="chunkSize"/> with zero q/k/v, beta = 0 and g = 0 (which leave the state
    /// unchanged). Returns the output [B, H, T, Dv] and the final state [B, H, Dk, Dv].
    /// </summary>
    public static (Tensor Output, Tensor FinalState) Chunked(Tensor q, Tensor k, Tensor v, Tensor beta, Tensor g, Tensor? initialState = null, int chunkSize = 64)
        => ChunkedWith(q, k, v, beta, g, initialState, chunkSize, TriangularInverse.Blocked);

    internal static (Tensor Output, Tensor FinalState) ChunkedWith(Tensor q, Tensor k, Tensor v, Tensor beta, Tensor g, Tensor? initialState, int chunkSize, TriangularInverse inverse)
    {
        var (batch, heads, length, dk, dv) = CheckSequenceShapes(q, k, v, beta, g, initialState);
        if (chunkSize < 1) throw new ArgumentOutOfRangeException(nameof(chunkSize), chunkSize, "chunk size must be positive");
        using var scope = NewDisposeScope();
        long c = chunkSize, n = (length + c - 1) / c, padding = n * c - length;
        if (padding > 0)
        {
            q = nn.functional.pad(q, [0, 0, 0, padding]);                      // [B, H, T, Dk] -> [B, H, n*c, Dk]
            k = nn.functional.pad(k, [0, 0, 0, padding]);                      // [B, H, T, Dk] -> [B, H, n*c, Dk]
            v = nn.functional.pad(v, [0, 0, 0, padding]);                      // [B, H, T, Dv] -> [B, H, n*c, Dv]
            beta = nn.functional.pad(beta, [0, padding]);                      // [B, H, T] -> [B, H, n*c]
            g = nn.functional.pad(g, [0, padding]);                            // [B, H, T] -> [B, H, n*c]
        }
        var qc = q.reshape(batch, heads, n, c, dk);                            // [B, H, n*c, Dk] -> [B, H, n, c, Dk]
        var kc = k.reshape(batch, heads, n, c, dk);                            // [B, H, n*c, Dk] -> [B, H, n, c, Dk]
        var vc = v.reshape(batch, heads, n, c, dv);                            // [B, H, n*c, Dv] -> [B, H, n, c, Dv]
        var bc = beta.reshape(batch, heads, n, c, 1);                          // [B, H, n*c] -> [B, H, n, c, 1]
        var gc = g.reshape(batch, heads, n, c);                                // [B, H, n*c] -> [B, H, n, c]

        // 1. gamma: cumulative log-decay within each chunk.
        var gamma = gc.cumsum(-1);                                             // [B, H, n, c]
        // 2. Gamma_ij = exp(gamma_i - gamma_j) for i >= j, else 0; the difference is masked before exp.
        var above = ones(c, c, dtype: ScalarType.Bool, device: q.device).triu(1); // [c, c], true for j > i
        var decay = (gamma.unsqueeze(-1) - gamma.unsqueeze(-2))                // [B, H, n, c, 1] - [B, H, n, 1, c] -> [B, H, n, c, c]
                    .masked_fill(above, double.NegativeInfinity).exp();
        // 3. M = strictly_lower(diag(beta) (K K^T) * Gamma), A = (I + M)^-1.
        var kt = kc.transpose(-1, -2);                                         // [B, H, n, c, Dk] -> [B, H, n, Dk, c]
        var m = (bc * kc.matmul(kt) * decay).tril(-1);                         // [B, H, n, c, c]
        var a = InvertUnitLower(m, inverse);                                   // [B, H, n, c, c]
        // 4. U = A (beta * V), W = A (beta * exp(gamma) * K), in one matmul.
        var expGamma = gamma.exp().unsqueeze(-1);                              // [B, H, n, c] -> [B, H, n, c, 1]
        var uw = a.matmul(cat([bc * vc, bc * expGamma * kc], -1));              // [B, H, n, c, Dv + Dk]
        // 5. Per chunk: Delta = U - W S; O = (Q * exp(gamma)) S + (Q K^T * Gamma) Delta;
        //    S <- exp(gamma_last) S + (K * exp(gamma_last - gamma))^T Delta.
        // Everything not involving S is precomputed for all chunks at once:
        //    O = P U + (Q * exp(gamma) - P W) S                  with P = Q K^T * Gamma
        //    S <- (exp(gamma_last) I - Kd^T W) S + Kd^T U        with Kd = K * exp(gamma_last - gamma)
        // so the loop over chunks is one batched [Dk, Dk] x [Dk, Dv] matmul-add per chunk.
        var p = qc.matmul(kt) * decay;                                         // [B, H, n, c, c]
        var puw = p.matmul(uw);                                                // [B, H, n, c, Dv + Dk]
        var intraOutput = puw.narrow(-1, 0, dv);                               // P U: [B, H, n, c, Dv]
        var queryToState = qc * expGamma - puw.narrow(-1, dv, dk);             // [B, H, n, c, Dk]
        var gammaLast = gamma.narrow(-1, c - 1, 1);                            // [B, H, n, 1]
        var kd = kc * (gammaLast - gamma).exp().unsqueeze(-1);                 // [B, H, n, c, Dk]
        var kduw = kd.transpose(-1, -2).matmul(uw);                            // [B, H, n, Dk, Dv + Dk]
        var injection = kduw.narrow(-1, 0, dv);                                // Kd^T U: [B, H, n, Dk, Dv]
        var eye = torch.eye(dk, dtype: q.dtype, device: q.device);             // [Dk, Dk]
        var transition = gammaLast.exp().unsqueeze(-1) * eye                   // [B, H, n, 1, 1] * [Dk, Dk]
                         - kduw.narrow(-1, dv, dk);                            // [B, H, n, Dk, Dk]

        var state = initialState ?? zeros(batch, heads, dk, dv, dtype: q.dtype, device: q.device); // [B, H, Dk, Dv]
        var transitions = transition.unbind(2);                                // n x [B, H, Dk, Dk]
        var injections = injection.unbind(2);                                  // n x [B, H, Dk, Dv]
        var chunkStates = new Tensor[n];
        for (long i = 0; i < n; i++)
        {
            chunkStates[i] = state;
            state = injections[i] + transitions[i].matmul(state);            // [B, H, Dk, Dv]
        }
        var stateBefore = stack(chunkStates, 2);                               // n x [B, H, Dk, Dv] -> [B, H, n, Dk, Dv]
        var output = (intraOutput + queryToState.matmul(stateBefore))          // [B, H, n, c, Dv]
                     .reshape(batch, heads, n * c, dv)                         // [B, H, n, c, Dv] -> [B, H, n*c, Dv]
                     .narrow(2, 0, length);                                    // [B, H, n*c, Dv] -> [B, H, T, Dv]
        if (padding > 0) output = output.contiguous();
        return (scope.MoveToOuter(output), scope.MoveToOuter(state));
    }

    /// <summary>(I + M)^-1 for strictly lower-triangular M [..., c, c] (a unit-lower-triangular matrix).</summary>
    internal static Tensor InvertUnitLower(Tensor m, TriangularInverse method)
    {
        using var scope = NewDisposeScope();
        long c = m.shape[^1];
        var eye = torch.eye(c, dtype: m.dtype, device: m.device);              // [c, c]
        Tensor result = method switch
        {
            TriangularInverse.Solve => linalg.solve_triangular(m + eye, eye.expand_as(m), upper: false, unitriangular: true),
            TriangularInverse.RepeatedSquaring => InvertBySquaring(m, eye),
            TriangularInverse.Blocked => InvertBlocked(m, eye),
            _ => throw new ArgumentOutOfRangeException(nameof(method)),
        };
        return scope.MoveToOuter(result);
    }

    // (I + M)^-1 = (I - M)(I + M^2)(I + M^4)... while the power is below c (M^c = 0).
    static Tensor InvertBySquaring(Tensor m, Tensor eye)
    {
        long c = m.shape[^1];
        var result = eye - m;
        var power = m;
        for (long order = 2; order < c; order *= 2)
        {
            power = power.matmul(power);                                       // M^order
            result = result + result.matmul(power);                            // result (I + M^order)
        }
        return result;
    }

    const long InverseBlock = 16;

    // Diagonal blocks of 16 inverted by repeated squaring, then block forward substitution:
    //   A_ii = L_ii^-1,   A_i,0:i = -A_ii (L_i,0:i A_0:i,0:i).
    static Tensor InvertBlocked(Tensor m, Tensor eye)
    {
        long c = m.shape[^1];
        if (c <= InverseBlock || c % InverseBlock != 0) return InvertBySquaring(m, eye);
        long blocks = c / InverseBlock, b = InverseBlock;
        var lead = m.shape[..^2];
        var grid = m.reshape([.. lead, blocks, b, blocks, b]).transpose(-3, -2); // [..., c, c] -> [..., nb, nb, b, b]
        var diagonal = grid.diagonal(0, -4, -3).movedim([-1L], [-3L]);              // [..., b, b, nb] -> [..., nb, b, b]
        var diagonalInverse = InvertBySquaring(diagonal, torch.eye(b, dtype: m.dtype, device: m.device)).unbind(-3); // nb x [..., b, b]
        Tensor a = diagonalInverse[0];                                         // [..., b, b]
        for (long i = 1; i < blocks; i++)
        {
            var row = m.narrow(-2, i * b, b).narrow(-1, 0, i * b);             // L_i,0:i: [..., b, i*b]
            var offDiagonal = -diagonalInverse[i].matmul(row.matmul(a));       // [..., b, i*b]
            var top = nn.functional.pad(a, [0, b]);                            // [..., i*b, i*b] -> [..., i*b, (i+1)*b]
            var bottom = cat([offDiagonal, diagonalInverse[i]], -1);          // [..., b, (i+1)*b]
            a = cat([top, bottom], -2);                                        // [..., (i+1)*b, (i+1)*b]
        }
        return a;
    }

    static (long Batch, long Heads, long Length, long Dk, long Dv) CheckSequenceShapes(Tensor q, Tensor k, Tensor v, Tensor beta, Tensor g, Tensor? initialState)
    {
        if (q.dim() != 4) throw new ArgumentException($"q must be [B, H, T, Dk], got [{string.Join(", ", q.shape)}]", nameof(q));
        long batch = q.shape[0], heads = q.shape[1], length = q.shape[2], dk = q.shape[3];
        if (v.dim() != 4) throw new ArgumentException($"v must be [B, H, T, Dv], got [{string.Join(", ", v.shape)}]", nameof(v));
        long dv = v.shape[3];
        Expect(k, nameof(k), batch, heads, length, dk);
        Expect(v, nameof(v), batch, heads, length, dv);
        Expect(beta, nameof(beta), batch, heads, length);
        Expect(g, nameof(g), batch, heads, length);
        if (initialState is not null) Expect(initialState, nameof(initialState), batch, heads, dk, dv);
        return (batch, heads, length, dk, dv);
    }

    static void CheckStepShapes(Tensor q, Tensor k, Tensor v, Tensor beta, Tensor g, Tensor state)
    {
        if (q.dim() != 3) throw new ArgumentException($"q must be [B, H, Dk], got [{string.Join(", ", q.shape)}]", nameof(q));
        if (v.dim() != 3) throw new ArgumentException($"v must be [B, H, Dv], got [{string.Join(", ", v.shape)}]", nameof(v));
        long batch = q.shape[0], heads = q.shape[1], dk = q.shape[2], dv = v.shape[2];
        Expect(k, nameof(k), batch, heads, dk);
        Expect(v, nameof(v), batch, heads, dv);
        Expect(beta, nameof(beta), batch, heads);
        Expect(g, nameof(g), batch, heads);
        Expect(state, nameof(state), batch, heads, dk, dv);
    }

    static void Expect(Tensor t, string name, params long[] shape)
    {
        if (!t.shape.SequenceEqual(shape))
            throw new ArgumentException($"{name} must have shape [{string.Join(", ", shape)}], got [{string.Join(", ", t.shape)}]", name);
    }
}
