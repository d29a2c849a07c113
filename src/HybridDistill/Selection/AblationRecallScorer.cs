// ar / ar-multihop (the diagnostic baseline of method.md section 7): ablate one teacher layer at a time (its
// attention output zeroed; the residual skips it, its MLP still runs) and measure how much the correct values'
// log-probability drops on the associative-recall prompts of the evaluation suite (kv-recall: about 50
// "key: value" lines with single-token word keys and digit values, then queries; kv-multihop: alias chains),
// built with the teacher's own tokenizer:
//   LP(A) = mean over every query of log p(correct value | prompt; layers A ablated)
//   score(l) = LP({}) - LP({l})     (ties: the lower layer ranks first)
using System.Text.Json.Nodes;
using HybridDistill.Checkpoints;
using HybridDistill.Evaluation;
using HybridDistill.Models;
using HybridDistill.Tokenization;

namespace HybridDistill.Selection;

public sealed class AblationRecallScorer(bool multihop) : PerLayerScorer
{
    public string Task => multihop ? RecallTasks.KvMultihop : RecallTasks.KvRecall;
    public override string Name => multihop ? "ar-multihop" : "ar";
    public override string Description => multihop
        ? "drop in the correct values' log-probability on kv-multihop prompts when one teacher layer's attention is zeroed."
        : "drop in the correct values' log-probability on ~50-line kv-recall prompts when one teacher layer's attention is zeroed.";
    public override IReadOnlyList<ScorerSetting> Settings { get; } =
    [
        new("pairs", "50", "key: value lines per prompt (fewer when the tokenizer has fewer single-token keys or the context is short)"),
        new("queries", "4", "queries per prompt"),
        new("prompts", "24", "prompts (the same ones for every layer)"),
        new("batch", "8", "prompts per forward pass"),
    ];

    protected override IPerLayerRun Open(ScoringContext context)
    {
        string teacherDir = HfCheckpoint.ResolveModelDirectory(context.RequireTeacher());
        int pairs = context.SettingInt("pairs", min: 1);
        int queries = context.SettingInt("queries", min: 1);
        int prompts = context.SettingInt("prompts", min: 1);
        int batch = context.SettingInt("batch", min: 1);
        int seed = (int)context.UseSeed();
        var config = context.TeacherConfig();
        var tokenizer = TokenizerLoader.Load(teacherDir);
        var vocab = RecallVocabulary.Build(tokenizer);
        pairs = Math.Min(pairs, vocab.Keys.Count);
        // the kv-recall prompt of that many pairs sets the length; fewer pairs until it fits the context
        IReadOnlyList<RecallItem> items;
        while (true)
        {
            var recall = new RecallSuite(vocab, null, new RecallSuiteOptions { Pairs = pairs, Queries = queries });
            int length = recall.KvRecall(0, new Random(0)).Length;
            if (length <= config.MaxPositionEmbeddings || pairs <= 1)
            {
                var suite = multihop ? new RecallSuite(vocab, null, new RecallSuiteOptions { Queries = queries }) : recall;
                items = suite.Generate(Task, Math.Min(length, config.MaxPositionEmbeddings), prompts, seed);
                break;
            }
            pairs--;
        }
        var provenance = new JsonObject
        {
            ["teacher"] = context.TeacherFingerprint(),
            ["task"] = Task,
            ["pairs"] = pairs,
            ["length"] = items[0].Length,
            ["prompts"] = items.Count,
            ["answers"] = items.Sum(i => i.Answers.Count),
            ["seed"] = seed,
            ["settings"] = context.ResolvedSettings(),
            ["ablation"] = "attention output zeroed (residual skips it), one layer at a time",
        };
        var teacher = HfCheckpoint.Load(teacherDir);
        teacher.eval();
        return new ArRun(teacher, items, batch, provenance);
    }

    /// <summary>Mean log-probability of the correct answers and exact-match accuracy with <paramref name="ablated"/> layers zeroed.</summary>
    public static (double LogProb, double Accuracy) Measure(HybridCausalLM model, IReadOnlyList<RecallItem> items, ISet<int>? ablated, int batch)
    {
        var scores = RecallScorer.Score(new CausalLMLogits(model, ablated), items, batch);
        var outcomes = scores.SelectMany(s => s.Answers).ToList();
        return (outcomes.Average(o => o.LogProb), outcomes.Average(o => o.Correct ? 1.0 : 0.0));
    }

    sealed class ArRun(HybridCausalLM teacher, IReadOnlyList<RecallItem> items, int batch, JsonObject provenance) : IPerLayerRun
    {
        private (double LogProb, double Accuracy)? baseline;

        public int NumLayers => teacher.Config.NumHiddenLayers;
        public JsonObject Provenance => provenance;

        public LayerResult ScoreLayer(int layer)
        {
            baseline ??= Measure(teacher, items, null, batch);
            var (logProb, accuracy) = Measure(teacher, items, new HashSet<int> { layer }, batch);
            return new LayerResult(layer, baseline.Value.LogProb - logProb, new JsonObject
            {
                ["log_prob"] = logProb, ["accuracy"] = accuracy,
                ["base_log_prob"] = baseline.Value.LogProb, ["base_accuracy"] = baseline.Value.Accuracy,
                ["accuracy_drop"] = baseline.Value.Accuracy - accuracy,
            });
        }

        public void Dispose() => teacher.Dispose();
    }
}
