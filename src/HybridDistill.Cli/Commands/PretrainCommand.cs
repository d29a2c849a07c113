using System.ComponentModel;
using HybridDistill.Models;
using HybridDistill.Training;
using Spectre.Console;
using Spectre.Console.Cli;

namespace HybridDistill.Cli.Commands;

/// <summary>`hybrid pretrain`: a model trained from scratch through the phases of a recipe (<see cref="Pretraining"/>).</summary>
public sealed class PretrainCommand : Command<PretrainCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandOption("--recipe <FILE>")]
        [Description("Pretraining recipe JSON: model, corpus, train and phases (see recipes/default-teacher.json).")]
        public string Recipe { get; init; } = "";

        [CommandOption("--out <DIR>")]
        [Description("Run directory: data/, phases/, metrics.jsonl, wall_time.json, and at the end the model (config.json, model.safetensors, tokenizer).")]
        public string Out { get; init; } = "";

        [CommandOption("--set <KEY=VALUE>")]
        [Description("Override one train key in every phase, e.g. --set threads=2 (repeatable).")]
        public string[] Set { get; init; } = [];

        [CommandOption("--resume")]
        [Description("Continue the run in --out: finished phases are skipped, an interrupted one resumes from its newest checkpoint.")]
        public bool Resume { get; init; }

        [CommandOption("--device <DEVICE>")]
        [Description(CliParsing.DeviceHelp)]
        [DefaultValue("cpu")]
        public string Device { get; init; } = "cpu";

        public override ValidationResult Validate() =>
            string.IsNullOrEmpty(Recipe) ? ValidationResult.Error("--recipe FILE is required.")
            : string.IsNullOrEmpty(Out) ? ValidationResult.Error("--out DIR is required.")
            : ValidationResult.Success();
    }

    public override int Execute(CommandContext context, Settings s, CancellationToken cancellation)
    {
        var err = CliRunner.Stderr;
        var request = new PretrainRequest
        {
            RecipeFile = s.Recipe, Out = s.Out, Overrides = s.Set, Resume = s.Resume,
            Device = ComputeDevice.Resolve(s.Device),                          // before the run directory is touched
        };
        using var interrupt = new Interrupt(cancellation);
        var events = new SyncProgress<PretrainEvent>(e =>
            err.MarkupLineInterpolated($"[bold blue]phase {e.Phase.Index + 1}/{e.PhaseCount} {e.Phase.Name}[/]: {e.Message}"));
        var outcome = Pretraining.Run(request, events,
            phase => new SyncProgress<TrainProgress>(p =>
            {
                if (p.Event == TrainEvent.Line && p.Line is { } line)
                    err.WriteLine($"  {phase.Name} step {p.Step}/{p.TotalSteps} loss {p.Loss:F4}" +
                                  (line.ValLoss is double v ? $" val {v:F4}" : "") +
                                  string.Concat(line.ValExtras.Where(e => e.Name.StartsWith("acc_")).Select(e => $" {e.Name[4..]} {e.Value:F3}")) +
                                  $" {p.TokensPerSecond:F0} tok/s");
            }),
            interrupt.Token);
        if (!outcome.Completed)
        {
            err.MarkupLineInterpolated($"[yellow]interrupted after {outcome.WallSeconds / 60:F1} min in total; continue with the same command and --resume.[/]");
            return 130;
        }
        err.MarkupLineInterpolated($"[green]done:[/] {outcome.Phases.Count} phases, {outcome.WallSeconds / 60:F1} min of training in total");
        CliRunner.Stdout.WriteLine(outcome.OutDir);
        return 0;
    }
}
