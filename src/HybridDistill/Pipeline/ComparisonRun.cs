using System.Diagnostics;
using System.Globalization;
using HybridDistill.Artifacts;
using HybridDistill.Checkpoints;
using HybridDistill.Config;
using HybridDistill.Data;
using HybridDistill.Evaluation;
using HybridDistill.Models;
using HybridDistill.Selection;
using HybridDistill.Training;

namespace HybridDistill.Pipeline;

/// <summary>The settings of one <c>hybrid run</c>: what to compare, how, and where (paths as given; the run resolves them).</summary>
public sealed record ComparisonRunOptions
{
    /// <summary>The repository (where assets/ and recipes/ are): the defaults come from it, and paths inside it are recorded relative to it.</summary>
    public required string RepositoryRoot { get; init; }
    /// <summary>Default: assets/teacher, the embedded recall teacher.</summary>
    public string? Teacher { get; init; }
    /// <summary>Training text (files, folders, JSONL) or one synthetic corpus recipe; default by teacher.</summary>
    public IReadOnlyList<string> Data { get; init; } = [];
    public string? EvalData { get; init; }
    public string? Recipe { get; init; }
    public string Budgets { get; init; } = "1L,2L";
    public string Methods { get; init; } = "kl,uniform";
    public int Seeds { get; init; } = 1;
    /// <summary>--set pairs: stage1.KEY=V, stage2.KEY=V, score.KEY=V or a bare KEY=V (<see cref="ComparisonSets"/>).</summary>
    public IReadOnlyList<string> Set { get; init; } = [];
    public string Out { get; init; } = "out/run";
    public bool Force { get; init; }
    public int TeacherCacheMb { get; init; } = 2048;
    public int EvalLimit { get; init; } = 30;
    /// <summary>The device of the distill, score and eval steps (null: the CPU, and not part of any record).</summary>
    public string? Device { get; init; }
}

/// <summary>What a run reports while it works, for the caller to show.</summary>
public abstract record RunEvent;

/// <summary>The run's plan, before its first step.</summary>
public sealed record RunPlanned(string Teacher, IReadOnlyList<ComparisonBudget> Budgets, IReadOnlyList<string> Methods, int Seeds, string Output) : RunEvent;

/// <summary>A step was skipped, started, resumed, finished... (<see cref="StepRunner"/>).</summary>
public sealed record RunStep(StepEvent Event) : RunEvent;

/// <summary>A step's work begins: what it does, and whether it saves a checkpoint and returns when cancelled (training)
/// rather than being stopped outright.</summary>
public sealed record RunStepWork(string Step, string What, bool CheckpointsOnCancel) : RunEvent;

/// <summary>A progress line of the step at work.</summary>
public sealed record RunMessage(string Step, string Text) : RunEvent;

/// <summary>Training progress of a distillation step (<paramref name="Title"/>: stage1, stage2).</summary>
public sealed record RunTraining(string Step, string Title, TrainProgress Progress) : RunEvent;

/// <summary>The layers every method chose at budget K.</summary>
public sealed record RunSelected(int K, IReadOnlyList<MethodSelection> Selections) : RunEvent;

public sealed record ComparisonRunResult(RunLayout Layout, ComparisonPlan Plan, ComparisonSummary Summary, TimeSpan Elapsed);

/// <summary>
/// The whole pipeline as a comparison of selection methods: tokens once, stage 1 once, each scoring method once,
/// a selection per method and budget, stage 2 once per distinct layout and distillation seed (all from the same
/// stage-1 weights and the same batches), every model evaluated on the same prompts, a decode benchmark per K,
/// then summary.json and report.md. Folders, artifact names and when a step counts as done are <see cref="RunLayout"/>'s;
/// skipping, resuming and sharing steps with other processes is <see cref="StepRunner"/>'s; each step's inputs are
/// <see cref="ComparisonSteps"/>'. Each step makes the library calls its own command makes.
/// Cancelled, a training step saves its checkpoint and the run ends with <see cref="OperationCanceledException"/>.
/// </summary>
public static class ComparisonRun
{
    static readonly string[] RecallTaskList = ["passkey", "kv-recall", "kv-multihop", "copy"];


