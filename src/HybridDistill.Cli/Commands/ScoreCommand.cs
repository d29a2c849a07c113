using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using HybridDistill.Artifacts;
using HybridDistill.Config;
using HybridDistill.Models;
using HybridDistill.Selection;
using Spectre.Console;
using Spectre.Console.Cli;

namespace HybridDistill.Cli.Commands;

/// <summary><c>hybrid score</c>: per-layer importance scores with one method, written to OUT/scores.json and OUT/scores.png.</summary>
public sealed class ScoreCommand : Command<ScoreCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        // "merge DIR" is an action of this command rather than a Spectre sub-command: a branch with a default
        // command mis-parses a repeated --set ("Unknown command").
        [CommandArgument(0, "[ACTION]")]
        [Description("merge: combine DIR/layers/layer-{l}.json (from one or several processes) into DIR/scores.json.")]
        public string? Action { get; init; }

        [CommandArgument(1, "[DIR]")]
        [Description("With merge: the --out directory of the scoring runs.")]
        public string? MergeDir { get; init; }

        [CommandOption("--method <NAME>")]
        [Description("Scoring method: kl, uniform, random, ends, ppl, stage1, removal, ar, ar-multihop.")]
        public string Method { get; init; } = "";

        [CommandOption("--teacher <DIR>")]
        [Description("The all-softmax teacher's model directory (every method needs it, for the layer count at least).")]
        public string? Teacher { get; init; }

        [CommandOption("--out <DIR>")]
        [Description("Output directory: scores.json, scores.png, and layers/layer-{l}.json for per-layer methods (re-running skips finished layers).")]
        public string Out { get; init; } = "";

        [CommandOption("--stage1 <DIR>")]
        [Description("Finished stage-1 run (kl, stage1, removal).")]
        public string? Stage1 { get; init; }

        [CommandOption("--data <PATH>")]
        [Description("Held-out text file, or a token directory from hybrid tokenize (its validation split) (ppl; kl and removal train on it).")]
        public string? Data { get; init; }

        [CommandOption("--layers <LIST>")]
        [Description("Score only these layers (per-layer methods), e.g. 0,1,5, to split the work over processes; merge with hybrid score merge.")]
        public string? Layers { get; init; }

        [CommandOption("--budget-tokens <N>")]
        [Description("Tokens per evaluation pass (ppl, default 32768) or per scoring run (kl, removal).")]
        public long? BudgetTokens { get; init; }

        [CommandOption("--recipe <FILE>")]
        [Description("Recipe whose \"score\" section configures the scoring runs (kl, removal).")]
        public string? Recipe { get; init; }

        [CommandOption("--set <KEY=VALUE>")]
        [Description("A method setting (repeatable): uniform anchor=last|first; ppl window=256, batch=8; kl/removal last_n=3, curve=train|val, early_stop=auto|off, min_fraction=0.3, stable_window=3, margin_z=2, stable_budgets=12.5%,25% (or 1L,2L), full_budget=false and any stage-2 key (seq_len=..., lr_attention=...); stage1 window, batch; ar measure=accuracy|logprob, pairs, queries, prompts=500, batch.")]
        public string[] Set { get; init; } = [];

        [CommandOption("--seed <S>")]
        [Description("Seed (random's permutation; the scoring runs' data order).")]
        [DefaultValue(0L)]
        public long Seed { get; init; }

        [CommandOption("--plot-budget <B>")]
        [Description("Budget whose chosen layers scores.png marks (default 25%).")]
        [DefaultValue("25%")]
        public string PlotBudget { get; init; } = "25%";

        [CommandOption("--json")]
        [Description("Print scores.json on stdout.")]
        public bool Json { get; init; }

        [CommandOption("--device <DEVICE>")]
        [Description(CliParsing.DeviceHelp)]
        [DefaultValue("cpu")]
        public string Device { get; init; } = "cpu";

        public override ValidationResult Validate()
        {
            if (Action is not null)
                return Action == "merge" && !string.IsNullOrEmpty(MergeDir) ? ValidationResult.Success()
                    : ValidationResult.Error($"unknown action \"{Action}\": the only action is \"merge DIR\".");
            if (string.IsNullOrEmpty(Method)) return ValidationResult.Error($"--method NAME is required ({string.Join(", ", LayerScorers.Names)}).");
            if (string.IsNullOrEmpty(Out)) return ValidationResult.Error("--out DIR is required.");
            return ValidationResult.Success();
        }
    }

    public override int Execute(CommandContext context, Settings s, CancellationToken cancellation)
    {
        var device = ComputeDevice.Resolve(s.Device);                           // before anything is loaded or written
        if (s.Action == "merge")
        {
            WriteWithFull(new LayerResultStore(s.MergeDir!).Merge(), s.MergeDir!, s.PlotBudget, s.Json);
            return 0;
        }
        var scorer = LayerScorers.Create(s.Method);
        var watch = Stopwatch.StartNew();
        var scoring = new ScoringContext
        {
            Method = scorer.Name,
            TeacherDir = s.Teacher,
            Stage1Dir = s.Stage1,
            DataPath = s.Data,
            RecipePath = s.Recipe,
            Layers = s.Layers is null ? null : CliParsing.IntList(s.Layers, "--layers"),
            BudgetTokens = s.BudgetTokens,
            Seed = s.Seed,
            Set = ScoreRun.ParseSet(s.Set),
            OutDir = s.Out,
            Progress = new SyncProgress<string>(m => CliRunner.Stderr.MarkupLineInterpolated($"[grey]{m}[/]")),
            Cancellation = cancellation,
            Device = device,
        };
        var progress = ScoreRun.Score(scorer, scoring);
        var scores = progress.Scores;
        if (scores is null)
        {
            int total = progress.Done.Count + progress.Missing.Count;
            string missing = string.Join(",", progress.Missing);
            CliRunner.Stderr.MarkupLineInterpolated(
                $"[yellow]{progress.Done.Count} of {total} layers done[/] (missing {missing}); score them with --layers, then run hybrid score merge {s.Out}");
        }
        NoteIgnored(s, scoring);
        if (scores is not null) WriteWithFull(scores, s.Out, s.PlotBudget, s.Json);
        CliRunner.Stderr.MarkupLineInterpolated($"[grey]{scorer.Name}: {watch.Elapsed.TotalSeconds:F1} s[/]");
        return 0;
    }

    static string List(IReadOnlyList<int> layers) => "[" + string.Join(",", layers) + "]";

    /// <summary>Writes OUT/scores.json and its .png (a kl job with full_budget=true also scores-full.json) and shows the scores (stderr) or the JSON (stdout).</summary>
    static void WriteWithFull(LayerScores scores, string outDir, string plotBudget, bool json)
    {
        foreach (var written in ScoreRun.Write(scores, outDir, plotBudget))
        {
            Render(written.Scores, written.K, plotBudget);
            var stopping = written.Scores.Provenance.As(ArtifactJson.Types.KlStoppingView);
            if (stopping.EarlyStopping is { } lockStep)
                CliRunner.Stderr.MarkupLineInterpolated(
                    $"[grey]early stopping for K={List(lockStep.StopKs)}: {(lockStep.StoppedEarly ? $"stopped at step {lockStep.StopStep}" : "did not stop")} ({lockStep.StoppedAtTokens} of {lockStep.BudgetTokens} tokens per run); {lockStep.AllRunsTokensUsed} of {lockStep.AllRunsTokensBudget} tokens counted (saved {lockStep.TokensSavedFraction.ToString(CultureInfo.InvariantCulture)})[/]");
            foreach (var c in stopping.EarlyStopVsFull?.ByK ?? [])
                CliRunner.Stderr.MarkupLineInterpolated(
                    $"[grey]K={c.K}: early top-K {List(c.EarlyTopK)} at {c.StopTokens} tokens vs full {List(c.FullTopK)} (same: {(c.Same ? "true" : "false")}, saved {c.SavedFraction.ToString(CultureInfo.InvariantCulture)})[/]");
            if (json && written.Scores == scores) CliRunner.Stdout.WriteLine(scores.ToJsonText());
            CliRunner.Stderr.MarkupLineInterpolated($"[green]wrote[/] {written.JsonPath} and {Path.GetFileName(written.PngPath)}");
        }
    }

    static void Render(LayerScores scores, int k, string budget)
    {
        var chosen = LayerSelection.Choose(scores, k).ToHashSet();
        var rank = new int[scores.NumLayers];
        for (int i = 0; i < scores.Ranking.Count; i++) rank[scores.Ranking[i]] = i + 1;
        var table = new Table().AddColumns("layer", "score", "rank", $"softmax at {budget} (K={k})");
        foreach (int l in Enumerable.Range(0, scores.NumLayers))
            table.AddRow(l.ToString(), scores.Scores[l].ToString("G5", CultureInfo.InvariantCulture), rank[l].ToString(), chosen.Contains(l) ? "yes" : "");
        CliRunner.Stderr.Write(table);
        CliRunner.Stderr.MarkupLineInterpolated($"ranking: {string.Join(",", scores.Ranking)}");
    }

    static void NoteIgnored(Settings s, ScoringContext scoring)
    {
        var given = new List<string>();
        if (s.Stage1 is not null) given.Add("--stage1");
        if (s.Data is not null) given.Add("--data");
        if (s.Layers is not null) given.Add("--layers");
        if (s.BudgetTokens is not null) given.Add("--budget-tokens");
        if (s.Recipe is not null) given.Add("--recipe");
        var ignored = given.Where(o => !scoring.Used.Contains(o)).ToArray();
        if (ignored.Length > 0)
            CliRunner.Stderr.MarkupLineInterpolated($"[grey]note: --method {scoring.Method} does not use {string.Join(", ", ignored)}[/]");
    }
}
