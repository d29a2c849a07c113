using System.ComponentModel;
using System.Runtime.InteropServices;
using HybridDistill.Checkpoints;
using HybridDistill.Models;
using HybridDistill.Training;
using Spectre.Console;
using Spectre.Console.Cli;

namespace HybridDistill.Cli.Commands;

public sealed class DistillSettings : CommandSettings
{
    [CommandOption("--teacher <DIR>")]
    [Description("The teacher model directory (Hugging Face layout).")]
    public string Teacher { get; init; } = "";

    [CommandOption("--data <DIR>")]
    [Description("Token directory made by `hybrid tokenize` with the teacher's tokenizer.")]
    public string Data { get; init; } = "";

    [CommandOption("--out <DIR>")]
    [Description("Run directory: the final model (config.json, model.safetensors, tokenizer), run_config.json, metrics.jsonl, checkpoints/.")]
    public string Out { get; init; } = "";

    [CommandOption("--from <DIR>")]
    [Description("Start from this model or finished run directory (stage 2: the stage-1 run; stage 3: the stage-2 run).")]
    public string? From { get; init; }

    [CommandOption("--softmax-layers <LIST>")]
    [Description("Comma-separated layers that keep the teacher's softmax attention, e.g. 0,3.")]
    public string? SoftmaxLayers { get; init; }

    [CommandOption("--layout <FILE>")]
    [Description("Layout JSON (as hybrid select writes it): {\"softmax_layers\": [[3]], \"layer_types\": [[\"gdn\", ...]]}.")]
    public string? Layout { get; init; }

    [CommandOption("--recipe <FILE>")]
    [Description("Recipe JSON; this command reads its stage section (see recipes/).")]
    public string? Recipe { get; init; }

    [CommandOption("--set <KEY=VALUE>")]
    [Description("Override one config key of this stage, e.g. --set train_tokens=200000 (repeatable).")]
    public string[] Set { get; init; } = [];

    [CommandOption("--resume")]
    [Description("Continue the run in --out from its newest checkpoint.")]
    public bool Resume { get; init; }

    [CommandOption("--dtype <TYPE>")]
    [Description("Weights of the finished model: fp32 (default) or bf16 (half the disk; compute stays fp32). Checkpoints stay fp32.")]
    [DefaultValue("fp32")]
    public string DType { get; init; } = "fp32";

    [CommandOption("--device <DEVICE>")]
    [Description(CliParsing.DeviceHelp)]
    [DefaultValue("cpu")]
    public string Device { get; init; } = "cpu";

    public override ValidationResult Validate() =>
        string.IsNullOrEmpty(Teacher) ? ValidationResult.Error("--teacher DIR is required.")
        : string.IsNullOrEmpty(Data) ? ValidationResult.Error("--data DIR is required (make it with `hybrid tokenize`).")
        : string.IsNullOrEmpty(Out) ? ValidationResult.Error("--out DIR is required.")
        : ValidationResult.Success();
}

public sealed class DistillStage1Command : DistillCommand { protected override Stage Stage => Stage.Stage1; }
public sealed class DistillStage2Command : DistillCommand { protected override Stage Stage => Stage.Stage2; }
public sealed class DistillStage3Command : DistillCommand { protected override Stage Stage => Stage.Stage3; }

/// <summary>`hybrid distill stageN`: wiring and presentation around <see cref="DistillRun"/>.</summary>
public abstract class DistillCommand : Command<DistillSettings>
{
    protected abstract Stage Stage { get; }

    public override int Execute(CommandContext context, DistillSettings s, CancellationToken cancellation)
    {
        var request = new DistillRequest
        {
            Stage = Stage,
            Teacher = s.Teacher,
            Data = s.Data,
            Out = s.Out,
            From = s.From,
            SoftmaxLayers = s.SoftmaxLayers is null ? null : CliParsing.IntList(s.SoftmaxLayers, "--softmax-layers"),
            LayoutFile = s.Layout,
            RecipeFile = s.Recipe,
            Overrides = s.Set,
            Resume = s.Resume,
            OutputDType = StoredDTypes.Parse(s.DType),
            Device = ComputeDevice.Resolve(s.Device),
        };
        using var interrupt = new Interrupt(cancellation);
        var outcome = TrainingProgressView.Run(Stages.Name(Stage), progress => DistillRun.Run(request, progress, interrupt.Token));
        var r = outcome.Result;
        var err = CliRunner.Stderr;
        if (outcome.AlreadyFinished)
            err.MarkupLineInterpolated($"[grey]{outcome.RunDirectory} already finished ({r.TotalSteps} steps); nothing to do.[/]");
        else if (!r.Completed)
        {
            err.MarkupLineInterpolated($"[yellow]interrupted at step {r.Step}/{r.TotalSteps}; checkpoint {r.LastCheckpoint}. Continue with the same command and --resume.[/]");
            return 130;
        }
        else
            err.MarkupLineInterpolated($"[green]done:[/] {r.Step} steps, {r.Tokens:N0} tokens, final val_loss {r.LastValLoss:G5}");
        err.MarkupLineInterpolated($"[grey]layer_types: {string.Join(",", outcome.LayerTypes)}[/]");
        CliRunner.Stdout.WriteLine(outcome.RunDirectory);
        return 0;
    }
}

