using HybridDistill.Config;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace HybridDistill.Attention;

/// <summary>How k/v projections go from the teacher's KV heads to one per query head.</summary>
public enum KvExpansion
{
    /// <summary>Query head i gets KV head i / (H / H_kv), whole head blocks: the mapping GQA itself uses.</summary>
    Heads,
    /// <summary>Each single weight row repeated H / H_kv times (the reference implementation; for parity experiments).</summary>
    Rows,
}

/// <summary>RADLADS weight transfer: copy the teacher attention's projections into a linear-attention layer.</summary>
public static class WeightTransfer
{
    /// <summary>kv_expand's words (recipes, --set, run_config.json) and convert's --kv-expand.</summary>
    public static readonly SettingWords<KvExpansion> KvExpansionWords = new(("heads", KvExpansion.Heads), ("rows", KvExpansion.Rows));

    public static KvExpansion ParseKvExpansion(string text) => KvExpansionWords.TryParse(text, out var mode) ? mode
        : throw new InputException($"kv-expand must be \"heads\" or \"rows\", got \"{text}\".");

    /// <summary>Teacher k/v weight [H_kv*D, d] (or bias [H_kv*D]) -> [H*D, d] (or [H*D]).</summary>
    public static Tensor ExpandKv(Tensor teacher, int kvHeads, int groups, KvExpansion mode)
    {
        using var scope = NewDisposeScope();
        long rows = teacher.shape[0];
        long headDim = rows / kvHeads;
        Tensor expanded;
        if (mode == KvExpansion.Rows)
            expanded = teacher.repeat_interleave(groups, dim: 0);                              // row r of the result = row r / G
        else
        {
            var tail = teacher.shape.Skip(1).ToArray();
            var blocks = teacher.reshape([kvHeads, 1, headDim, .. tail]);                      // [Hkv*D, ...] -> [Hkv, 1, D, ...]
            expanded = blocks.expand([kvHeads, groups, headDim, .. tail])                     // -> [Hkv, G, D, ...]
                .reshape([kvHeads * groups * headDim, .. tail]);                              // -> [H*D, ...]
        }
        return scope.MoveToOuter(expanded.contiguous());
    }

    /// <summary>Copies a teacher projection (weight, and bias when both have one; a teacher bias into a bias-free target is an error).</summary>
    public static void Copy(Linear target, Tensor weight, Tensor? bias)
    {
        using var _ = no_grad();
        target.weight!.copy_(weight);
        if (bias is not null)
        {
            if (target.bias is null) throw new InvalidOperationException("the teacher projection has a bias but the student's has none");
            target.bias.copy_(bias);
        }
        else target.bias?.zero_();
    }

    /// <summary>
    /// The RADLADS transfer shared by every linear kind: q and o copied, k and v expanded from the teacher's KV
    /// heads to its query heads, q/k/v biases carried over when the student's projections have them (a student built
    /// with linear_attention.qkv_bias=false, drop_qkv_bias, drops them as the reference code does).
    /// </summary>
    public static void CopyProjections(SoftmaxAttention teacher, Linear q, Linear k, Linear v, Linear o, KvExpansion mode)
    {
        using var scope = NewDisposeScope();
        int groups = teacher.Heads / teacher.KvHeads;
        Tensor? Expand(Tensor? t) => t is null ? null : ExpandKv(t, teacher.KvHeads, groups, mode);
        Copy(q, teacher.QProj.weight!, q.bias is null ? null : teacher.QProj.bias);
        Copy(k, Expand(teacher.KProj.weight)!, k.bias is null ? null : Expand(teacher.KProj.bias));
        Copy(v, Expand(teacher.VProj.weight)!, v.bias is null ? null : Expand(teacher.VProj.bias));
        Copy(o, teacher.OProj.weight!, null);
    }
}
