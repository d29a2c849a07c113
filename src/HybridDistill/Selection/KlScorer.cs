// kl (GA-S2, method.md section 6) and removal (GR-S2, one round): one short stage 2 per candidate layer l,
// every candidate on identical batches in identical order (one seed), through the shared Trainer:
//   kl:      student = stage-1 weights with the teacher's softmax attention restored at layer l only;
//            curve_l = logged KL (train "kl" or validation "val_kl") as (tokens, kl) points;
//            score(l) = -(mean of the last n logged KL values after step 0)   (low remaining KL = keep l softmax)
//   removal: student = the teacher with only layer l linear (its stage-1 weights); score(l) = +(same late mean)
// Early stopping (kl, all layers in one process, nothing scored yet): the candidates advance in lock-step rounds
// of log_every steps (each candidate's Trainer runs until the round's step and saves a checkpoint; the next round
// resumes it bit-identically); after each round the stopping rule of KlCurves (min_fraction of the budget, top-K
// held for stable_window rounds, K-th vs (K+1)-th margin above margin_z x their curves' noise) is checked for the K
// of every stable_budgets entry, and the runs stop when it holds for all of them. With full_budget=true every run continues to the full budget: scores.json
// is scored from the curves cut at the stop point (method "kl"), scores-full.json from the whole curves ("kl-full").
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;
using HybridDistill.Artifacts;
using HybridDistill.Attention;
using HybridDistill.Checkpoints;
using HybridDistill.Config;
using HybridDistill.Data;
using HybridDistill.Models;
using HybridDistill.Training;
using TorchSharp;

namespace HybridDistill.Selection;

public sealed class KlScorer(bool removal = false) : PerLayerScorer
{
    public const string RunsDir = "runs";

    public bool Removal { get; } = removal;
    public override string Name => Removal ? "removal" : "kl";
    public override string Description => Removal
        ? "final stage-2 KL of the teacher with only layer l linearised from --stage1 (higher = keep softmax); --data token dir, --budget-tokens per run."
        : "per layer, a short stage 2 from --stage1 with softmax restored at l; score = -(late mean KL); --data token dir, --budget-tokens per run.";

    /// <summary>The words of the <c>curve</c> setting.</summary>
    public static readonly SettingWords<KlCurve> CurveWords = new(("train", KlCurve.Training), ("val", KlCurve.Validation));

    static readonly string[] MethodKeys = ["last_n", "curve", "early_stop", "min_fraction", "stable_window", "margin_z", "stable_budgets", "full_budget"];

    /// <summary>The full-budget scores' file beside scores.json (kl with full_budget=true).</summary>
    public const string FullScoresFile = "scores-full.json";
    public const string FullMethod = "kl-full";

