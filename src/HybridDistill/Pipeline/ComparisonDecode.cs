using System.Text;
using System.Text.Json.Nodes;
using HybridDistill.Checkpoints;
using HybridDistill.Evaluation;
using HybridDistill.Models;

namespace HybridDistill.Pipeline;

/// <summary>
/// The comparison's decode benchmark: the teacher and one distilled model per K (K = 0 the all-linear one) decoding
/// at the given contexts, written as bench_decode.json with the reference model's name and each model's K, so the
/// summary can give every row the speed-up and cache share of its K.
/// </summary>
public static class ComparisonDecode
{
    public static void Run(string teacherDir, IReadOnlyList<(int K, string Name, string Dir)> models, IReadOnlyList<int> contexts,
        string jsonPath, IProgress<string>? progress = null, CancellationToken cancellation = default)
    {
        var loaded = new List<(string Name, HybridCausalLM Model)>();
        try
        {
            loaded.Add((ComparisonMethods.Teacher, HfCheckpoint.Load(teacherDir)));
            foreach (var m in models) loaded.Add((m.Name, HfCheckpoint.Load(m.Dir)));
            foreach (var (_, model) in loaded) model.eval();
            var rows = DecodeBenchmark.Run(loaded, contexts, progress: progress, cancellation: cancellation);
            var json = new JsonObject
            {
                ["reference"] = ComparisonMethods.Teacher,
                ["k"] = new JsonObject(models.Select(m => KeyValuePair.Create(m.Name, (JsonNode?)m.K))),
                ["rows"] = new JsonArray(rows.Select(r => (JsonNode)new JsonObject
                {
                    ["model"] = r.Model, ["context"] = r.Context, ["ms_per_token"] = r.MsPerToken,
                    ["cache_bytes"] = r.CacheBytes, ["weight_bytes"] = r.WeightBytes,
                }).ToArray()),
            };
            AtomicFile.WriteAllBytes(jsonPath, Encoding.UTF8.GetBytes(json.ToJsonString(Config.JsonOptions.Indented)));
        }
        finally
        {
            foreach (var (_, model) in loaded) model.Dispose();
        }
    }
}
