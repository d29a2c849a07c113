using HybridDistill.Artifacts;
using HybridDistill.Checkpoints;
using HybridDistill.Config;
using HybridDistill.Tokenization;

namespace HybridDistill.Models;

/// <summary>What <c>hybrid inspect</c> reports, read from config.json and the safetensors headers (no weights loaded).</summary>
public sealed record ModelReport(
    string Directory, ModelConfig Config, long Parameters, IReadOnlyDictionary<string, long> ParametersByPart,
    string StoredDtype, string Tokenizer)
{
    /// <summary>The report as <c>hybrid inspect --json</c> prints it.</summary>
    public ModelReportFile ToFile() => new(Directory, Config.IsHybrid ? ModelConfig.HybridModelType : Config.ModelType, Config.ModelType,
        Config.NumHiddenLayers, Config.LayerTypes, Config.HiddenSize, Config.IntermediateSize, Config.NumAttentionHeads,
        Config.NumKeyValueHeads, Config.HeadDim, Config.VocabSize, Config.MaxPositionEmbeddings, Config.TieWordEmbeddings,
        Parameters, new SortedDictionary<string, long>(ParametersByPart.ToDictionary()), StoredDtype, Tokenizer);
}

/// <summary>
/// <c>hybrid inspect --json</c>: the model's shape as config.json gives it (model_type "hybrid" for a hybrid layout,
/// base_model_type the architecture underneath), its parameter count in total and by part (embeddings, attention,
/// mlp, norms, lm_head; sorted by name), the stored dtypes (comma-separated) and the tokenizer's kind.
/// </summary>
public sealed record ModelReportFile(
    string Directory, string ModelType, string BaseModelType, int NumLayers, IReadOnlyList<string> LayerTypes,
    int HiddenSize, int IntermediateSize, int NumAttentionHeads, int NumKeyValueHeads, int HeadDim, int VocabSize,
    int MaxPositionEmbeddings, bool TieWordEmbeddings, long Parameters, IReadOnlyDictionary<string, long> ParametersByPart,
    string Dtype, string Tokenizer);

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