    public override IReadOnlyList<ScorerSetting> Settings { get; } =
    [
        new("last_n", "3", "logged KL values averaged for the score"),
        new("curve", "train", "train (logged training KL) or val (validation KL at eval_every)"),
        new("early_stop", "auto", "auto (lock-step rounds with the stopping rule when all layers run in one process; kl only) or off"),
        new("min_fraction", "0.3", "no early stop before this fraction of the scoring budget (the paper's sets settle after 25-42%)"),
        new("stable_window", "3", "rounds the top-K sets must stay unchanged to stop early"),
        new("margin_z", "2", "stop only when the K-th and (K+1)-th scores differ by more than this many standard errors of their curves"),
        new("stable_budgets", string.Join(",", KlCurves.DefaultStabilityBudgets), "budgets (comma-separated layer counts 1L,2L or fractions 12.5%,25%) whose top-K must all stop"),
        new("full_budget", "false", "true: every run continues to the full budget after the stop point; scores.json from the curves cut there, scores-full.json from the whole curves"),
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
        OpaqueJson recipe = context.RecipePath is not null
            ? Recipe.Load(context.RequireRecipe()).Record
            : StoredRecipe(stage1Dir);
        var scoreSection = recipe.Part("score") ?? OpaqueJson.EmptyObject;
        var overrides = context.Set.Where(p => !MethodKeys.Contains(p.Key)).Select(p => $"{p.Key}={p.Value}").ToList();
        var baseConfig = TrainConfig.ResolveScoring(recipe, MethodKeys, overrides, "recipe [score]");
        long budget = context.BudgetTokensOr(baseConfig.TrainTokens);
        long seed = context.UseSeed();
        var config = baseConfig with { TrainTokens = budget, Seed = seed, CheckpointEvery = int.MaxValue, KeepCheckpoints = 1 };

        string Method(string key) => context.Set.TryGetValue(key, out var v) ? v
            : scoreSection.ValueText(key) ?? context.Setting(key);
        var teacherConfig = context.TeacherConfig();
        int numLayers = teacherConfig.NumHiddenLayers;
        var settings = KlSettings.Parse(Method, numLayers);

        var stage1Config = ModelConfig.Load(stage1Dir);
        if (stage1Config.NumHiddenLayers != teacherConfig.NumHiddenLayers)
            throw new InputException($"{stage1Dir}: {stage1Config.NumHiddenLayers} layers, the teacher {teacherConfig.NumHiddenLayers}: not a stage-1 run of this teacher.");
        var data = new TokenDataset(tokenDir.Directory);
        try { data.CheckFits(teacherConfig.VocabSize, config.SeqLen, teacherDir); }
        catch { data.Dispose(); throw; }

        var provenance = OpaqueJson.Of(new KlProvenance(context.TeacherFingerprint(), ModelFingerprint.Of(stage1Dir),
            new TokenDataDescription("tokens", data.Directory, data.Manifest.Sources.Select(src => src.Sha256).ToArray(), data.Manifest.Train.Tokens, data.Manifest.Val.Tokens),
            budget, seed, config.ToRecord(Stage.Stage2),
            settings.ToRecord(),
            Removal ? "teacher with layer l linear (stage-1 weights)" : "stage-1 weights with teacher softmax at layer l"), ArtifactJson.Types.KlProvenance);
        string runKey = LayerResultStore.RunKey(provenance);
        bool ownsRoot = context.OutDir is null;
        string root = ownsRoot ? Path.Combine(Path.GetTempPath(), $"hybrid-{Name}-{Guid.NewGuid():N}") : Path.Combine(Path.GetFullPath(context.OutDir!), RunsDir);

        var requested = context.LayersToScore(numLayers);
        bool anyDone = context.OutDir is not null && new LayerResultStore(context.OutDir).FinishedLayers(numLayers).Length > 0;
        bool lockStep = !Removal && settings.EarlyStop == KlEarlyStop.Auto && context.Layers is null && !anyDone && numLayers > 1;

        var teacher = HfCheckpoint.Load(teacherDir, context.Device.Torch);
        teacher.eval();
        return new KlRun(this, teacher, teacherDir, stage1Dir, stage1Config, data, config, provenance, runKey, root, ownsRoot,
            settings.Rule, settings.StopKs, settings.FullBudget, settings.Curve, lockStep ? requested : null, context, TeacherOutputCache.TeacherKey(teacherDir));
    }

    /// <summary>The stopping rule and its K recorded in a kl job's provenance; null for other jobs.</summary>
    public static (KlCurves.StopRule Rule, int[] Ks, bool FullBudget)? RuleOf(OpaqueJson provenance)
    {
        if (provenance.As(ArtifactJson.Types.KlJobView).Method is not { MinFraction: double minFraction, StopKs: { } stopKs } s) return null;
        return (new KlCurves.StopRule(minFraction, s.StableWindow, s.MarginZ, s.LastN), stopKs.ToArray(), s.FullBudget);
    }

