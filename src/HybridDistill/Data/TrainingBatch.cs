using TorchSharp;
using static TorchSharp.torch;

namespace HybridDistill.Data;

/// <summary>
/// Windows of a token directory as one batch: <c>Tokens</c> int64 [B, T + 1] (T inputs plus the next token of each
/// as target) and, for a synthetic corpus, their loss classes uint8 [B, T + 1] (<see cref="LossClasses"/>).
/// </summary>
public sealed record TrainingBatch(Tensor Tokens, Tensor? Classes = null) : IDisposable
{
    public long Windows => Tokens.shape[0];

    /// <summary>Moves both tensors into <paramref name="scope"/> (batches made outside a dispose scope).</summary>
    public TrainingBatch AttachTo(DisposeScope scope)
    {
        scope.Attach(Tokens);
        if (Classes is not null) scope.Attach(Classes);
        return this;
    }

    public void Dispose()
    {
        Tokens.Dispose();
        Classes?.Dispose();
    }
}
