using System.Text.Json.Nodes;
using HybridDistill.Config;

namespace HybridDistill.Tests.Models;

/// <summary>Tiny random-weight configs covering each supported architecture feature.</summary>
public static class TinyConfigs
{
    public static ModelConfig Llama(int layers = 2) => ModelConfig.FromJson(new JsonObject
    {
        ["model_type"] = "llama", ["hidden_size"] = 32, ["intermediate_size"] = 64, ["num_hidden_layers"] = layers,
        ["num_attention_heads"] = 4, ["num_key_value_heads"] = 2, ["vocab_size"] = 50, ["max_position_embeddings"] = 128,
        ["rms_norm_eps"] = 1e-5, ["tie_word_embeddings"] = true,
    });

    public static ModelConfig Qwen2WithBias() => ModelConfig.FromJson(new JsonObject
    {
        ["model_type"] = "qwen2", ["hidden_size"] = 32, ["intermediate_size"] = 64, ["num_hidden_layers"] = 2,
        ["num_attention_heads"] = 4, ["num_key_value_heads"] = 2, ["vocab_size"] = 50, ["max_position_embeddings"] = 128,
        ["rms_norm_eps"] = 1e-6, ["rope_theta"] = 1000000.0, ["tie_word_embeddings"] = false,
    });

    public static ModelConfig Qwen3WithQkNorm() => ModelConfig.FromJson(new JsonObject
    {
        ["model_type"] = "qwen3", ["hidden_size"] = 32, ["intermediate_size"] = 64, ["num_hidden_layers"] = 2,
        ["num_attention_heads"] = 4, ["num_key_value_heads"] = 1, ["head_dim"] = 16, ["vocab_size"] = 50,
        ["max_position_embeddings"] = 128, ["rms_norm_eps"] = 1e-6, ["tie_word_embeddings"] = true,
    });

    public static ModelConfig LlamaWithLlama3RopeScaling() => ModelConfig.FromJson(new JsonObject
    {
        ["model_type"] = "llama", ["hidden_size"] = 32, ["intermediate_size"] = 64, ["num_hidden_layers"] = 2,
        ["num_attention_heads"] = 4, ["num_key_value_heads"] = 4, ["vocab_size"] = 50, ["max_position_embeddings"] = 256,
        ["rope_theta"] = 500000.0, ["tie_word_embeddings"] = true,
        ["rope_scaling"] = new JsonObject
        {
            ["rope_type"] = "llama3", ["factor"] = 8.0, ["low_freq_factor"] = 1.0, ["high_freq_factor"] = 4.0,
            ["original_max_position_embeddings"] = 16,
        },
    });
}
