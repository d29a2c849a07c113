using System.Text;
using HybridDistill.Artifacts;
using HybridDistill.Data;
using HybridDistill.Selection;
using HybridDistill.Training;

namespace HybridDistill.Tests.Training;

/// <summary>
/// The Training folder's files through their typed records (ArtifactJsonContext): each record written, read back and
/// compared; the committed training record of the embedded teacher (assets/teacher/training, written by the hand-built
/// JSON before the records existed) rewrites byte for byte.
/// </summary>
public class TrainingArtifactsTests
{
    static string Committed(string name) => TestPaths.Assets("teacher", "training", name);

    static string Text(byte[] bytes) => Encoding.UTF8.GetString(bytes);

    static T RoundTrip<T>(T value, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type)
    {
        var path = Path.Combine(TestPaths.NewTempDir("train-artifacts"), "file.json");
        ArtifactJson.Write(path, value, type);
        return ArtifactJson.Read(path, type, "a test file", "-");
    }

    static MetricSums Sums() => new()
    {
        Weight = 3, Loss = 6.5, GradNorm = 2.25, Steps = 2, Layers = [0.5, 0.25],
        Extras = new() { ["kl"] = 1.5, ["ce"] = 0.1 }, ExtraWeights = new() { ["kl"] = 3, ["ce"] = 1024 },
    };

    // ---- metrics.jsonl --------------------------------------------------------------------------------

    [Fact]
    public void MetricsLine_WritesKeysInTheTrainersOrder()
    {
        var line = new MetricsLine
        {
            Step = 10, Tokens = 20480, Loss = 2.5, Lr = 0.001, Lrs = [new("attention", 0.001), new("other", 1e-4)],
            Extras = [new("ce", 3.25), new("kl", 0.125)], GradNorm = 0.5, LayerLosses = [0.1, 0.2],
            ValLoss = 2.75, ValExtras = [new("baseline_loss", 1)], ValLayerLosses = [0.3],
            ElapsedS = 12, TokensPerS = 1706.7, RssMb = 343,
        };
        Assert.Equal(
            """{"step":10,"tokens":20480,"loss":2.5,"lr":0.001,"lrs":{"attention":0.001,"other":0.0001},"ce":3.25,"kl":0.125,"grad_norm":0.5,"layer_losses":[0.1,0.2],"val_loss":2.75,"val_baseline_loss":1,"val_layer_losses":[0.3],"elapsed_s":12,"tokens_per_s":1706.7,"rss_mb":343}""" + "\n",
            Text(ArtifactJson.Line(line, ArtifactJson.Types.MetricsLine)));
        var phased = line with { Phase = new PhasePosition("copy", 110, 225280), Lrs = null, GradNorm = null, ValLoss = null, ValExtras = [], ValLayerLosses = null };
        Assert.StartsWith("""{"phase":"copy","total_step":110,"total_tokens":225280,"step":10,""", Text(ArtifactJson.Line(phased, ArtifactJson.Types.MetricsLine)));
        foreach (var l in new[] { line, phased })
        {
            var back = ArtifactJson.ParseLine(Text(ArtifactJson.Line(l, ArtifactJson.Types.MetricsLine)), ArtifactJson.Types.MetricsLine);
            Assert.Equal(l, back);
        }
        Assert.Equal(1.0, line.ValExtra("baseline_loss"));
        Assert.Null(line.ValExtra("kl"));
    }

    [Fact]
    public void MetricsLine_CommittedTeacherMetrics_RewriteByteIdentical()
    {
        var lines = File.ReadAllLines(Committed(TrainCheckpoint.MetricsFile));
        Assert.True(lines.Length > 100, $"only {lines.Length} lines");
        foreach (var text in lines)
        {
            var line = ArtifactJson.ParseLine(text, ArtifactJson.Types.MetricsLine);
            Assert.Equal(text + "\n", Text(ArtifactJson.Line(line, ArtifactJson.Types.MetricsLine)));
            Assert.Equal(line.Step, ArtifactJson.ParseLine(text, ArtifactJson.Types.MetricsLineStep).Step);
        }
        var last = ArtifactJson.ParseLine(lines[^1], ArtifactJson.Types.MetricsLine);
        Assert.Equal("copy256", last.Phase!.Phase);
        Assert.Contains(last.ValExtras, e => e.Name == "acc_copy");
    }

    // ---- trainer_state.json ---------------------------------------------------------------------------

