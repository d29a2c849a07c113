using System.Text.Json.Nodes;
using HybridDistill.Artifacts;
using HybridDistill.Cli;
using HybridDistill.Cli.Commands;
using HybridDistill.Evaluation;
using Spectre.Console.Cli;

namespace HybridDistill.Tests.Evaluation;

public class EvalReportTests
{
    static readonly byte[] PngSignature = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];

    /// <summary>An eval.json as Evaluator writes it, from a fake model on the stories260K tokenizer.</summary>
    static JsonObject FakeEval(string name, ILogitModel model)
    {
        var options = new EvalOptions { Tasks = ["ppl", "kv-recall", "copy", "mc"], DataPath = TestPaths.Assets("text", "tinystories_val_slice.txt"),
            McPaths = [TestPaths.Assets("eval", "copa.jsonl")], Lengths = [128, 256], Limit = 3, Window = 64 };
        var result = Evaluator.Run(name, "models/" + name, model, EvalTokenizers.Stories260K, null, null, options);
        return ArtifactJson.ToNode(result.ToFile(), ArtifactJson.Types.EvalFile);
    }

    [Fact]
    public void EvalJson_HasTheDocumentedShape()
    {
        var json = FakeEval("oracle", new OracleModel(512, 512));
        Assert.Equal("models/oracle", json["model"]!.GetValue<string>());
        Assert.Equal(0, json["seed"]!.GetValue<int>());
        var tasks = json["tasks"]!.AsObject();
        Assert.True(tasks["ppl"]!["nll"]!.GetValue<double>() < 1e-6);
        Assert.Equal(3 * 63, tasks["ppl"]!["tokens"]!.GetValue<long>());
        foreach (var length in new[] { "128", "256" })
        {
            var r = tasks["kv-recall"]![length]!;
            Assert.Equal(1.0, r["acc"]!.GetValue<double>());
            Assert.Equal(12, r["n"]!.GetValue<int>());
            Assert.True(r["lo"]!.GetValue<double>() < 1.0 && r["hi"]!.GetValue<double>() == 1.0);
            Assert.Equal(1.0, tasks["copy"]![length]!["first_acc"]!.GetValue<double>());
        }
        var mc = tasks["mc/copa"]!;
        Assert.Equal(3, mc["n"]!.GetValue<int>());
        Assert.NotNull(mc["acc_norm"]);
        Assert.Equal([128, 256], json["settings"]!["lengths"]!.AsArray().Select(x => x!.GetValue<int>()));
    }

    [Fact]
    public void Report_PutsThreeModelsSideBySide_WithPngPlots()
    {
        var root = TestPaths.NewTempDir("report");
        var models = new (string Name, ILogitModel Model)[]
        {
            ("teacher", new OracleModel(512, 512)),
            ("hybrid-25", new RandomGuesser(512, Enumerable.Range(0, 512).ToList(), seed: 1, context: 512)),
            ("hybrid-12.5", new TableModel(512, _ => new float[512], context: 512)),
        };
        foreach (var (name, model) in models)
        {
            Directory.CreateDirectory(Path.Combine(root, name));
            File.WriteAllText(Path.Combine(root, name, "eval.json"), FakeEval(name, model).ToJsonString());
        }
        var rows = new JsonArray();
        foreach (var (name, perToken) in new[] { ("teacher", 65536L), ("hybrid-25", 16384L), ("hybrid-12.5", 8192L) })
            foreach (int context in new[] { 128, 256, 512 })
                rows.Add(new JsonObject { ["model"] = name, ["context"] = context, ["ms_per_token"] = 1.0 + context / 256.0, ["cache_bytes"] = perToken * context / 128 });
        File.WriteAllText(Path.Combine(root, "bench_decode.json"), new JsonObject { ["rows"] = rows }.ToJsonString());

        string output = Path.Combine(root, "out", "report.md");
        var (count, decodeRows, images) = EvalReport.Write([Path.Combine(root, "teacher"), Path.Combine(root, "hybrid-25"), Path.Combine(root, "hybrid-12.5"), Path.Combine(root, "bench_decode.json")], output);
        Assert.Equal(3, count);
        Assert.Equal(9, decodeRows);
        Assert.Equal(["report-recall-kv-recall.png", "report-recall-copy.png", "report-decode-ms.png", "report-cache-bytes.png"], images);
        foreach (var image in images)
        {
            var bytes = File.ReadAllBytes(Path.Combine(root, "out", image));
            Assert.Equal(PngSignature, bytes[..8]);
            Assert.True(bytes.Length > 10_000, $"{image}: {bytes.Length} bytes");
        }
        var md = File.ReadAllText(output);
        Assert.Contains("| | teacher | hybrid-25 | hybrid-12.5 |", md);
        Assert.Contains("| length | teacher | hybrid-25 | hybrid-12.5 |", md);
        Assert.Contains("| 128 | 1.00 [", md);                              // the oracle's kv-recall row starts the table
        Assert.Contains("| context | teacher | hybrid-25 | hybrid-12.5 |", md);
        Assert.Contains("| 512 | 3.00 ms / 256.0 KiB | 3.00 ms / 64.0 KiB | 3.00 ms / 32.0 KiB |", md);
        Assert.Contains("![report-recall-kv-recall](report-recall-kv-recall.png)", md);
    }

    [Fact]
    public void Report_WithNothingToReport_IsAnInputError()
    {
        var e = Assert.Throws<InputException>(() => EvalReport.Gather([TestPaths.NewTempDir("empty")]));
        Assert.Contains("no eval.json", e.Message);
    }

    [Fact]
    public void Evaluator_RejectsMissingInputs()
    {
        Assert.Contains("--data", Assert.Throws<InputException>(() => Evaluator.ResolveTasks(new EvalOptions { Tasks = ["ppl"] }, false)).Message);
        Assert.Contains("--teacher", Assert.Throws<InputException>(() =>
            Evaluator.ResolveTasks(new EvalOptions { Tasks = ["agree"], DataPath = "x" }, false)).Message);
        Assert.Contains("unknown task", Assert.Throws<InputException>(() => Evaluator.ResolveTasks(new EvalOptions { Tasks = ["nope"] }, false)).Message);
        Assert.Equal(RecallTasks.All, Evaluator.ResolveTasks(new EvalOptions { Tasks = ["recall"] }, false));
        Assert.Contains("outside", Assert.Throws<InputException>(() => Evaluator.ResolveLengths(new EvalOptions { Lengths = [1024] }, 512)).Message);
        Assert.Equal([128, 256], Evaluator.ResolveLengths(new EvalOptions(), 256));
    }

    static int RunCli(params string[] args)
    {
        var app = new CommandApp();
        app.Configure(c =>
        {
            c.PropagateExceptions();
            c.AddCommand<EvalCommand>("eval");
            c.AddCommand<ReportCommand>("report");
        });
        return CliRunner.Run(app, args);
    }

    [Fact]
    public void Cli_EvalThenReport_OnStories260K()
    {
        var dir = TestPaths.NewTempDir("eval-cli");
        int code = RunCli("eval", "--model", TestPaths.Assets("stories260K"), "--teacher", TestPaths.Assets("stories260K"),
            "--tasks", "ppl,agree,kv-recall", "--data", TestPaths.Assets("text", "tinystories_val_slice.txt"),
            "--window", "64", "--lengths", "128", "--limit", "2", "--json", dir + "/");
        Assert.Equal(0, code);
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "eval.json")))!;
        Assert.Equal("stories260K", json["name"]!.GetValue<string>());
        Assert.InRange(json["tasks"]!["agree"]!["kl"]!.GetValue<double>(), -1e-6, 1e-6);
        Assert.Equal(8, json["tasks"]!["kv-recall"]!["128"]!["n"]!.GetValue<int>());
        Assert.True(File.Exists(Path.Combine(dir, "eval.md")));

        Assert.Equal(0, RunCli("report", dir, "--out", Path.Combine(dir, "report.md")));
        Assert.True(File.Exists(Path.Combine(dir, "report-recall-kv-recall.png")));
        Assert.Equal(CliRunner.UserErrorExitCode, RunCli("eval", "--model", TestPaths.Assets("stories260K"), "--tasks", "ppl"));
        Assert.Equal(CliRunner.UserErrorExitCode, RunCli("eval", "--model", TestPaths.Assets("stories260K"), "--tasks", "kv-recall", "--lengths", "1024"));
    }
}
