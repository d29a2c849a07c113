// kl (GA-S2, method.md section 6) and removal (GR-S2, one round): one short stage 2 per candidate layer l,
// every candidate on identical batches in identical order (one seed), through the shared TrainLoop:
//   kl:      student = stage-1 weights with the teacher's softmax attention restored at layer l only;
//            curve_l = logged KL (train "kl" or validation "val_kl") as (tokens, kl) points;
//            score(l) = -(mean of the last n logged KL values)            (low remaining KL = keep l softmax)
//   removal: student = the teacher with only layer l linear (its stage-1 weights); score(l) = +(same late mean)
// Early stopping (kl, all layers in one process, nothing scored yet): the candidates advance in lock-step rounds
// of log_every steps (each pauses at a checkpoint, TrainLoop resumes it bit-identically); after each round the
// top-K sets (K for 12.5% and 25% of L) are recomputed from the curves so far, and the runs stop when every
// top-K set has stayed the same for stable_window consecutive rounds. Each layer's metrics record the tokens
// it used against the full budget.
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using HybridDistill.Attention;
using HybridDistill.Checkpoints;
using HybridDistill.Config;
using HybridDistill.Data;
using HybridDistill.Models;
using HybridDistill.Training;

namespace HybridDistill.Selection;

public sealed class KlScorer(bool removal = false) : PerLayerScorer
{
    public const string RunsDir = "runs";

    public bool Removal { get; } = removal;
    public override string Name => Removal ? "removal" : "kl";
    public override string Description => Removal
        ? "final stage-2 KL of the teacher with only layer l linearised from --stage1 (higher = keep softmax); --data token dir, --budget-tokens per run."
        : "per layer, a short stage 2 from --stage1 with softmax restored at l; score = -(late mean KL); --data token dir, --budget-tokens per run.";

    static readonly string[] MethodKeys = ["last_n", "curve", "early_stop", "stable_window", "stable_budgets"];

    public override IReadOnlyList<ScorerSetting> Settings { get; } =
    [
        new("last_n", "3", "logged KL values averaged for the score"),
        new("curve", "train", "train (logged training KL) or val (validation KL at eval_every)"),
        new("early_stop", "auto", "auto (lock-step rounds with top-K stability when all layers run in one process; kl only) or off"),
        new("stable_window", "3", "rounds the top-K sets must stay unchanged to stop early"),
        new("stable_budgets", string.Join(",", KlCurves.DefaultStabilityBudgets.Select(b => $"{b * 100:0.###}%")), "budgets (comma-separated) whose top-K sets must all settle to stop early; merge reports on the same K"),
        .. TrainConfig.KeysOf(Stage.Stage2).Where(k => k is not ("softmax_layers" or "train_tokens" or "seed" or "checkpoint_every" or "keep_checkpoints"))
            .Select(k => new ScorerSetting(k, "(recipe)", "stage-2 setting of the scoring runs (default: the recipe's score, then stage2 section)")),
    ];

