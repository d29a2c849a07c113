using HybridDistill.Artifacts;
using HybridDistill.Checkpoints;
using HybridDistill.Config;
using HybridDistill.Models;
using HybridDistill.Tokenization;

namespace HybridDistill.Evaluation;

/// <summary>What <c>hybrid eval</c> evaluates: a model directory, optionally against its teacher (agree), with options.</summary>
public sealed record EvalRequest
{
    public required string Model { get; init; }
    public string? Teacher { get; init; }
    /// <summary>Label in reports (default: the model directory's name).</summary>
    public string? Name { get; init; }
    public EvalOptions Options { get; init; } = new();
    public ComputeDevice Device { get; init; } = ComputeDevice.Cpu;
}

/// <summary>An evaluation's results: as computed, as eval.json holds them, and as the Markdown table shows them.</summary>
public sealed record EvalOutcome(string Name, EvalResult Result, EvalFile File, string Markdown);

/// <summary>
/// <c>hybrid eval</c>'s work, shared by the command and <c>hybrid run</c>: load the model (and teacher), run the
/// tasks, and write eval.json, its Markdown table (.md) and the lm-evaluation-harness layout beside it.
/// </summary>
public static class EvalRun
{
    /// <param name="jsonLabel">where the results will be written, for the table's source column ("-": stdout)</param>
    public static EvalOutcome Run(EvalRequest request, string jsonLabel, IProgress<string>? progress = null)
    {
        Evaluator.ResolveTasks(request.Options, request.Teacher is not null);           // fail on bad options before loading anything
        string modelDir = HfCheckpoint.ResolveModelDirectory(request.Model);
        var tokenizer = TokenizerLoader.Load(modelDir);
        using var model = HfCheckpoint.Load(request.Model, request.Device.Torch);
        using var teacher = request.Teacher is null ? null : HfCheckpoint.Load(request.Teacher, request.Device.Torch);
        if (teacher is not null && teacher.Config.VocabSize != model.Config.VocabSize)
            throw new InputException($"the teacher '{request.Teacher}' has vocabulary {teacher.Config.VocabSize}, the model '{request.Model}' " +
                                     $"{model.Config.VocabSize}; pass the model's own teacher.");
        string name = request.Name ?? Path.GetFileName(modelDir.TrimEnd(Path.DirectorySeparatorChar));
        var result = Evaluator.Run(name, request.Model, new CausalLMLogits(model), tokenizer, request.Teacher,
            teacher is null ? null : new CausalLMLogits(teacher), request.Options, progress);
        var file = result.ToFile();
        string markdown = EvalReport.Markdown([new EvalEntry(name, jsonLabel, file)], [], title: $"Evaluation of {name}");
        return new EvalOutcome(name, result, file, markdown);
    }

    /// <summary>eval.json's text (no final newline).</summary>
    public static string Json(EvalOutcome outcome) => System.Text.Encoding.UTF8.GetString(ArtifactJson.Bytes(outcome.File, ArtifactJson.Types.EvalFile));

    /// <summary>
    /// Writes the results to <paramref name="jsonPath"/> (a folder or a path ending in '/': its eval.json), the Markdown
    /// beside it (.md) and results_lm_eval.json; each atomically, so a full disk keeps the previous result.
    /// Returns the three paths.
    /// </summary>
    public static (string Json, string Markdown, string LmEval) Save(EvalOutcome outcome, string jsonPath, EvalRequest request)
    {
        string path = Directory.Exists(jsonPath) || jsonPath.EndsWith('/') ? Path.Combine(jsonPath, EvalReport.EvalFileName) : jsonPath;
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        AtomicFile.WriteAllBytes(path, System.Text.Encoding.UTF8.GetBytes(Json(outcome) + "\n"));
        string markdownPath = Path.ChangeExtension(path, ".md");
        AtomicFile.WriteAllBytes(markdownPath, System.Text.Encoding.UTF8.GetBytes(outcome.Markdown));
        string lmEvalPath = LmEvalResults.PathBeside(path);
        var lmEval = LmEvalResults.Build(outcome.Result, new LmEvalRun(request.Device.ToString(), request.Options.BatchSize,
            DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0));
        AtomicFile.WriteAllBytes(lmEvalPath, LmEvalResults.Bytes(lmEval));
        return (path, markdownPath, lmEvalPath);
    }
}
