using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization.Metadata;
using HybridDistill.Artifacts;
using HybridDistill.Evaluation;
using HybridDistill.Pipeline;
using HybridDistill.Selection;

namespace HybridDistill.Tests.Artifacts;

/// <summary>
/// The typed records write the very bytes the hand-built JSON wrote: every artifact committed under docs/results/
/// (written before the records existed) reads back into its record and serializes to the same file, byte for byte.
/// </summary>
public class ArtifactJsonTests
{
    static readonly string[] Studies = ["teacher", "stories260K"];

    static IEnumerable<string> Committed(string relative, string pattern = "*.json") =>
        Studies.SelectMany(s => Directory.EnumerateFiles(Path.Combine(TestPaths.RepoRoot, "docs", "results", s, relative), pattern))
            .Order(StringComparer.Ordinal);

    static void AssertSameBytes(string path, byte[] written) =>
        Assert.True(File.ReadAllBytes(path).AsSpan().SequenceEqual(written),
            $"{path} differs when rewritten:\n{Encoding.UTF8.GetString(written)}");

    [Fact]
    public void StepRecords_RewriteByteIdentical()
    {
        var files = Committed("steps").ToArray();
        Assert.True(files.Length > 100, $"only {files.Length} step records");
        foreach (var file in files)
            AssertSameBytes(file, ArtifactJson.Bytes(StepRecord.Load(file), ArtifactJson.Types.StepRecord));
    }

    [Fact]
    public void StepRecord_ReadsItsFields()
    {
        var record = StepRecord.Load(Path.Combine(TestPaths.RepoRoot, "docs", "results", "stories260K", "steps", "data.json"));
        Assert.Equal(("data", true, 0.8), (record.Step, record.Finished, record.Seconds));
        Assert.Equal(["kind", "sources", "teacher"], record.Inputs.Keys);
        Assert.Equal("fded3356aac4cd03", record.Inputs["sources"]);
    }

    [Fact]
    public void SelectionAndSummary_RewriteByteIdentical()
    {
        foreach (var study in Studies)
        {
            var layout = new RunLayout(Path.Combine(TestPaths.RepoRoot, "docs", "results", study));
            var plan = ComparisonPlan.Load(layout.Selection);
            AssertSameBytes(layout.Selection, ArtifactJson.Bytes(plan.ToFile(), ArtifactJson.Types.ComparisonPlanFile));
            // summary.json recomputed from the committed eval.json files and the decode benchmark
            AssertSameBytes(layout.Summary, ArtifactJson.Bytes(ComparisonSummary.Build(layout, plan), ArtifactJson.Types.ComparisonSummary));
            var bench = ArtifactJson.Read(layout.BenchDecodeJson, ArtifactJson.Types.DecodeBenchFile, "a decode benchmark", "-");
            AssertSameBytes(layout.BenchDecodeJson, ArtifactJson.Bytes(bench, ArtifactJson.Types.DecodeBenchFile));
        }
    }

    [Fact]
    public void ScoresFiles_RewriteByteIdentical()
    {
        var files = Studies.SelectMany(s => Directory.EnumerateFiles(Path.Combine(TestPaths.RepoRoot, "docs", "results", s, "scores"), "scores*.json", SearchOption.AllDirectories)).ToArray();
        Assert.Equal(2 * 9, files.Length);
        foreach (var file in files)
            AssertSameBytes(file, ArtifactJson.Bytes(LayerScores.Load(file).ToFile(), ArtifactJson.Types.LayerScoresFile));
    }

    [Fact]
    public void EarlyStopReport_IsRecomputedFromTheCommittedCurves()
    {
        foreach (var study in Studies)
        {
            var kl = LayerScores.Load(Path.Combine(TestPaths.RepoRoot, "docs", "results", study, "scores", "kl", "scores-full.json"));
            var committed = kl.Provenance.ToObject()["early_stop_vs_full"]!.AsObject();
            var (rule, ks, _) = KlScorer.RuleOf(kl.Provenance)!.Value;
            var recomputed = KlCurves.CompareReport(kl.Curves!, rule, ks, (long)committed["full_tokens"]!)!;
            Assert.Equal(committed.ToJsonString(), OpaqueJson.Of(recomputed, ArtifactJson.Types.EarlyStopReport).ToString());
        }
    }

    [Fact]
    public void EvalFiles_RewriteByteIdentical()
    {
        var files = Studies.SelectMany(s => Directory.EnumerateFiles(Path.Combine(TestPaths.RepoRoot, "docs", "results", s, "eval"), "eval.json", SearchOption.AllDirectories)).ToArray();
        Assert.Equal(77, files.Length);
        foreach (var file in files)
            AssertSameBytes(file, ArtifactJson.Bytes(EvalFile.Load(file), ArtifactJson.Types.EvalFile, trailingNewline: true));
        // every part of the schema occurs in them: ppl, the four recall tasks with per-prompt results, copy's first occurrences
        var teacher = EvalFile.Load(Path.Combine(TestPaths.RepoRoot, "docs", "results", "teacher", "eval", "teacher", "eval.json"));
        Assert.NotNull(teacher.TaskResults.Ppl);
        Assert.Equal(["passkey", "kv-recall", "kv-multihop", "copy"], teacher.TaskResults.Recall.Select(r => r.Task));
        Assert.NotNull(teacher.TaskResults.RecallAt("copy", 256)!.FirstAcc);
    }

