using HybridDistill.Artifacts;
using HybridDistill.Tokenization;

namespace HybridDistill.Evaluation;

/// <summary>Task names accepted by <see cref="Evaluator"/> (and <c>hybrid eval --tasks</c>).</summary>
public static class EvalTasks
{
    public const string Ppl = "ppl";
    public const string Agree = "agree";
    public const string Mc = "mc";
    /// <summary>Shorthand for the four recall tasks.</summary>
    public const string Recall = "recall";
    public static IReadOnlyList<string> All { get; } = [Ppl, Agree, .. RecallTasks.All, Mc];
}

/// <summary>What to evaluate and on which data. Null Tasks: every task whose inputs are given.</summary>
public sealed record EvalOptions
{
    public IReadOnlyList<string>? Tasks { get; init; }
    /// <summary>Held-out text for ppl and agree, and the filler for passkey / kv padding / copy.</summary>
    public string? DataPath { get; init; }
    public IReadOnlyList<string> McPaths { get; init; } = [];
    /// <summary>Recall prompt lengths (every token, answers included). Null: 128, 256, 512 up to the context.</summary>
    public IReadOnlyList<int>? Lengths { get; init; }
    /// <summary>Windows for ppl/agree (null: all), prompts per length for recall (null: 50), items per mc file (null: all).</summary>
    public int? Limit { get; init; }
    public int Seed { get; init; }
    /// <summary>ppl/agree window (null: the model's context) and stride (null: the window, i.e. disjoint windows).</summary>
    public int? Window { get; init; }
    public int? Stride { get; init; }
    public int? BatchSize { get; init; }
    public RecallSuiteOptions Recall { get; init; } = new();
    /// <summary>Recall prompts with the stock filler (classic pass-key sentences, random keys for copy) even when
    /// DataPath is given for ppl/agree, so recall figures compare with a run that had no --data.</summary>
    public bool StockFiller { get; init; }

    public const int DefaultRecallPrompts = 50;
    public static IReadOnlyList<int> DefaultLengths { get; } = [128, 256, 512];
}

/// <summary>Everything one evaluation produced, with the settings that produced it.</summary>
public sealed record EvalResult(
    string Name, string Model, string? Teacher, EvalOptions Options, IReadOnlyList<string> Tasks, IReadOnlyList<int> Lengths,
    PerplexityResult? Ppl, AgreementResult? Agree, IReadOnlyList<RecallTaskResult> Recall, IReadOnlyList<McResult> Mc,
    RecallVocabulary? Vocabulary)
{
    /// <summary>The machine-readable form (<c>eval.json</c>): { model, name, teacher, seed, settings, tasks: {...} }.</summary>
    public EvalFile ToFile()
    {
        var recall = Recall.Select(task => new RecallTaskEntry(task.Task, task.Lengths.ToDictionary(r => r.Length.ToString(), r =>
        {
            var (acc, first) = (ProportionEntry.Of(r.Accuracy), r.FirstOccurrence is { } f ? ProportionEntry.Of(f) : null);
            return new RecallLengthEntry(acc.Acc, acc.Lo, acc.Hi, acc.N, r.Prompts, r.MeanAnswerLogProb, first?.Acc, first?.Lo, first?.Hi, first?.N,
                r.ByLabel.Count > 0 ? r.ByLabel.ToDictionary(p => p.Key, p => ProportionEntry.Of(p.Value)) : null,
                // [correct, count] of each prompt, in prompt order (the same prompts for every model of one seed)
                r.PerPrompt.Select(q => (IReadOnlyList<int>)[q.Correct, q.Count]).ToArray());
        }))).ToArray();
        var mc = Mc.Select(m =>
        {
            var (lo, hi) = m.Acc.Wilson;
            return new McTaskEntry(m.Name, new McEntry(m.Acc.Accuracy, lo, hi, m.AccNorm?.Accuracy, m.MeanNll, m.N, m.Layout.ToString()));
        }).ToArray();
        var tasks = new EvalTaskResults(
            Ppl is { } p ? new PplEntry(p.Nll, p.Ppl, p.Tokens, p.Windows, p.WindowLength) : null,
            Agree is { } a ? new AgreeEntry(a.Kl, a.Top1, a.Tokens, a.Windows, a.WindowLength) : null, recall, mc);
        var recallSettings = new RecallSettings(Options.Recall.Queries, Options.Recall.Pairs, Options.Recall.PasskeyDigits, Options.Recall.CopySpan,
            Options.Recall.Depths, Options.StockFiller ? "stock" : null,
            Vocabulary?.Tokenizer.Kind, Vocabulary?.Keys.Count, Vocabulary?.Values.Count, Vocabulary?.Separator);
        var settings = new EvalSettings(Tasks, Options.DataPath, Options.McPaths, Lengths, Options.Limit,
            Ppl?.WindowLength ?? Agree?.WindowLength ?? Options.Window, Options.Stride, recallSettings);
        return new EvalFile(Model, Name, Teacher, Options.Seed, settings, tasks);
    }
}

