using System.Text.Json.Nodes;
using HybridDistill.Artifacts;
using HybridDistill.Checkpoints;
using HybridDistill.Config;
using HybridDistill.Data;
using HybridDistill.Models;
using HybridDistill.Selection;
using HybridDistill.Training;

namespace HybridDistill.Tests.Selection;

public class KlScorerTests
{
    const int SeqLen = 17;   // one planted sequence (BOS, 4 pairs, 6 query/answer pairs) per window's inputs

    /// <summary>The planted teacher (layer 2 of 4 does the recall), a token directory of its sequences, and a quick stage 1.</summary>
    internal static (string Teacher, string Data, string Stage1) Fixture() => fixture.Value;

    static readonly Lazy<(string, string, string)> fixture = new(() =>
    {
        var teacher = PlantedTeacher.SaveTo(TestPaths.NewTempDir("kl-planted"), layers: 4, plantedLayer: 2);
        var data = TokenDirectory(TestPaths.NewTempDir("kl-planted-data"), teacher);
        var stage1 = TestPaths.NewTempDir("kl-planted-stage1");
        using var model = HfCheckpoint.Load(teacher);
        using var student = StudentBuilder.Build(model, ["gdn", "gdn", "gdn", "gdn"], null, seed: 0);
        var config = TrainConfig.Resolve(Stage.Stage1, null, [$"seq_len={SeqLen}", "batch_size=4", "train_tokens=1360", "eval_tokens=68", "threads=1"]);
        using (var dataset = new TokenDataset(data))
            TrainLoop.Run(new Stage1Alignment(model, student), dataset, config, Path.Combine(stage1, "run"), OpaqueJson.EmptyObject, resume: false);
        HfCheckpoint.Save(student, stage1);
        return (teacher, data, stage1);
    });

    /// <summary>A token directory (as hybrid tokenize writes one) holding whole planted sequences back to back.</summary>
    static string TokenDirectory(string dir, string teacher)
    {
        void Write(string file, int count, int seed)
        {
            var ids = PlantedTeacher.Sequences(count, queries: 6, seed).SelectMany(s => s).Append(PlantedTeacher.Bos).ToArray();
            Assert.Equal(count * SeqLen + 1, ids.Length);
            File.WriteAllBytes(Path.Combine(dir, file), ids.SelectMany(i => BitConverter.GetBytes((uint)i)).ToArray());
        }
        Write(CorpusBuilder.TrainFile, 64, seed: 11);
        Write(CorpusBuilder.ValFile, 8, seed: 12);
        new CorpusManifest
        {
            TokenizerKind = "ids", TokenizerModelDir = teacher, TokenizerVocabSize = PlantedTeacher.Vocab, BosId = PlantedTeacher.Bos,
            Separator = DocumentSeparator.BosBefore, DocumentSplit = DocumentSplits.Paragraphs, Seed = 0, ValFraction = 0.1, MinValTokens = 0,
            MaxTokenId = PlantedTeacher.Vocab - 1,
            Train = new CorpusSplit(CorpusBuilder.TrainFile, 64 * SeqLen + 1, 64), Val = new CorpusSplit(CorpusBuilder.ValFile, 8 * SeqLen + 1, 8),
            Sources = [new CorpusSource("planted", "0", 0, 72, 72 * SeqLen)],
        }.Save(dir);
        return dir;
    }

    static ScoringContext Context(string method, string outDir, IReadOnlyList<int>? layers = null, long budget = 68 * 8, params (string, string)[] extra)
    {
        var (teacher, data, stage1) = Fixture();
        var set = new Dictionary<string, string>
        {
            ["seq_len"] = SeqLen.ToString(), ["batch_size"] = "4", ["log_every"] = "1", ["eval_every"] = "1000", ["eval_tokens"] = "68",
            ["threads"] = "1", ["lr_attention"] = "3e-3", ["lr_other"] = "1e-4", ["stable_window"] = "2",
        };
        foreach (var (k, v) in extra) set[k] = v;
        return new ScoringContext
        {
            Method = method, TeacherDir = teacher, Stage1Dir = stage1, DataPath = data, OutDir = outDir, Layers = layers,
            BudgetTokens = budget, Set = set,
        };
    }

