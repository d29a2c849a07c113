using HybridDistill.Pipeline;
using HybridDistill.Selection;

namespace HybridDistill.Tests.Pipeline;

/// <summary>
/// The studies committed under docs/results/ were made by `hybrid run` when it drove the other commands; their step
/// records (steps/*.json) are what an existing run folder holds. The library's <see cref="ComparisonSetup"/>, resolved
/// with the studies' settings, gives every one of those steps with exactly the recorded inputs (so the same digests,
/// and such a folder resumes with every step skipped), and the same selection from the committed scores.
/// </summary>
public class ComparisonSetupTests
{
    [Theory]
    [InlineData("stories260K", "assets/stories260K", "")]
    [InlineData("teacher", "assets/teacher", "threads=1")]
    public void StepInputs_OfACommittedStudy_EqualItsRecords(string study, string teacher, string set)
    {
        string committed = Path.Combine(TestPaths.RepoRoot, "docs", "results", study);
        var setup = ComparisonSetup.Resolve(new ComparisonRunOptions
        {
            RepositoryRoot = TestPaths.RepoRoot, Teacher = Path.Combine(TestPaths.RepoRoot, teacher),
            Methods = "kl,kl-full,uniform,random,ar,stage1", Seeds = 3, EvalLimit = 100,
            Set = set.Length == 0 ? [] : [set], Out = TestPaths.NewTempDir("setup-" + study),
        });
        var recorded = Directory.GetFiles(Path.Combine(committed, "steps"), "*.json")
            .Select(StepRecord.Load).ToDictionary(r => r.Step);

        // selection: the committed scores give the committed selection.json, byte for byte
        var plan = setup.Plan((job, row) => LayerScores.Load(Path.Combine(committed, "scores", job.Folder, job.ScoresFileOfRow[row])));
        plan.Save(setup.Layout.Selection);
        Assert.Equal(File.ReadAllText(Path.Combine(committed, "selection.json")), File.ReadAllText(setup.Layout.Selection));

        var expected = new List<StepInputs>();
        var data = setup.DataInputs();
        var stage1 = setup.Stage1Inputs(RunLayout.Digest(data));
        expected.AddRange([data, stage1]);
        expected.AddRange(setup.Jobs.Select(job => setup.ScoreInputs(job, RunLayout.Digest(data), RunLayout.Digest(stage1))));
        var models = plan.Models().ToDictionary(m => m.Model,
            m => setup.ModelInputs(m.Model, m.Layers, m.Seed, RunLayout.Digest(data), RunLayout.Digest(stage1)));
        expected.AddRange(models.Values);
        // a synthetic corpus's held-out text is made by the data step (not committed): take its recorded settings
        string evalSettings = setup.Synthetic ? recorded["eval/teacher"].Inputs["eval"] : setup.EvalSettings();
        expected.Add(ComparisonSteps.EvalTeacher(setup.TeacherPrint, evalSettings));
        expected.AddRange(models.Select(m => ComparisonSteps.EvalModel(m.Key, setup.TeacherPrint, RunLayout.Digest(m.Value), evalSettings)));
        expected.Add(ComparisonSteps.Bench(setup.TeacherPrint, setup.DecodeContexts,
            setup.DecodeModels(plan).Select(m => (m.K, m.Name, RunLayout.Digest(models[m.Name])))));

        Assert.Equal(recorded.Keys.Order(StringComparer.Ordinal), expected.Select(e => e.Step).Order(StringComparer.Ordinal));
        foreach (var step in expected)
            Assert.Equal(recorded[step.Step].Inputs.OrderBy(p => p.Key, StringComparer.Ordinal), step.Values);
    }

    [Fact]
    public void Sets_SplitBySection_BareKeysGoToEveryStageThatHasThem()
    {
        var sets = ComparisonSets.Split(["stage1.lr=0.01", "threads=1", "stage2.seq_len=256", "score.last_n=2"]);
        Assert.Equal(["lr=0.01", "threads=1"], sets[HybridDistill.Training.Stage.Stage1]);
        Assert.Equal(["threads=1", "seq_len=256"], sets[HybridDistill.Training.Stage.Stage2]);
        Assert.Equal(["last_n=2"], sets.Score);
        Assert.Equal("--set last_n=2: no stage-1 or stage-2 setting is called last_n; for a scoring setting write score.last_n=2.",
            Assert.Throws<InputException>(() => ComparisonSets.Split(["last_n=2"])).Message);
        Assert.Equal("--set stage9.lr=1: the section is stage1, stage2 or score.",
            Assert.Throws<InputException>(() => ComparisonSets.Split(["stage9.lr=1"])).Message);
    }
}
