using System.ComponentModel;
using System.Diagnostics;
using System.Text.Json.Nodes;
using HybridDistill.Config;
using HybridDistill.Data;
using HybridDistill.Pipeline;
using HybridDistill.Selection;
using HybridDistill.Training;
using Spectre.Console;
using Spectre.Console.Cli;

namespace HybridDistill.Cli.Commands;

/// <summary>
/// The whole pipeline as a comparison of selection methods: tokens once, stage 1 once, each scoring method once,
/// a selection per method and budget, stage 2 once per distinct layout and distillation seed (all from the same
/// stage-1 weights and the same batches), every model evaluated on the same prompts, a decode benchmark per K,
/// then summary.json and report.md. Folders, artifact names and when a step counts as done are the library's
/// <see cref="RunLayout"/>; each step is one of the other commands, run in this process.
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

        [CommandOption("--budgets <LIST>")]
        [Description("Softmax-layer budgets, comma-separated: fractions (12.5%,25%) or layer counts (1L,2L); budgets with the same K count once.")]
        [DefaultValue("1L,2L")]
        public string Budgets { get; init; } = "1L,2L";

        [CommandOption("--methods <LIST>")]
        [Description("Selection methods: kl, kl-full (kl without early stopping), uniform (= uniform-first,uniform-last), random (= random-s0..s2), ar, ar-multihop, stage1, ppl, removal.")]
        [DefaultValue("kl,uniform")]
        public string Methods { get; init; } = "kl,uniform";

        [CommandOption("--seeds <N>")]
        [Description("Distillation seeds per layout (seeds 0..N-1: the order of the stage-2 batches).")]
        [DefaultValue(1)]
        public int Seeds { get; init; } = 1;

        [CommandOption("--set <KEY=VALUE>")]
        [Description("A recipe setting (repeatable): stage1.KEY=V, stage2.KEY=V or score.KEY=V; a bare KEY=V applies to every section that has the key.")]
        public string[] Set { get; init; } = [];

        [CommandOption("--out <DIR>")]
        [DefaultValue("out/run")]
        public string Out { get; init; } = "out/run";

        [CommandOption("--force")]
        [Description("Redo steps whose recorded inputs differ from this run's (default: stop and say which step and setting).")]
        public bool Force { get; init; }

        [CommandOption("--teacher-cache-mb <MB>")]
        [Description("Memory for the teacher's outputs on the stage-2 batches, computed once and reused by every stage-2 run (0: off).")]
        [DefaultValue(2048)]
        public int TeacherCacheMb { get; init; } = 2048;

        [CommandOption("--eval-limit <N>")]
        [Description("Recall prompts per task and length in the evaluation.")]
        [DefaultValue(30)]
        public int EvalLimit { get; init; } = 30;

        [CommandOption("--device <DEVICE>")]
        [Description("Passed to the distill, score and eval steps: cpu, cuda or cuda:N (needs a build with -p:TorchBackend=cuda). " +
                     "Default: not passed (they run on the CPU). The decode benchmark stays on the CPU.")]
        public string? Device { get; init; }

        public override ValidationResult Validate() =>
            Seeds < 1 ? ValidationResult.Error("--seeds must be at least 1.")
            : EvalLimit < 1 ? ValidationResult.Error("--eval-limit must be at least 1.")
            : TeacherCacheMb < 0 ? ValidationResult.Error("--teacher-cache-mb must be 0 (off) or more.")
            : ValidationResult.Success();
    }

    static readonly string[] RecallTaskList = ["passkey", "kv-recall", "kv-multihop", "copy"];

    public override int Execute(CommandContext context, Settings s, CancellationToken cancellation)
    {
        using var interrupt = new RunInterrupt();
        try
        {
            return Compare(s, interrupt);
        }
        catch (Exception e) when (e is RunInterrupted or OperationCanceledException)
        {
            CliRunner.Stderr.MarkupLine("[yellow]interrupted.[/] Run the same command again to resume: finished steps are skipped, an interrupted training step continues from its checkpoint.");
            return 130;
        }
    }

    int Compare(Settings s, RunInterrupt interrupt)
    {
        var cancellation = interrupt.Token;
        if (s.Device is not null) HybridDistill.Models.ComputeDevice.Resolve(s.Device);             // refused before the run folder is touched
        string[] device = s.Device is null ? [] : ["--device", s.Device];       // only when given: step records stay as they were
        string root = RepositoryRoot();
        string assets = Path.Combine(root, "assets");
        string teacher = Path.GetFullPath(s.Teacher ?? Path.Combine(assets, "teacher"));
        if (!Directory.Exists(teacher))
            throw new InputException($"{teacher}: teacher not found. Pass --teacher DIR (a Hugging Face model directory).");
        // The embedded teacher learned recall from synthetic episodes; distilling it on them is what keeps that recall.
        bool embedded = teacher == Path.GetFullPath(Path.Combine(assets, "teacher"));
        string[] data = (s.Data.Length > 0 ? s.Data
            : embedded ? [Path.Combine(root, "recipes", "corpus-recall.json")]
            : [Path.Combine(assets, "text", "tinystories_val_slice.txt")]).Select(Path.GetFullPath).ToArray();
        foreach (var d in data)
            if (!File.Exists(d) && !Directory.Exists(d)) throw new InputException($"--data {d}: not found.");
        string recipe = Path.GetFullPath(s.Recipe ?? Path.Combine(root, "recipes", embedded ? "teacher.json" : "stories260K.json"));
        var recipeJson = Recipe.Load(recipe).Json;
        var sets = SplitSets(s.Set);
        var stage2 = TrainConfig.Resolve(Stage.Stage2, recipeJson["stage2"] as JsonObject, sets[Stage.Stage2], recipe + " [stage2]");
        TrainConfig.Resolve(Stage.Stage1, recipeJson["stage1"] as JsonObject, sets[Stage.Stage1], recipe + " [stage1]");
        var teacherConfig = ModelConfig.Load(teacher);
        int numLayers = teacherConfig.NumHiddenLayers;
        var budgets = ComparisonBudget.ParseList(s.Budgets, numLayers);
        var rowMethods = ComparisonMethods.Expand(s.Methods);
        var seeds = Enumerable.Range(0, s.Seeds).ToArray();
        bool synthetic = data.Length == 1 && IsCorpusRecipe(data[0]);
        var layout = new RunLayout(s.Out);
        string evalData = Path.GetFullPath(s.EvalData ?? (synthetic ? Path.Combine(layout.Data, SyntheticCorpus.HeldoutFile) : data[0]));
        // Recall prompts of a synthetic-corpus run use the stock filler, as the teacher's own figures do.
        string[] filler = synthetic ? ["--stock-filler"] : [];
        int recallLength = stage2.SeqLen;
        var lengths = new[] { 128, 256, 512 }.Where(l => l <= teacherConfig.MaxPositionEmbeddings).Append(recallLength).Distinct().Order().ToArray();

        var err = CliRunner.Stderr;
        string budgetText = string.Join(", ", budgets.Select(b => $"{b.Label} (K={b.K})"));
        err.MarkupLineInterpolated($"[bold]hybrid run[/]: teacher {teacher}; budgets {budgetText}; methods {string.Join(", ", rowMethods)}; seeds {s.Seeds}; output {layout.Root}");
        var total = Stopwatch.StartNew();
        var steps = new StepRunnerCli(layout, s.Force, interrupt);
        // Every stage-2 run here (scoring candidates and hybrids) reads the same batches: the frozen teacher runs once per batch.
        if (s.TeacherCacheMb > 0) TeacherOutputCache.EnableShared((long)s.TeacherCacheMb << 20);

        // tokens
        string teacherPrint = RunLayout.Fingerprint(teacher);
        var dataInputs = StepInputs.Of("data", ("teacher", teacherPrint), ("sources", string.Join(",", data.Select(RunLayout.Fingerprint))),
            ("kind", synthetic ? "synthetic" : "text"));
        steps.Run(dataInputs, layout.Data, resumable: false, _ => synthetic
            ? ["corpus", "synth", "--recipe", data[0], "--out", layout.Data]
            : ["tokenize", "--model", teacher, .. data.SelectMany(d => new[] { "--input", d }), "--out", layout.Data]);
        steps.AwaitOthers();
        string dataDigest = RunLayout.Digest(dataInputs);

        // stage 1
        var stage1Inputs = StepInputs.Of("stage1", ("teacher", teacherPrint), ("data", dataDigest),
            ("recipe.stage1", Section(recipeJson, "stage1")), ("set", string.Join(" ", sets[Stage.Stage1])));
        steps.Run(stage1Inputs, layout.Stage1, resumable: true, resume =>
            ["distill", "stage1", "--teacher", teacher, "--data", layout.Data, "--recipe", recipe, "--out", layout.Stage1,
             .. SetArgs(sets[Stage.Stage1]), .. resume ? ["--resume"] : Array.Empty<string>(), .. device]);
        steps.AwaitOthers();
        string stage1Digest = RunLayout.Digest(stage1Inputs);

        // scores
        var jobs = ComparisonMethods.Jobs(rowMethods, budgets);
        foreach (var job in jobs)
        {
            // the scorers that train (kl, removal) take the stage-2 settings too
            bool trains = job.Method is "kl" or "removal";
            string[] jobSets = [.. job.Settings, .. trains ? sets[Stage.Stage2] : [], .. sets.Score];
            var inputs = StepInputs.Of($"score-{job.Folder}", ("method", job.Method), ("set", string.Join(" ", jobSets)),
                ("seed", job.Seed.ToString()), ("teacher", teacherPrint), ("stage1", stage1Digest), ("data", dataDigest),
                ("recipe.score", Section(recipeJson, "score")), ("recipe.stage2", trains ? Section(recipeJson, "stage2") : "-"));
            string dir = layout.ScoresDir(job.Folder);
            steps.Run(inputs, dir, resumable: true, _ =>
                ["score", "--method", job.Method, "--teacher", teacher, "--stage1", layout.Stage1, "--data", layout.Data, "--recipe", recipe,
                 "--out", dir, "--seed", job.Seed.ToString(),
                 "--plot-budget", ((double)budgets[^1].K / numLayers).ToString("0.######", System.Globalization.CultureInfo.InvariantCulture),
                 .. SetArgs(jobSets), .. device]);
        }

        steps.AwaitOthers();

        // selection: each method's layers per budget
        var selections = new List<MethodSelection>();
        foreach (var job in jobs)
            foreach (var (row, file) in job.ScoresFileOfRow)
            {
                var scores = LayerScores.Load(Path.Combine(layout.ScoresDir(job.Folder), file));
                foreach (var budget in budgets)
                    selections.Add(new MethodSelection(row, budget, LayerSelection.Choose(scores, budget.K)));
            }
        // paths inside the repository are recorded relative to it, so a committed study names no machine's folders
        string Shown(string path) => path.StartsWith(root + Path.DirectorySeparatorChar, StringComparison.Ordinal) ? Path.GetRelativePath(root, path) : path;
        var plan = new ComparisonPlan(Shown(teacher), string.Join(",", data.Select(Shown)), Shown(recipe), numLayers, recallLength, seeds, budgets,
            selections.OrderBy(x => x.Budget.K).ThenBy(x => ComparisonMethods.RowIndex(x.Method)).ToArray());
        plan.Save(layout.Selection);
        foreach (var budget in budgets)
            err.MarkupLineInterpolated($"[grey]  K={budget.K}: {string.Join("; ", plan.Selections.Where(x => x.Budget.K == budget.K).Select(x => $"{x.Method} {{{string.Join(",", x.SoftmaxLayers)}}}"))}[/]");

        // stage 2: every distinct layout with every seed
        var modelDigests = new Dictionary<string, string>();
        foreach (var (layers, seed, model) in plan.Models())
        {
            string layoutFile = layout.Layout(model);
            LayerLayout.FromSoftmaxLayers(numLayers, layers).Save(EnsureParent(layoutFile));
            var seedSet = sets[Stage.Stage2].Append($"seed={seed}").ToArray();
            var inputs = StepInputs.Of($"models/{model}", ("teacher", teacherPrint), ("data", dataDigest), ("stage1", stage1Digest),
                ("softmax_layers", string.Join(",", layers)), ("seed", seed.ToString()),
                ("recipe.stage2", Section(recipeJson, "stage2")), ("set", string.Join(" ", seedSet)));
            steps.Run(inputs, layout.Model(model), resumable: true, resume =>
                ["distill", "stage2", "--teacher", teacher, "--data", layout.Data, "--from", layout.Stage1, "--layout", layoutFile,
                 "--recipe", recipe, "--out", layout.Model(model), .. SetArgs(seedSet), .. resume ? ["--resume"] : Array.Empty<string>(), .. device]);
            modelDigests[model] = RunLayout.Digest(inputs);
        }

        steps.AwaitOthers();

        // evaluation: the teacher and every model on the same prompts
        string evalSettings = $"limit={s.EvalLimit} lengths={string.Join(",", lengths)} data={RunLayout.Fingerprint(evalData)} {string.Join(" ", filler)}";
        string lengthArg = string.Join(",", lengths);
        steps.Run(StepInputs.Of("eval/teacher", ("teacher", teacherPrint), ("eval", evalSettings)), layout.Eval(ComparisonMethods.Teacher), resumable: false, _ =>
            ["eval", "--model", teacher, "--name", ComparisonMethods.Teacher, "--tasks", "ppl," + string.Join(",", RecallTaskList),
             "--data", evalData, "--limit", s.EvalLimit.ToString(), "--lengths", lengthArg, .. filler, "--json", layout.Eval(ComparisonMethods.Teacher) + "/", .. device]);
        foreach (var (_, _, model) in plan.Models())
            steps.Run(StepInputs.Of($"eval/{model}", ("teacher", teacherPrint), ("model", modelDigests[model]), ("eval", evalSettings)),
                layout.Eval(model), resumable: false, _ =>
                ["eval", "--model", layout.Model(model), "--teacher", teacher, "--name", model, "--tasks", "ppl,agree," + string.Join(",", RecallTaskList),
                 "--data", evalData, "--limit", s.EvalLimit.ToString(), "--lengths", lengthArg, .. filler, "--json", layout.Eval(model) + "/", .. device]);

        steps.AwaitOthers();

        // decode speed and cache: the teacher and one model per K (seed 0), at contexts up to the teacher's
        var perK = plan.Models().Where(m => m.Seed == seeds[0]).GroupBy(m => m.Layers.Count).Select(g => g.First())
            .Select(m => (K: m.Layers.Count, Name: m.Model, Dir: layout.Model(m.Model))).ToArray();
        int maxContext = teacherConfig.MaxPositionEmbeddings;
        var contexts = new[] { 128, 256, 512, 1024, 2048, 4096, 8192, 16384 }.Where(c => c + 40 <= maxContext).DefaultIfEmpty(maxContext / 2).ToArray();
        var benchInputs = StepInputs.Of("bench", ("teacher", teacherPrint), ("contexts", string.Join(",", contexts)),
            ("models", string.Join(",", perK.Select(m => $"{m.K}:{m.Name}:{modelDigests[m.Name]}"))));
        steps.RunInProcess(benchInputs, layout.Bench, "bench decode", () =>
        {
            var progress = new SyncProgress<string>(m => err.MarkupLineInterpolated($"[grey]  {m}...[/]"));
            ComparisonDecode.Run(teacher, perK, contexts, layout.BenchDecodeJson, progress, cancellation);
        });

        steps.AwaitOthers();

        // summary and report
        var summary = ComparisonSummary.Build(layout, plan);
        summary.Save(layout.Summary);
        Checkpoints.AtomicFile.WriteAllBytes(layout.Report, System.Text.Encoding.UTF8.GetBytes(ComparisonReport.Render(summary, plan, layout)));
        ShowTable(summary, plan);
        if (TeacherOutputCache.Shared is { Hits: > 0 } cache)
            err.MarkupLineInterpolated($"[grey]teacher outputs: {cache.Misses} batches computed, {cache.Hits} reused ({cache.Bytes / 1048576.0:F0} MiB kept; about {cache.EstimatedSaving.TotalSeconds:F0} s of teacher forward saved)[/]");
        err.MarkupLineInterpolated($"[green]done[/] in {total.Elapsed.TotalMinutes:F1} min: summary {layout.Summary}, report {layout.Report}");
        return 0;
    }

    /// <summary>The one-screen table: per budget, each method's layers and recall_avg (mean over seeds), KL and ppl.</summary>
    static void ShowTable(ComparisonSummary summary, ComparisonPlan plan)
    {
        var table = new Table().AddColumns("K", "method", "softmax layers", "recall_avg", "KL", "ppl", "speed-up");
        foreach (var group in summary.Rows.GroupBy(r => (r.K, r.Method)))
        {
            var g = group.ToArray();
            table.AddRow(g[0].K.ToString(), group.Key.Method, string.Join(",", g[0].SoftmaxLayers.Count == plan.NumLayers ? ["all"] : g[0].SoftmaxLayers.Select(l => l.ToString())),
                $"{g.Average(r => r.RecallAvg):F3}", g[0].Kl is null ? "-" : $"{g.Average(r => r.Kl ?? 0):F3}",
                g[0].Ppl is null ? "-" : $"{g.Average(r => r.Ppl ?? 0):F2}", g[0].DecodeSpeedup is double x ? $"{x:F2}x" : "-");
        }
        CliRunner.Stderr.Write(table);
    }

    /// <summary>The run's steps as commands of this program, through the library's <see cref="StepRunner"/> (skip, resume, redo, share).</summary>
    sealed class StepRunnerCli(RunLayout layout, bool force, RunInterrupt interrupt)
    {
        readonly StepRunner runner = new(layout, force, new SyncProgress<StepEvent>(Show), interrupt.Token);

        /// <param name="args">the command line; its argument is true when the step resumes</param>
        /// <param name="resumable">the step's command saves checkpoints and continues from them with --resume (it handles Ctrl-C itself)</param>
        public void Run(StepInputs inputs, string output, bool resumable, Func<bool, string[]> args) =>
            runner.Run(inputs, output, resumable, resume => Invoke(inputs.Step, args(resume)));

        public void RunInProcess(StepInputs inputs, string output, string title, Action work) => runner.Run(inputs, output, false, _ => work());

        public void AwaitOthers() => runner.AwaitOthers();

        void Invoke(string step, string[] argv)
        {
            CliRunner.Stderr.MarkupLineInterpolated($"[grey]  hybrid {string.Join(' ', argv.Select(Quote))}[/]");
            interrupt.StepHandlesInterrupt = argv[0] == "distill";
            // the step's stdout (tables, paths) is for someone running it alone; the run's own output is its report
            // (eval also prints its Markdown table to stderr: the run's report has it)
            var (stdout, stderr) = (Console.Out, Console.Error);
            int code;
            try
            {
                Console.SetOut(TextWriter.Null);
                if (argv[0] == "eval") Console.SetError(TextWriter.Null);
                code = CliApp.Create().Run(argv);
            }
            finally
            {
                Console.SetOut(stdout);
                Console.SetError(stderr);
                interrupt.StepHandlesInterrupt = false;
            }
            if (code == 130 || interrupt.Token.IsCancellationRequested) throw new RunInterrupted();
            if (code != 0) throw new InputException($"step \"{step}\" failed (exit code {code}); fix the cause above and run again: finished steps are skipped.");
        }

        static void Show(StepEvent e)
        {
            var err = CliRunner.Stderr;
            switch (e.Kind)
            {
                case StepEventKind.Skipped: err.MarkupLineInterpolated($"[grey]- {e.Step}: done, skipped[/]"); break;
                case StepEventKind.HeldElsewhere: err.MarkupLineInterpolated($"[grey]- {e.Step}: in progress in process {e.Detail}; going on with the next step[/]"); break;
                case StepEventKind.Redoing: err.MarkupLineInterpolated($"[yellow]- {e.Step}: {e.Detail} changed; --force: redoing it[/]"); break;
                case StepEventKind.Started: err.MarkupLineInterpolated($"[bold blue]- {e.Step}[/]"); break;
                case StepEventKind.Resuming: err.MarkupLineInterpolated($"[bold blue]- {e.Step}[/] (resuming)"); break;
                case StepEventKind.Finished: err.MarkupLineInterpolated($"[grey]  {e.Step} took {e.Seconds:F0} s[/]"); break;
            }
        }
    }

    /// <summary>A step was interrupted (Ctrl-C / SIGTERM); the step's own checkpoint is saved.</summary>
    sealed class RunInterrupted : Exception;

    /// <summary>
    /// Ctrl-C and SIGTERM during a run. A training step (distill) handles the signal itself: it saves a checkpoint and
    /// returns 130, and the run stops after it. Any other step is stopped at once (exit 130): its record says it
    /// did not finish, so the next run redoes it (scoring keeps its finished layers), and every file is written
    /// atomically, so nothing half-written is left behind.
    /// </summary>
    sealed class RunInterrupt : IDisposable
    {
        readonly CancellationTokenSource source = new();
        readonly System.Runtime.InteropServices.PosixSignalRegistration[] registrations;
        public volatile bool StepHandlesInterrupt;

        public RunInterrupt()
        {
            registrations =
            [
                System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGINT, OnSignal),
                System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, OnSignal),
            ];
        }

        public CancellationToken Token => source.Token;

        void OnSignal(System.Runtime.InteropServices.PosixSignalContext context)
        {
            if (source.IsCancellationRequested) return;   // a second signal: default handling terminates the process
            context.Cancel = true;
            source.Cancel();
            if (StepHandlesInterrupt) return;
            CliRunner.Stderr.MarkupLine("[yellow]interrupted.[/] Run the same command again to resume: finished steps are skipped.");
            Environment.Exit(130);
        }

        public void Dispose()
        {
            foreach (var r in registrations) r.Dispose();
            source.Dispose();
        }
    }

    /// <summary>The --set pairs per section: "stage1.k=v", "stage2.k=v", "score.k=v", or a bare "k=v" for every section that has k.</summary>
    static (Dictionary<Stage, List<string>> ByStage, List<string> Score) SplitSetsCore(string[] pairs)
    {
        var byStage = new Dictionary<Stage, List<string>> { [Stage.Stage1] = [], [Stage.Stage2] = [] };
        var score = new List<string>();
        foreach (var pair in pairs)
        {
            int eq = pair.IndexOf('=');
            if (eq <= 0) throw new InputException($"--set {pair}: expected KEY=VALUE (e.g. stage2.train_tokens=204800).");
            string key = pair[..eq], value = pair[(eq + 1)..];
            string[] parts = key.Split('.', 2);
            if (parts.Length == 2)
            {
                switch (parts[0])
                {
                    case "stage1": byStage[Stage.Stage1].Add($"{parts[1]}={value}"); break;
                    case "stage2": byStage[Stage.Stage2].Add($"{parts[1]}={value}"); break;
                    case "score": score.Add($"{parts[1]}={value}"); break;
                    default: throw new InputException($"--set {pair}: the section is stage1, stage2 or score.");
                }
                continue;
            }
            bool any = false;
            foreach (var stage in new[] { Stage.Stage1, Stage.Stage2 })
                if (TrainConfig.KeysOf(stage).Contains(key)) { byStage[stage].Add(pair); any = true; }
            if (!any) throw new InputException($"--set {pair}: no stage-1 or stage-2 setting is called {key}; for a scoring setting write score.{key}={value}.");
        }
        return (byStage, score);
    }

    sealed class Sets(Dictionary<Stage, List<string>> byStage, List<string> score)
    {
        public IReadOnlyList<string> this[Stage stage] => byStage[stage];
        public IReadOnlyList<string> Score => score;
    }

    static Sets SplitSets(string[] pairs)
    {
        var (byStage, score) = SplitSetsCore(pairs);
        return new Sets(byStage, score);
    }

    static IEnumerable<string> SetArgs(IEnumerable<string> pairs) => pairs.SelectMany(p => new[] { "--set", p });

    static string Section(JsonObject recipe, string name) => recipe[name]?.ToJsonString() ?? "{}";

    static string EnsureParent(string file)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(file)!);
        return file;
    }

    static string Quote(string arg) => arg.Contains(' ') ? "\"" + arg + "\"" : arg;

    /// <summary>True for a synthetic corpus recipe (a JSON object with "mix"), as --data may name one.</summary>
    static bool IsCorpusRecipe(string path)
    {
        if (!path.EndsWith(".json", StringComparison.OrdinalIgnoreCase) || !File.Exists(path)) return false;
        try { return JsonNode.Parse(File.ReadAllText(path)) is JsonObject o && o.ContainsKey("mix"); }
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
