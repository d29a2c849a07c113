using HybridDistill.Config;
using HybridDistill.Modules;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace HybridDistill.Attention;

/// <summary>
/// The Gated DeltaNet layer around the kernels (method.md section 3), with flash-linear-attention's parameter names:
///   q, k, v = silu(W_q x), silu(W_k x), silu(W_v x)      [B, T, H*D] (optionally via a causal short conv + SiLU)
///   q, k L2-normalised per head; q scaled by D^-1/2;  beta = sigmoid(W_b x), g = -exp(A_log) softplus(W_a x + dt_bias)  [B, T, H]
///   o = GDN(q, k, v, beta, g);  y = W_o (RMSNorm(o) * w * silu(W_g x))
/// H and D are the teacher's query heads and head dim.
/// </summary>
public sealed partial class GatedDeltaNet : AttentionLayer, ITeacherInitialized
{
    private readonly Linear q_proj;
    private readonly Linear k_proj;
    private readonly Linear v_proj;
    private readonly ShortConvolution? q_conv1d;
    private readonly ShortConvolution? k_conv1d;
    private readonly ShortConvolution? v_conv1d;
    private readonly Linear a_proj;
    private readonly Linear b_proj;
    private readonly Parameter A_log;
    private readonly Parameter dt_bias;
    private readonly Linear g_proj;
    private readonly RmsNorm o_norm;
    private readonly Linear o_proj;

    private readonly int heads;
    private readonly int headDim;
    private readonly GdnOptions options;

    public GatedDeltaNet(ModelConfig config) : base("GatedDeltaNet")
    {
        heads = config.NumAttentionHeads;
        headDim = config.HeadDim;
        options = config.LinearAttention.Gdn;
        long inner = heads * headDim;
        q_proj = nn.Linear(config.HiddenSize, inner, hasBias: config.LinearAttention.QkvBias ?? config.AttentionBias);
        k_proj = nn.Linear(config.HiddenSize, inner, hasBias: config.LinearAttention.QkvBias ?? config.AttentionBias);
        v_proj = nn.Linear(config.HiddenSize, inner, hasBias: config.LinearAttention.QkvBias ?? config.AttentionBias);
        if (options.UseShortConv)
        {
            q_conv1d = new ShortConvolution(inner, options.ConvSize);
            k_conv1d = new ShortConvolution(inner, options.ConvSize);
            v_conv1d = new ShortConvolution(inner, options.ConvSize);
        }
        a_proj = nn.Linear(config.HiddenSize, heads, hasBias: false);
        b_proj = nn.Linear(config.HiddenSize, heads, hasBias: false);
        // A ~ U(0, 16) per head, stored as its log.
        A_log = new Parameter(empty(heads).uniform_(0, 16).log_());
        // dt ~ exp(U(log 1e-3, log 1e-1)) clamped >= 1e-4; dt_bias = softplus^-1(dt) = dt + log(1 - exp(-dt)).
        var dt = (rand(heads) * (Math.Log(0.1) - Math.Log(1e-3)) + Math.Log(1e-3)).exp_().clamp_(min: 1e-4);
        dt_bias = new Parameter(dt + (-(-dt).expm1()).log());
        dt.Dispose();
        g_proj = nn.Linear(config.HiddenSize, inner, hasBias: false);
        o_norm = new RmsNorm(headDim, options.NormEps);
        o_proj = nn.Linear(inner, config.HiddenSize, hasBias: false);
        RegisterComponents();
    }

    public override string Kind => LayerKinds.GatedDeltaNet;

    public override LayerState CreateState(long batch, long capacity)
    {
        var device = q_proj.weight!.device;
        long inner = heads * headDim;
        Tensor? Conv() => q_conv1d is null ? null : zeros(batch, inner, options.ConvSize - 1, device: device);
        return new RecurrentState(zeros(batch, heads, headDim, headDim, device: device), Conv(), Conv(), Conv());
    }

