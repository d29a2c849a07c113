using HybridDistill.Attention;
using HybridDistill.Config;
using static TorchSharp.torch;

namespace HybridDistill.Models;

/// <summary>
/// Builds a student from a teacher: the same config with another <c>layer_types</c>. Embeddings, MLPs, norms
/// and the attention of layers that stay softmax (or become sliding-window, which keeps the weights) are
/// copied exactly; layers that become linear get the RADLADS weight transfer (<c>InitFromTeacher</c>).
/// </summary>
public static class HybridConversion
{
    public static HybridCausalLM FromTeacher(HybridCausalLM teacher, IReadOnlyList<string> layerTypes,
        KvExpansion kvExpansion = KvExpansion.Heads, long seed = 0, LinearAttentionOptions? options = null)
    {
        if (!teacher.Config.IsAllSoftmax)
            throw new InputException("the teacher must be an all-softmax model (its layer_types are " +
                string.Join(",", teacher.Config.LayerTypes) + ").");
        var config = teacher.Config.WithLayerTypes(layerTypes);
        if (options is not null) config = config with { LinearAttention = options };
        if (config.LayerTypes.Contains(LayerKinds.SlidingWindow) && config.LinearAttention.Swa.Window is null)
            throw new InputException("sliding-window layers need a window: set linear_attention.swa.window (for example --swa-window 256).");

        manual_seed(seed);                      // the fresh gate parameters' init
        var student = new HybridCausalLM(config);
        try
        {
            var teacherParams = teacher.state_dict();
            using (no_grad())
                foreach (var (name, p) in student.state_dict())
                    if (teacherParams.TryGetValue(name, out var source) && source.shape.SequenceEqual(p.shape) && IsShared(name, config))
                        p.copy_(source);
            for (int i = 0; i < config.NumHiddenLayers; i++)
            {
                // softmax and sliding-window layers were copied above with the shared weights
                if (student.Layers[i].Attention is ITeacherInitialized linear)
                    linear.InitFromTeacher((SoftmaxAttention)teacher.Layers[i].Attention, kvExpansion);
            }
        }
        catch
        {
            student.Dispose();
            throw;
        }
        return student;
    }

    /// <summary>Everything but the attention of linear layers is the teacher's, under the same name.</summary>
    private static bool IsShared(string name, ModelConfig config)
    {
        const string prefix = "model.layers.";
        if (!name.StartsWith(prefix) || !name.Contains(".self_attn.")) return true;
        int layer = int.Parse(name.AsSpan(prefix.Length, name.IndexOf('.', prefix.Length) - prefix.Length));
        return !LayerKinds.IsLinear(config.LayerTypes[layer]);
    }
}
