using HybridDistill.Config;
using HybridDistill.Modules;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace HybridDistill.Attention;

/// <summary>
/// The gated linear attention layer around the kernels (flash-linear-attention's GLA layer and names):
///   q = W_q x * D_k^-1/2, k = W_k x, v = W_v x                           [B, T, H*D] (no feature map, no conv)
///   log alpha = logsigmoid(W_2 W_1 x + b) / 16   (rank-16 gate: gk_proj.0, then gk_proj.1 with bias)  [B, T, H*D_k]
///   o = GLA(q, k, v, log alpha);  y = W_o (RMSNorm(o) * w * silu(W_g x))
/// q/k/v/o come from the teacher (k/v expanded to the query heads); the gates start fresh.
/// </summary>
public sealed partial class GatedLinearAttention : AttentionLayer, ITeacherInitialized
{
    private readonly Linear q_proj;
    private readonly Linear k_proj;
    private readonly Linear v_proj;
    private readonly Sequential gk_proj;
    private readonly Linear g_proj;
    private readonly RmsNorm o_norm;
    private readonly Linear o_proj;

    private readonly int heads;
    private readonly int headDim;
    private readonly GlaOptions options;

    public GatedLinearAttention(ModelConfig config) : base("GatedLinearAttention")
    {
        heads = config.NumAttentionHeads;
        headDim = config.HeadDim;
        options = config.LinearAttention.Gla;
        long inner = heads * headDim;
        q_proj = nn.Linear(config.HiddenSize, inner, hasBias: config.LinearAttention.QkvBias ?? config.AttentionBias);
        k_proj = nn.Linear(config.HiddenSize, inner, hasBias: config.LinearAttention.QkvBias ?? config.AttentionBias);
        v_proj = nn.Linear(config.HiddenSize, inner, hasBias: config.LinearAttention.QkvBias ?? config.AttentionBias);
        gk_proj = nn.Sequential(
            ("0", nn.Linear(config.HiddenSize, options.GateLowRankDim, hasBias: false)),
            ("1", nn.Linear(options.GateLowRankDim, inner, hasBias: true)));
        g_proj = nn.Linear(config.HiddenSize, inner, hasBias: false);
        o_norm = new RmsNorm(headDim, 1e-5);
        o_proj = nn.Linear(inner, config.HiddenSize, hasBias: false);
        RegisterComponents();
    }

    public override string Kind => LayerKinds.GatedLinearAttention;

    public override LayerState CreateState(long batch, long capacity) =>
        new RecurrentState(zeros(batch, heads, headDim, headDim, device: q_proj.weight!.device));

    public override Tensor forward(Tensor x, AttentionContext context, LayerState? state)
    {
        using var scope = NewDisposeScope();
        var recurrent = state as RecurrentState;
        if (state is not null && recurrent is null)
            throw new ArgumentException($"gated linear attention needs a RecurrentState, got {state.GetType().Name}");
        long b = x.size(0), t = x.size(1);
        var (qRaw, kRaw, vRaw, gkRaw, gRaw) = Projections(x, t);                                       // [B, T, H*D] each
        var q = qRaw.view(b, t, heads, headDim).transpose(1, 2) * Math.Pow(headDim, -0.5);            // [B, T, H*D] -> [B, H, T, D]
        var k = kRaw.view(b, t, heads, headDim).transpose(1, 2);
        var v = vRaw.view(b, t, heads, headDim).transpose(1, 2);
        var gk = (nn.functional.logsigmoid(gkRaw) / options.GateLogitNormalizer)
            .view(b, t, heads, headDim).transpose(1, 2);                                                // [B, H, T, D], <= 0

        var o = RecurrentState.Advance(recurrent, t,
            initial => Chunked(q, k, v, gk, initial, options.ChunkSize),
            current =>
            {
                var (step, next) = Step(q.squeeze(2), k.squeeze(2), v.squeeze(2), gk.squeeze(2), current);
                return (step.unsqueeze(2), next);                                                  // [B, H, D] -> [B, H, 1, D]
            });

        var gate = nn.functional.silu(gRaw).view(b, t, heads, headDim);                               // [B, T, H, D]
        var y = (o_norm.forward(o.transpose(1, 2)) * gate).reshape(b, t, heads * headDim);              // [B, H, T, D] -> [B, T, H*D]
        return scope.MoveToOuter(t == 1 && DecodeKernels.CanProject(y, o_proj) ? DecodeKernels.Project(y, o_proj)[0] : o_proj.forward(y));
    }

    /// <summary>
    /// The projections of x [B, T, d]: q, k, v, the gate logits gk (rank-16: W_2 (W_1 x) + b) and the output gate g,
    /// each [B, T, H*D]. One decoding token reads x once for the five weights that take it (<see cref="DecodeKernels"/>).
    /// </summary>
    private (Tensor Q, Tensor K, Tensor V, Tensor Gk, Tensor G) Projections(Tensor x, long t)
    {
        var gkLayers = gk_proj.children().Cast<Linear>().ToArray();                                    // W_1 [16, d], W_2 [H*D, 16]
        Linear[] fromX = [q_proj, k_proj, v_proj, g_proj, gkLayers[0]];
        if (t == 1 && DecodeKernels.CanProject(x, fromX))
        {
            var p = DecodeKernels.Project(x, fromX);
            var gk = DecodeKernels.CanProject(p[4], gkLayers[1]) ? DecodeKernels.Project(p[4], gkLayers[1])[0] : gkLayers[1].forward(p[4]);
            return (p[0], p[1], p[2], gk, p[3]);
        }
        return (q_proj.forward(x), k_proj.forward(x), v_proj.forward(x), gk_proj.forward(x), g_proj.forward(x));
    }

    /// <summary>RADLADS transfer: q and o copied, k and v expanded from KV heads to query heads, biases carried over.</summary>
    public void InitFromTeacher(SoftmaxAttention teacher, KvExpansion kvExpansion) =>
        WeightTransfer.CopyProjections(teacher, q_proj, k_proj, v_proj, o_proj, kvExpansion);
}