    public static ComparisonRunResult Run(ComparisonRunOptions o, IProgress<RunEvent>? events = null, CancellationToken cancellation = default)
    {
        var run = ComparisonSetup.Resolve(o);
        var (layout, teacher, data, recipe, device) = (run.Layout, run.Teacher, run.Data, run.Recipe, run.Device);
        events?.Report(new RunPlanned(teacher, run.Budgets, run.RowMethods, o.Seeds, layout.Root));
        var total = Stopwatch.StartNew();
        var steps = new StepRunner(layout, o.Force, Relay<StepEvent>(events, e => new RunStep(e)), cancellation);
        // Every stage-2 run here (scoring candidates and hybrids) reads the same batches: the frozen teacher runs once per batch.
        if (o.TeacherCacheMb > 0) TeacherOutputCache.EnableShared((long)o.TeacherCacheMb << 20);
        IProgress<string> Messages(string step) => Relay<string>(events, m => new RunMessage(step, m))!;
        void Work(string step, string what, bool training = false) => events?.Report(new RunStepWork(step, what, training));

        // tokens
        var dataInputs = run.DataInputs();
        steps.Run(dataInputs, layout.Data, resumable: false, _ =>
        {
            if (run.Synthetic)
            {
                Work(dataInputs.Step, $"corpus synth {data[0]}");
                SyntheticCorpus.Build(SynthRecipe.Load(data[0]), layout.Data, Messages(dataInputs.Step), cancellation);
            }
            else
            {
                Work(dataInputs.Step, $"tokenize {string.Join(" ", data)}");
                CorpusBuilder.Build(teacher, data, layout.Data, new TokenizeOptions(), Messages(dataInputs.Step), cancellation);
            }
        });
        steps.AwaitOthers();
        string dataDigest = RunLayout.Digest(dataInputs);

        // stage 1
        var stage1Inputs = run.Stage1Inputs(dataDigest);
        steps.Run(stage1Inputs, layout.Stage1, resumable: true, resume => Distill(stage1Inputs.Step, new DistillRequest
        {
            Stage = Stage.Stage1, Teacher = teacher, Data = layout.Data, RecipeFile = recipe, Out = layout.Stage1,
            Overrides = run.Sets[Stage.Stage1].ToArray(), Resume = resume, Device = device,
        }, events, cancellation));
        steps.AwaitOthers();
        string stage1Digest = RunLayout.Digest(stage1Inputs);

        // scores
        foreach (var job in run.Jobs)
        {
            var inputs = run.ScoreInputs(job, dataDigest, stage1Digest);
            string dir = layout.ScoresDir(job.Folder);
            steps.Run(inputs, dir, resumable: true, _ =>
            {
                var jobSets = run.ScoreSets(job);
                Work(inputs.Step, $"score --method {job.Method} --seed {job.Seed} {string.Join(" ", jobSets)}".TrimEnd());
                var scorer = LayerScorers.Create(job.Method);
                var scored = ScoreRun.Score(scorer, new ScoringContext
                {
                    Method = scorer.Name, TeacherDir = teacher, Stage1Dir = layout.Stage1, DataPath = layout.Data, RecipePath = recipe,
                    Seed = job.Seed, Set = ScoreRun.ParseSet(jobSets), OutDir = dir, Progress = Messages(inputs.Step),
                    Cancellation = cancellation, Device = device,
                });
                ScoreRun.Write(scored.Scores ?? throw new InvalidOperationException($"{dir}: scoring ended with layers {string.Join(",", scored.Missing)} missing"),
                    dir, run.PlotBudget);
            });
        }

        steps.AwaitOthers();

        // selection: each method's layers per budget
        var plan = run.Plan((job, row) => LayerScores.Load(Path.Combine(layout.ScoresDir(job.Folder), job.ScoresFileOfRow[row])));
        plan.Save(layout.Selection);
        foreach (var budget in run.Budgets)
            events?.Report(new RunSelected(budget.K, plan.Selections.Where(x => x.Budget.K == budget.K).ToArray()));

        // stage 2: every distinct layout with every seed
        var modelDigests = new Dictionary<string, string>();
        foreach (var (layers, seed, model) in plan.Models())
        {
            string layoutFile = layout.Layout(model);
            Directory.CreateDirectory(Path.GetDirectoryName(layoutFile)!);
            LayerLayout.FromSoftmaxLayers(run.NumLayers, layers).Save(layoutFile);
            var inputs = run.ModelInputs(model, layers, seed, dataDigest, stage1Digest);
            steps.Run(inputs, layout.Model(model), resumable: true, resume => Distill(inputs.Step, new DistillRequest
            {
                Stage = Stage.Stage2, Teacher = teacher, Data = layout.Data, From = layout.Stage1, LayoutFile = layoutFile,
                RecipeFile = recipe, Out = layout.Model(model), Overrides = run.ModelSets(seed), Resume = resume, Device = device,
            }, events, cancellation));
            modelDigests[model] = RunLayout.Digest(inputs);
        }

        steps.AwaitOthers();

        // evaluation: the teacher and every model on the same prompts
        string evalSettings = run.EvalSettings();
        var evalOptions = new EvalOptions
        {
            DataPath = run.EvalData, Limit = o.EvalLimit, Lengths = run.RecallLengths,
            // Recall prompts of a synthetic-corpus run use the stock filler, as the teacher's own figures do.
            StockFiller = run.Synthetic,
        };
        void Evaluate(StepInputs inputs, EvalRequest request)
        {
            Work(inputs.Step, $"eval --model {request.Model} --tasks {string.Join(",", request.Options.Tasks!)}");
            string json = layout.Eval(request.Name!) + "/";
            EvalRun.Save(EvalRun.Run(request, json, Messages(inputs.Step)), json, request);
        }
        var teacherEval = ComparisonSteps.EvalTeacher(run.TeacherPrint, evalSettings);
        steps.Run(teacherEval, layout.Eval(ComparisonMethods.Teacher), resumable: false, _ => Evaluate(teacherEval, new EvalRequest
        {
            Model = teacher, Name = ComparisonMethods.Teacher, Device = device,
            Options = evalOptions with { Tasks = ["ppl", .. RecallTaskList] },
        }));
        foreach (var (_, _, model) in plan.Models())
        {
            var inputs = ComparisonSteps.EvalModel(model, run.TeacherPrint, modelDigests[model], evalSettings);
            steps.Run(inputs, layout.Eval(model), resumable: false, _ => Evaluate(inputs, new EvalRequest
            {
                Model = layout.Model(model), Teacher = teacher, Name = model, Device = device,
                Options = evalOptions with { Tasks = ["ppl", "agree", .. RecallTaskList] },
            }));
        }

        steps.AwaitOthers();

        // decode speed and cache: the teacher and one model per K (seed 0), at contexts up to the teacher's; always on the CPU
        var perK = run.DecodeModels(plan);
        var benchInputs = ComparisonSteps.Bench(run.TeacherPrint, run.DecodeContexts, perK.Select(m => (m.K, m.Name, modelDigests[m.Name])));
        steps.Run(benchInputs, layout.Bench, resumable: false, _ =>
        {
            Work(benchInputs.Step, "bench decode");
            ComparisonDecode.Run(teacher, perK, run.DecodeContexts, layout.BenchDecodeJson, Messages(benchInputs.Step), cancellation);
        });

        steps.AwaitOthers();

        // summary and report
        var summary = ComparisonSummary.Build(layout, plan);
        summary.Save(layout.Summary);
        AtomicFile.WriteAllBytes(layout.Report, System.Text.Encoding.UTF8.GetBytes(ComparisonReport.Render(summary, plan, layout)));
        return new ComparisonRunResult(layout, plan, summary, total.Elapsed);
    }

