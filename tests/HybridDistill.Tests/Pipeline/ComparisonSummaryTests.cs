using System.Text.Json.Nodes;
using HybridDistill.Artifacts;
using HybridDistill.Evaluation;
using HybridDistill.Pipeline;

namespace HybridDistill.Tests.Pipeline;

/// <summary>summary.json and the paired differences from hand-made eval.json files with known per-prompt results.</summary>
public class ComparisonSummaryTests
{
    const int Length = 256;

    /// <summary>Writes OUT/eval/MODEL/eval.json: per task, prompts with [correct, count] (copy counts tokens).</summary>
    static void WriteEval(RunLayout layout, string model, Dictionary<string, (int Correct, int Count)[]> perTask, double? kl = null, double ppl = 5)
    {
        var tasks = new JsonObject { ["ppl"] = new JsonObject { ["ppl"] = ppl } };
        if (kl is double k) tasks["agree"] = new JsonObject { ["kl"] = k };
        foreach (var (task, prompts) in perTask)
        {
            var pooled = prompts.Aggregate(new Proportion(), (p, q) => p + new Proportion(q.Correct, q.Count));
            tasks[task] = new JsonObject
            {
                [Length.ToString()] = new JsonObject
                {
                    ["acc"] = pooled.Accuracy, ["n"] = pooled.Count,
                    ["per_prompt"] = new JsonArray(prompts.Select(q => (JsonNode)new JsonArray(q.Correct, q.Count)).ToArray()),
                },
            };
        }
        Directory.CreateDirectory(layout.Eval(model));
        File.WriteAllText(layout.EvalJson(model), new JsonObject { ["name"] = model, ["tasks"] = tasks }.ToJsonString());
    }

    static Dictionary<string, (int, int)[]> Uniform((int, int)[] prompts) =>
        RecallAverage.Tasks.ToDictionary(t => t, _ => prompts);

    [Fact]
    public void Rows_CarryRecallAvgAsTheMeanOfTheFourTasks_AndCreditSharedLayoutsToEachMethod()
    {
        var layout = new RunLayout(TestPaths.NewTempDir("summary"));
        var budgets = ComparisonBudget.ParseList("1L", 4);
        var plan = new ComparisonPlan("t", "d", "r", 4, Length, [0], budgets,
            [new MethodSelection("kl", budgets[0], [2]), new MethodSelection("uniform-first", budgets[0], [0]), new MethodSelection("uniform-last", budgets[0], [2])]);
        WriteEval(layout, "teacher", Uniform([(1, 1), (1, 1)]));
        WriteEval(layout, "all-linear-s0", Uniform([(0, 1), (0, 1)]), kl: 2.0);
        WriteEval(layout, "softmax-0-s0", Uniform([(0, 1), (1, 1)]), kl: 1.0);
        WriteEval(layout, "softmax-2-s0", new()
        {
            ["passkey"] = [(1, 1), (1, 1)], ["kv-recall"] = [(1, 1), (0, 1)], ["kv-multihop"] = [(0, 1), (0, 1)], ["copy"] = [(30, 32), (2, 32)],
        }, kl: 0.5);
        Directory.CreateDirectory(layout.Bench);
        File.WriteAllText(layout.BenchDecodeJson, """
            {"reference": "teacher", "k": {"all-linear-s0": 0, "softmax-0-s0": 1},
             "rows": [{"model": "teacher", "context": 128, "ms_per_token": 4, "cache_bytes": 1000},
                      {"model": "teacher", "context": 512, "ms_per_token": 9, "cache_bytes": 4000},
                      {"model": "all-linear-s0", "context": 512, "ms_per_token": 3, "cache_bytes": 100},
                      {"model": "softmax-0-s0", "context": 512, "ms_per_token": 4.5, "cache_bytes": 1100}]}
            """);

        var summary = ComparisonSummary.Build(layout, plan);
        Assert.Equal(["teacher", "all-linear", "kl", "uniform-first", "uniform-last"], summary.Rows.Select(r => r.Method));
        var kl = summary.Rows.Single(r => r.Method == "kl");
        // (1 + 0.5 + 0 + 32/64) / 4
        Assert.Equal((1 + 0.5 + 0 + 0.5) / 4, kl.RecallAvg, 12);
        Assert.Equal(0.5, kl.Kl);
        Assert.Equal(2.0, kl.DecodeSpeedup!.Value, 12);        // 9 / 4.5 at the longest context, K = 1
        Assert.Equal(1100.0 / 4000, kl.CacheShare!.Value, 12);
        var last = summary.Rows.Single(r => r.Method == "uniform-last");
        Assert.Equal(kl.Model, last.Model);                    // the same layers: one model, credited to both
        Assert.Equal(kl.RecallAvg, last.RecallAvg);
        Assert.Equal(3.0, summary.Rows.Single(r => r.Method == "all-linear").DecodeSpeedup!.Value, 12);
        Assert.Equal((1.0, 1.0), (summary.Rows[0].DecodeSpeedup, summary.Rows[0].CacheShare));
        Assert.Equal(1.0, summary.Rows[0].Budget);
        Assert.Equal(0.25, kl.Budget);
        Assert.Equal(512, summary.DecodeContext);

        var json = ArtifactJson.ToNode(summary, ArtifactJson.Types.ComparisonSummary);
        Assert.Equal(kl.RecallAvg, json["rows"]![2]!["recall_avg"]!.GetValue<double>());
        Assert.Equal(0.5, json["rows"]![2]!["recall"]!["kv-recall"]!.GetValue<double>());

        // the report renders every row and the paired difference of uniform-first against kl
        var report = ComparisonReport.Render(summary, plan, layout);
        Assert.Contains("| uniform-last | 2 |", report);
        Assert.Contains("same layers", report);
    }

