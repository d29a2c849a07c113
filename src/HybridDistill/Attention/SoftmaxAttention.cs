using HybridDistill.Config;
using HybridDistill.Modules;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace HybridDistill.Attention;

/// <summary>
/// Causal softmax attention with RoPE and grouped-query heads, the teacher's attention.
///   q = W_q x [B, T, H*D], k = W_k x, v = W_v x [B, T, H_kv*D] (optional bias: Qwen2),
///   optional per-head RMSNorm of q and k (Qwen3), RoPE on q and k,
///   o_t = softmax(q_t K^T / sqrt(D)) V over positions <= t; query head h reads KV head h / (H / H_kv);
///   y = W_o o.
/// </summary>
public partial class SoftmaxAttention : AttentionLayer
{
    private readonly Linear q_proj;
    private readonly Linear k_proj;
    private readonly Linear v_proj;
    private readonly RmsNorm? q_norm;
    private readonly RmsNorm? k_norm;
    private readonly Linear o_proj;

    private readonly int heads;
    private readonly int kvHeads;
    private readonly int headDim;

    public SoftmaxAttention(ModelConfig config) : this(config, "SoftmaxAttention") { }

    protected SoftmaxAttention(ModelConfig config, string name) : base(name)
    {
        heads = config.NumAttentionHeads;
        kvHeads = config.NumKeyValueHeads;
        headDim = config.HeadDim;
        q_proj = nn.Linear(config.HiddenSize, heads * headDim, hasBias: config.AttentionBias);
        k_proj = nn.Linear(config.HiddenSize, kvHeads * headDim, hasBias: config.AttentionBias);
        v_proj = nn.Linear(config.HiddenSize, kvHeads * headDim, hasBias: config.AttentionBias);
        if (config.QkNorm)
        {
            q_norm = new RmsNorm(headDim, config.RmsNormEps);
            k_norm = new RmsNorm(headDim, config.RmsNormEps);
        }
        o_proj = nn.Linear(heads * headDim, config.HiddenSize, hasBias: false);
        RegisterComponents();
    }

    public override string Kind => LayerKinds.Softmax;

    public RmsNorm? QNorm => q_norm;
    public RmsNorm? KNorm => k_norm;

    public Linear QProj => q_proj;
    public Linear KProj => k_proj;
    public Linear VProj => v_proj;
    public Linear OProj => o_proj;
    public int Heads => heads;
    public int KvHeads => kvHeads;
    public int HeadDim => headDim;

    public override LayerState CreateState(long batch, long capacity) =>
        new KvCache(batch, kvHeads, capacity, headDim, q_proj.weight!.device);

    public override Tensor forward(Tensor x, AttentionContext context, LayerState? state)
    {
        using var scope = NewDisposeScope();
        var (q, k, v) = ProjectQkv(x, context);
        return scope.MoveToOuter(Output(state is null ? AttendSequence(q, k, v) : AttendWithState(q, k, v, state)));
    }

    /// <summary>q [B, H, T, D], k and v [B, H_kv, T, D], after the optional q/k norm and RoPE.</summary>
    public (Tensor Q, Tensor K, Tensor V) ProjectQkv(Tensor x, AttentionContext context)
    {
        using var scope = NewDisposeScope();
        long b = x.size(0), t = x.size(1);
        bool decoding = t == 1 && DecodeKernels.CanProject(x, q_proj, k_proj, v_proj);
        Tensor[] qkv = decoding
            ? DecodeKernels.Project(x, q_proj, k_proj, v_proj)     // one decoding token: one pass over the three weights
            : [q_proj.forward(x), k_proj.forward(x), v_proj.forward(x)];
        var q = qkv[0].view(b, t, heads, headDim);                  // [B, T, H*D] -> [B, T, H, D]
        var k = qkv[1].view(b, t, kvHeads, headDim);                // [B, T, Hkv*D] -> [B, T, Hkv, D]
        var v = qkv[2].view(b, t, kvHeads, headDim);
        if (q_norm is not null && k_norm is not null)
        {
            q = q_norm.forward(q);
            k = k_norm.forward(k);
        }
        if (decoding && DecodeKernels.CanRotateInPlace(q, context.Rotary) && DecodeKernels.CanRotateInPlace(k, context.Rotary))
        {
            DecodeKernels.RotateInPlace(q, context.Rotary);         // fresh tensors of this call: rotated in place, one pass each
            DecodeKernels.RotateInPlace(k, context.Rotary);
            q = q.transpose(1, 2);                                  // [B, 1, H, D] -> [B, H, 1, D]
            k = k.transpose(1, 2);                                  // [B, 1, Hkv, D] -> [B, Hkv, 1, D]
        }
        else
        {
            q = Rotary.Apply(q.transpose(1, 2), context.Rotary);    // [B, T, H, D] -> [B, H, T, D]
            k = Rotary.Apply(k.transpose(1, 2), context.Rotary);    // [B, T, Hkv, D] -> [B, Hkv, T, D]
        }
        v = v.transpose(1, 2);
        return (scope.MoveToOuter(q), scope.MoveToOuter(k), scope.MoveToOuter(v));
    }

