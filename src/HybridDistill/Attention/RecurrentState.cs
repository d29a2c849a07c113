using static TorchSharp.torch;

namespace HybridDistill.Attention;

/// <summary>
/// Decoding state of a linear-attention layer: the matrix state S [B, H, D_k, D_v] and, for layers with a short
/// convolution, the last K-1 inputs of q, k and v [B, C, K-1]. Constant size, whatever the context length.
/// </summary>
public sealed class RecurrentState : LayerState
{
    public RecurrentState(Tensor s, Tensor? qConv = null, Tensor? kConv = null, Tensor? vConv = null)
    {
        S = s;
        QConv = qConv;
        KConv = kConv;
        VConv = vConv;
    }

    public Tensor S { get; private set; }
    public Tensor? QConv { get; }
    public Tensor? KConv { get; }
    public Tensor? VConv { get; }

    public override long Bytes =>
        (S.numel() + (QConv?.numel() ?? 0) + (KConv?.numel() ?? 0) + (VConv?.numel() ?? 0)) * sizeof(float);

    /// <summary>
    /// Takes over <paramref name="next"/> (detached, out of any dispose scope) as the new S. A tensor in an autograd
    /// graph is copied, so S is always the state's own memory, which the decoding fast path updates in place.
    /// </summary>
    public void Replace(Tensor next)
    {
        var old = S;
        S = (next.requires_grad ? next.detach().clone() : next.detach()).DetachFromDisposeScope();
        old.Dispose();
    }

    /// <summary>
    /// Runs a linear-attention kernel over new tokens. Without a state: the whole sequence from a zero state through
    /// the chunked path. With one: a single token through the step path, several through the chunked path from S;
    /// either way the state then holds the final S. Returns the output.
    /// </summary>
    public static Tensor Advance(RecurrentState? state, long tokens,
        Func<Tensor?, (Tensor Output, Tensor FinalState)> chunked, Func<Tensor, (Tensor Output, Tensor NewState)> step)
    {
        if (state is null) return chunked(null).Output;
        var (output, next) = tokens == 1 ? step(state.S) : chunked(state.S);
        state.Replace(next);
        return output;
    }

    public override void Dispose()
    {
        S.Dispose();
        QConv?.Dispose();
        KConv?.Dispose();
        VConv?.Dispose();
    }
}
