using HybridDistill.Config;
using static TorchSharp.torch;

namespace HybridDistill.Attention;

/// <summary>Ring-buffer KV cache of a sliding-window layer, with the KV heads only (GQA heads are expanded at attention time).</summary>
public sealed class SlidingWindowState(SlidingWindowCache cache) : LayerState
{
    public SlidingWindowCache Cache { get; } = cache;

    /// <summary>Keys and values of the tokens currently in the window (at most `window` of them).</summary>
    public override long Bytes => 2 * Cache.Batch * Cache.Heads * Cache.Length * Cache.HeadDim * sizeof(float);

    public override void Dispose() => Cache.Dispose();
}

/// <summary>
/// The sliding-window layer: the teacher's softmax attention, weights copied exactly, restricted to the last
/// <c>window</c> positions. Prefill uses the blocked banded mask (<see cref="Masked"/>); decoding keeps a ring
/// of the last <c>window</c> keys and values, so its cache stops growing at the window.
/// </summary>
public sealed partial class SlidingWindowAttention : SoftmaxAttention
{
    private readonly int window;

    public SlidingWindowAttention(ModelConfig config) : base(config, "SlidingWindowAttention")
    {
        window = config.LinearAttention.Swa.Window
            ?? throw new InputException("sliding-window layers need linear_attention.swa.window (or sliding_window) in config.json.");
    }

    public override string Kind => LayerKinds.SlidingWindow;

    public int Window => window;

    public override LayerState CreateState(long batch, long capacity) =>
        new SlidingWindowState(new SlidingWindowCache(batch, KvHeads, window, HeadDim, device: QProj.weight!.device));

    protected override Tensor AttendSequence(Tensor q, Tensor k, Tensor v)
    {
        using var scope = NewDisposeScope();
        long groups = Heads / KvHeads;
        return scope.MoveToOuter(Masked(q, ExpandKv(k, groups), ExpandKv(v, groups), window));
    }

    protected override Tensor AttendWithState(Tensor q, Tensor k, Tensor v, LayerState state)
    {
        if (state is not SlidingWindowState { Cache: var cache })
            throw new ArgumentException($"sliding-window attention needs a SlidingWindowState, got {state.GetType().Name}");
        using var scope = NewDisposeScope();
        if (cache.Count == 0)
        {
            // Prefill into an empty ring: the banded mask over the new tokens, then keep their last `window` keys/values.
            var o = AttendSequence(q, k, v);
            cache.Append(k, v);
            return scope.MoveToOuter(o);
        }
        // Continuing: token by token, each attending to the ring (no mask needed for one query; key order is irrelevant).
        var outputs = new List<Tensor>();
        for (long i = 0, tokens = q.size(2); i < tokens; i++)
        {
            cache.Append(k.narrow(2, i, 1), v.narrow(2, i, 1));
            var (keys, values) = cache.Valid();
            outputs.Add(Attend(q.narrow(2, i, 1), keys, values, 0));
        }
        return scope.MoveToOuter(cat(outputs, 2));
    }
}