    [Fact]
    public void TrainerState_WriteThenRead_Equal()
    {
        byte[] rng = [0xfb, 0xef, 0xbe, 1, 2, 3];                                  // base64 "++++AQID"
        var config = OpaqueJson.Of(new KlRunConfig("/t", 3, "key"), ArtifactJson.Types.KlRunConfig);
        var state = new TrainerState(7, 448, 12, 7, new SamplerPosition(1, 5), 42, rng, Sums(), config);
        var file = state.ToFile();
        var text = Text(ArtifactJson.Bytes(file, ArtifactJson.Types.TrainerStateFile));
        Assert.Contains("\"rng_state\": \"\\u002B\\u002B\\u002B\\u002BAQID\"", text);       // a string, escaped as JsonObject wrote it
        Assert.Contains("\"sampler\": {\n    \"epoch\": 1,\n    \"index\": 5,\n    \"seed\": 42\n  }", text);
        Assert.Contains("\"extras\": {\n      \"kl\": 1.5,\n      \"ce\": 0.1\n    }", text);
        Assert.Contains("\"config\": {\n    \"teacher\": \"/t\",\n    \"layer\": 3,\n    \"run_key\": \"key\"\n  }", text);

        var back = RoundTrip(file, ArtifactJson.Types.TrainerStateFile);
        Assert.Equal(file, back);
        var restored = TrainerState.FromFile(back);
        Assert.Equal(rng, restored.RngState);
        Assert.Equal((1L, 5L, 42L), (restored.Sampler.Epoch, restored.Sampler.Index, restored.Seed));
        Assert.Equal(Sums().MeanExtras(), restored.Sums.MeanExtras());                 // kl 1.5/3, ce 0.1/1024
        Assert.Equal([0.5 / 3, 0.25 / 3], restored.Sums.LayerMeans()!);
    }

    [Fact]
    public void MetricSums_WithoutExtraWeights_WeighEveryExtraByTheBatchWeight()
    {
        var old = Sums().ToFile() with { ExtraWeights = null, Layers = null };
        var back = RoundTrip(old, ArtifactJson.Types.MetricSumsFile);
        Assert.Equal(old, back);
        var sums = MetricSums.FromFile(back);
        Assert.Equal([("ce", 0.1 / 3), ("kl", 1.5 / 3)], sums.MeanExtras());
        Assert.Null(sums.LayerMeans());
    }

    // ---- run_config.json ------------------------------------------------------------------------------

    [Fact]
    public void DistillRunConfig_WriteThenRead_EqualAndTheRecipeKeepsItsText()
    {
        var dir = TestPaths.NewTempDir("run-config");
        var recipePath = Path.Combine(dir, "recipe.json");
        File.WriteAllText(recipePath, """{"stage1": {"lr": 1e-2, "seq_len": 64}, "description": "d"}""");
        var recipe = Recipe.Load(recipePath);
        var config = recipe.Resolve(Stage.Stage1);
        var run = new DistillRunConfig("stage1", "/teacher", "/data", null, ["gdn", "softmax"], [1], config.ToRecord(Stage.Stage1),
            recipe.Path, recipe.Record, ["seed=1"]);
        var text = Text(ArtifactJson.Bytes(run, ArtifactJson.Types.DistillRunConfig));
        Assert.Contains("\"recipe\": {\n    \"stage1\": {\n      \"lr\": 1e-2,\n      \"seq_len\": 64\n    },\n    \"description\": \"d\"\n  },", text);
        Assert.Contains("\"from\": null,", text);
        Assert.Contains("\"config\": {\n    \"seq_len\": 64,", text);
        Assert.Equal(run, RoundTrip(run, ArtifactJson.Types.DistillRunConfig));
    }

    [Fact]
    public void Differences_NameEachSettingThatChanged_AndSkipIgnoredPaths()
    {
        var config = Recipe.Empty.Resolve(Stage.Stage1);
        DistillRunConfig Run(TrainConfig c, string data) => new("stage1", "/t", data, null, ["gdn"], [], c.ToRecord(Stage.Stage1), null,
            Recipe.Empty.Record, []);
        var stored = ArtifactJson.Bytes(Run(config, "/d"), ArtifactJson.Types.DistillRunConfig);
        Assert.Empty(ArtifactJson.Differences(stored, Run(config with { Threads = 4 }, "/d"), ArtifactJson.Types.DistillRunConfig, "config.threads"));
        Assert.Equal(["data: \"/d\" then, \"/e\" now", "config.seed: 0 then, 3 now"],
            ArtifactJson.Differences(stored, Run(config with { Seed = 3 }, "/e"), ArtifactJson.Types.DistillRunConfig, "config.threads"));
    }