    /// <summary>
    /// scores-full.json of a kl job run with full_budget=true: the same layers scored from their whole curves
    /// (method "kl-full"); null when the job did not run every candidate to the full budget.
    /// </summary>
    public static LayerScores? FullBudgetScores(LayerScores early)
    {
        if (early.Method != "kl" || RuleOf(early.Provenance) is not { FullBudget: true } || early.Curves is null || early.Curves.Count != early.NumLayers)
            return null;
        var curves = early.Curves;
        int lastN = RuleOf(early.Provenance)!.Value.Rule.LastN;
        var scores = Enumerable.Range(0, early.NumLayers).Select(l => KlCurves.LateMeanScore(curves[l], lastN)).ToArray();
        var details = Enumerable.Range(0, early.NumLayers).Select(l => (OpaqueJson?)OpaqueJson.Of(
            new FullBudgetDetail(-scores[l], curves[l][^1].Kl, curves[l][^1].Tokens), ArtifactJson.Types.FullBudgetDetail)).ToArray();
        var provenance = early.Provenance.With("scored_from",
            "the whole curves of the kl job (full budget); scores.json holds the early-stopped scores", ArtifactJson.Types.String);
        return LayerScores.FromScores(FullMethod, scores, provenance) with { Details = details, Curves = curves };
    }

    static OpaqueJson StoredRecipe(string stage1Dir)
    {
        var path = Path.Combine(stage1Dir, DistillRun.RunConfigFile);
        if (!File.Exists(path)) return OpaqueJson.EmptyObject;
        try { return JsonSerializer.Deserialize(File.ReadAllText(path), ArtifactJson.Types.StoredRunRecipe)?.Recipe ?? OpaqueJson.EmptyObject; }
        catch (JsonException e) { throw new InputException($"{path}: not valid JSON ({e.Message}); pass --recipe FILE instead.", e); }
    }

    /// <summary>The layer types of candidate <paramref name="layer"/>'s student.</summary>
    public IReadOnlyList<string> StudentLayerTypes(ModelConfig stage1, int layer) =>
        Enumerable.Range(0, stage1.NumHiddenLayers).Select(l =>
            Removal ? (l == layer ? stage1.LayerTypes[l] : LayerKinds.Softmax)
                    : (l == layer ? LayerKinds.Softmax : stage1.LayerTypes[l])).ToArray();

    /// <summary>(tokens, kl) points of a run's metrics.jsonl: the "kl" (train) or "val_kl" (val) of every line that has it.</summary>
    public static CurvePoint[] ReadCurve(string runDir, KlCurve curve)
    {
        var path = Path.Combine(runDir, TrainCheckpoint.MetricsFile);
        if (!File.Exists(path)) return [];
        string key = curve == KlCurve.Validation ? "val_kl" : "kl";
        var points = new List<CurvePoint>();
        foreach (var line in File.ReadLines(path))
        {
            if (line.Trim().Length == 0) continue;
            var logged = JsonSerializer.Deserialize(line, ArtifactJson.Types.KlCurveLine)!;
            if ((curve == KlCurve.Validation ? logged.ValKl : logged.Kl) is double kl)
                points.Add(new CurvePoint(logged.Tokens ?? throw new InputException($"{path}: a line with \"{key}\" but no \"tokens\"; score again."), kl));
        }
        return points.ToArray();
    }

