using System.ComponentModel;
using System.Diagnostics;
using HybridDistill.Config;
using HybridDistill.Data;
using Spectre.Console;
using Spectre.Console.Cli;

namespace HybridDistill.Cli.Commands;

/// <summary>
/// The whole pipeline, each step one of the other commands with its output in a folder of OUT, so a second
/// run skips finished steps and resumes an interrupted one: tokenize -> stage 1 (all-linear alignment) ->
/// layer scores -> selection for the budget -> stage 2 (the hybrid) -> evaluation of teacher and hybrid ->
/// decode benchmark -> report.
/// </summary>
public sealed class RunCommand : Command<RunCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandOption("--teacher <DIR>")]
        [Description("Teacher model directory (default: assets/teacher, the embedded recall teacher; assets/stories260K is the other embedded model).")]
        public string? Teacher { get; init; }

        [CommandOption("--data <PATH>")]
        [Description("Training text: files, folders or JSONL, repeatable; or one synthetic corpus recipe (.json with \"mix\", see hybrid corpus synth). " +
                     "Default: recipes/corpus-recall.json for the embedded teacher, assets/text/tinystories_val_slice.txt otherwise.")]
        public string[] Data { get; init; } = [];

        [CommandOption("--eval-data <FILE>")]
        [Description("Held-out text for perplexity and agreement (default: the first --data file; a synthetic corpus's heldout.txt).")]
        public string? EvalData { get; init; }

        [CommandOption("--recipe <FILE>")]
        [Description("Recipe with stage1/stage2/score sections (default: recipes/teacher.json for the embedded teacher, recipes/stories260K.json otherwise).")]
        public string? Recipe { get; init; }

        [CommandOption("--method <NAME>")]
        [Description("Layer scoring method (kl, the paper's; or uniform, ends, random, ppl, ar, stage1, removal).")]
        [DefaultValue("kl")]
        public string Method { get; init; } = "kl";

        [CommandOption("--budget <B>")]
        [Description("Fraction of layers kept softmax (25% or 0.25).")]
        [DefaultValue("25%")]
        public string Budget { get; init; } = "25%";

        [CommandOption("--out <DIR>")]
        [DefaultValue("out/run")]
        public string Out { get; init; } = "out/run";

        [CommandOption("--eval-limit <N>")]
        [Description("Recall prompts per length in the evaluation.")]
        [DefaultValue(30)]
        public int EvalLimit { get; init; } = 30;
    }

    public override int Execute(CommandContext context, Settings s, CancellationToken cancellation)
    {
        string root = RepositoryRoot();
        string assets = Path.Combine(root, "assets");
        string teacher = Path.GetFullPath(s.Teacher ?? Path.Combine(assets, "teacher"));
        if (!Directory.Exists(teacher))
            throw new InputException($"{teacher}: teacher not found. Pass --teacher DIR (a Hugging Face model directory).");
        // The embedded teacher learned recall from synthetic episodes; distilling it on them is what keeps that recall.
        bool embedded = teacher == Path.GetFullPath(Path.Combine(assets, "teacher"));
        string[] data = s.Data.Length > 0 ? s.Data
            : embedded ? [Path.Combine(root, "recipes", "corpus-recall.json")]
            : [Path.Combine(assets, "text", "tinystories_val_slice.txt")];
        string recipe = s.Recipe ?? Path.Combine(root, "recipes", embedded ? "teacher.json" : "stories260K.json");
        bool synthetic = data.Length == 1 && IsCorpusRecipe(data[0]);
        string outDir = Path.GetFullPath(s.Out);
        string P(string name) => Path.Combine(outDir, name);
        string evalData = s.EvalData ?? (synthetic ? Path.Combine(P("data"), SyntheticCorpus.HeldoutFile) : data[0]);
        // Recall prompts of a synthetic-corpus run use the stock filler, as the teacher's own figures do.
        string[] filler = synthetic ? ["--stock-filler"] : [];
        var err = CliRunner.Stderr;
        err.MarkupLineInterpolated($"[bold]hybrid run[/]: teacher {teacher}, method {s.Method}, budget {s.Budget}, output {outDir}");
        var total = Stopwatch.StartNew();

        if (synthetic)
            Step("corpus synth", File.Exists(Path.Combine(P("data"), "manifest.json")),
                ["corpus", "synth", "--recipe", data[0], "--out", P("data")]);
        else
            Step("tokenize", File.Exists(Path.Combine(P("data"), "manifest.json")),
                ["tokenize", "--model", teacher, .. data.SelectMany(d => new[] { "--input", d }), "--out", P("data")]);
        Stage("stage1", ["distill", "stage1", "--teacher", teacher, "--data", P("data"), "--recipe", recipe]);
        Step("score", File.Exists(Path.Combine(P("scores"), "scores.json")),
            ["score", "--method", s.Method, "--teacher", teacher, "--stage1", P("stage1"), "--data", P("data"), "--recipe", recipe, "--out", P("scores"),
             // kl's early stopping waits for the top-K of the budget this run selects with
             .. (s.Method == "kl" ? new[] { "--set", $"stable_budgets={s.Budget}" } : [])]);
        Step("select", false,
            ["select", "--scores", Path.Combine(P("scores"), "scores.json"), "--budget", s.Budget, "--out", P("layout.json")]);
        Stage("hybrid", ["distill", "stage2", "--teacher", teacher, "--data", P("data"), "--from", P("stage1"), "--layout", P("layout.json"), "--recipe", recipe]);

        string[] recall = ["--tasks", "ppl,passkey,kv-recall,kv-multihop,copy", "--data", evalData, "--limit", s.EvalLimit.ToString()];
        Step("eval teacher", File.Exists(Path.Combine(P("eval/teacher"), "eval.json")),
            ["eval", "--model", teacher, "--name", "teacher", .. recall, .. filler, "--json", P("eval/teacher") + "/"]);
        Step("eval hybrid", File.Exists(Path.Combine(P("eval/hybrid"), "eval.json")),
            ["eval", "--model", P("hybrid"), "--teacher", teacher, "--name", "hybrid-" + s.Budget.TrimEnd('%'),
             "--tasks", "ppl,agree,passkey,kv-recall,kv-multihop,copy", "--data", evalData, "--limit", s.EvalLimit.ToString(), .. filler,
             "--json", P("eval/hybrid") + "/"]);
        int maxContext = ModelConfig.Load(teacher).MaxPositionEmbeddings;
        var contexts = new[] { 128, 256, 512, 1024, 2048, 4096, 8192, 16384 }.Where(c => c + 40 <= maxContext).DefaultIfEmpty(maxContext / 2);
        Step("bench decode", File.Exists(Path.Combine(P("eval"), "bench_decode.json")),
            ["bench", "decode", "--model", teacher, "--model", P("hybrid"), "--contexts", string.Join(",", contexts), "--json", P("eval") + "/"]);
        Step("report", false, ["report", P("eval/teacher"), P("eval/hybrid"), P("eval"), "--out", P("report.md")]);

        err.MarkupLineInterpolated($"[green]done[/] in {total.Elapsed.TotalMinutes:F1} min: hybrid model {P("hybrid")}, report {P("report.md")}");
        return 0;

        void Stage(string name, string[] args)
        {
            string dir = P(name);
            bool finished = File.Exists(Path.Combine(dir, "model.safetensors")) && File.Exists(Path.Combine(dir, "config.json"));
            bool started = Directory.Exists(dir) && Directory.EnumerateFileSystemEntries(dir).Any();
            Step(name, finished, [.. args, "--out", dir, .. started ? new[] { "--resume" } : []]);
        }

        void Step(string name, bool done, string[] args)
        {
            cancellation.ThrowIfCancellationRequested();
            if (done)
            {
                err.MarkupLineInterpolated($"[grey]- {name}: already done, skipped[/]");
                return;
            }
            err.MarkupLineInterpolated($"[bold blue]- {name}[/]: hybrid {string.Join(' ', args.Select(Quote))}");
            var sw = Stopwatch.StartNew();
            int code = CliApp.Create().Run(args);
            if (code != 0) throw new InputException($"step \"{name}\" failed (exit code {code}); fix the cause above and run again: finished steps are skipped.");
            err.MarkupLineInterpolated($"[grey]  {name} took {sw.Elapsed.TotalSeconds:F0} s[/]");
        }
    }

    static string Quote(string arg) => arg.Contains(' ') ? "\"" + arg + "\"" : arg;

    /// <summary>True for a synthetic corpus recipe (a JSON object with "mix"), as --data may name one.</summary>
    static bool IsCorpusRecipe(string path)
    {
        if (!path.EndsWith(".json", StringComparison.OrdinalIgnoreCase) || !File.Exists(path)) return false;
        try { return System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(path)) is System.Text.Json.Nodes.JsonObject o && o.ContainsKey("mix"); }
        catch (System.Text.Json.JsonException) { return false; }
    }

    /// <summary>The repository root (where HybridDistill.sln is), found upwards from the executable.</summary>
    public static string RepositoryRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir != null && !File.Exists(Path.Combine(dir.FullName, "HybridDistill.sln"))) dir = dir.Parent;
        return dir?.FullName ?? Directory.GetCurrentDirectory();
    }
}