    protected override IPerLayerRun Open(ScoringContext context)
    {
        string teacherDir = HfCheckpoint.ResolveModelDirectory(context.RequireTeacher());
        string stage1Dir = HfCheckpoint.ResolveModelDirectory(context.RequireStage1());
        var source = context.RequireData();
        if (source is not TokenDirectoryWindowSource tokenDir)
            throw new InputException($"--method {Name} trains on --data: pass a token directory made by hybrid tokenize (not a text file).");

        // The score section: the recipe given, else the one stored in the stage-1 run.
        JsonObject recipe = context.RecipePath is not null
            ? Recipe.Load(context.RequireRecipe()).Json
            : StoredRecipe(stage1Dir);
        var scoreSection = recipe["score"] as JsonObject ?? new JsonObject();
        var trainSection = recipe["stage2"] is JsonObject s2 ? (JsonObject)s2.DeepClone() : new JsonObject();
        foreach (var (key, value) in scoreSection)
            if (!MethodKeys.Contains(key)) trainSection[key] = value?.DeepClone();
        trainSection.Remove("softmax_layers");
        var overrides = context.Set.Where(p => !MethodKeys.Contains(p.Key)).Select(p => $"{p.Key}={p.Value}").ToList();
        var baseConfig = TrainConfig.Resolve(Stage.Stage2, trainSection, overrides, "recipe [score]");
        long budget = context.BudgetTokensOr(baseConfig.TrainTokens);
        long seed = context.UseSeed();
        var config = baseConfig with { TrainTokens = budget, Seed = seed, CheckpointEvery = int.MaxValue, KeepCheckpoints = 1 };

        string Method(string key) => context.Set.TryGetValue(key, out var v) ? v
            : scoreSection[key] is JsonValue j ? j.ToString() : context.Setting(key);
        int lastN = ParseInt(Method("last_n"), "last_n", 1);
        int window = ParseInt(Method("stable_window"), "stable_window", 1);
        var stableBudgets = ParseBudgets(Method("stable_budgets"));
        string curve = Method("curve") is var c && c is "train" or "val" ? c : throw new InputException($"--set curve={Method("curve")}: expected train or val.");
        string earlyStop = Method("early_stop") is var e && e is "auto" or "off" ? e : throw new InputException($"--set early_stop={Method("early_stop")}: expected auto or off.");

        var teacherConfig = context.TeacherConfig();
        var stage1Config = ModelConfig.Load(stage1Dir);
        if (stage1Config.NumHiddenLayers != teacherConfig.NumHiddenLayers)
            throw new InputException($"{stage1Dir}: {stage1Config.NumHiddenLayers} layers, the teacher {teacherConfig.NumHiddenLayers}: not a stage-1 run of this teacher.");
        var data = new TokenDataset(tokenDir.Directory);
        try { data.CheckFits(teacherConfig.VocabSize, config.SeqLen, teacherDir); }
        catch { data.Dispose(); throw; }

        var provenance = new JsonObject
        {
            ["teacher"] = context.TeacherFingerprint(),
            ["stage1"] = Fingerprint(stage1Dir),
            ["data"] = new JsonObject
            {
                ["kind"] = "tokens", ["path"] = data.Directory,
                ["sources"] = new JsonArray(data.Manifest.Sources.Select(src => (JsonNode)src.Sha256).ToArray()),
                ["train_tokens"] = data.Manifest.Train.Tokens, ["val_tokens"] = data.Manifest.Val.Tokens,
            },
            ["budget_tokens"] = budget,
            ["seed"] = seed,
            ["train_config"] = config.ToJson(Stage.Stage2),
            ["method"] = new JsonObject
            {
                ["last_n"] = lastN, ["curve"] = curve, ["early_stop"] = earlyStop, ["stable_window"] = window,
                ["stable_budgets"] = new JsonArray(stableBudgets.Select(b => (JsonNode)b).ToArray()),
            },
            ["student"] = Removal ? "teacher with layer l linear (stage-1 weights)" : "stage-1 weights with teacher softmax at layer l",
        };
        string runKey = LayerResultStore.RunKey(provenance);
        bool ownsRoot = context.OutDir is null;
        string root = ownsRoot ? Path.Combine(Path.GetTempPath(), $"hybrid-{Name}-{Guid.NewGuid():N}") : Path.Combine(Path.GetFullPath(context.OutDir!), RunsDir);

        int numLayers = teacherConfig.NumHiddenLayers;
        var requested = context.LayersToScore(numLayers);
        bool anyDone = context.OutDir is not null && new LayerResultStore(context.OutDir).FinishedLayers(numLayers).Length > 0;
        bool lockStep = !Removal && earlyStop == "auto" && context.Layers is null && !anyDone && numLayers > 1;

        var teacher = HfCheckpoint.Load(teacherDir);
        teacher.eval();
        return new KlRun(this, teacher, stage1Dir, stage1Config, data, config, provenance, runKey, root, ownsRoot,
            lastN, window, KlCurves.KeepCounts(stableBudgets, numLayers), curve, lockStep ? requested : null, context);
    }

    /// <summary>"12.5%,25%" -> [0.125, 0.25].</summary>
    static decimal[] ParseBudgets(string text)
    {
        var parts = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (parts.Length == 0) throw new InputException($"--set stable_budgets={text}: expected budgets such as 12.5%,25%.");
        try { return parts.Select(LayerSelection.ParseBudget).Distinct().Order().ToArray(); }
        catch (InputException e) { throw new InputException($"--set stable_budgets={text}: {e.Message}", e); }
    }

    static int ParseInt(string text, string key, int min) =>
        int.TryParse(text, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out int v) && v >= min
            ? v : throw new InputException($"--set {key}={text}: expected an integer of at least {min}.");

    static JsonObject StoredRecipe(string stage1Dir)
    {
        var path = Path.Combine(stage1Dir, DistillRun.RunConfigFile);
        if (!File.Exists(path)) return new JsonObject();
        try { return (JsonNode.Parse(File.ReadAllText(path)) as JsonObject)?["recipe"] as JsonObject is { } r ? (JsonObject)r.DeepClone() : new JsonObject(); }
        catch (JsonException e) { throw new InputException($"{path}: not valid JSON ({e.Message}); pass --recipe FILE instead.", e); }
    }

