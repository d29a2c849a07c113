// A student is built, never edited: a config with the teacher's architecture and the student's layer_types,
// then every tensor copied from its source (method.md sections 2 and 4):
//   embeddings, MLPs, norms, LM head   <- --from when given (its trained values), else the teacher
//   attention of a softmax (or swa) layer <- --from when that layer has that kind there too, else the teacher exactly
//   attention of a linear layer         <- --from when that layer has the same kind there, else a fresh layer
//                                          initialised from the teacher's attention (q/k/v/o transfer,
//                                          ITeacherInitialized.InitFromTeacher; k/v expanded per kv_expand)
// Every command that makes a hybrid from a teacher builds it here: convert and bench decode (no --from),
// distill, score and bench train.
using System.Text.RegularExpressions;
using HybridDistill.Attention;
using HybridDistill.Checkpoints;
using HybridDistill.Config;
using static TorchSharp.torch;

namespace HybridDistill.Models;

public static partial class StudentBuilder
{
    [GeneratedRegex(@"^model\.layers\.(\d+)\.self_attn\.")]
    private static partial Regex AttentionParameter();

    /// <summary>The layer index when <paramref name="name"/> is an attention parameter (<c>model.layers.L.self_attn.*</c>), else null.</summary>
    public static int? AttentionLayerOf(string name)
    {
        var m = AttentionParameter().Match(name);
        return m.Success ? int.Parse(m.Groups[1].Value) : null;
    }

    /// <summary>Stage 2's two LR groups put these with attention: the attention itself and its pre-norm.</summary>
    public static bool IsAttentionGroup(string name) =>
        AttentionLayerOf(name) is not null || (name.StartsWith("model.layers.") && name.Contains(".input_layernorm."));

    /// <summary>Builds the student with <paramref name="layerTypes"/> from the teacher and, optionally, a previous stage's model directory.
    /// <paramref name="dropQkvBias"/>: the linear layers get q/k/v projections without bias (the reference's conversion).
    /// <paramref name="options"/>: the student's <c>linear_attention</c> settings (default: --from's, else the teacher's).</summary>
    public static HybridCausalLM Build(HybridCausalLM teacher, IReadOnlyList<string> layerTypes, string? fromDir = null, long seed = 0,
        KvExpansion kvExpansion = KvExpansion.Heads, bool dropQkvBias = false, LinearAttentionOptions? options = null)
    {
        var teacherConfig = teacher.Config;
        ModelConfig? fromConfig = null;
        if (fromDir is not null)
        {
            fromConfig = ModelConfig.Load(fromDir);
            CheckSameArchitecture(teacherConfig, fromConfig, fromDir);
        }
        var linearOptions = options ?? fromConfig?.LinearAttention ?? teacherConfig.LinearAttention;
        if (dropQkvBias) linearOptions = linearOptions with { QkvBias = false };
        var config = teacherConfig.WithLayerTypes(layerTypes) with { LinearAttention = linearOptions };
        bool FromHasLayer(int l) => fromConfig is not null && fromConfig.LayerTypes[l] == config.LayerTypes[l];
        for (int l = 0; l < config.NumHiddenLayers; l++)
        {
            if (FromHasLayer(l)) continue;
            string teacherKind = teacherConfig.LayerTypes[l], studentKind = config.LayerTypes[l];
            // a linear layer is initialised from softmax attention; softmax and swa share the teacher's weights as they are
            bool fromTeacher = LayerKinds.IsLinear(studentKind) ? teacherKind == LayerKinds.Softmax : !LayerKinds.IsLinear(teacherKind);
            if (!fromTeacher)
                throw new InputException($"teacher layer {l} is {teacherKind}: a student's {studentKind} layer is built from the teacher's softmax attention, so give an all-softmax teacher.");
        }

        if (config.LayerTypes.Contains(LayerKinds.SlidingWindow) && config.LinearAttention.Swa.Window is null)
            throw new InputException("sliding-window layers need a window: set linear_attention.swa.window in the teacher's config.json, pass --swa-window N to convert, or use --from a converted model.");
        manual_seed(seed);   // fresh linear-attention parameters are drawn from the global generator
        var student = new HybridCausalLM(config);
        try
        {
            var fromTensors = fromDir is null ? null : ModelWeights.ListTensors(fromDir).ToDictionary(t => t.Name);
            var teacherState = teacher.state_dict();
            var fromWanted = new Dictionary<string, Tensor>();
            var fresh = new HashSet<int>();
            using (no_grad())
            {
                foreach (var (name, target) in student.state_dict())
                {
                    int? layer = AttentionLayerOf(name);
                    bool fromHasIt = fromConfig is not null && (layer is null || FromHasLayer(layer.Value));
                    if (fromHasIt)
                    {
                        if (!fromTensors!.ContainsKey(name))
                            throw new InputException($"{fromDir}: no tensor {name}: the model does not match its config.json.");
                        fromWanted[name] = target;
                    }
                    else if (layer is null || !LayerKinds.IsLinear(config.LayerTypes[layer.Value]))
                        target.copy_(teacherState[name]);
                    else
                        fresh.Add(layer.Value);
                }
            }
            if (fromWanted.Count > 0)
                ModelWeights.LoadInto(fromDir!, fromWanted, ignoreExtra: _ => true);
            foreach (int l in fresh.Order())
            {
                if (student.Layers[l].Attention is not ITeacherInitialized linear)
                    throw new InputException($"layer {l}: no weight transfer from softmax attention to \"{config.LayerTypes[l]}\".");
                linear.InitFromTeacher((SoftmaxAttention)teacher.Layers[l].Attention, kvExpansion);
            }
        }
        catch
        {
            student.Dispose();
            throw;
        }
        return student;
    }

    static void CheckSameArchitecture(ModelConfig teacher, ModelConfig from, string fromDir)
    {
        var differences = new List<string>();
        void Check<T>(string key, T a, T b) { if (!EqualityComparer<T>.Default.Equals(a, b)) differences.Add($"{key} {b} vs the teacher's {a}"); }
        Check("hidden_size", teacher.HiddenSize, from.HiddenSize);
        Check("intermediate_size", teacher.IntermediateSize, from.IntermediateSize);
        Check("num_hidden_layers", teacher.NumHiddenLayers, from.NumHiddenLayers);
        Check("num_attention_heads", teacher.NumAttentionHeads, from.NumAttentionHeads);
        Check("num_key_value_heads", teacher.NumKeyValueHeads, from.NumKeyValueHeads);
        Check("head_dim", teacher.HeadDim, from.HeadDim);
        Check("vocab_size", teacher.VocabSize, from.VocabSize);
        Check("tie_word_embeddings", teacher.TieWordEmbeddings, from.TieWordEmbeddings);
        if (differences.Count > 0)
            throw new InputException($"{fromDir}: not a student of this teacher ({string.Join(", ", differences)}).");
    }
}