    sealed class KlRun(KlScorer scorer, HybridCausalLM teacher, string teacherDir, string stage1Dir, ModelConfig stage1Config, TokenDataset data,
        TrainConfig config, OpaqueJson provenance, string runKey, string root, bool ownsRoot, KlCurves.StopRule rule, int[] stopKs, bool fullBudget, KlCurve curve,
        IReadOnlyList<int>? lockStepLayers, ScoringContext context, string teacherKey) : IPerLayerRun
    {
        private Dictionary<int, LayerResult>? lockStepResults;

        public int NumLayers => teacher.Config.NumHiddenLayers;
        public OpaqueJson Provenance => provenance;

        public LayerResult ScoreLayer(int layer)
        {
            if (lockStepLayers is not null && lockStepLayers.Contains(layer))
            {
                lockStepResults ??= RunLockStep();
                return lockStepResults[layer];
            }
            var (curvePoints, tokens) = Advance(layer, long.MaxValue);
            return Result(layer, curvePoints, curvePoints, tokens, earlyStopped: false);
        }

        /// <summary>The layer's result: scored from <paramref name="scored"/> (the curve up to the stop point), keeping <paramref name="curve"/> (all it ran).</summary>
        LayerResult Result(int layer, IReadOnlyList<CurvePoint> scored, IReadOnlyList<CurvePoint> kept, long tokens, bool earlyStopped, LockStepRecord? lockStep = null)
        {
            if (KlCurves.AfterStepZero(scored).Length == 0)
                throw new InputException($"layer {layer}: the scoring run logged no {CurveWords.Of(curve)} KL after step 0; lower log_every/eval_every or raise --budget-tokens.");
            double late = -KlCurves.LateMeanScore(scored, rule.LastN);
            var metrics = new KlLayerMetrics(late, scored[^1].Kl, scored[0].Kl, tokens, config.TotalSteps * config.TokensPerStep, earlyStopped,
                kept.Count > scored.Count ? -KlCurves.LateMeanScore(kept, rule.LastN) : null, lockStep);
            return new LayerResult(layer, scorer.Removal ? late : -late, OpaqueJson.Of(metrics, ArtifactJson.Types.KlLayerMetrics), kept.ToArray());
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
            if (untilStep < config.TotalSteps && TrainCheckpoint.List(dir).LastOrDefault()?.Step >= untilStep)
                return (ReadCurve(dir, curve), untilStep * config.TokensPerStep);

            using var student = StudentBuilder.Build(teacher, scorer.StudentLayerTypes(stage1Config, layer), stage1Dir, config.Seed,
                config.KvExpand, config.DropQkvBias);
            if (!context.Device.IsCpu) student.to(context.Device.Torch);        // built on the CPU from the teacher's weights, then moved
            student.train();
            // every candidate trains on the same batches: with the process's cache on (hybrid run), the teacher runs once per batch
            var objective = new Stage2Distillation(teacher, student, config) { TeacherKey = teacherKey };
            var runConfig = new KlRunConfig(teacherDir, layer, runKey);
            using var trainer = new Trainer(objective, data, config, dir, OpaqueJson.Of(runConfig, ArtifactJson.Types.KlRunConfig), teacher: runConfig.Teacher);
            trainer.ResumeOrStartOver(resume: true);
            var result = trainer.RunUntil(untilStep, context.Cancellation);
            if (!result.Completed) trainer.Save();                          // paused (or cancelled): the next round resumes here
            context.Cancellation.ThrowIfCancellationRequested();
            if (result.Completed) AtomicFile.WriteAllBytes(doneFile, System.Text.Encoding.UTF8.GetBytes(result.Tokens.ToString(System.Globalization.CultureInfo.InvariantCulture)));
            return (ReadCurve(dir, curve), result.Tokens);
        }

        Dictionary<int, LayerResult> RunLockStep()
        {
            var layers = lockStepLayers!;
            var ks = stopKs.Where(k => k < layers.Count).ToArray();
            var curves = new Dictionary<int, IReadOnlyList<CurvePoint>>();
            var tokens = new Dictionary<int, long>();
            int round = 0;
            long interval = config.LogEvery;
            long budget = config.TotalSteps * config.TokensPerStep;
            long step = 0;
            long? stopStep = null;
            var history = new List<LockStepRound>();
            while (step < config.TotalSteps)
            {
                round++;
                step = Math.Min(config.TotalSteps, step + interval);
                foreach (int l in layers)
                {
                    (var c, tokens[l]) = Advance(l, step);
                    curves[l] = c;
                }
                if (stopStep is not null) continue;   // full_budget: running on past the stop point
                int points = curves.Values.Min(c => c.Count);
                var stops = ks.ToDictionary(k => k, k => KlCurves.Stops(curves, k, points, budget, rule));
                var tops = ks.ToDictionary(k => k, k => KlCurves.AfterStepZero(curves.Values.First()).Length == 0 ? [] : KlCurves.TopK(curves, k, points, rule.LastN));
                history.Add(new LockStepRound(round, step * config.TokensPerStep, tops.ToDictionary(t => t.Key, t => (IReadOnlyList<int>)t.Value), stops));
                context.Progress?.Report($"round {round} ({step * config.TokensPerStep} tokens): " +
                    string.Join(" ", tops.Select(t => $"K={t.Key}:[{string.Join(",", t.Value)}]{(stops[t.Key] ? " stops" : "")}")));
                if (ks.Length > 0 && stops.Values.All(x => x) && step < config.TotalSteps)
                {
                    stopStep = step;
                    if (!fullBudget) break;
                }
            }
            long stopTokens = (stopStep ?? config.TotalSteps) * config.TokensPerStep;
            long used = fullBudget ? stopTokens * layers.Count : tokens.Values.Sum();
            var summary = new LockStepRecord(round, ks, rule, stopStep is not null, stopStep ?? config.TotalSteps, stopTokens, budget, used,
                budget * layers.Count, Math.Round(1 - (double)used / (budget * layers.Count), 4), fullBudget, history);
            return layers.ToDictionary(l => l, l =>
            {
                var cut = curves[l].Where(p => p.Tokens <= stopTokens).ToArray();
                return Result(l, cut, curves[l], Math.Min(tokens[l], stopTokens), stopStep is not null, summary);
            });
        }

        public void Dispose()
        {
            teacher.Dispose();
            data.Dispose();
            if (ownsRoot && Directory.Exists(root)) Directory.Delete(root, recursive: true);
        }
    }
}

