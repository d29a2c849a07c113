// ar / ar-multihop (the diagnostic baseline of method.md section 7, as the reference code defines it): ablate one
// teacher layer at a time (its attention output zeroed; the residual skips it, its MLP still runs) and measure the
// drop in greedy exact-match accuracy on the evaluation suite's multi-key recall prompts (kv-recall; kv-multihop for
// ar-multihop) at the stage-2 length, built with the teacher's own tokenizer:
//   measure=accuracy (default): Acc(A) = fraction of queries whose every answer token is the argmax (layers A ablated);
//                               score(l) = Acc({}) - Acc({l}), with the drop's 95% interval (Newcombe's hybrid
//                               of the two Wilson intervals); 500 prompts as the reference uses
//   measure=logprob:            LP(A) = mean log p(correct value | prompt; A ablated) on ~50-line prompts (the
//                               earlier log-probability variant); score(l) = LP({}) - LP({l})
// Ties rank the lower layer first.
using System.Text.Json.Serialization;
using HybridDistill.Artifacts;
using HybridDistill.Checkpoints;
using HybridDistill.Evaluation;
using HybridDistill.Models;
using HybridDistill.Tokenization;
using HybridDistill.Training;

namespace HybridDistill.Selection;

public sealed class AblationRecallScorer(bool multihop) : PerLayerScorer
{
    public string Task => multihop ? RecallTasks.KvMultihop : RecallTasks.KvRecall;
    public override string Name => multihop ? "ar-multihop" : "ar";
    public override string Description => multihop
        ? "drop in greedy exact-match accuracy on kv-multihop prompts (stage-2 length) when one teacher layer's attention is zeroed; measure=logprob for the log-probability drop."
        : "drop in greedy exact-match accuracy on kv-recall prompts (stage-2 length) when one teacher layer's attention is zeroed; measure=logprob for the log-probability drop.";
    public override IReadOnlyList<ScorerSetting> Settings { get; } =
    [
        new("measure", "accuracy", "accuracy (greedy exact-match drop, the reference) or logprob (drop in the correct values' log-probability)"),
        new("seq_len", "(recipe)", "prompt length (accuracy): the recipe's stage-2 seq_len with --recipe, else the teacher's context"),
        new("prompts", "(measure)", "prompts, the same for every layer (accuracy: 500 as the reference; logprob: 24)"),
        new("pairs", "50", "logprob: key: value lines per prompt (fewer when the tokenizer has fewer single-token keys or the context is short)"),
        new("queries", "4", "queries per prompt"),
        new("batch", "8", "prompts per forward pass"),
    ];

    public const int DefaultAccuracyPrompts = 500;
    public const int DefaultLogProbPrompts = 24;

    protected override IPerLayerRun Open(ScoringContext context)
    {
        string teacherDir = HfCheckpoint.ResolveModelDirectory(context.RequireTeacher());
        string measure = context.SettingChoice("measure", "accuracy", "logprob");
        bool accuracy = measure == "accuracy";
        int queries = context.SettingInt("queries", min: 1);
        int prompts = context.Setting("prompts") == "(measure)" ? (accuracy ? DefaultAccuracyPrompts : DefaultLogProbPrompts) : context.SettingInt("prompts", min: 1);
        int batch = context.SettingInt("batch", min: 1);
        int seed = (int)context.UseSeed();
        var config = context.TeacherConfig();
        var tokenizer = TokenizerLoader.Load(teacherDir);
        var vocab = RecallVocabulary.Build(tokenizer);
        int? pairs = null;
        string? lengthFrom = null;
        int promptLength;
        IReadOnlyList<RecallItem> items;
        if (accuracy)
        {
            int length = Stage2Length(context, config.MaxPositionEmbeddings);
            var suite = new RecallSuite(vocab, null, new RecallSuiteOptions { Queries = queries });
            items = suite.Generate(Task, length, prompts, seed);
            promptLength = length;
            lengthFrom = context.Set.ContainsKey("seq_len") ? "--set seq_len" : context.RecipePath is not null ? "recipe stage2.seq_len" : "teacher context";
        }
        else
        {
            int pairCount = Math.Min(context.SettingInt("pairs", min: 1), vocab.Keys.Count);
            // the kv-recall prompt of that many pairs sets the length; fewer pairs until it fits the context
            while (true)
            {
                var recall = new RecallSuite(vocab, null, new RecallSuiteOptions { Pairs = pairCount, Queries = queries });
                int length = recall.KvRecall(0, new Random(0)).Length;
                if (length <= config.MaxPositionEmbeddings || pairCount <= 1)
                {
                    var suite = multihop ? new RecallSuite(vocab, null, new RecallSuiteOptions { Queries = queries }) : recall;
                    items = suite.Generate(Task, Math.Min(length, config.MaxPositionEmbeddings), prompts, seed);
                    break;
                }
                pairCount--;
            }
            pairs = pairCount;
            promptLength = items[0].Length;
        }
        var provenance = OpaqueJson.Of(new RecallAblationProvenance(context.TeacherFingerprint(), Task, measure, pairs, promptLength, lengthFrom,
            items.Count, items.Sum(i => i.Answers.Count), seed, context.ResolvedSettings(),
            "attention output zeroed (residual skips it), one layer at a time"), ArtifactJson.Types.RecallAblationProvenance);
        var teacher = HfCheckpoint.Load(teacherDir, context.Device.Torch);      // CausalLMLogits brings logits back to the CPU
        teacher.eval();
        return new ArRun(teacher, items, batch, accuracy, provenance);
    }