    [Fact]
    public void Kl_RanksThePlantedLayerFirst_UniformAndEndsMissIt()
    {
        var outDir = TestPaths.NewTempDir("kl-planted-scores");
        var progress = new KlScorer().Run(Context("kl", outDir, extra: ("early_stop", "off")));
        var scores = progress.Scores!;
        Assert.Equal(2, scores.Ranking[0]);
        Assert.Equal([2], LayerSelection.Choose(scores, 1));
        // the planted layer's remaining KL is far below every other candidate's
        double planted = -scores.Scores[2];
        foreach (int l in new[] { 0, 1, 3 }) Assert.True(-scores.Scores[l] > 2 * planted + 0.05, $"layer {l}: KL {-scores.Scores[l]} vs planted {planted}");
        Assert.Equal(4, scores.Curves!.Count);
        Assert.Equal(9, scores.Curves[2].Count);                        // step 0 + 8 logged steps
        Assert.Equal(KlCurves.LateMeanScore(scores.Curves[1], 3), scores.Scores[1], 12);
        // the curves reach the full budget: early stopping is simulated on them for every K of 1..3
        Assert.Equal([1, 2, 3], scores.Provenance.ToObject()["early_stop_vs_full"]!["by_k"]!.AsArray().Select(c => (int)c!["k"]!));

        var (teacher, _, _) = Fixture();
        foreach (var baseline in new[] { "uniform", "ends" })
        {
            var b = LayerScorers.Create(baseline).Score(new ScoringContext { Method = baseline, TeacherDir = teacher });
            Assert.DoesNotContain(2, LayerSelection.Choose(b, 1));
        }
    }

    [Fact]
    public void LockStep_StopsWhenTopKSettles_CurvesArePrefixesOfTheFullRuns()
    {
        var full = new KlScorer().Run(Context("kl", TestPaths.NewTempDir("kl-full"), budget: 68 * 12, extra: ("early_stop", "off"))).Scores!;
        var early = new KlScorer().Run(Context("kl", TestPaths.NewTempDir("kl-lockstep"), budget: 68 * 12)).Scores!;
        Assert.Equal(2, early.Ranking[0]);
        var details = early.Details![0]!.ToObject();
        Assert.True((bool)details["early_stopped"]!);
        long used = (long)details["tokens_used"]!;
        Assert.True(used < 68 * 12, $"used {used}");
        Assert.True((double)details["lock_step"]!["tokens_saved_fraction"]! > 0);
        Assert.True(used >= 0.3 * 68 * 12, $"stopped at {used} tokens, before min_fraction 0.3 of {68 * 12}");
        Assert.Equal(used, (long)early.Provenance.ToObject()["early_stopping"]!["stopped_at_tokens"]!);
        // identical batches and bit-identical resumes: the lock-step curves are the first points of the uninterrupted runs
        for (int l = 0; l < 4; l++)
        {
            var e = early.Curves![l];
            var f = full.Curves![l];
            Assert.True(e.Count < f.Count);
            for (int i = 0; i < e.Count; i++)
            {
                Assert.Equal(f[i].Tokens, e[i].Tokens);
                Assert.True(Math.Abs(f[i].Kl - e[i].Kl) <= 1e-5 * Math.Max(1, f[i].Kl), $"layer {l} point {i}: {e[i].Kl} vs {f[i].Kl}");
            }
        }
    }

    [Fact]
    public void LockStep_WaitsForTheTopKOfEveryRequestedBudget()
    {
        // 25% and 50% of 4 layers: K = 1 and K = 2 must both stop (set held for stable_window (2) rounds, margin above the noise)
        var scores = new KlScorer().Run(Context("kl", TestPaths.NewTempDir("kl-budgets"), budget: 68 * 12,
            extra: [("stable_budgets", "25%, 50%"), ("margin_z", "0")])).Scores!;   // margin_z 0: the 2nd and 3rd layers are close
        var lockStep = scores.Details![0]!.ToObject()["lock_step"]!;
        Assert.Equal([1, 2], lockStep["stop_ks"]!.AsArray().Select(n => (int)n!));
        var rounds = lockStep["rounds"]!.AsArray().Select(r => r!["top_k"]!.AsObject()).ToArray();
        Assert.All(rounds, r => Assert.Equal(["1", "2"], r.Select(p => p.Key)));
        Assert.True((bool)scores.Details[0]!.ToObject()["early_stopped"]!, "the planted teacher's top-1 and top-2 settle well inside the budget");
        var last = lockStep["rounds"]!.AsArray()[^1]!["stops"]!.AsObject();
        Assert.True((bool)last["1"]! && (bool)last["2"]!);
        foreach (var k in new[] { "1", "2" })        // it stopped only once both sets held for the last stable_window rounds
            Assert.Single(rounds[^3..].Select(r => string.Join(",", r[k]!.AsArray().Select(x => (int)x!))).Distinct());
        Assert.Equal([1, 2], scores.Provenance.ToObject()["early_stopping"]!["stop_ks"]!.AsArray().Select(k => (int)k!));
        Assert.Equal([1, 2], scores.Provenance.ToObject()["method"]!["stop_ks"]!.AsArray().Select(k => (int)k!));
        // the same K as layer counts
        var asCounts = new KlScorer().Run(Context("kl", TestPaths.NewTempDir("kl-budget-counts"), budget: 68 * 12, extra: [("stable_budgets", "1L,2L"), ("margin_z", "0")])).Scores!;
        Assert.Equal(scores.Scores, asCounts.Scores);

        var bad = Assert.Throws<InputException>(() => new KlScorer().Run(Context("kl", TestPaths.NewTempDir("kl-bad-budgets"), extra: ("stable_budgets", "150%"))));
        Assert.Contains("stable_budgets", bad.Message);
    }

