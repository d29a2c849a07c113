using HybridDistill.Attention;
using HybridDistill.Config;
using HybridDistill.Modules;
using TorchSharp;
using static TorchSharp.torch;

namespace HybridDistill.Models;

/// <summary>Pre-norm block: <c>h = x + Attn(RMSNorm(x)); y = h + MLP(RMSNorm(h))</c>.</summary>
public sealed class DecoderLayer : nn.Module
{
    private readonly RmsNorm input_layernorm;
    private readonly AttentionLayer self_attn;
    private readonly RmsNorm post_attention_layernorm;
    private readonly SwiGluMlp mlp;

    public DecoderLayer(ModelConfig config, int layerIndex) : base($"DecoderLayer{layerIndex}")
    {
        input_layernorm = new RmsNorm(config.HiddenSize, config.RmsNormEps);
        self_attn = AttentionFactory.Create(config, layerIndex);
        post_attention_layernorm = new RmsNorm(config.HiddenSize, config.RmsNormEps);
        mlp = new SwiGluMlp(config.HiddenSize, config.IntermediateSize);
        RegisterComponents();
    }

    public RmsNorm InputNorm => input_layernorm;
    public AttentionLayer Attention => self_attn;
    public RmsNorm PostAttentionNorm => post_attention_layernorm;
    public SwiGluMlp Mlp => mlp;

    /// <param name="ablateAttention">Zero this layer's attention output (the diagnostic baselines' ablation).</param>
    public Tensor forward(Tensor x, AttentionContext context, LayerState? state, bool ablateAttention = false)
    {
        using var scope = NewDisposeScope();
        var attention = self_attn.forward(input_layernorm.forward(x), context, state);   // [B, T, d]
        var h = ablateAttention ? x : Residual(x, attention);
        var y = Residual(h, mlp.forward(post_attention_layernorm.forward(h)));
        return scope.MoveToOuter(y);
    }

    /// <summary>
    /// x + branch [B, T, d]. A decoding token's sum is written into <paramref name="branch"/>, which every attention kind
    /// and the MLP return fresh (their output projection's result), instead of a libtorch add.
    /// </summary>
    static Tensor Residual(Tensor x, Tensor branch)
    {
        if (!DecodeKernels.CanAddInPlace(branch, x)) return x + branch;
        DecodeKernels.Add(RawFloats.Of(branch), RawFloats.Of(x));
        return branch;
    }

    /// <summary>The MLP half of the block, for callers that compute the attention half themselves (stage 1).</summary>
    public Tensor MlpResidual(Tensor h)
    {
        using var scope = NewDisposeScope();
        return scope.MoveToOuter(h + mlp.forward(post_attention_layernorm.forward(h)));
    }
}
