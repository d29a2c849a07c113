using HybridDistill.Config;
using HybridDistill.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace HybridDistill.Checkpoints;

/// <summary>
/// A model directory in Hugging Face layout: config.json, model.safetensors (or a sharded index) and the
/// tokenizer files. Loading builds the model from config.json (its layer_types decide each layer's kind)
/// and copies every tensor in; saving writes the same layout back.
/// </summary>
public static class HfCheckpoint
{
    /// <summary>Tokenizer and generation files copied along with a model so the output is a complete model directory.</summary>
    public static readonly string[] TokenizerFiles =
    [
        "tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
        "vocab.json", "merges.txt", "generation_config.json", "added_tokens.json",
    ];

    /// <summary>The directory holding the loadable model: <paramref name="dir"/> itself, for model and finished run directories alike.</summary>
    public static string ResolveModelDirectory(string dir)
    {
        var full = Path.GetFullPath(dir);
        if (!Directory.Exists(full)) throw new InputException($"{full}: model directory not found.");
        if (!File.Exists(Path.Combine(full, "config.json")))
            throw new InputException($"{full}: no config.json here. Pass a Hugging Face model directory or a finished run directory.");
        return full;
    }

    public static HybridCausalLM Load(string dir, Device? device = null)
    {
        var full = ResolveModelDirectory(dir);
        var config = ModelConfig.Load(full);
        var model = new HybridCausalLM(config);
        try
        {
            // A tied model may still store lm_head.weight (llama2.c exports do); older exports carry RoPE tables.
            ModelWeights.LoadInto(full, model.state_dict(), ignoreExtra: name =>
                (config.TieWordEmbeddings && name == "lm_head.weight") || name.EndsWith("rotary_emb.inv_freq"));
        }
        catch
        {
            model.Dispose();
            throw;
        }
        if (device is not null && device.type != TorchSharp.DeviceType.CPU) model.to(device);
        model.eval();
        return model;
    }

    /// <summary>Writes a complete model directory: the tokenizer files of <paramref name="tokenizerSource"/> (when given)
    /// first, then model.safetensors, and config.json last and atomically, so a directory with config.json is a
    /// complete model even if the process dies while writing. <paramref name="dtype"/> BF16 halves the weight files
    /// (finished models only: training checkpoints stay F32) and config.json's torch_dtype says bfloat16.</summary>
    public static void Save(HybridCausalLM model, string dir, string? tokenizerSource = null, StoredDType dtype = StoredDType.F32)
    {
        Directory.CreateDirectory(dir);
        if (tokenizerSource is not null) CopyTokenizerFiles(tokenizerSource, dir);
        var tensors = model.state_dict().Select(p => new KeyValuePair<string, Tensor>(p.Key, p.Value.detach().cpu()));
        ModelWeights.SaveDirectory(dir, tensors, dtype: dtype);
        model.Config.Save(dir, dtype == StoredDType.F32 ? null : dtype.TorchName());
    }

    public static void CopyTokenizerFiles(string from, string to)
    {
        if (Path.GetFullPath(from) == Path.GetFullPath(to)) return;
        Directory.CreateDirectory(to);
        foreach (var name in TokenizerFiles)
        {
            var source = Path.Combine(from, name);
            if (File.Exists(source)) AtomicFile.Copy(source, Path.Combine(to, name));
        }
    }
}