    /// <summary>A distillation step: interrupted, it has saved a checkpoint, and the run stops.</summary>
    static void Distill(string step, DistillRequest request, IProgress<RunEvent>? events, CancellationToken cancellation)
    {
        string title = Stages.Name(request.Stage);
        events?.Report(new RunStepWork(step, $"distill {title}" + (request.Resume ? " (resuming)" : ""), CheckpointsOnCancel: true));
        var outcome = DistillRun.Run(request, Relay<TrainProgress>(events, p => new RunTraining(step, title, p)), cancellation);
        if (!outcome.AlreadyFinished && !outcome.Result.Completed)
            throw new OperationCanceledException($"{step} interrupted at step {outcome.Result.Step}; checkpoint {outcome.Result.LastCheckpoint}", cancellation);
    }

    /// <summary>Events of a part (a step, a training loop) as the run's events; reported on the caller's thread, in order.</summary>
    static IProgress<T>? Relay<T>(IProgress<RunEvent>? events, Func<T, RunEvent> wrap) => events is null ? null : new Forward<T>(e => events.Report(wrap(e)));

    sealed class Forward<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}

/// <summary>
/// A run's settings resolved against the repository and the teacher (defaults, paths, budgets, methods, scoring jobs,
/// lengths), and the inputs each step records from them: what <see cref="ComparisonRun"/> runs with, and what lets a
/// test check that an existing run folder still resumes. Resolving checks the settings and reads only the teacher's
/// config, the recipe and its fingerprints; it writes nothing.
/// </summary>
public sealed class ComparisonSetup
{
    public required string Root { get; init; }
    public required string Teacher { get; init; }
    public required string TeacherPrint { get; init; }
    public required IReadOnlyList<string> Data { get; init; }
    public required string Recipe { get; init; }
    public required OpaqueJson RecipeJson { get; init; }
    public required ComparisonSets Sets { get; init; }
    public required ModelConfig TeacherConfig { get; init; }
    public required IReadOnlyList<ComparisonBudget> Budgets { get; init; }
    public required IReadOnlyList<string> RowMethods { get; init; }
    public required IReadOnlyList<int> Seeds { get; init; }
    /// <summary>--data is one synthetic corpus recipe: the data step is corpus synth, and recall prompts use the stock filler.</summary>
    public required bool Synthetic { get; init; }
    public required RunLayout Layout { get; init; }
    public required string EvalData { get; init; }
    public required int EvalLimit { get; init; }
    /// <summary>The recall prompts' lengths: 128, 256, 512 within the teacher's context, and stage 2's length.</summary>
    public required IReadOnlyList<int> RecallLengths { get; init; }
    public required int RecallLength { get; init; }
    public required ComputeDevice Device { get; init; }