    static JsonObject Fingerprint(string dir) => new()
    {
        ["path"] = dir,
        ["config_sha256"] = Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(Path.Combine(dir, "config.json")))),
        ["weights_bytes"] = Directory.EnumerateFiles(dir, "*.safetensors").Sum(f => new FileInfo(f).Length),
    };

    /// <summary>The layer types of candidate <paramref name="layer"/>'s student.</summary>
    public IReadOnlyList<string> StudentLayerTypes(ModelConfig stage1, int layer) =>
        Enumerable.Range(0, stage1.NumHiddenLayers).Select(l =>
            Removal ? (l == layer ? stage1.LayerTypes[l] : LayerKinds.Softmax)
                    : (l == layer ? LayerKinds.Softmax : stage1.LayerTypes[l])).ToArray();

    /// <summary>(tokens, kl) points of a run's metrics.jsonl: the "kl" (train) or "val_kl" (val) of every line that has it.</summary>
    public static CurvePoint[] ReadCurve(string runDir, string curve)
    {
        var path = Path.Combine(runDir, TrainLoop.MetricsFile);
        if (!File.Exists(path)) return [];
        string key = curve == "val" ? "val_kl" : "kl";
        var points = new List<CurvePoint>();
        foreach (var line in File.ReadLines(path))
        {
            if (line.Trim().Length == 0) continue;
            if (JsonNode.Parse(line) is JsonObject o && o[key] is JsonValue v)
                points.Add(new CurvePoint((long)o["tokens"]!, v.GetValue<double>()));
        }
        return points.ToArray();
    }

    sealed class KlRun(KlScorer scorer, HybridCausalLM teacher, string stage1Dir, ModelConfig stage1Config, TokenDataset data,
        TrainConfig config, JsonObject provenance, string runKey, string root, bool ownsRoot, int lastN, int window, int[] stableKs, string curve,
        IReadOnlyList<int>? lockStepLayers, ScoringContext context) : IPerLayerRun
    {
        private Dictionary<int, LayerResult>? lockStepResults;

        public int NumLayers => teacher.Config.NumHiddenLayers;
        public JsonObject Provenance => provenance;

        public LayerResult ScoreLayer(int layer)
        {
            if (lockStepLayers is not null && lockStepLayers.Contains(layer))
            {
                lockStepResults ??= RunLockStep();
                return lockStepResults[layer];
            }
            var (curvePoints, tokens) = Advance(layer, long.MaxValue);
            return Result(layer, curvePoints, tokens, earlyStopped: false);
        }

        LayerResult Result(int layer, IReadOnlyList<CurvePoint> points, long tokens, bool earlyStopped, JsonObject? extra = null)
        {
            if (points.Count == 0) throw new InputException($"layer {layer}: the scoring run logged no {curve} KL; lower log_every/eval_every or raise --budget-tokens.");
            double late = -KlCurves.LateMeanScore(points, lastN);
            var metrics = new JsonObject
            {
                ["late_kl"] = late,
                ["final_kl"] = points[^1].Kl,
                ["first_kl"] = points[0].Kl,
                ["tokens_used"] = tokens,
                ["budget_tokens"] = config.TotalSteps * config.TokensPerStep,
                ["early_stopped"] = earlyStopped,
            };
            if (extra is not null) foreach (var (k, v) in extra) metrics[k] = v?.DeepClone();
            return new LayerResult(layer, scorer.Removal ? late : -late, metrics, points.ToArray());
        }

        string RunDir(int layer) => Path.Combine(root, $"layer-{layer}");

        /// <summary>Runs (or resumes) candidate <paramref name="layer"/> up to <paramref name="untilStep"/> optimizer steps; its curve so far and tokens trained.</summary>
        (CurvePoint[] Curve, long Tokens) Advance(int layer, long untilStep)
        {
            var dir = RunDir(layer);
            var keyFile = Path.Combine(dir, "run_key");
            if (Directory.Exists(dir) && (!File.Exists(keyFile) || File.ReadAllText(keyFile).Trim() != runKey))
                Directory.Delete(dir, recursive: true);     // another job's run: never resumed
            Directory.CreateDirectory(dir);
            AtomicFile.WriteAllBytes(keyFile, System.Text.Encoding.UTF8.GetBytes(runKey));
            var doneFile = Path.Combine(dir, "done");
            if (File.Exists(doneFile))
                return (ReadCurve(dir, curve), long.Parse(File.ReadAllText(doneFile).Trim(), System.Globalization.CultureInfo.InvariantCulture));
            if (untilStep < config.TotalSteps && TrainLoop.ListCheckpoints(dir).LastOrDefault()?.Step >= untilStep)
                return (ReadCurve(dir, curve), untilStep * config.TokensPerStep);

            using var student = StudentBuilder.Build(teacher, scorer.StudentLayerTypes(stage1Config, layer), stage1Dir, config.Seed,
                WeightTransfer.ParseKvExpansion(config.KvExpand));
            student.train();
            var objective = new Stage2Distillation(teacher, student, config);
            using var pause = CancellationTokenSource.CreateLinkedTokenSource(context.Cancellation);
            var progress = new StepWatch(untilStep, pause);
            var runConfig = new JsonObject { ["teacher"] = provenance["teacher"]?["path"]?.DeepClone(), ["layer"] = layer, ["run_key"] = runKey };
            var result = TrainLoop.Run(objective, data, config, dir, runConfig, resume: true, progress, pause.Token);
            context.Cancellation.ThrowIfCancellationRequested();
            if (result.Completed) AtomicFile.WriteAllBytes(doneFile, System.Text.Encoding.UTF8.GetBytes(result.Tokens.ToString(System.Globalization.CultureInfo.InvariantCulture)));
            return (ReadCurve(dir, curve), result.Tokens);
        }

        /// <summary>Cancels the run once it reaches the pause step (TrainLoop then checkpoints and returns).</summary>
        sealed class StepWatch(long untilStep, CancellationTokenSource pause) : IProgress<TrainProgress>
        {
            public void Report(TrainProgress value)
            {
                if (value.Event == "step" && value.Step >= untilStep) pause.Cancel();
            }
        }

        Dictionary<int, LayerResult> RunLockStep()
        {
            var layers = lockStepLayers!;
            var ks = stableKs;
            var curves = new Dictionary<int, IReadOnlyList<CurvePoint>>();
            var tokens = new Dictionary<int, long>();
            var previous = new Dictionary<int, int[]>();
            int stableRounds = 0, round = 0;
            long interval = config.LogEvery;
            bool stopped = false;
            long step = 0;
            var history = new JsonArray();
            while (step < config.TotalSteps)
            {
                round++;
                step = Math.Min(config.TotalSteps, step + interval);
                foreach (int l in layers)
                {
                    (var c, tokens[l]) = Advance(l, step);
                    curves[l] = c;
                }
                var tops = ks.ToDictionary(k => k, k => KlCurves.TopK(curves, Math.Min(k, layers.Count), int.MaxValue, lastN));
                bool same = previous.Count > 0 && ks.All(k => previous[k].SequenceEqual(tops[k]));
                stableRounds = same ? stableRounds + 1 : 0;
                previous = tops;
                history.Add(new JsonObject
                {
                    ["round"] = round, ["tokens"] = step * config.TokensPerStep,
                    ["top_k"] = new JsonObject(tops.Select(t => KeyValuePair.Create(t.Key.ToString(System.Globalization.CultureInfo.InvariantCulture),
                        (JsonNode?)new JsonArray(t.Value.Select(x => (JsonNode)x).ToArray())))),
                });
                context.Progress?.Report($"round {round} ({step * config.TokensPerStep} tokens): top-K {string.Join(" ", tops.Select(t => $"K={t.Key}:[{string.Join(",", t.Value)}]"))}, stable {stableRounds}/{window}");
                if (stableRounds >= window && step < config.TotalSteps) { stopped = true; break; }
            }
            long budget = config.TotalSteps * config.TokensPerStep;
            long used = tokens.Values.Sum();
            var summary = new JsonObject
            {
                ["lock_step_rounds"] = round,
                ["stopped_at_tokens"] = step * config.TokensPerStep,
                ["all_runs_tokens_used"] = used,
                ["all_runs_tokens_budget"] = budget * layers.Count,
                ["tokens_saved_fraction"] = Math.Round(1 - (double)used / (budget * layers.Count), 4),
                ["stable_ks"] = new JsonArray(ks.Select(k => (JsonNode)k).ToArray()),
                ["stable_window"] = window,
                ["rounds"] = history,
            };
            return layers.ToDictionary(l => l, l => Result(l, curves[l], tokens[l], stopped, new JsonObject { ["lock_step"] = summary.DeepClone() }));
        }

        public void Dispose()
        {
            teacher.Dispose();
            data.Dispose();
            if (ownsRoot && Directory.Exists(root)) Directory.Delete(root, recursive: true);
        }
    }
}