/// <summary>Runs the requested tasks on one model (and its teacher for <c>agree</c>).</summary>
public static class Evaluator
{
    /// <summary>The tasks to run: the requested ones ("recall" expands to the four recall tasks), or by default every
    /// task whose inputs are there. Throws for unknown names and for tasks whose inputs are missing.</summary>
    public static IReadOnlyList<string> ResolveTasks(EvalOptions options, bool hasTeacher)
    {
        var tasks = new List<string>();
        if (options.Tasks is null)
        {
            if (options.DataPath is not null) tasks.Add(EvalTasks.Ppl);
            if (options.DataPath is not null && hasTeacher) tasks.Add(EvalTasks.Agree);
            tasks.AddRange(RecallTasks.All);
            if (options.McPaths.Count > 0) tasks.Add(EvalTasks.Mc);
            return tasks;
        }
        foreach (var raw in options.Tasks)
        {
            string t = raw.Trim().ToLowerInvariant();
            var expanded = t == EvalTasks.Recall ? RecallTasks.All
                : EvalTasks.All.Contains(t) ? [t]
                : throw new InputException($"unknown task '{raw}' in --tasks; use {string.Join(", ", EvalTasks.All)} or recall.");
            foreach (var e in expanded) if (!tasks.Contains(e)) tasks.Add(e);
        }
        if (tasks.Count == 0) throw new InputException("--tasks is empty; name at least one task.");
        if ((tasks.Contains(EvalTasks.Ppl) || tasks.Contains(EvalTasks.Agree)) && options.DataPath is null)
            throw new InputException("ppl and agree need held-out text: pass --data FILE (e.g. assets/text/tinystories_val_slice.txt).");
        if (tasks.Contains(EvalTasks.Agree) && !hasTeacher)
            throw new InputException("agree needs the teacher: pass --teacher DIR.");
        if (tasks.Contains(EvalTasks.Mc) && options.McPaths.Count == 0)
            throw new InputException("mc needs at least one multiple-choice file: pass --mc FILE (e.g. assets/eval/piqa.jsonl).");
        if (!tasks.Contains(EvalTasks.Mc) && options.McPaths.Count > 0)
            throw new InputException("--mc files were given but 'mc' is not in --tasks; add it.");
        return tasks;
    }

    /// <summary>Recall lengths: the requested ones (each must fit the context), or 128/256/512 up to the context.</summary>
    public static IReadOnlyList<int> ResolveLengths(EvalOptions options, int context)
    {
        if (options.Lengths is null)
        {
            var lengths = EvalOptions.DefaultLengths.Where(l => l <= context).ToList();
            return lengths.Count > 0 ? lengths : [context];
        }
        foreach (int l in options.Lengths)
            if (l < 16 || l > context)
                throw new InputException($"--lengths {l} is outside 16..{context} (the model's context).");
        return options.Lengths.Distinct().Order().ToList();
    }

    public static EvalResult Run(string name, string modelPath, ILogitModel model, ITextTokenizer tokenizer,
        string? teacherPath, ILogitModel? teacher, EvalOptions options, IProgress<string>? progress = null)
    {
        var tasks = ResolveTasks(options, teacher is not null);
        var lengths = tasks.Any(RecallTasks.All.Contains) ? ResolveLengths(options, model.ContextLength) : [];

        PerplexityResult? ppl = null;
        AgreementResult? agree = null;
        if (tasks.Contains(EvalTasks.Ppl) || tasks.Contains(EvalTasks.Agree))
        {
            int context = teacher is null || !tasks.Contains(EvalTasks.Agree) ? model.ContextLength : Math.Min(model.ContextLength, teacher.ContextLength);
            int window = options.Window ?? context;
            if (window > context) throw new InputException($"--window {window} exceeds the model's context ({context}).");
            int stride = options.Stride ?? window;
            long needed = options.Limit is int n ? (long)(n - 1) * stride + window + 1 : long.MaxValue;
            progress?.Report("tokenizing held-out text");
            var tokens = HeldOutText.TokensFromFile(tokenizer, options.DataPath!, needed);
            var windows = HeldOutText.Windows(tokens, window, stride, options.Limit);
            if (tasks.Contains(EvalTasks.Ppl)) ppl = Perplexity.Evaluate(model, windows, options.BatchSize, progress);
            if (tasks.Contains(EvalTasks.Agree)) agree = Perplexity.Agreement(teacher!, model, windows, options.BatchSize, progress);
        }

        var recall = new List<RecallTaskResult>();
        RecallVocabulary? vocabulary = null;
        var recallTasks = tasks.Where(RecallTasks.All.Contains).ToList();
        if (recallTasks.Count > 0)
        {
            progress?.Report("probing the tokenizer for single-token keys and values");
            vocabulary = RecallVocabulary.Build(tokenizer);
            var filler = options.DataPath is null || options.StockFiller ? null : FillerText.FromFile(options.DataPath);
            var suite = new RecallSuite(vocabulary, filler, options.Recall);
            foreach (var task in recallTasks)
            {
                var items = lengths.SelectMany(l => suite.Generate(task, l, options.Limit ?? EvalOptions.DefaultRecallPrompts, options.Seed)).ToList();
                var scores = RecallScorer.Score(model, items, options.BatchSize, progress);
                recall.Add(RecallScorer.Summarize(task, items, scores));
            }
        }

        var mc = new List<McResult>();
        if (tasks.Contains(EvalTasks.Mc))
            foreach (var path in options.McPaths)
                mc.Add(MultipleChoice.Evaluate(model, tokenizer, MultipleChoice.Load(path, options.Limit), options.BatchSize, progress));

        return new EvalResult(name, modelPath, teacherPath, options, tasks, lengths, ppl, agree, recall, mc, vocabulary);
    }
}