    public int NumLayers => TeacherConfig.NumHiddenLayers;
    public IReadOnlyList<ScoringJob> Jobs => ComparisonMethods.Jobs(RowMethods, Budgets);
    /// <summary>The budget scores.png marks: the largest K as a fraction.</summary>
    public string PlotBudget => ((double)Budgets[^1].K / NumLayers).ToString("0.######", CultureInfo.InvariantCulture);
    /// <summary>Decode-benchmark contexts: powers of two from 128 that fit the teacher's context with 40 tokens to spare.</summary>
    public IReadOnlyList<int> DecodeContexts =>
        new[] { 128, 256, 512, 1024, 2048, 4096, 8192, 16384 }.Where(c => c + 40 <= TeacherConfig.MaxPositionEmbeddings)
            .DefaultIfEmpty(TeacherConfig.MaxPositionEmbeddings / 2).ToArray();

    public static ComparisonSetup Resolve(ComparisonRunOptions o)
    {
        var device = o.Device is null ? ComputeDevice.Cpu : ComputeDevice.Resolve(o.Device);   // refused before the run folder is touched
        string root = o.RepositoryRoot;
        string assets = Path.Combine(root, "assets");
        string teacher = Path.GetFullPath(o.Teacher ?? Path.Combine(assets, "teacher"));
        if (!Directory.Exists(teacher))
            throw new InputException($"{teacher}: teacher not found. Pass --teacher DIR (a Hugging Face model directory).");
        // The embedded teacher learned recall from synthetic episodes; distilling it on them is what keeps that recall.
        bool embedded = teacher == Path.GetFullPath(Path.Combine(assets, "teacher"));
        string[] data = (o.Data.Count > 0 ? o.Data.ToArray()
            : embedded ? [Path.Combine(root, "recipes", "corpus-recall.json")]
            : [Path.Combine(assets, "text", "tinystories_val_slice.txt")]).Select(Path.GetFullPath).ToArray();
        foreach (var d in data)
            if (!File.Exists(d) && !Directory.Exists(d)) throw new InputException($"--data {d}: not found.");
        string recipe = Path.GetFullPath(o.Recipe ?? Path.Combine(root, "recipes", embedded ? "teacher.json" : "stories260K.json"));
        var recipeJson = Training.Recipe.Load(recipe).Record;
        var sets = ComparisonSets.Split(o.Set);
        var stage2 = TrainConfig.ResolveSection(Stage.Stage2, recipeJson, "stage2", sets[Stage.Stage2], recipe + " [stage2]");
        TrainConfig.ResolveSection(Stage.Stage1, recipeJson, "stage1", sets[Stage.Stage1], recipe + " [stage1]");
        var teacherConfig = ModelConfig.Load(teacher);
        var budgets = ComparisonBudget.ParseList(o.Budgets, teacherConfig.NumHiddenLayers);
        var rowMethods = ComparisonMethods.Expand(o.Methods);
        bool synthetic = data.Length == 1 && IsCorpusRecipe(data[0]);
        var layout = new RunLayout(o.Out);
        int recallLength = stage2.SeqLen;
        return new ComparisonSetup
        {
            Root = root, Teacher = teacher, TeacherPrint = RunLayout.Fingerprint(teacher), Data = data, Recipe = recipe, RecipeJson = recipeJson,
            Sets = sets, TeacherConfig = teacherConfig, Budgets = budgets, RowMethods = rowMethods, Seeds = Enumerable.Range(0, o.Seeds).ToArray(),
            Synthetic = synthetic, Layout = layout,
            EvalData = Path.GetFullPath(o.EvalData ?? (synthetic ? Path.Combine(layout.Data, SyntheticCorpus.HeldoutFile) : data[0])),
            EvalLimit = o.EvalLimit, RecallLength = recallLength,
            RecallLengths = new[] { 128, 256, 512 }.Where(l => l <= teacherConfig.MaxPositionEmbeddings).Append(recallLength).Distinct().Order().ToArray(),
            Device = device,
        };
    }