/// <summary>The token directory a kl job trains on: its sources' sha256 and split sizes.</summary>
public sealed record TokenDataDescription(string Kind, string Path, IReadOnlyList<string> Sources, long TrainTokens, long ValTokens);

/// <summary>
/// kl's method settings (the first eight of <see cref="KlScorer.Settings"/>), parsed in one place from their text: --set,
/// else the recipe's score section, else the default. <see cref="ToRecord"/> is what provenance.method records.
/// </summary>
public sealed record KlSettings(int LastN, KlCurve Curve, KlEarlyStop EarlyStop, KlCurves.StopRule Rule, string StableBudgets, int[] StopKs, bool FullBudget)
{
    /// <summary>The words of the <c>early_stop</c> setting.</summary>
    public static readonly SettingWords<KlEarlyStop> EarlyStopWords = new(("auto", KlEarlyStop.Auto), ("off", KlEarlyStop.Off));

    /// <summary>The settings from <paramref name="text"/> (a setting's key -> its text); errors name the key and what it takes.</summary>
    public static KlSettings Parse(Func<string, string> text, int numLayers)
    {
        int lastN = Int(text("last_n"), "last_n", 1);
        var rule = new KlCurves.StopRule(Fraction(text("min_fraction"), "min_fraction"), Int(text("stable_window"), "stable_window", 0),
            Number(text("margin_z"), "margin_z"), lastN);
        string stableBudgets = text("stable_budgets");
        var stopKs = KlCurves.ParseKs(stableBudgets, numLayers);
        var curve = Word(KlScorer.CurveWords, text("curve"), "curve");
        var earlyStop = Word(EarlyStopWords, text("early_stop"), "early_stop");
        bool fullBudget = text("full_budget") is var f && f is "true" or "false" ? f == "true"
            : throw new InputException($"--set full_budget={f}: expected true or false.");
        return new KlSettings(lastN, curve, earlyStop, rule, stableBudgets, stopKs, fullBudget);
    }

    public KlMethodSettings ToRecord() => new(LastN, KlScorer.CurveWords.Of(Curve), EarlyStopWords.Of(EarlyStop), Rule.MinFraction, Rule.Window,
        Rule.MarginZ, StableBudgets, StopKs, FullBudget);

    static T Word<T>(SettingWords<T> words, string text, string key) where T : struct, Enum =>
        words.TryParse(text, out var value) ? value : throw new InputException($"--set {key}={text}: expected {string.Join(" or ", words.All)}.");

    static int Int(string text, string key, int min) =>
        int.TryParse(text, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out int v) && v >= min
            ? v : throw new InputException($"--set {key}={text}: expected an integer of at least {min}.");

    static double Number(string text, string key) =>
        double.TryParse(text, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double v) && v >= 0 && double.IsFinite(v)
            ? v : throw new InputException($"--set {key}={text}: expected a number of at least 0.");