    [Fact]
    public void FullBudget_OneJobGivesTheEarlyStoppedAndTheFullScores()
    {
        var off = new KlScorer().Run(Context("kl", TestPaths.NewTempDir("kl-off"), budget: 68 * 12, extra: ("early_stop", "off"))).Scores!;
        var early = new KlScorer().Run(Context("kl", TestPaths.NewTempDir("kl-full-budget"), budget: 68 * 12, extra: ("full_budget", "true"))).Scores!;
        var stop = early.Provenance.ToObject()["early_stopping"]!;
        Assert.True((bool)stop["stopped_early"]!);
        long stopTokens = (long)stop["stopped_at_tokens"]!;
        Assert.True(stopTokens < 68 * 12);
        Assert.Equal(68L * 12, (long)stop["budget_tokens"]!);
        for (int l = 0; l < 4; l++)
        {
            // every run went on to the end (13 points: step 0 and 12 steps); the early score uses the points up to the stop
            Assert.Equal(13, early.Curves![l].Count);
            var cut = early.Curves[l].Where(p => p.Tokens <= stopTokens).ToArray();
            Assert.Equal(KlCurves.LateMeanScore(cut, 3), early.Scores[l], 12);
            Assert.Equal(stopTokens, (long)early.Details![l]!.ToObject()["tokens_used"]!);
        }
        var full = KlScorer.FullBudgetScores(early)!;
        Assert.Equal(KlScorer.FullMethod, full.Method);
        for (int l = 0; l < 4; l++)          // the whole curves score as the uninterrupted runs do
            Assert.True(Math.Abs(full.Scores[l] - off.Scores[l]) <= 1e-5, $"layer {l}: {full.Scores[l]} vs {off.Scores[l]}");
        Assert.Equal(off.Ranking, full.Ranking);
        Assert.Null(KlScorer.FullBudgetScores(off));                    // not a full_budget job
        var byK = early.Provenance.ToObject()["early_stop_vs_full"]!["by_k"]!.AsArray();
        Assert.Equal(3, byK.Count);
        Assert.Equal(full.Ranking.Take(1).ToArray(), byK[0]!["full_top_k"]!.AsArray().Select(x => (int)x!));
        // round trip through the file select reads
        var path = Path.Combine(TestPaths.NewTempDir("kl-full-file"), KlScorer.FullScoresFile);
        full.Save(path);
        Assert.Equal(full.Ranking, LayerScores.Load(path).Ranking);
    }

    [Fact]
    public void Resume_ScoresOnlyTheMissingLayers()
    {
        var outDir = TestPaths.NewTempDir("kl-resume");
        var first = new KlScorer().Run(Context("kl", outDir, layers: [0, 1], budget: 68 * 4));
        Assert.Equal([0, 1], first.ComputedNow);
        Assert.Null(first.Scores);
        var layer0 = Path.Combine(outDir, "layers", "layer-0.json");
        var json = JsonNode.Parse(File.ReadAllText(layer0))!.AsObject();
        json["score"] = 123.0;                     // a sentinel: a re-run must keep it
        File.WriteAllText(layer0, json.ToJsonString());
        var second = new KlScorer().Run(Context("kl", outDir, budget: 68 * 4));
        Assert.Equal([2, 3], second.ComputedNow);
        Assert.Equal(123.0, second.Scores!.Scores[0]);
        Assert.False((bool)second.Scores.Details![2]!.ToObject()["early_stopped"]!);
    }

    [Fact]
    public void Removal_ScoresThePlantedLayerHighest()
    {
        var scores = new KlScorer(removal: true).Run(Context("removal", TestPaths.NewTempDir("removal-planted"), budget: 68 * 4)).Scores!;
        Assert.Equal(2, scores.Ranking[0]);
        Assert.All(scores.Scores, s => Assert.True(s >= 0));
    }
}
