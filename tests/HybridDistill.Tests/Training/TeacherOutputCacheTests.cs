using System.Text.Json.Nodes;
using HybridDistill.Artifacts;
using HybridDistill.Config;
using HybridDistill.Data;
using HybridDistill.Models;
using HybridDistill.Training;

namespace HybridDistill.Tests.Training;

/// <summary>The teacher-output cache of hybrid run: reused teacher outputs give bit-identical training.</summary>
public class TeacherOutputCacheTests
{
    /// <summary>Trains a fresh all-GDN student for a few steps; the cache (if any) is shared by the calls.</summary>
    static Dictionary<string, TorchSharp.torch.Tensor> Train(TeacherOutputCache? cache, string runDir, out IReadOnlyList<string> metrics)
    {
        using var teacher = TrainingFixtures.LoadTeacher();
        var layout = LayerLayout.FromSoftmaxLayers(teacher.Config.NumHiddenLayers, [2]);
        using var student = StudentBuilder.Build(teacher, layout.LayerTypes, null, seed: 0);
        var config = TrainConfig.Resolve(Stage.Stage2, null, ["seq_len=32", "batch_size=2", "train_tokens=256", "eval_every=2", "eval_tokens=64", "log_every=1", "threads=1"]);
        var objective = new Stage2Distillation(teacher, student, config) { TeacherKey = "stories260K", Cache = cache };
        using var data = new TokenDataset(TrainingFixtures.StoriesData);
        TrainLoop.Run(objective, data, config, runDir, OpaqueJson.EmptyObject, resume: false);
        metrics = File.ReadAllLines(Path.Combine(runDir, TrainCheckpoint.MetricsFile))
            .Select(l => { var o = JsonNode.Parse(l)!.AsObject(); o.Remove("tokens_per_s"); o.Remove("rss_mb"); o.Remove("elapsed_s"); o.Remove("time"); o.Remove("phases"); return o.ToJsonString(); })
            .ToList();
        return TrainingFixtures.Snapshot(student);
    }

    [Fact]
    public void ReusedTeacherOutputs_GiveBitIdenticalTraining()
    {
        var fresh = Train(null, TestPaths.NewTempDir("cache-none"), out var freshMetrics);
        var cache = new TeacherOutputCache(64 << 20);
        var first = Train(cache, TestPaths.NewTempDir("cache-first"), out var firstMetrics);
        // the validation batches are evaluated every eval_every steps: already hits within the first run
        var (misses, hits) = (cache.Misses, cache.Hits);
        Assert.True(misses > 0 && hits > 0, $"{misses} misses, {hits} hits");
        var second = Train(cache, TestPaths.NewTempDir("cache-second"), out var secondMetrics);
        Assert.Equal(misses, cache.Misses);          // the second run computed no teacher output
        Assert.Equal(2 * hits + misses, cache.Hits);
        Assert.Equal(freshMetrics, firstMetrics);
        Assert.Equal(freshMetrics, secondMetrics);
        Assert.Empty(TrainingFixtures.Changed(fresh, first));
        Assert.Empty(TrainingFixtures.Changed(fresh, second));
    }

    [Fact]
    public void AFullCache_StopsAdding_AndStillReturnsTheComputedOutputs()
    {
        var cache = new TeacherOutputCache(1);     // room for nothing
        var fresh = Train(null, TestPaths.NewTempDir("cache-none"), out var freshMetrics);
        var viaFull = Train(cache, TestPaths.NewTempDir("cache-full"), out var fullMetrics);
        Assert.Equal(0, cache.Hits);
        Assert.Equal(0, cache.Bytes);
        Assert.Equal(freshMetrics, fullMetrics);
        Assert.Empty(TrainingFixtures.Changed(fresh, viaFull));
    }
}