    [Fact]
    public void PairedDifference_IsTheRecallAvgGap_WithAnIntervalThatHoldsIt()
    {
        var layout = new RunLayout(TestPaths.NewTempDir("paired"));
        var rng = new Random(7);
        var a = RecallAverage.Tasks.ToDictionary(t => t, _ => Enumerable.Range(0, 40).Select(_ => (rng.Next(2), 1)).ToArray());
        // B: A with 10 of each task's 40 prompts turned wrong
        var b = a.ToDictionary(p => p.Key, p => p.Value.Select((q, i) => i < 10 ? (0, 1) : q).ToArray());
        WriteEval(layout, "a-s0", a);
        WriteEval(layout, "b-s0", b);
        double expected = RecallAverage.Tasks.Average(t => (a[t].Sum(q => q.Item1) - b[t].Sum(q => q.Item1)) / 40.0);

        var d = PairedComparison.Compare(layout, Length, [("a-s0", "b-s0")]);
        Assert.Equal(expected, d.Difference, 12);
        Assert.True(d.Lo <= expected && expected <= d.Hi, $"{d.Lo} .. {d.Hi} should hold {expected}");
        Assert.True(d.Lo >= 0, "A is never worse than B on any prompt: no resample can favour B");
        Assert.Equal((160, 1), (d.Prompts, d.Seeds));

        var same = PairedComparison.Compare(layout, Length, [("a-s0", "a-s0")]);
        Assert.Equal((0.0, 0.0, 0.0), (same.Difference, same.Lo, same.Hi));
        var reversed = PairedComparison.Compare(layout, Length, [("b-s0", "a-s0")]);
        Assert.Equal(-expected, reversed.Difference, 12);
        Assert.Equal(-d.Lo, reversed.Hi, 12);                  // the same resamples, mirrored
    }

    [Fact]
    public void PairedDifference_RefusesModelsEvaluatedOnDifferentPrompts()
    {
        var layout = new RunLayout(TestPaths.NewTempDir("paired"));
        WriteEval(layout, "a-s0", Uniform([(1, 1), (0, 1)]));
        WriteEval(layout, "b-s0", Uniform([(1, 1), (0, 1), (1, 1)]));
        var e = Assert.Throws<InputException>(() => PairedComparison.Compare(layout, Length, [("a-s0", "b-s0")]));
        Assert.Contains("same prompts", e.Message);
    }
}
