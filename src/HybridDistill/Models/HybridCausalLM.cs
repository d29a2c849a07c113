using HybridDistill.Attention;
using HybridDistill.Config;
using HybridDistill.Modules;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace HybridDistill.Models;

/// <summary>The decoder stack under the LM head: HF's <c>model.*</c> parameters.</summary>
public sealed class DecoderStack : nn.Module
{
    private readonly Embedding embed_tokens;
    private readonly ModuleList<DecoderLayer> layers;
    private readonly RmsNorm norm;

    public DecoderStack(ModelConfig config) : base("DecoderStack")
    {
        embed_tokens = nn.Embedding(config.VocabSize, config.HiddenSize);
        layers = nn.ModuleList(Enumerable.Range(0, config.NumHiddenLayers).Select(i => new DecoderLayer(config, i)).ToArray());
        norm = new RmsNorm(config.HiddenSize, config.RmsNormEps);
        RegisterComponents();
    }

    public Embedding Embeddings => embed_tokens;
    public ModuleList<DecoderLayer> Layers => layers;
    public RmsNorm Norm => norm;
}

/// <summary>
/// A decoder-only language model whose layers each have their own attention kind (<c>layer_types</c>).
/// The teacher is this class with every layer softmax; a hybrid is the same class built from a config with
/// a different layout. Parameter names are Hugging Face's (<c>model.layers.3.self_attn.q_proj.weight</c>).
/// </summary>
public sealed class HybridCausalLM : nn.Module
{
    private readonly DecoderStack model;
    private readonly Linear? lm_head;

    private readonly Rotary rotary;

    public HybridCausalLM(ModelConfig config) : base("HybridCausalLM")
    {
        Config = config;
        rotary = new Rotary(config);
        model = new DecoderStack(config);
        if (!config.TieWordEmbeddings) lm_head = nn.Linear(config.HiddenSize, config.VocabSize, hasBias: false);
        RegisterComponents();
    }

    public ModelConfig Config { get; }
    public DecoderStack Stack => model;
    public IReadOnlyList<DecoderLayer> Layers => model.Layers.ToArray();
    public Rotary Rotary => rotary;

    /// <summary>The output projection's weight [V, d] (the embedding matrix when tied).</summary>
    public Tensor LmHeadWeight => lm_head?.weight ?? model.Embeddings.weight!;

    /// <summary>Logits [B, T, V] for token ids [B, T] (int64), a whole sequence from position 0.</summary>
    public Tensor forward(Tensor ids) => Forward(ids, null);

    /// <summary>Logits [B, T, V]; with a state, continues the sequence it holds and advances it.</summary>
    public Tensor Forward(Tensor ids, ModelState? state, ISet<int>? ablatedLayers = null)
    {
        using var scope = NewDisposeScope();
        var logits = Logits(Hidden(ids, state, ablatedLayers));
        return scope.MoveToOuter(logits);
    }

    /// <summary>Final normalised hidden states [B, T, d] (before the LM head).</summary>
    public Tensor Hidden(Tensor ids, ModelState? state, ISet<int>? ablatedLayers = null)
    {
        using var scope = NewDisposeScope();
        long t = ids.size(1);
        long start = state?.Position ?? 0;
        if (state is not null && start + t > state.Capacity)
            throw new InvalidOperationException($"decoding state holds {state.Capacity} positions; {start} + {t} exceed it.");
        var tables = rotary.Tables(start, t, ids.device);
        var context = new AttentionContext(tables, start);
        var x = model.Embeddings.forward(ids);                                            // [B, T] -> [B, T, d]
        for (int i = 0; i < model.Layers.Count; i++)
            x = model.Layers[i].forward(x, context, state?.Layers[i], ablatedLayers?.Contains(i) ?? false);
        state?.Advance(t);
        return scope.MoveToOuter(model.Norm.forward(x));
    }

    /// <summary>hidden [..., d] -> logits [..., V]; a decoding token's [B, 1, d] through <see cref="DecodeKernels"/>.</summary>
    public Tensor Logits(Tensor hidden)
    {
        var weight = LmHeadWeight;
        return hidden.dim() == 3 && hidden.size(1) == 1 && DecodeKernels.CanProject(hidden, [weight]) ? DecodeKernels.Project(hidden, [weight])[0] : nn.functional.linear(hidden, weight);
    }

    /// <summary>An empty decoding state for up to <paramref name="capacity"/> positions (default: the model's context).</summary>
    public ModelState CreateState(long batch = 1, long? capacity = null)
    {
        long cap = capacity ?? Config.MaxPositionEmbeddings;
        return new ModelState(model.Layers.Select(l => l.Attention.CreateState(batch, cap)).ToArray(), cap);
    }

    /// <summary>Re-initialises every weight as HF does for Llama: normal(0, std) matrices, ones for norms.</summary>
    public void InitializeWeights(long seed, double std = 0.02)
    {
        using var _ = no_grad();
        var generator = new Generator((ulong)seed);
        foreach (var (name, p) in named_parameters())
        {
            if (p.dim() >= 2) p.normal_(0, std, generator);
            else if (name.EndsWith("norm.weight") || name.EndsWith("layernorm.weight")) p.fill_(1);
            else if (name.EndsWith(".bias")) p.zero_();
        }
    }

    /// <summary>Parameters that are not token embeddings (the lm_head counts here when untied).</summary>
    public long NonEmbeddingParameters => parameters().Sum(p => p.numel()) - model.Embeddings.weight!.numel();
}