    /// <summary>o [B, H, T, D] -> o_proj over the concatenated heads [B, T, d_model].</summary>
    public Tensor Output(Tensor o)
    {
        using var scope = NewDisposeScope();
        long b = o.size(0), t = o.size(2);
        var merged = o.transpose(1, 2).reshape(b, t, heads * headDim); // [B, H, T, D] -> [B, T, H*D]
        return scope.MoveToOuter(t == 1 && DecodeKernels.CanProject(merged, o_proj) ? DecodeKernels.Project(merged, o_proj)[0] : o_proj.forward(merged));
    }

    /// <summary>A whole sequence from position 0: q [B, H, T, D], k and v [B, H_kv, T, D] -> o [B, H, T, D].</summary>
    protected virtual Tensor AttendSequence(Tensor q, Tensor k, Tensor v) => Attend(q, k, v, 0);

    /// <summary>New tokens continuing the sequence held by <paramref name="state"/>, which takes their keys and values.</summary>
    protected virtual Tensor AttendWithState(Tensor q, Tensor k, Tensor v, LayerState state)
    {
        if (state is not KvCache cache) throw new ArgumentException($"softmax attention needs a KvCache, got {state.GetType().Name}");
        if (CanAttendToken(q, k, v, cache)) return AttendToken(q, k, v, cache);   // one decoding token: over the cache in place
        long start = cache.Length;
        var (keys, values) = cache.Append(k, v);
        return Attend(q, keys, values, start);
    }

    /// <summary>
    /// Causal attention of q [B, H, T, D] at positions start..start+T-1 over keys/values [B, H_kv, L, D] at
    /// positions 0..L-1 (L = start + T).
    /// </summary>
    public static Tensor Attend(Tensor q, Tensor keys, Tensor values, long start)
    {
        using var scope = NewDisposeScope();
        long b = q.shape[0], h = q.shape[1], t = q.shape[2], d = q.shape[3];
        long hkv = keys.shape[1], l = keys.shape[2];
        long groups = h / hkv;
        Tensor o;
        if (t == 1)
        {
            // One query per head needs no mask, so the G query heads sharing a KV head can be laid out as
            // G query positions against that head's keys: no copy of the (possibly long) cache.
            var qg = q.reshape(b, hkv, groups, d);                                     // [B, H, 1, D] -> [B, Hkv, G, D]
            o = nn.functional.scaled_dot_product_attention(qg, keys, values)           // [B, Hkv, G, D]
                .reshape(b, h, 1, d);                                                  // -> [B, H, 1, D]
        }
        else
        {
            var k = ExpandKv(keys, groups);                                            // [B, H, L, D]
            var v = ExpandKv(values, groups);
            if (start == 0 && l == t)
                o = nn.functional.scaled_dot_product_attention(q, k, v, is_casual: true);
            else
            {
                // query i (position start + i) sees keys j <= start + i
                var allowed = arange(l, device: q.device).unsqueeze(0) <= arange(start, start + t, device: q.device).unsqueeze(1); // [T, L]
                o = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask: allowed);
            }
        }
        return scope.MoveToOuter(o);
    }

    /// <summary>[B, H_kv, L, D] -> [B, H_kv * groups, L, D]: query head h reads KV head h / groups.</summary>
    public static Tensor ExpandKv(Tensor kv, long groups)
    {
        if (groups == 1) return kv.alias();
        long b = kv.shape[0], hkv = kv.shape[1], l = kv.shape[2], d = kv.shape[3];
        return kv.unsqueeze(2).expand(b, hkv, groups, l, d).reshape(b, hkv * groups, l, d); // [B, Hkv, G, L, D] -> [B, H, L, D]
    }
}
