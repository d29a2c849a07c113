using TorchSharp;
using static TorchSharp.torch;

namespace HybridDistill.Attention;

// Gated DeltaNet (GDN) kernels, method.md section 3. Per batch b and head h, with state S [Dk, Dv]:
//   S <- exp(g_t) S;   u_t = beta_t (v_t - S^T k_t);   S <- S + k_t u_t^T;   o_t = S^T q_t
// equivalently S_t = alpha_t (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T with alpha_t = exp(g_t).
// Layout is head-first: q, k [B, H, T, Dk] (L2-normalised, q already scaled by Dk^-1/2), v [B, H, T, Dv],
// beta [B, H, T] in (0, 1), g [B, H, T] log-decay (<= 0), state [B, H, Dk, Dv].
// Three paths with one answer: Naive (per-token loop, the reference) and Step (one token, for decoding) here, the
// executable specification; Chunked (WY/UT form with a hand-written backward, for training and prefill) in
// GatedDeltaNet.Chunked.cs. All compute in the dtype of the inputs (fp32 in the project; the tests also run Naive
// in fp64 as a check on the fp32 reference).

/// <summary>Gated DeltaNet attention: the recurrence kernels (naive, chunked, one-token step).</summary>
public sealed partial class GatedDeltaNet
{
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
        // unbind, not select per step: select's backward writes a full-size zero gradient per token (O(T^2)).
        var (qs, ks, vs, betas, gs) = (q.unbind(2), k.unbind(2), v.unbind(2), beta.unbind(2), g.unbind(2)); // -> T x [B, H, D] / [B, H]
        for (long t = 0; t < length; t++)
        {
            var alpha = gs[t].exp().unsqueeze(-1).unsqueeze(-1);               // [B, H] -> [B, H, 1, 1]
            state = state * alpha;
            var kt = ks[t].unsqueeze(-2);                                      // [B, H, Dk] -> [B, H, 1, Dk]
            var recalled = kt.matmul(state);                                   // S^T k: [B, H, 1, Dv]
            var u = betas[t].unsqueeze(-1).unsqueeze(-1)                       // [B, H] -> [B, H, 1, 1]
                    * (vs[t].unsqueeze(-2) - recalled);                        // [B, H, Dv] -> [B, H, 1, Dv]
            state = state + kt.transpose(-1, -2).matmul(u);                    // k u^T: [B, H, Dk, Dv]
            outputs[t] = qs[t].unsqueeze(-2).matmul(state);                    // S^T q: [B, H, 1, Dv]
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

    static (long Batch, long Heads, long Length, long Dk, long Dv) CheckSequenceShapes(Tensor q, Tensor k, Tensor v, Tensor beta, Tensor g, Tensor? initialState)
    {
        if (q.dim() != 4) throw new ArgumentException($"q must be [B, H, T, Dk], got [{string.Join(", ", q.shape)}]", nameof(q));
        long batch = q.shape[0], heads = q.shape[1], length = q.shape[2], dk = q.shape[3];
        if (length < 1) throw new ArgumentException("the sequence must have at least one token (T >= 1)", nameof(q));
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
