using System.Text;
using System.Text.Json;
using HybridDistill.Artifacts;
using HybridDistill.Models;

namespace HybridDistill.Tests.Models;

public class ModelInspectorTests
{
    [Fact]
    public void Stories260K_Report_IsWhatHybridInspectPrinted_AndReadsBack()
    {
        var dir = TestPaths.Assets("stories260K");
        var report = ModelInspector.Inspect(dir);
        var written = ArtifactJson.Bytes(report.ToFile(), ArtifactJson.Types.ModelReportFile);
        // `hybrid inspect assets/stories260K --json` before the report was a typed record (2026-12-03)
        string expected = $$"""
            {
              "directory": "{{dir}}",
              "model_type": "llama",
              "base_model_type": "llama",
              "num_layers": 5,
              "layer_types": [
                "softmax",
                "softmax",
                "softmax",
                "softmax",
                "softmax"
              ],
              "hidden_size": 64,
              "intermediate_size": 172,
              "num_attention_heads": 8,
              "num_key_value_heads": 4,
              "head_dim": 8,
              "vocab_size": 512,
              "max_position_embeddings": 512,
              "tie_word_embeddings": true,
              "parameters": 260032,
              "parameters_by_part": {
                "attention": 61440,
                "embeddings": 32768,
                "mlp": 165120,
                "norms": 704
              },
              "dtype": "F32",
              "tokenizer": "sentencepiece"
            }
            """;
        Assert.Equal(expected, Encoding.UTF8.GetString(written));
        var back = JsonSerializer.Deserialize(written, ArtifactJson.Types.ModelReportFile)!;
        Assert.Equal(written, ArtifactJson.Bytes(back, ArtifactJson.Types.ModelReportFile));
        Assert.Equal(report.Parameters, back.ParametersByPart.Values.Sum());
    }
}
