using System.Text.Json.Nodes;
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
    public JsonObject ToJson()
    {
        var tasks = new JsonObject();
        if (Ppl is { } p)
            tasks[EvalTasks.Ppl] = new JsonObject
            {
                ["nll"] = p.Nll, ["ppl"] = p.Ppl, ["tokens"] = p.Tokens, ["windows"] = p.Windows, ["window"] = p.WindowLength,
            };
        if (Agree is { } a)
            tasks[EvalTasks.Agree] = new JsonObject
            {
                ["kl"] = a.Kl, ["top1"] = a.Top1, ["tokens"] = a.Tokens, ["windows"] = a.Windows, ["window"] = a.WindowLength,
            };
        foreach (var task in Recall)
        {
            var perLength = new JsonObject();
            foreach (var r in task.Lengths)
            {
                var entry = ProportionJson(r.Accuracy);
                entry["prompts"] = r.Prompts;
                entry["mean_answer_logprob"] = r.MeanAnswerLogProb;
                if (r.FirstOccurrence is { } f)
                {
                    var (flo, fhi) = f.Wilson;
                    entry["first_acc"] = f.Accuracy; entry["first_lo"] = flo; entry["first_hi"] = fhi; entry["first_n"] = f.Count;
                }
                if (r.ByLabel.Count > 0)
                {
                    var labels = new JsonObject();
                    foreach (var (label, prop) in r.ByLabel) labels[label] = ProportionJson(prop);
                    entry["by_label"] = labels;
                }
                // [correct, count] of each prompt, in prompt order (the same prompts for every model of one seed)
                entry["per_prompt"] = new JsonArray(r.PerPrompt.Select(q => (JsonNode)new JsonArray(q.Correct, q.Count)).ToArray());
                perLength[r.Length.ToString()] = entry;
            }
            tasks[task.Task] = perLength;
        }
        foreach (var m in Mc)
        {
            var (lo, hi) = m.Acc.Wilson;
            var entry = new JsonObject { ["acc"] = m.Acc.Accuracy, ["acc_lo"] = lo, ["acc_hi"] = hi };
            if (m.AccNorm is { } norm) entry["acc_norm"] = norm.Accuracy;
            if (m.MeanNll is double nll) entry["nll"] = nll;
            entry["n"] = m.N;
            entry["layout"] = m.Layout.ToString();
            tasks["mc/" + m.Name] = entry;
        }

        var recall = new JsonObject
        {
            ["queries"] = Options.Recall.Queries, ["pairs"] = Options.Recall.Pairs, ["passkey_digits"] = Options.Recall.PasskeyDigits,
            ["copy_span"] = Options.Recall.CopySpan, ["depths"] = new JsonArray(Options.Recall.Depths.Select(d => (JsonNode)d).ToArray()),
        };
        if (Options.StockFiller) recall["filler"] = "stock";
        if (Vocabulary is { } v)
        {
            recall["tokenizer"] = v.Tokenizer.Kind;
            recall["keys"] = v.Keys.Count;
            recall["values"] = v.Values.Count;
            recall["separator"] = v.Separator;
        }
        return new JsonObject
        {
            ["model"] = Model,
            ["name"] = Name,
            ["teacher"] = Teacher,
            ["seed"] = Options.Seed,
            ["settings"] = new JsonObject
            {
                ["tasks"] = new JsonArray(Tasks.Select(t => (JsonNode)t).ToArray()),
                ["data"] = Options.DataPath,
                ["mc"] = new JsonArray(Options.McPaths.Select(m => (JsonNode)m).ToArray()),
                ["lengths"] = new JsonArray(Lengths.Select(l => (JsonNode)l).ToArray()),
                ["limit"] = Options.Limit,
                ["window"] = Ppl?.WindowLength ?? Agree?.WindowLength ?? Options.Window,
                ["stride"] = Options.Stride,
                ["recall"] = recall,
            },
            ["tasks"] = tasks,
        };
    }

    static JsonObject ProportionJson(Proportion p)
    {
        var (lo, hi) = p.Wilson;
        return new JsonObject { ["acc"] = p.Accuracy, ["lo"] = lo, ["hi"] = hi, ["n"] = p.Count };
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
