using System.Text.Json.Nodes;
using HybridDistill.Attention;
using HybridDistill.Config;
using HybridDistill.Models;
using HybridDistill.Tests.Models;
using HybridDistill.Training;
using static TorchSharp.torch;

namespace HybridDistill.Tests.Training;

/// <summary>The reference's conversion switches: drop_qkv_bias, kv_expand=rows, weight_decay_1d, and the paper recipe that sets them.</summary>
public class PaperFidelityTests
{
    [Fact]
    public void DropQkvBias_LinearLayerHasNoQkvBias_SoftmaxLayerKeepsItsOwn()
    {
        manual_seed(5);
        using var teacher = new HybridCausalLM(TinyConfigs.Qwen2WithBias());
        var teacherState = teacher.state_dict();
        Assert.True(teacherState["model.layers.0.self_attn.q_proj.bias"].abs().sum().item<float>() > 0);   // a real bias to drop

        using var kept = StudentBuilder.Build(teacher, ["gdn", "softmax"], null, seed: 0);
        using var dropped = StudentBuilder.Build(teacher, ["gdn", "softmax"], null, seed: 0, KvExpansion.Heads, dropQkvBias: true);
        var keptState = kept.state_dict();
        var droppedState = dropped.state_dict();
        foreach (var p in new[] { "q", "k", "v" })
        {
            Assert.True(keptState.ContainsKey($"model.layers.0.self_attn.{p}_proj.bias"));
            Assert.False(droppedState.ContainsKey($"model.layers.0.self_attn.{p}_proj.bias"));
            Assert.True(droppedState[$"model.layers.0.self_attn.{p}_proj.weight"].allclose(keptState[$"model.layers.0.self_attn.{p}_proj.weight"], rtol: 0, atol: 0));
            // the softmax layer is the teacher's, bias included
            Assert.True(droppedState[$"model.layers.1.self_attn.{p}_proj.bias"].allclose(teacherState[$"model.layers.1.self_attn.{p}_proj.bias"], rtol: 0, atol: 0));
        }
        Assert.True(keptState["model.layers.0.self_attn.q_proj.bias"].allclose(teacherState["model.layers.0.self_attn.q_proj.bias"], rtol: 0, atol: 0));

        // the choice lives in config.json, so the saved student loads with the same parameters
        Assert.Null(kept.Config.LinearAttention.QkvBias);
        Assert.False(dropped.Config.LinearAttention.QkvBias);
        var reloaded = ModelConfig.FromJson(dropped.Config.ToJson());
        Assert.False(reloaded.LinearAttention.QkvBias);
        using var rebuilt = new HybridCausalLM(reloaded);
        Assert.Equal(droppedState.Keys.Order(), rebuilt.state_dict().Keys.Order());
    }

    [Fact]
    public void FidelitySwitches_AreRecorded_AndThePaperRecipeSetsThem()
    {
        var defaults = TrainConfig.Resolve(Stage.Stage2, null);
        Assert.Equal((KvExpansion.Heads, false, false), (defaults.KvExpand, defaults.DropQkvBias, defaults.WeightDecay1d));
        var json = defaults.ToJson(Stage.Stage2);                   // what run_config.json and scores.json record
        Assert.Equal("heads", (string)json["kv_expand"]!);
        Assert.False((bool)json["drop_qkv_bias"]!);
        Assert.False((bool)json["weight_decay_1d"]!);
        Assert.True((bool)TrainConfig.Resolve(Stage.Stage1, null, ["drop_qkv_bias=true"]).ToJson(Stage.Stage1)["drop_qkv_bias"]!);

        var recipe = Recipe.Load(Path.Combine(TestPaths.RepoRoot, "recipes", "paper-1b-8b.json")).Json;
        var stage1 = TrainConfig.Resolve(Stage.Stage1, recipe["stage1"] as JsonObject);
        var stage2 = TrainConfig.Resolve(Stage.Stage2, recipe["stage2"] as JsonObject);
        foreach (var (stage, config) in new[] { (Stage.Stage1, stage1), (Stage.Stage2, stage2) })
        {
            var recorded = config.ToJson(stage);
            Assert.Equal("rows", (string)recorded["kv_expand"]!);
            Assert.True((bool)recorded["drop_qkv_bias"]!);
            Assert.True((bool)recorded["weight_decay_1d"]!);
        }
        // the reference configs' batch sizes: 96 windows of 512 per step in stage 1, 32 of 4096 in stage 2
        Assert.Equal((512, 96), (stage1.SeqLen, stage1.BatchSize * stage1.GradAccum));
        Assert.Equal((4096, 32), (stage2.SeqLen, stage2.BatchSize * stage2.GradAccum));
    }
}