    static double Fraction(string text, string key) =>
        Number(text, key) is var v && v <= 1 ? v : throw new InputException($"--set {key}={text}: expected a fraction between 0 and 1.");
}

/// <summary>kl's early stopping: lock-step rounds with the stopping rule when every layer runs in one process (auto), or never (off).</summary>
public enum KlEarlyStop { Auto, Off }

/// <summary>kl's method settings as recorded (provenance.method); <see cref="KlScorer.RuleOf"/> reads the stopping rule back.</summary>
public sealed record KlMethodSettings(int LastN, string Curve, string EarlyStop, double MinFraction, int StableWindow, double MarginZ,
    string StableBudgets, IReadOnlyList<int> StopKs, bool FullBudget);

/// <summary>kl's provenance (also what its run_key hashes, paths left out): teacher, stage 1, data, budget, seed, the resolved stage-2 config, the method's settings.</summary>
public sealed record KlProvenance(ModelFingerprint Teacher, ModelFingerprint Stage1, TokenDataDescription Data, long BudgetTokens, long Seed,
    OpaqueJson TrainConfig, KlMethodSettings Method, string Student);

/// <summary>The part of a scoring job's provenance that tells a kl job's stopping rule: provenance.method (other methods have none).</summary>
public sealed record KlJobView(KlMethodView? Method);

/// <summary>provenance.method as <see cref="KlScorer.RuleOf"/> reads it: without min_fraction or stop_ks it records no stopping rule.</summary>
public sealed record KlMethodView(double? MinFraction, int StableWindow, double MarginZ, int LastN, IReadOnlyList<int>? StopKs, bool FullBudget);

/// <summary>kl's measurement of one candidate (late_kl: mean KL of the last points scored; full_late_kl: of the whole curve when it ran past the stop).</summary>
public sealed record KlLayerMetrics(double LateKl, double FinalKl, double FirstKl, long TokensUsed, long BudgetTokens, bool EarlyStopped,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] double? FullLateKl, [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] LockStepRecord? LockStep);

/// <summary>Where the lock-step rounds of a kl job stopped, and the tokens that saved; rounds: each round's top-K and stops per K.</summary>
public sealed record LockStepRecord(int LockStepRounds, IReadOnlyList<int> StopKs, KlCurves.StopRule Rule, bool StoppedEarly, long StopStep,
    long StoppedAtTokens, long BudgetTokens, long AllRunsTokensUsed, long AllRunsTokensBudget, double TokensSavedFraction, bool FullBudget,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyList<LockStepRound>? Rounds);

public sealed record LockStepRound(int Round, long Tokens, IReadOnlyDictionary<int, IReadOnlyList<int>> TopK, IReadOnlyDictionary<int, bool> Stops);

/// <summary>The parts of a kl scores file's provenance that tell how its runs stopped: the lock-step record (without its rounds) and early stopping against the full budget.</summary>
public sealed record KlStoppingView(LockStepRecord? EarlyStopping, KlCurves.EarlyStopReport? EarlyStopVsFull);

/// <summary>kl-full's per-layer detail: scored from the whole curve.</summary>
public sealed record FullBudgetDetail(double LateKl, double FinalKl, long TokensUsed);

/// <summary>What a candidate's training run records as its run config: the teacher, the candidate layer and the job's run_key.</summary>
public sealed record KlRunConfig(string? Teacher, int Layer, string RunKey);

/// <summary>The part of a metrics.jsonl line a kl curve is read from (the other keys are skipped).</summary>
public sealed record KlCurveLine(long? Tokens, double? Kl, double? ValKl);

/// <summary>The part of a stage-1 run's run_config.json kl reads: the recipe it ran with (a settings tree for <see cref="TrainConfig"/>).</summary>
public sealed record StoredRunRecipe(OpaqueJson? Recipe);

/// <summary>Which logged KL a kl scoring run is scored from: the training KL of every log line ("train", "kl") or the
/// validation KL of evaluation lines ("val", "val_kl").</summary>
public enum KlCurve { Training, Validation }
