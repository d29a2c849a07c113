using System.ComponentModel;
using HybridDistill.Pipeline;
using HybridDistill.Training;
using Spectre.Console;
using Spectre.Console.Cli;

namespace HybridDistill.Cli.Commands;

/// <summary>
/// <c>hybrid run</c>: settings, progress lines, the final table and Ctrl-C around the library's
/// <see cref="ComparisonRun"/>, which does the whole comparison (steps, records, resume).
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

    public override int Execute(CommandContext context, Settings s, CancellationToken cancellation)
    {
        using var interrupt = new RunInterrupt();
        var err = CliRunner.Stderr;
        var options = new ComparisonRunOptions
        {
            RepositoryRoot = RepositoryRoot(), Teacher = s.Teacher, Data = s.Data, EvalData = s.EvalData, Recipe = s.Recipe,
            Budgets = s.Budgets, Methods = s.Methods, Seeds = s.Seeds, Set = s.Set, Out = s.Out, Force = s.Force,
            TeacherCacheMb = s.TeacherCacheMb, EvalLimit = s.EvalLimit, Device = s.Device,
        };
        ComparisonRunResult result;
        try
        {
            result = ComparisonRun.Run(options, new SyncProgress<RunEvent>(e => Show(e, interrupt)), interrupt.Token);
        }
        catch (OperationCanceledException)
        {
            err.MarkupLine("[yellow]interrupted.[/] Run the same command again to resume: finished steps are skipped, an interrupted training step continues from its checkpoint.");
            return 130;
        }
        ShowTable(result.Summary, result.Plan);
        if (TeacherOutputCache.Shared is { Hits: > 0 } cache)
            err.MarkupLineInterpolated($"[grey]teacher outputs: {cache.Misses} batches computed, {cache.Hits} reused ({cache.Bytes / 1048576.0:F0} MiB kept; about {cache.EstimatedSaving.TotalSeconds:F0} s of teacher forward saved)[/]");
        err.MarkupLineInterpolated($"[green]done[/] in {result.Elapsed.TotalMinutes:F1} min: summary {result.Layout.Summary}, report {result.Layout.Report}");
        return 0;
    }

    /// <summary>One run event as a line on stderr; a training step's start tells the signal handler to let it checkpoint.</summary>
    static void Show(RunEvent e, RunInterrupt interrupt)
    {
        var err = CliRunner.Stderr;
        if (e is not RunTraining) TrainingProgressView.CloseStatusLine();
        switch (e)
        {
            case RunPlanned p:
                err.MarkupLineInterpolated($"[bold]hybrid run[/]: teacher {p.Teacher}; budgets {string.Join(", ", p.Budgets.Select(b => $"{b.Label} (K={b.K})"))}; methods {string.Join(", ", p.Methods)}; seeds {p.Seeds}; output {p.Output}");
                break;
            case RunStepWork w:
                interrupt.StepHandlesInterrupt = w.CheckpointsOnCancel;
                err.MarkupLineInterpolated($"[grey]  {w.What}[/]");
                break;
            case RunMessage m: err.MarkupLineInterpolated($"[grey]  {m.Text}[/]"); break;
            case RunTraining t: TrainingProgressView.InRun(t.Title, t.Progress); break;
            case RunSelected k:
                err.MarkupLineInterpolated($"[grey]  K={k.K}: {string.Join("; ", k.Selections.Select(x => $"{x.Method} {{{string.Join(",", x.SoftmaxLayers)}}}"))}[/]");
                break;
            case RunStep { Event: var step }:
                if (step.Kind == StepEventKind.Finished) interrupt.StepHandlesInterrupt = false;
                ShowStep(step);
                break;
        }
    }

    static void ShowStep(StepEvent e)
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

    /// <summary>
    /// Ctrl-C and SIGTERM during a run. A training step (distill) saves a checkpoint when cancelled, and the run stops
    /// after it (exit 130). Any other step is stopped at once (exit 130): its record says it did not finish, so the
    /// next run redoes it (scoring keeps its finished layers), and every file is written atomically, so nothing
    /// half-written is left behind.
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
            if (StepHandlesInterrupt)
            {
                CliRunner.Stderr.MarkupLine("[yellow]stopping after this step (saving a checkpoint); press Ctrl-C again to kill.[/]");
                return;
            }
            CliRunner.Stderr.MarkupLine("[yellow]interrupted.[/] Run the same command again to resume: finished steps are skipped.");
            Environment.Exit(130);
        }

        public void Dispose()
        {
            foreach (var r in registrations) r.Dispose();
            source.Dispose();
        }
    }

    /// <summary>The repository root (where HybridDistill.sln is), found upwards from the executable.</summary>
    public static string RepositoryRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir != null && !File.Exists(Path.Combine(dir.FullName, "HybridDistill.sln"))) dir = dir.Parent;
        return dir?.FullName ?? Directory.GetCurrentDirectory();
    }
}