/// <summary>Ctrl-C and SIGTERM become a cancellation (the loop checkpoints and exits); a second Ctrl-C kills.</summary>
public sealed class Interrupt : IDisposable
{
    private readonly CancellationTokenSource source;
    private readonly PosixSignalRegistration[] registrations;

    public Interrupt(CancellationToken outer)
    {
        source = CancellationTokenSource.CreateLinkedTokenSource(outer);
        registrations =
        [
            PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal),
            PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal),
        ];
    }

    public CancellationToken Token => source.Token;

    void OnSignal(PosixSignalContext context)
    {
        if (source.IsCancellationRequested) return;   // second signal: default handling terminates the process
        context.Cancel = true;
        CliRunner.Stderr.MarkupLine("[yellow]stopping after this step (saving a checkpoint); press Ctrl-C again to kill.[/]");
        source.Cancel();
    }

    public void Dispose()
    {
        foreach (var r in registrations) r.Dispose();
        source.Dispose();
    }
}

/// <summary>
/// Renders <see cref="TrainProgress"/>: a live progress bar on a terminal, otherwise one plain line per metrics line
/// (and per checkpoint) on stderr.
/// </summary>
public static class TrainingProgressView
{
    /// <summary>stderr is a terminal that redraws: progress in place; otherwise (a file, a pipe) plain lines.</summary>
    static bool LiveTerminal => !Console.IsErrorRedirected && CliRunner.Stderr.Profile.Capabilities.Interactive;

    public static T Run<T>(string title, Func<IProgress<TrainProgress>, T> work)
    {
        var console = CliRunner.Stderr;
        if (!LiveTerminal)
            return work(new SyncProgress<TrainProgress>(p => Plain(title, p)));

        T result = default!;
        console.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(),
                new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask(title);
                result = work(new SyncProgress<TrainProgress>(p =>
                {
                    task.MaxValue = Math.Max(1, p.TotalSteps);
                    task.Value = p.Step;
                    if (p.Event is not (TrainEvent.Step or TrainEvent.Line or TrainEvent.Start)) return;
                    string val = p.ValLoss is double v ? $" val {v:G4}" : "";
                    string loss = p.Loss is double l ? $" loss {l:G4}" : "";
                    task.Description = Markup.Escape($"{title} {p.Step}/{p.TotalSteps}{loss}{val} {p.TokensPerSecond:N0} tok/s");
                    if (p.Event == TrainEvent.Line && p.Line is not null) ctx.Refresh();
                }));
            });
        return result;
    }

    /// <summary>
    /// A training event inside `hybrid run`: on an interactive terminal one status line rewritten in place at every step
    /// (step, loss, tokens/s, percent), kept when the training ends; elsewhere (a log file, a pipe) the plain lines.
    /// </summary>
    public static void InRun(string title, TrainProgress p)
    {
        var err = CliRunner.Stderr;
        if (!LiveTerminal) { Plain(title, p); return; }
        string loss = p.Loss is double l ? $" loss {l:G4}" : "";
        string val = p.ValLoss is double v ? $" val {v:G4}" : "";
        int percent = p.TotalSteps > 0 ? (int)(100L * p.Step / p.TotalSteps) : 0;
        string status = $"{title} {p.Step}/{p.TotalSteps} ({percent}%){loss}{val} {p.TokensPerSecond:N0} tok/s";
        int width = Math.Max(20, err.Profile.Width - 1);
        if (status.Length > width) status = status[..width];
        switch (p.Event)
        {
            case TrainEvent.Start or TrainEvent.Step or TrainEvent.Line:
                err.Write(new Text("\r\u001b[2K" + status));          // the line is rewritten in place
                statusOpen = true;
                break;
            case TrainEvent.Done or TrainEvent.Interrupted:
                CloseStatusLine();                                      // the last step's line stays
                break;
        }
    }

    static bool statusOpen;

    /// <summary>Ends an open status line (a training paused before its end, as kl's candidates do between rounds) so the next line starts on its own.</summary>
    public static void CloseStatusLine()
    {
        if (!statusOpen) return;
        CliRunner.Stderr.WriteLine();
        statusOpen = false;
    }

    /// <summary>One plain line (or none) for a training event, as `hybrid run` shows its distillation steps.</summary>
    public static void Plain(string title, TrainProgress p)
    {
        var err = CliRunner.Stderr;
        switch (p.Event)
        {
            case TrainEvent.Start:
                err.WriteLine($"{title}: {(p.Step > 0 ? $"resuming at step {p.Step}" : "starting")} ({p.TotalSteps} steps, {p.TotalTokens:N0} tokens)");
                break;
            case TrainEvent.Line:
                string val = p.Line?.ValLoss is double v ? $" val_loss {v:G5}" : "";
                string baseline = p.Line?.ValExtra("baseline_loss") is double b ? $" (zero-output baseline {b:G5})" : "";
                err.WriteLine($"{title} step {p.Step}/{p.TotalSteps} tokens {p.Tokens:N0} loss {p.Loss:G5} lr {p.Lr:G3}{val}{baseline} {p.TokensPerSecond:N0} tok/s");
                break;
            case TrainEvent.Checkpoint:
                err.WriteLine($"{title}: checkpoint {p.Checkpoint}");
                break;
        }
    }
}
