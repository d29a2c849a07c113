using System.Text.Json.Nodes;
using HybridDistill.Artifacts;
using HybridDistill.Evaluation;

namespace HybridDistill.Tests.Evaluation;

public class LmEvalResultsTests
{
    static readonly HybridDistill.Tokenization.ITextTokenizer Tok = EvalTokenizers.CharLevel;

    /// <summary>The unigram model of MultipleChoiceTests: p(▁) = 0.2, p(a) = 0.1, p(b) = p(c) = 0.05.</summary>
    static TableModel Unigram() => MultipleChoiceTests.Unigram();

    /// <summary>The file as written, parsed back.</summary>
    static JsonObject Written(LmEvalFile file) => JsonNode.Parse(LmEvalResults.Bytes(file))!.AsObject();

    [Theory]
    [InlineData(1, 3, 0.3333333333)]      // sqrt((1/3)(2/3) / 2) = 1/3
    [InlineData(7, 10, 0.1527525232)]     // sqrt(0.21 / 9)
    [InlineData(50, 100, 0.0502518908)]   // sqrt(0.25 / 99)
    [InlineData(0, 5, 0.0)]
    public void Stderr_IsTheSampleStandardErrorOfZeroOneOutcomes(int correct, int count, double expected)
    {
        // lm-eval's mean_stderr: sqrt(sum (x - mean)^2 / (n - 1)) / sqrt(n), computed here over the outcomes themselves.
        double[] x = [.. Enumerable.Repeat(1.0, correct), .. Enumerable.Repeat(0.0, count - correct)];
        double mean = x.Average();
        double direct = Math.Sqrt(x.Sum(v => (v - mean) * (v - mean)) / (count - 1)) / Math.Sqrt(count);
        Assert.Equal(expected, direct, 9);
        Assert.Equal(expected, new Proportion(correct, count).Stderr!.Value, 9);
    }

    [Fact]
    public void Stderr_OfOneOutcome_IsNotAvailable() => Assert.Null(new Proportion(1, 1).Stderr);

    [Fact]
    public void McEvaluation_WritesLmEvalKeys_WithHandComputedValues()
    {
        // The three items of MultipleChoiceTests (acc 1/3, acc_norm 2/3) and a fourth that --limit 3 leaves out.
        var path = Path.Combine(TestPaths.NewTempDir("lm-eval"), "toy.jsonl");
        File.WriteAllLines(path, [
            """{"query": "Question: one", "choices": ["a", "bcb"], "gold": 0}""",
            """{"query": "Question: two", "choices": ["aaaa", "b"], "gold": 0}""",
            "",
            """{"query": "Question: three", "choices": ["ab", "c"], "gold": 0}""",
            """{"query": "Question: four", "choices": ["a", "c"], "gold": 1}""",
        ]);
        var options = new EvalOptions { Tasks = ["mc"], McPaths = [path], Limit = 3, Seed = 7 };
        var eval = Evaluator.Run("toy-model", "models/toy", Unigram(), Tok, null, null, options);

        var json = Written(LmEvalResults.Build(eval, new LmEvalRun("cpu", null, 1700000000.5)));

        var toy = json["results"]!["toy"]!.AsObject();
        Assert.Equal("toy", toy["alias"]!.GetValue<string>());
        Assert.Equal(1.0 / 3, toy["acc,none"]!.GetValue<double>(), 12);
        Assert.Equal(1.0 / 3, toy["acc_stderr,none"]!.GetValue<double>(), 12);     // sqrt((1/3)(2/3) / 2)
        Assert.Equal(2.0 / 3, toy["acc_norm,none"]!.GetValue<double>(), 12);
        Assert.Equal(1.0 / 3, toy["acc_norm_stderr,none"]!.GetValue<double>(), 12);
        Assert.Equal(4, json["n-samples"]!["toy"]!["original"]!.GetValue<int>());     // every item of the file
        Assert.Equal(3, json["n-samples"]!["toy"]!["effective"]!.GetValue<int>());    // the --limit evaluated
        Assert.Equal("multiple_choice", json["configs"]!["toy"]!["output_type"]!.GetValue<string>());
        Assert.Equal(path, json["configs"]!["toy"]!["dataset_path"]!.GetValue<string>());
        Assert.True(json["higher_is_better"]!["toy"]!["acc_norm"]!.GetValue<bool>());
        Assert.Equal(0, json["n-shot"]!["toy"]!.GetValue<int>());

        var config = json["config"]!.AsObject();
        Assert.Equal("hybrid-distill", config["model"]!.GetValue<string>());
        Assert.Equal("pretrained=models/toy", config["model_args"]!.GetValue<string>());
        Assert.Equal("auto", config["batch_size"]!.GetValue<string>());
        Assert.Equal("cpu", config["device"]!.GetValue<string>());
        Assert.Equal(3, config["limit"]!.GetValue<int>());
        Assert.Equal(7, config["random_seed"]!.GetValue<int>());
        Assert.Equal(1700000000.5, json["date"]!.GetValue<double>());
    }