    /// <summary>The part of <paramref name="json"/> that <typeparamref name="T"/> describes (without the keys added later) reads into it and writes back unchanged.</summary>
    static void AssertRecordWrites<T>(OpaqueJson json, JsonTypeInfo<T> type, string where, params string[] addedLater)
    {
        var own = addedLater.Aggregate(json, (j, key) => j.Without(key));
        var rewritten = OpaqueJson.Of(own.As(type), type);
        Assert.True(own.ToString() == rewritten.ToString(), $"{where}:\n{own}\nvs\n{rewritten}");
    }

    [Fact]
    public void ScorerProvenanceAndDetails_AreWhatTheRecordsWrite()
    {
        foreach (var study in Studies)
        {
            string dir = Path.Combine(TestPaths.RepoRoot, "docs", "results", study, "scores");
            var kl = LayerScores.Load(Path.Combine(dir, "kl", "scores.json"));
            AssertRecordWrites(kl.Provenance, ArtifactJson.Types.KlProvenance, $"{study} kl provenance", "run_key", "early_stopping", "early_stop_vs_full");
            foreach (var d in kl.Details!) AssertRecordWrites(d!, ArtifactJson.Types.KlLayerMetrics, $"{study} kl details", "seconds");
            Assert.True(kl.Details!.All(d => d!.ToObject()["lock_step"] is JsonObject));   // the lock-step record (rounds and all) is covered
            var full = LayerScores.Load(Path.Combine(dir, "kl", "scores-full.json"));
            foreach (var d in full.Details!) AssertRecordWrites(d!, ArtifactJson.Types.FullBudgetDetail, $"{study} kl-full details");
            var ar = LayerScores.Load(Path.Combine(dir, "ar", "scores.json"));
            AssertRecordWrites(ar.Provenance, ArtifactJson.Types.RecallAblationProvenance, $"{study} ar provenance", "run_key");
            foreach (var d in ar.Details!) AssertRecordWrites(d!, ArtifactJson.Types.RecallAblationMetrics, $"{study} ar details", "seconds");
            var stage1 = LayerScores.Load(Path.Combine(dir, "stage1", "scores.json"));
            AssertRecordWrites(stage1.Provenance, ArtifactJson.Types.Stage1Provenance, $"{study} stage1 provenance");
            foreach (var d in stage1.Details!) AssertRecordWrites(d!, ArtifactJson.Types.Stage1LayerDetail, $"{study} stage1 details");
            foreach (var anchor in new[] { "uniform-first", "uniform-last" })
                AssertRecordWrites(LayerScores.Load(Path.Combine(dir, anchor, "scores.json")).Provenance, ArtifactJson.Types.UniformProvenance, $"{study} {anchor}");
            AssertRecordWrites(LayerScores.Load(Path.Combine(dir, "random-s1", "scores.json")).Provenance, ArtifactJson.Types.RuleProvenance, $"{study} random");
        }
    }

    [Fact]
    public void CommittedReports_AreRenderedAgainFromTheTypedFiles()
    {
        foreach (var study in Studies)
        {
            var layout = new RunLayout(Path.Combine(TestPaths.RepoRoot, "docs", "results", study));
            var plan = ComparisonPlan.Load(layout.Selection);
            string rendered = ComparisonReport.Render(ComparisonSummary.Build(layout, plan), plan, layout);
            Assert.Equal(File.ReadAllText(layout.Report), rendered);
        }
    }

    [Fact]
    public void SummaryRow_NullsAreWrittenAsNull()
    {
        var row = new SummaryRow("m", "kl", 0.25, 1, [3], 0, 0.5, new SortedDictionary<string, double> { ["copy"] = 0.5 }, null, 1.5, null, null);
        var text = Encoding.UTF8.GetString(ArtifactJson.Bytes(new ComparisonSummary("t", "d", "r", 256, 0, [row]), ArtifactJson.Types.ComparisonSummary));
        Assert.Contains("\"kl\": null,\n      \"ppl\": 1.5,\n      \"decode_speedup\": null,\n      \"cache_share\": null\n", text);
    }

    [Fact]
    public void MalformedFiles_NameTheFileAndTheFix()
    {
        var dir = Directory.CreateTempSubdirectory("artifact-json-").FullName;
        try
        {
            string step = Path.Combine(dir, "step.json");
            File.WriteAllText(step, "{\"step\": \"data\", \"finished\": \"yes\", \"inputs\": {}}");
            var e = Assert.Throws<InputException>(() => StepRecord.Load(step));
            Assert.StartsWith($"{step}: not a step record (", e.Message);
            Assert.EndsWith("; delete it or rerun with --force.", e.Message);

            string selection = Path.Combine(dir, "selection.json");
            File.WriteAllText(selection, "{\"teacher\": \"t\"}");
            e = Assert.Throws<InputException>(() => ComparisonPlan.Load(selection));
            Assert.StartsWith($"{selection}: not a comparison's selection.json (", e.Message);
            Assert.Contains("data", e.Message); // the missing key is named
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}
