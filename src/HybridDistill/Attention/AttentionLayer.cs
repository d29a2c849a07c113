using HybridDistill.Modules;
using static TorchSharp.torch;

namespace HybridDistill.Attention;

/// <summary>
/// What an attention layer gets besides its input: the rotary tables for the positions of this call
/// (softmax kinds use them, linear kinds ignore them) and the absolute position of the first token.
/// </summary>
public sealed record AttentionContext(RotaryTables Rotary, long Start);

/// <summary>
/// The decoding state of one layer, owned by a <see cref="Models.ModelState"/>: a KV cache for softmax
/// layers, a recurrent state for linear ones, a ring buffer for sliding-window ones. Modules never hold it.
/// </summary>
public abstract class LayerState : IDisposable
{
    /// <summary>Bytes of cache/state this layer holds for the tokens seen so far.</summary>
    public abstract long Bytes { get; }
    public abstract void Dispose();
}

/// <summary>
/// One attention kind. Input is the pre-normalised hidden state x [B, T, d_model]; output [B, T, d_model].
/// With <c>state == null</c> the call covers a whole sequence from position 0 (training, scoring); with a
/// state, the call continues the sequence the state has seen and updates the state in place.
/// </summary>
public abstract class AttentionLayer : nn.Module
{
    protected AttentionLayer(string name) : base(name) { }

    /// <summary>The layer_types name of this kind.</summary>
    public abstract string Kind { get; }

    /// <summary>Output [B, T, d_model], a fresh tensor (its output projection's result) that the caller owns and may write into.</summary>
    public abstract Tensor forward(Tensor x, AttentionContext context, LayerState? state);

    /// <summary>A fresh, empty state for decoding <paramref name="capacity"/> tokens with batch size <paramref name="batch"/>.</summary>
    public abstract LayerState CreateState(long batch, long capacity);
}

/// <summary>A linear-attention kind initialised from the teacher's softmax attention (RADLADS weight transfer).</summary>
public interface ITeacherInitialized
{
    void InitFromTeacher(SoftmaxAttention teacher, KvExpansion kvExpansion);
}