    /// <summary>--set seq_len, else the recipe's stage-2 seq_len (--recipe), else the teacher's context; at most the context.</summary>
    static int Stage2Length(ScoringContext context, int maxPositions)
    {
        int length;
        if (context.Set.ContainsKey("seq_len")) length = context.SettingInt("seq_len", min: 1);
        else if (context.RecipePath is not null)
            length = TrainConfig.ResolveSection(Stage.Stage2, Recipe.Load(context.RequireRecipe()).Record, "stage2", [], "recipe [stage2]").SeqLen;
        else length = maxPositions;
        if (length > maxPositions)
            throw new InputException($"--method ar: prompts of {length} tokens exceed the teacher's context of {maxPositions}; set --set seq_len={maxPositions} or lower.");
        return length;
    }

    /// <summary>Mean log-probability of the correct answers and exact-match accuracy with <paramref name="ablated"/> layers zeroed.</summary>
    public static (double LogProb, Proportion Accuracy) Measure(HybridCausalLM model, IReadOnlyList<RecallItem> items, ISet<int>? ablated, int batch)
    {
        var scores = RecallScorer.Score(new CausalLMLogits(model, ablated), items, batch);
        var outcomes = scores.SelectMany(s => s.Answers).ToList();
        return (outcomes.Average(o => o.LogProb), new Proportion(outcomes.Count(o => o.Correct), outcomes.Count));
    }

    static double[] Interval((double Lo, double Hi) i) => [Math.Round(i.Lo, 6), Math.Round(i.Hi, 6)];

    sealed class ArRun(HybridCausalLM teacher, IReadOnlyList<RecallItem> items, int batch, bool accuracy, OpaqueJson provenance) : IPerLayerRun
    {
        private (double LogProb, Proportion Accuracy)? baseline;

        public int NumLayers => teacher.Config.NumHiddenLayers;
        public OpaqueJson Provenance => provenance;

        public LayerResult ScoreLayer(int layer)
        {
            baseline ??= Measure(teacher, items, null, batch);
            var (baseLogProb, baseAccuracy) = baseline.Value;
            var (logProb, acc) = Measure(teacher, items, new HashSet<int> { layer }, batch);
            double accuracyDrop = baseAccuracy.Accuracy - acc.Accuracy;
            var dropInterval = Proportion.DifferenceInterval(baseAccuracy, acc);
            var metrics = new RecallAblationMetrics(acc.Accuracy, Interval(acc.Wilson), acc.Correct, acc.Count,
                baseAccuracy.Accuracy, Interval(baseAccuracy.Wilson), baseAccuracy.Correct, accuracyDrop, Interval(dropInterval), dropInterval.Lo > 0,
                logProb, baseLogProb, baseLogProb - logProb);
            return new LayerResult(layer, accuracy ? accuracyDrop : baseLogProb - logProb, OpaqueJson.Of(metrics, ArtifactJson.Types.RecallAblationMetrics));
        }

        public void Dispose() => teacher.Dispose();
    }
}

/// <summary>ar's provenance: the task and measure, the prompts (pairs for kv tasks, length and where it came from), seed and settings.</summary>
public sealed record RecallAblationProvenance(ModelFingerprint Teacher, string Task, string Measure, [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] int? Pairs, int Length,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? LengthFrom, int Prompts, int Answers, int Seed, IReadOnlyDictionary<string, string> Settings, string Ablation);

/// <summary>ar's measurement of one layer: recall accuracy and answer log-probability with the layer ablated and without (intervals rounded to 6 digits).</summary>
public sealed record RecallAblationMetrics(double Accuracy, IReadOnlyList<double> AccuracyWilson, int Correct, int Answers,
    double BaseAccuracy, IReadOnlyList<double> BaseAccuracyWilson, int BaseCorrect, double AccuracyDrop, IReadOnlyList<double> AccuracyDropInterval,
    bool DropExceedsInterval, double LogProb, double BaseLogProb, double LogProbDrop);