    public override Tensor forward(Tensor x, AttentionContext context, LayerState? state)
    {
        using var scope = NewDisposeScope();
        var gdnState = state as RecurrentState;
        if (state is not null && gdnState is null)
            throw new ArgumentException($"Gated DeltaNet needs a RecurrentState, got {state.GetType().Name}");
        long b = x.size(0), t = x.size(1);
        if (gdnState is not null && t == 1 && !is_grad_enabled() && CanDecodeInPlace(x, gdnState))
            return scope.MoveToOuter(DecodeToken(x, gdnState));

        var q = Features(q_proj.forward(x), q_conv1d, gdnState?.QConv);                           // [B, T, H*D]
        var k = Features(k_proj.forward(x), k_conv1d, gdnState?.KConv);
        var v = Features(v_proj.forward(x), v_conv1d, gdnState?.VConv);
        q = L2Normalize(q.view(b, t, heads, headDim)).transpose(1, 2) * Math.Pow(headDim, -0.5); // [B, T, H*D] -> [B, H, T, D]
        k = L2Normalize(k.view(b, t, heads, headDim)).transpose(1, 2);
        v = v.view(b, t, heads, headDim).transpose(1, 2);
        var beta = sigmoid(b_proj.forward(x)).transpose(1, 2);                                     // [B, T, H] -> [B, H, T]
        var g = (-A_log.exp() * nn.functional.softplus(a_proj.forward(x) + dt_bias)).transpose(1, 2); // [B, H, T], <= 0

        var o = RecurrentState.Advance(gdnState, t,
            initial => Chunked(q, k, v, beta, g, initial, options.ChunkSize),
            current =>
            {
                var (step, next) = Step(q.squeeze(2), k.squeeze(2), v.squeeze(2), beta.squeeze(2), g.squeeze(2), current);
                return (step.unsqueeze(2), next);                                                  // [B, H, D] -> [B, H, 1, D]
            });

        var gate = nn.functional.silu(g_proj.forward(x)).view(b, t, heads, headDim);             // [B, T, H, D]
        var y = (o_norm.forward(o.transpose(1, 2)) * gate).reshape(b, t, heads * headDim);         // [B, H, T, D] -> [B, T, H*D]
        return scope.MoveToOuter(o_proj.forward(y));
    }

    /// <summary>
    /// One decoding token without autograd (what generation runs): the six projections as matrix-vector products,
    /// everything between them and o_proj in one pass over raw memory (<see cref="DecodeProjected"/>), the state
    /// updated in place. Tested against the sequence path (prefill + decoding == full forward).
    /// </summary>
    private Tensor DecodeToken(Tensor x, RecurrentState state)
    {
        long b = x.size(0);
        var x2 = x.reshape(b, -1);                                                                 // [B, 1, d] -> [B, d]
        Linear[] projections = [q_proj, k_proj, v_proj, g_proj, a_proj, b_proj];
        var p = DecodeKernels.CanProject(x2, projections)
            ? DecodeKernels.Project(x2, projections)                                               // one pass over the six weights
            : projections.Select(l => l.forward(x2)).ToArray();
        var y = DecodeProjected(p[0], p[1], p[2], p[3], p[4], p[5], state);                       // [B, H*D] x 4, [B, H] x 2
        return DecodeKernels.CanProject(y, o_proj) ? DecodeKernels.Project(y, o_proj)[0] : o_proj.forward(y); // [B, 1, H*D] -> [B, 1, d]
    }

    /// <summary>
    /// RADLADS transfer from the teacher's attention: q and o copied, k and v expanded from KV heads to query
    /// heads, q/k/v biases carried over. The gates, A_log, dt_bias and o_norm keep their fresh init.
    /// </summary>
    public void InitFromTeacher(SoftmaxAttention teacher, KvExpansion kvExpansion) =>
        WeightTransfer.CopyProjections(teacher, q_proj, k_proj, v_proj, o_proj, kvExpansion);

    public Linear KProj => k_proj;
    public Linear VProj => v_proj;

    /// <summary>Projection -> (short conv + SiLU) or SiLU.</summary>
    private static Tensor Features(Tensor projected, ShortConvolution? conv, Tensor? convCache) =>
        conv is null ? nn.functional.silu(projected) : conv.forward(projected, convCache);

    /// <summary>x / sqrt(sum x^2 + 1e-6) over the last dimension.</summary>
    // The epsilon as a Scalar that lives as long as the process: an implicit double -> Scalar in `t + 1e-6` can be
    // finalised by the garbage collector while libtorch reads it (see RmsNorm).
    private static readonly Scalar L2Epsilon = 1e-6.ToScalar();

    private static Tensor L2Normalize(Tensor x) => x * rsqrt(x.square().sum(-1, keepdim: true).add(L2Epsilon));
}