    public StepInputs DataInputs() => ComparisonSteps.Data(TeacherPrint, Data.Select(RunLayout.Fingerprint), Synthetic);

    public StepInputs Stage1Inputs(string dataDigest) => ComparisonSteps.Stage1(TeacherPrint, dataDigest, Section("stage1"), Sets[Stage.Stage1]);

    /// <summary>A scoring job's --set pairs: its own, then (for the scorers that train: kl, removal) the stage-2 ones, then score.*.</summary>
    public IReadOnlyList<string> ScoreSets(ScoringJob job) => [.. job.Settings, .. Trains(job) ? Sets[Stage.Stage2] : [], .. Sets.Score];

    public StepInputs ScoreInputs(ScoringJob job, string dataDigest, string stage1Digest) =>
        ComparisonSteps.Score(job, ScoreSets(job), TeacherPrint, stage1Digest, dataDigest, Section("score"), Trains(job) ? Section("stage2") : "-");

    /// <summary>A stage-2 run's --set pairs: the stage-2 ones, then its distillation seed.</summary>
    public IReadOnlyList<string> ModelSets(int seed) => Sets[Stage.Stage2].Append($"seed={seed}").ToArray();

    public StepInputs ModelInputs(string model, IReadOnlyList<int> softmaxLayers, int seed, string dataDigest, string stage1Digest) =>
        ComparisonSteps.Model(model, TeacherPrint, dataDigest, stage1Digest, softmaxLayers, seed, Section("stage2"), ModelSets(seed));

    /// <summary>The evaluation settings every eval step records (reads the held-out text, which a synthetic corpus makes in the data step).</summary>
    public string EvalSettings() => ComparisonSteps.EvalSettings(EvalLimit, RecallLengths, RunLayout.Fingerprint(EvalData), stockFiller: Synthetic);

    /// <summary>The plan: each row method's layers per budget, from the scores its job wrote.</summary>
    /// <param name="scoresOf">the scores a job wrote for one of its row methods</param>
    public ComparisonPlan Plan(Func<ScoringJob, string, LayerScores> scoresOf)
    {
        var selections = new List<MethodSelection>();
        foreach (var job in Jobs)
            foreach (var row in job.ScoresFileOfRow.Keys)
            {
                var scores = scoresOf(job, row);
                foreach (var budget in Budgets)
                    selections.Add(new MethodSelection(row, budget, LayerSelection.Choose(scores, budget.K)));
            }
        return new ComparisonPlan(Shown(Teacher), string.Join(",", Data.Select(Shown)), Shown(Recipe), NumLayers, RecallLength, Seeds.ToArray(), Budgets,
            selections.OrderBy(x => x.Budget.K).ThenBy(x => ComparisonMethods.RowIndex(x.Method)).ToArray());
    }

    /// <summary>The decode benchmark's models: one per K (the first seed's).</summary>
    public (int K, string Name, string Dir)[] DecodeModels(ComparisonPlan plan) =>
        plan.Models().Where(m => m.Seed == Seeds[0]).GroupBy(m => m.Layers.Count).Select(g => g.First())
            .Select(m => (K: m.Layers.Count, Name: m.Model, Dir: Layout.Model(m.Model))).ToArray();

    /// <summary>Paths inside the repository are recorded relative to it, so a committed study names no machine's folders.</summary>
    string Shown(string path) => path.StartsWith(Root + Path.DirectorySeparatorChar, StringComparison.Ordinal) ? Path.GetRelativePath(Root, path) : path;

    static bool Trains(ScoringJob job) => job.Method is "kl" or "removal";

    string Section(string name) => RecipeJson.Part(name)?.ToString() ?? "{}";