    [Fact]
    public void RecallPplAndCloze_UseTheirOwnTaskNamesAndMetrics()
    {
        var recall = new RecallTaskResult(RecallTasks.KvRecall,
            [new RecallLengthResult(128, 5, new Proportion(7, 10), null, new Dictionary<string, Proportion>(), -0.5, [new Proportion(2, 2), new Proportion(1, 2), new Proportion(2, 2), new Proportion(1, 2), new Proportion(1, 2)]),
             new RecallLengthResult(256, 1, new Proportion(1, 1), null, new Dictionary<string, Proportion>(), -0.1, [new Proportion(1, 1)])]);
        var cloze = new McResult("lambada", McLayout.Cloze, new Proportion(1, 4), null, MeanNll: 2.0, Available: 10);
        var eval = new EvalResult("m", "m", null, new EvalOptions { DataPath = "held.txt" }, ["ppl", "kv-recall", "mc"], [128, 256],
            new PerplexityResult(Nll: 1.5, Ppl: Math.Exp(1.5), Tokens: 1000, Windows: 4, WindowLength: 256), null, [recall], [cloze], null);

        var results = Written(LmEvalResults.Build(eval, new LmEvalRun("cpu", 8, 0)))["results"]!.AsObject();

        Assert.Equal(["ppl", "kv-recall_128", "kv-recall_256", "lambada"], results.Select(kv => kv.Key));
        Assert.Equal(0.7, results["kv-recall_128"]!["acc,none"]!.GetValue<double>(), 12);
        Assert.Equal(Math.Sqrt(0.21 / 9), results["kv-recall_128"]!["acc_stderr,none"]!.GetValue<double>(), 12);
        Assert.Equal(LmEvalResults.NotAvailable, results["kv-recall_256"]!["acc_stderr,none"]!.GetValue<string>());   // n = 1
        Assert.Equal(Math.Exp(1.5), results["ppl"]!["token_perplexity,none"]!.GetValue<double>(), 12);
        Assert.Equal(0.25, results["lambada"]!["acc,none"]!.GetValue<double>(), 12);
        Assert.Equal(Math.Sqrt(0.25 * 0.75 / 3), results["lambada"]!["acc_stderr,none"]!.GetValue<double>(), 12);
        Assert.Equal(Math.Exp(2.0), results["lambada"]!["perplexity,none"]!.GetValue<double>(), 12);
        Assert.False(results["lambada"]!.AsObject().ContainsKey("acc_norm,none"));
    }

    [Theory]
    [InlineData("out/eval/eval.json", "out/eval/results_lm_eval.json")]
    [InlineData("out/eval/teacher.json", "out/eval/teacher.results_lm_eval.json")]
    public void PathBeside_NamesTheFileBesideTheEvalJson(string evalJson, string expected) =>
        Assert.Equal(Path.GetFullPath(expected), LmEvalResults.PathBeside(evalJson));
}
