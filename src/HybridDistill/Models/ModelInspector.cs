using System.Text.Json.Nodes;
using HybridDistill.Checkpoints;
using HybridDistill.Config;
using HybridDistill.Tokenization;

namespace HybridDistill.Models;

/// <summary>What <c>hybrid inspect</c> reports, read from config.json and the safetensors headers (no weights loaded).</summary>
public sealed record ModelReport(
    string Directory, ModelConfig Config, long Parameters, IReadOnlyDictionary<string, long> ParametersByPart,
    string StoredDtype, string Tokenizer)
{
    public JsonObject ToJson() => new()
    {
        ["directory"] = Directory,
        ["model_type"] = Config.IsHybrid ? ModelConfig.HybridModelType : Config.ModelType,
        ["base_model_type"] = Config.ModelType,
        ["num_layers"] = Config.NumHiddenLayers,
        ["layer_types"] = new JsonArray(Config.LayerTypes.Select(t => (JsonNode)t).ToArray()),
        ["hidden_size"] = Config.HiddenSize,
        ["intermediate_size"] = Config.IntermediateSize,
        ["num_attention_heads"] = Config.NumAttentionHeads,
        ["num_key_value_heads"] = Config.NumKeyValueHeads,
        ["head_dim"] = Config.HeadDim,
        ["vocab_size"] = Config.VocabSize,
        ["max_position_embeddings"] = Config.MaxPositionEmbeddings,
        ["tie_word_embeddings"] = Config.TieWordEmbeddings,
        ["parameters"] = Parameters,
        ["parameters_by_part"] = new JsonObject(ParametersByPart.Select(p => KeyValuePair.Create(p.Key, (JsonNode?)p.Value))),
        ["dtype"] = StoredDtype,
        ["tokenizer"] = Tokenizer,
    };
}

public static class ModelInspector
{
    public static ModelReport Inspect(string dir)
    {
        var full = HfCheckpoint.ResolveModelDirectory(dir);
        var config = ModelConfig.Load(full);
        var tensors = ModelWeights.ListTensors(full)
            .Where(t => !(config.TieWordEmbeddings && t.Name == "lm_head.weight"))
            .ToList();
        var parts = new SortedDictionary<string, long>();
        foreach (var t in tensors)
        {
            string part = PartOf(t.Name);
            parts[part] = parts.GetValueOrDefault(part) + t.Shape.Aggregate(1L, (a, b) => a * b);
        }
        string tokenizer;
        try { tokenizer = TokenizerLoader.Load(full).Kind; }
        catch (InputException) { tokenizer = "none"; }
        return new ModelReport(full, config, parts.Values.Sum(), parts,
            string.Join(",", tensors.Select(t => t.DType).Distinct()), tokenizer);
    }

    /// <summary>embeddings, attention, mlp, norms or lm_head, from an HF parameter name.</summary>
    public static string PartOf(string name) => name switch
    {
        _ when name.Contains("embed_tokens") => "embeddings",
        _ when name.StartsWith("lm_head") => "lm_head",
        _ when name.Contains(".self_attn.") => "attention",
        _ when name.Contains(".mlp.") => "mlp",
        _ when name.Contains("norm") => "norms",
        _ => "other",
    };
}
