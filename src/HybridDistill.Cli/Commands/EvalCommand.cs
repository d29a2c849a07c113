using System.ComponentModel;
using HybridDistill.Artifacts;
using HybridDistill.Checkpoints;
using HybridDistill.Config;
using HybridDistill.Evaluation;
using HybridDistill.Models;
using HybridDistill.Tokenization;
using Spectre.Console;
using Spectre.Console.Cli;

namespace HybridDistill.Cli.Commands;

public sealed class EvalCommand : Command<EvalCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandOption("--model <DIR>")]
        [Description("Model directory to evaluate.")]
        public string Model { get; init; } = "";

        [CommandOption("--teacher <DIR>")]
        [Description("Teacher directory (needed by agree; must share the model's tokenizer).")]
        public string? Teacher { get; init; }

        [CommandOption("--tasks <LIST>")]
        [Description("Comma-separated: ppl, agree, passkey, kv-recall, kv-multihop, copy, mc (recall = the four recall tasks). " +
                     "Default: every task whose inputs are given.")]
        public string? Tasks { get; init; }

        [CommandOption("--data <FILE>")]
        [Description("Held-out text for ppl and agree (documents separated by blank lines), and filler for passkey, kv padding and copy.")]
        public string? Data { get; init; }

        [CommandOption("--stock-filler")]
        [Description("Recall prompts use the stock filler (classic pass-key sentences; random keys for copy) even with --data, " +
                     "so their figures compare with an evaluation without --data.")]
        public bool StockFiller { get; init; }

        [CommandOption("--mc <FILE>")]
        [Description("Multiple-choice / cloze .jsonl file (repeatable): {query, choices, gold}, {context_options, continuation, gold} or {context, continuation}.")]
        public string[] Mc { get; init; } = [];

        [CommandOption("--lengths <LIST>")]
        [Description("Recall prompt lengths in tokens, answers included (default: 128,256,512 up to the model's context).")]
        public string? Lengths { get; init; }

        [CommandOption("--limit <N>")]
        [Description("Windows for ppl/agree (default: all), prompts per length for recall (default: 50), items per mc file (default: all).")]
        public int? Limit { get; init; }

        [CommandOption("--seed <S>")]
        [Description("Seed of the recall prompts.")]
        [DefaultValue(0)]
        public int Seed { get; init; }

        [CommandOption("--window <N>")]
        [Description("ppl/agree window in tokens (default: the model's context).")]
        public int? Window { get; init; }

        [CommandOption("--stride <N>")]
        [Description("ppl/agree window stride (default: the window; smaller strides score each token with more context).")]
        public int? Stride { get; init; }

        [CommandOption("--batch <B>")]
        [Description("Sequences per forward pass (default: as many as fit a 512 MiB logits budget, at most 16).")]
        public int? Batch { get; init; }

        [CommandOption("--name <NAME>")]
        [Description("Label of this model in reports (default: the model directory's name).")]
        public string? Name { get; init; }

        [CommandOption("--json <PATH>")]
        [Description("Write the results as JSON to PATH (a directory: PATH/eval.json), the Markdown table beside it (.md) and " +
                     "the same results in lm-evaluation-harness's layout (results_lm_eval.json). Without it the JSON goes to stdout.")]
        public string? Json { get; init; }

        [CommandOption("--device <DEVICE>")]
        [Description(CliParsing.DeviceHelp)]
        [DefaultValue("cpu")]
        public string Device { get; init; } = "cpu";

        public override ValidationResult Validate() =>
            string.IsNullOrEmpty(Model) ? ValidationResult.Error("--model DIR is required.")
            : Limit is < 1 ? ValidationResult.Error("--limit must be >= 1.")
            : Batch is < 1 ? ValidationResult.Error("--batch must be >= 1.")
            : ValidationResult.Success();
    }

    public override int Execute(CommandContext context, Settings s, CancellationToken cancellation)
    {
        var options = new EvalOptions
        {
            Tasks = s.Tasks?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
            DataPath = s.Data,
            McPaths = s.Mc,
            Lengths = s.Lengths is null ? null : CliParsing.IntList(s.Lengths, "--lengths"),
            Limit = s.Limit,
            Seed = s.Seed,
            Window = s.Window,
            Stride = s.Stride,
            BatchSize = s.Batch,
            StockFiller = s.StockFiller,
        };
        Evaluator.ResolveTasks(options, s.Teacher is not null);           // fail on bad options before loading anything
        var request = new EvalRequest { Model = s.Model, Teacher = s.Teacher, Name = s.Name, Options = options, Device = ComputeDevice.Resolve(s.Device) };
        var progress = new SyncProgress<string>(m => CliRunner.Stderr.MarkupLineInterpolated($"[grey]{m}[/]"));
        var outcome = EvalRun.Run(request, s.Json ?? "-", progress);
        CliRunner.StderrText.WriteLine();
        CliRunner.StderrText.WriteLine(outcome.Markdown);
        if (s.Json is null)
        {
            CliRunner.Stdout.WriteLine(EvalRun.Json(outcome));
            return 0;
        }
        var (path, markdownPath, lmEvalPath) = EvalRun.Save(outcome, s.Json, request);
        CliRunner.Stderr.MarkupLineInterpolated($"wrote [bold]{path}[/], {markdownPath} and {lmEvalPath}");
        return 0;
    }
}