    /// <summary>True for a synthetic corpus recipe (a JSON object with "mix"), as --data may name one.</summary>
    public static bool IsCorpusRecipe(string path)
    {
        if (!path.EndsWith(".json", StringComparison.OrdinalIgnoreCase) || !File.Exists(path)) return false;
        try { return OpaqueJson.Load(Path.GetFullPath(path), "recipe").Has("mix"); }
        catch (InputException) { return false; }
    }
}

/// <summary>The --set pairs per section: "stage1.k=v", "stage2.k=v", "score.k=v", or a bare "k=v" for every stage section that has k.</summary>
public sealed class ComparisonSets
{
    readonly Dictionary<Stage, List<string>> byStage;
    readonly List<string> score;

    ComparisonSets(Dictionary<Stage, List<string>> byStage, List<string> score) => (this.byStage, this.score) = (byStage, score);

    public IReadOnlyList<string> this[Stage stage] => byStage[stage];
    public IReadOnlyList<string> Score => score;

    public static ComparisonSets Split(IEnumerable<string> pairs)
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
        return new ComparisonSets(byStage, score);
    }
}

/// <summary>
/// The inputs each step of a comparison records (OUT/steps/STEP.json) and is compared by: settings as text,
/// fingerprints of files (<see cref="RunLayout.Fingerprint"/>) and digests of the steps it reads
/// (<see cref="RunLayout.Digest"/>). A change here changes digests, and an existing run folder would no longer resume.
/// </summary>
public static class ComparisonSteps
{
    public static StepInputs Data(string teacherPrint, IEnumerable<string> sourcePrints, bool synthetic) =>
        StepInputs.Of("data", ("teacher", teacherPrint), ("sources", string.Join(",", sourcePrints)), ("kind", synthetic ? "synthetic" : "text"));

    /// <param name="recipeSection">the recipe's stage1 section as compact JSON ("{}" when absent)</param>
    public static StepInputs Stage1(string teacherPrint, string dataDigest, string recipeSection, IEnumerable<string> sets) =>
        StepInputs.Of("stage1", ("teacher", teacherPrint), ("data", dataDigest), ("recipe.stage1", recipeSection), ("set", string.Join(" ", sets)));

    /// <param name="stage2Section">the recipe's stage2 section for the scorers that train, else "-"</param>
    public static StepInputs Score(ScoringJob job, IEnumerable<string> jobSets, string teacherPrint, string stage1Digest, string dataDigest,
        string scoreSection, string stage2Section) =>
        StepInputs.Of($"score-{job.Folder}", ("method", job.Method), ("set", string.Join(" ", jobSets)),
            ("seed", job.Seed.ToString(CultureInfo.InvariantCulture)), ("teacher", teacherPrint), ("stage1", stage1Digest), ("data", dataDigest),
            ("recipe.score", scoreSection), ("recipe.stage2", stage2Section));

    /// <param name="seedSets">the stage-2 --set pairs with "seed=N" last</param>
    public static StepInputs Model(string model, string teacherPrint, string dataDigest, string stage1Digest, IEnumerable<int> softmaxLayers, int seed,
        string stage2Section, IEnumerable<string> seedSets) =>
        StepInputs.Of($"models/{model}", ("teacher", teacherPrint), ("data", dataDigest), ("stage1", stage1Digest),
            ("softmax_layers", string.Join(",", softmaxLayers)), ("seed", seed.ToString(CultureInfo.InvariantCulture)),
            ("recipe.stage2", stage2Section), ("set", string.Join(" ", seedSets)));

    /// <summary>The evaluation's settings as one text (recorded by every eval step).</summary>
    public static string EvalSettings(int limit, IEnumerable<int> lengths, string evalDataPrint, bool stockFiller) =>
        $"limit={limit} lengths={string.Join(",", lengths)} data={evalDataPrint} {(stockFiller ? "--stock-filler" : "")}";

    public static StepInputs EvalTeacher(string teacherPrint, string evalSettings) =>
        StepInputs.Of("eval/teacher", ("teacher", teacherPrint), ("eval", evalSettings));

    public static StepInputs EvalModel(string model, string teacherPrint, string modelDigest, string evalSettings) =>
        StepInputs.Of($"eval/{model}", ("teacher", teacherPrint), ("model", modelDigest), ("eval", evalSettings));

    public static StepInputs Bench(string teacherPrint, IEnumerable<int> contexts, IEnumerable<(int K, string Model, string Digest)> perK) =>
        StepInputs.Of("bench", ("teacher", teacherPrint), ("contexts", string.Join(",", contexts)),
            ("models", string.Join(",", perK.Select(m => $"{m.K}:{m.Model}:{m.Digest}"))));
}