    [Fact]
    public void PretrainRunConfig_CommittedTeacherRun_RewritesByteIdentical()
    {
        var path = Committed("run_config.json");
        var run = ArtifactJson.Read(path, ArtifactJson.Types.PretrainRunConfig, "a run config", "-");
        Assert.Equal(File.ReadAllBytes(path), ArtifactJson.Bytes(run, ArtifactJson.Types.PretrainRunConfig));
        Assert.Equal(6, run.Phases.Count);
        Assert.Equal(run, RoundTrip(run, ArtifactJson.Types.PretrainRunConfig));
        var identity = ArtifactJson.Read(path, ArtifactJson.Types.PretrainRunIdentity, "a run config", "-");
        Assert.Equal(run.InitSeed, identity.InitSeed);
        Assert.Equal(identity, RoundTrip(identity, ArtifactJson.Types.PretrainRunIdentity));
        Assert.Equal(8, (int)run.Recipe.As(ArtifactJson.Types.PretrainRecipeFile).Model!.ToObject()["num_hidden_layers"]!);
    }

    [Fact]
    public void PretrainPhaseRunConfig_WriteThenRead_Equal()
    {
        var config = TrainConfig.Defaults(Stage.Pretrain).ToRecord(Stage.Pretrain);
        var first = new PretrainPhaseRunConfig("pretrain", "induction", "/tok", "/data/01", null, 0, config);
        var later = first with { Phase = "copy", From = "/phases/01-induction", InitSeed = null };
        Assert.Contains("\"init_seed\": null,", Text(ArtifactJson.Bytes(later, ArtifactJson.Types.PretrainPhaseRunConfig)));
        Assert.Equal(first, RoundTrip(first, ArtifactJson.Types.PretrainPhaseRunConfig));
        Assert.Equal(later, RoundTrip(later, ArtifactJson.Types.PretrainPhaseRunConfig));
    }

    [Fact]
    public void PretrainRecipeFile_ReadsTheRecipeAndCollectsUnknownKeys()
    {
        var recipe = OpaqueJson.FromNode(System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "recipes", "default-teacher.json")))!)
            .As(ArtifactJson.Types.PretrainRecipeFile);
        Assert.Equal(["induction", "copy", "recall128", "long", "anneal", "copy256"], recipe.Phases!.Select(p => p.Name));
        Assert.Null(recipe.Unknown);
        var back = RoundTrip(recipe, ArtifactJson.Types.PretrainRecipeFile);
        Assert.Equal(ArtifactJson.Bytes(recipe, ArtifactJson.Types.PretrainRecipeFile), ArtifactJson.Bytes(back, ArtifactJson.Types.PretrainRecipeFile));
        var odd = OpaqueJson.FromNode(System.Text.Json.Nodes.JsonNode.Parse("""{"phases": [{"name": "a", "optimiser": "sgd"}], "seeds": 1}""")!)
            .As(ArtifactJson.Types.PretrainRecipeFile);
        Assert.Equal(["seeds"], odd.Unknown!.Keys);
        Assert.Equal(["optimiser"], odd.Phases![0].Unknown!.Keys);
        var seqLen = new CorpusSeqLen(128);
        Assert.Equal(seqLen, RoundTrip(seqLen, ArtifactJson.Types.CorpusSeqLen));
    }

    [Fact]
    public void WallTime_CommittedTeacherRun_RewritesByteIdentical()
    {
        var path = Committed(Pretraining.WallTimeFile);
        var wall = ArtifactJson.Read(path, ArtifactJson.Types.WallTimeRecord, "a wall time", "-");
        Assert.Equal(File.ReadAllBytes(path), ArtifactJson.Bytes(wall, ArtifactJson.Types.WallTimeRecord));
        Assert.Equal((4, 3887.9), (wall.Sittings.Count, wall.TotalSeconds));
        Assert.Equal(wall, RoundTrip(wall, ArtifactJson.Types.WallTimeRecord));
    }

    [Fact]
    public void OpaqueJson_MergedAndWithDefault_SetKeysOverTheShared()
    {
        var shared = OpaqueJson.FromNode(System.Text.Json.Nodes.JsonNode.Parse("""{"seq_len": 128, "seed": 1}""")!);
        var own = OpaqueJson.FromNode(System.Text.Json.Nodes.JsonNode.Parse("""{"seed": 2, "mix": {"copy": 1}}""")!);
        Assert.Equal("""{"seq_len":128,"seed":2,"mix":{"copy":1}}""", shared.Merged(own).ToString());
        Assert.Equal("""{"seq_len":128,"seed":1,"train_windows":5}""", shared.WithDefault("train_windows", 5).ToString());
        Assert.Equal("""{"seq_len":128,"seed":1}""", shared.WithDefault("seed", 5).ToString());
        Assert.Equal(shared, shared.Merged(null));
        Assert.NotEqual(shared, own);
    }
}
