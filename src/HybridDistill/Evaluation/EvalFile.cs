using System.Text.Json.Serialization;
using HybridDistill.Artifacts;

namespace HybridDistill.Evaluation;

/// <summary>
/// eval.json, one model's evaluation (<see cref="EvalResult.ToFile"/> writes it):
/// <code>
/// { "model", "name", "teacher", "seed",
///   "settings": {"tasks", "data", "mc", "lengths", "limit", "window", "stride", "recall": {...}},
///   "tasks": {"ppl": {...}, "agree": {...}, "passkey": {"128": {...}, ...}, ..., "mc/NAME": {...}} }
/// </code>
/// Only tasks is needed to read one back (files written by hand or by older versions may lack the rest).
/// </summary>
public sealed record EvalFile(string? Model, string? Name, string? Teacher, int Seed, EvalSettings? Settings, EvalTaskResults? Tasks)
{
    /// <summary>Reads PATH; an error naming the file when it is not an eval.json.</summary>
    public static EvalFile Load(string path)
    {
        const string fix = "evaluate the model again with hybrid eval --json DIR";
        var file = ArtifactJson.Read(path, ArtifactJson.Types.EvalFile, "an eval.json", fix);
        return file.Tasks is null ? throw new InputException($"{path}: no \"tasks\" object; is it an eval.json written by hybrid eval? ({fix})") : file;
    }

    [JsonIgnore] public EvalTaskResults TaskResults => Tasks ?? EvalTaskResults.Empty;
}

/// <param name="Window">the ppl/agree window used (or asked for)</param>
public sealed record EvalSettings(IReadOnlyList<string>? Tasks, string? Data, IReadOnlyList<string>? Mc, IReadOnlyList<int>? Lengths,
    int? Limit, int? Window, int? Stride, RecallSettings? Recall);

/// <summary>The recall suites' settings; tokenizer, keys, values and separator describe the recall vocabulary when one was built.</summary>
public sealed record RecallSettings(int Queries, int? Pairs, int PasskeyDigits, int CopySpan, IReadOnlyList<double> Depths,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Filler,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Tokenizer,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] int? Keys,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] int? Values,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Separator);

public sealed record PplEntry(double Nll, double Ppl, long Tokens, int Windows, int Window);

/// <param name="Kl">mean KL(teacher ‖ model) per position</param>
public sealed record AgreeEntry(double Kl, double Top1, long Tokens, int Windows, int Window);

/// <summary>A proportion with its 95% Wilson interval.</summary>
public sealed record ProportionEntry([property: JsonRequired] double Acc, double Lo, double Hi, int N)
{
    public static ProportionEntry Of(Proportion p)
    {
        var (lo, hi) = p.Wilson;
        return new ProportionEntry(p.Accuracy, lo, hi, p.Count);
    }
}

/// <summary>One recall task at one length (first_*: copy's first occurrences; by_label: kv-multihop's hops; per_prompt: [correct, count] per prompt).</summary>
public sealed record RecallLengthEntry([property: JsonRequired] double Acc, double Lo, double Hi, int N, int Prompts,
    [property: JsonPropertyName("mean_answer_logprob")] double MeanAnswerLogProb,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] double? FirstAcc,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] double? FirstLo,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] double? FirstHi,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] int? FirstN,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyDictionary<string, ProportionEntry>? ByLabel,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyList<IReadOnlyList<int>>? PerPrompt);

/// <summary>One recall task: its results by prompt length (the keys are the lengths as text).</summary>
public sealed record RecallTaskEntry(string Task, IReadOnlyDictionary<string, RecallLengthEntry> ByLength);

public sealed record McEntry([property: JsonRequired] double Acc, double AccLo, double AccHi,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] double? AccNorm,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] double? Nll,
    int N, string? Layout);

public sealed record McTaskEntry(string Name, McEntry Result);

/// <summary>
/// eval.json's "tasks": ppl, agree, then each recall task under its name, then each multiple-choice set as "mc/NAME".
/// The keys name the task, so the object is read and written by <see cref="EvalTaskResultsConverter"/> (beside the
/// serializer, in Artifacts/ArtifactJson.cs), each entry typed.
/// </summary>
[JsonConverter(typeof(EvalTaskResultsConverter))]
public sealed record EvalTaskResults(PplEntry? Ppl, AgreeEntry? Agree, IReadOnlyList<RecallTaskEntry> Recall, IReadOnlyList<McTaskEntry> Mc)
{
    public static EvalTaskResults Empty { get; } = new(null, null, [], []);

    public IReadOnlyDictionary<string, RecallLengthEntry>? RecallTask(string task) => Recall.FirstOrDefault(r => r.Task == task)?.ByLength;

    public RecallLengthEntry? RecallAt(string task, int length) => RecallTask(task)?.GetValueOrDefault(length.ToString());
}
