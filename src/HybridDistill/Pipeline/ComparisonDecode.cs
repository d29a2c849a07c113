using System.Text.Json.Serialization;
using HybridDistill.Artifacts;
using HybridDistill.Benchmarks;
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
            var file = new DecodeBenchFile(ComparisonMethods.Teacher, models.ToDictionary(m => m.Name, m => m.K),
                rows.Select(r => new DecodeBenchRow(r.Model, r.Context, r.MsPerToken, r.CacheBytes, r.WeightBytes)).ToArray());
            ArtifactJson.Write(jsonPath, file, ArtifactJson.Types.DecodeBenchFile);
        }
        finally
        {
            foreach (var (_, model) in loaded) model.Dispose();
        }
    }
}
