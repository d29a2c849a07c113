// The one training loop all stages share (nanoGPT's train.py as an object). Per optimizer step s = 1..S (S from the
// token budget):
//   lr_g = peak_g x LrSchedule(s);  grads = 0
//   for each of grad_accum micro-batches: windows from the seeded sampler -> objective.ForwardBackward(batch, 1/grad_accum)
//   clip the global gradient norm; AdamW step
//   every log_every steps: a metrics.jsonl line (loss = mean since the previous line)
//   every eval_every steps (and at step 0, before any update, and at the end): validation loss on that line
//   every checkpoint_every steps (and at the end, and when cancelled): a checkpoint (TrainCheckpoint)
// A caller drives it whole (RunUntil(total steps), as TrainLoop.Run does) or in pieces: RunUntil(s) pauses after step
// s; Save() and Resume(dir) carry a run across processes with bit-identical numbers. An optional phase hook (Phases)
// is told the wall time of each step's phases; Trainer.OnBatches steps on given batches (the training benchmark).
using System.Diagnostics;
using HybridDistill.Artifacts;
using HybridDistill.Data;
using static TorchSharp.torch;

namespace HybridDistill.Training;

/// <summary>What the loop reports to its observer.</summary>
public enum TrainEvent
{
    /// <summary>RunUntil begins, at step 0 or where a checkpoint left off.</summary>
    Start,
    /// <summary>An optimizer step finished; Loss is its mean over the micro-batches.</summary>
    Step,
    /// <summary>A metrics.jsonl line was written (Line); Loss is its interval's mean.</summary>
    Line,
    /// <summary>A periodic or final checkpoint was written (Checkpoint).</summary>
    Checkpoint,
    /// <summary>The budget is trained.</summary>
    Done,
    /// <summary>Cancelled: a checkpoint of the current step was saved (Checkpoint).</summary>
    Interrupted,
}

/// <summary>An event of the loop and where it is.</summary>
public sealed record TrainProgress(
    TrainEvent Event, long Step, long TotalSteps, long Tokens, long TotalTokens, double? Loss, double? ValLoss, double Lr,
    double TokensPerSecond, MetricsLine? Line = null, string? Checkpoint = null);

public sealed record TrainResult(long Step, long TotalSteps, long Tokens, bool Completed, double? LastValLoss, string? LastCheckpoint);

/// <summary>
/// Trains <c>objective</c>'s student on <c>data</c> for <c>config</c>'s budget, writing metrics.jsonl and checkpoints
/// under <c>runDir</c>. Owns the optimizer, the sampler, the metric sums of the current log interval and the step counter.
/// </summary>
public sealed class Trainer : IDisposable
{
    readonly ITrainingObjective objective;
    readonly TokenDataset? data;     // null for a trainer on a batch source (OnBatches), which only steps
    readonly Func<TrainingBatch> nextBatch;   // one micro-batch [B, T + 1]: the sampler's next windows of data, or the source's
    readonly TrainConfig config;
    readonly string runDir;
    readonly OpaqueJson runConfig;
    readonly IProgress<TrainProgress>? progress;
    readonly AdamWOptimizer optimizer;
    readonly IReadOnlyList<Tensor> trainable;
    WindowSampler sampler;
    MetricSums sums = new();
    long? savedStep;                 // the step whose checkpoint is on disk (saved or resumed from)
    bool loggedStepZero;
    bool gradsCleared;               // the last Step dropped the gradients: the next Step need not
    Stopwatch clock = Stopwatch.StartNew();
    long intervalStartTokens;        // tokens and clock time at the last metrics line: tokens_per_s is over the interval
    double intervalStart;

    /// <param name="runConfig">the run's record (its run_config.json), kept in every checkpoint's trainer_state.json</param>
    /// <param name="teacher">the teacher (or tokenizer) the data was made for, named when it does not fit the student</param>
    public Trainer(ITrainingObjective objective, TokenDataset data, TrainConfig config, string runDir, OpaqueJson runConfig,
        IProgress<TrainProgress>? progress = null, string? teacher = null)
    {
        (this.objective, this.data, this.config, this.runDir, this.runConfig, this.progress) = (objective, data, config, runDir, runConfig, progress);
        data.CheckFits(objective.Student.Config.VocabSize, config.SeqLen, teacher ?? "the teacher");
        Directory.CreateDirectory(runDir);
        optimizer = new AdamWOptimizer(objective.ParameterGroups(config), config.Beta1, config.Beta2, config.Eps, config.WeightDecay, config.WeightDecay1d);
        trainable = optimizer.Parameters.ToList();
        sampler = new WindowSampler(data.Train.WindowCount(config.SeqLen), config.Seed);
        nextBatch = () => data.TrainBatch(sampler.Next(config.BatchSize), config.SeqLen);
    }

    Trainer(ITrainingObjective objective, TrainConfig config, Func<TrainingBatch> batches)
    {
        (this.objective, this.config, nextBatch) = (objective, config, batches);
        (runDir, runConfig) = ("", OpaqueJson.EmptyObject);                    // never used: RequireTokenFolder guards every use
        optimizer = new AdamWOptimizer(objective.ParameterGroups(config), config.Beta1, config.Beta2, config.Eps, config.WeightDecay, config.WeightDecay1d);
        trainable = optimizer.Parameters.ToList();
        sampler = new WindowSampler(1, config.Seed);                      // never used: the batches come from the source
    }

    /// <summary>
    /// A trainer whose micro-batches come from <paramref name="batches"/> (each call: windows [B, T + 1]) instead of a
    /// token folder: it takes Step()s with the same optimizer, clipping and schedule, and has no validation data, metrics
    /// or checkpoints (RunUntil, Evaluate, Save and Resume refuse). The training benchmark steps one this way.
    /// </summary>
    public static Trainer OnBatches(ITrainingObjective objective, TrainConfig config, Func<TrainingBatch> batches) =>
        new(objective, config, batches);

    /// <summary>The phase hook: when set, told the wall time of every step's phases (the objective's forward and
    /// backward phases, and the optimizer's: dropping the gradients, the norm and clipping, the AdamW update).</summary>
    public ITrainPhaseObserver? Phases { get; set; }

    /// <summary>Elements of the trained parameters (what each optimizer step reads and updates).</summary>
    public long TrainableElements => trainable.Sum(p => p.numel());

    /// <summary>Optimizer steps taken.</summary>
    public long StepNumber { get; private set; }
    public long TotalSteps => config.TotalSteps;
    public long Tokens => StepNumber * config.TokensPerStep;
    public double? LastValLoss { get; private set; }
    public string? LastCheckpoint { get; private set; }

    // ---- the loop ------------------------------------------------------------------------------------

    /// <summary>
    /// Trains until step <paramref name="stopStep"/> (at most the budget) and returns; Completed once the budget is
    /// trained. Cancellation saves a checkpoint and returns with Completed false.
    /// </summary>
    public TrainResult RunUntil(long stopStep, CancellationToken cancellation = default)
    {
        RequireTokenFolder();
        stopStep = Math.Min(stopStep, TotalSteps);
        int threadsBefore = get_num_threads();
        if (config.Threads > 0) set_num_threads(config.Threads);
        try
        {
            Report(TrainEvent.Start);
            if (StepNumber == 0 && !loggedStepZero)
            {
                Report(TrainEvent.Line, line: WriteLine(FirstBatchLoss(), evaluate: true));   // before any update
                loggedStepZero = true;
            }
            while (StepNumber < stopStep)
            {
                if (cancellation.IsCancellationRequested)
                {
                    Save();
                    Report(TrainEvent.Interrupted);
                    return Result();
                }
                double loss = Step();
                Report(TrainEvent.Step, loss);
                bool last = StepNumber == TotalSteps;
                bool evaluate = StepNumber % config.EvalEvery == 0 || last;
                if (evaluate || StepNumber % config.LogEvery == 0)
                {
                    Report(TrainEvent.Line, line: WriteLine(sums, evaluate));
                    NextInterval();
                }
                if (StepNumber % config.CheckpointEvery == 0 || last)
                {
                    Save();
                    Report(TrainEvent.Checkpoint);
                }
            }
            if (StepNumber == TotalSteps) Report(TrainEvent.Done);
            return Result();
        }
        catch (DiskFullException e) { throw Advised(e); }
        finally
        {
            if (config.Threads > 0) set_num_threads(threadsBefore);
        }
    }

    TrainResult Result() => new(StepNumber, TotalSteps, Tokens, StepNumber == TotalSteps, LastValLoss, LastCheckpoint);

    // ---- one step, one evaluation --------------------------------------------------------------------

    /// <summary>One optimizer step: grad_accum micro-batches forward and backward, clipping, AdamW. Returns the step's mean loss.</summary>
    public double Step()
    {
        if (StepNumber >= TotalSteps) throw new InvalidOperationException($"the budget of {TotalSteps} steps is trained.");
        StepNumber++;
        double scale = LrSchedule.Scale(config.LrSchedule, StepNumber, TotalSteps, config.WarmupSteps, config.MinLrRatio);
        if (!gradsCleared)
            using (Phases.Time(PhaseTimes.Optimizer))
                optimizer.ClearGrads();
        gradsCleared = false;
        double stepLoss = 0;
        for (int a = 0; a < config.GradAccum; a++)
        {
            using var scope = NewDisposeScope();
            var batch = nextBatch();                                                           // [B, T + 1]
            var report = objective.ForwardBackward(batch, 1.0 / config.GradAccum, Phases);
            if (!double.IsFinite(report.Loss))
                throw new InputException($"the loss became {report.Loss} at step {StepNumber}: training diverged. Lower the learning rate or grad_clip and start again.");
            sums.Add(report);
            stepLoss += report.Loss / config.GradAccum;
        }
        using (Phases.Time(PhaseTimes.Optimizer))
        {
            var (norm, clip) = GradientNorm(trainable, config.GradClip);
            sums.GradNorm += norm;
            sums.Steps++;
            optimizer.Step(scale, gradScale: clip);                       // the clipping scale applied inside the update
            optimizer.ClearGrads();                                       // the next step's zero_grad, done now: the gradients'
            gradsCleared = true;                                          // memory is free during the next forward
        }
        return stepLoss;
    }

    /// <summary>Mean validation loss (and extras) over the validation windows of the config.</summary>
    public MetricSums Evaluate()
    {
        var result = new MetricSums();
        foreach (var batch in RequireTokenFolder().ValidationBatches(config.SeqLen, config.BatchSize, config.EvalTokens))
        {
            using var scope = NewDisposeScope();
            batch.AttachTo(scope);
            result.Add(objective.Evaluate(batch), weight: batch.Windows);
        }
        return result;
    }

    /// <summary>The loss of step 1's batches before any update (the sampler does not move).</summary>
    MetricSums FirstBatchLoss()
    {
        var first = new MetricSums();
        var peek = new WindowSampler(sampler.WindowCount, sampler.Seed, sampler.Position);
        for (int a = 0; a < config.GradAccum; a++)
        {
            using var scope = NewDisposeScope();
            first.Add(objective.Evaluate(RequireTokenFolder().TrainBatch(peek.Next(config.BatchSize), config.SeqLen)));
        }
        return first;
    }

    /// <summary>The global L2 norm of the gradients and the factor that scales it to at most <paramref name="maxNorm"/>
    /// (1 when it already is, or when <paramref name="maxNorm"/> is 0: no clipping).</summary>
    public static (double Norm, double ClipScale) GradientNorm(IReadOnlyList<Tensor> parameters, double maxNorm)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var grads = parameters.Select(p => p.grad).Where(g => g is not null).Select(g => g!).ToList();
        if (grads.Count == 0) return (0, 1);
        var norm = stack(grads.Select(g => linalg.vector_norm(g, 2, null, false)).ToArray()).square().sum().sqrt().item<float>();
        return (norm, maxNorm > 0 && norm > maxNorm ? maxNorm / (norm + 1e-6) : 1.0);
    }

    // ---- metrics lines, checkpoints, progress --------------------------------------------------------

    /// <summary>Appends the metrics line of the current step (means of <paramref name="interval"/>, validation when asked).</summary>
    MetricsLine WriteLine(MetricSums interval, bool evaluate)
    {
        MetricSums? validation = evaluate ? Evaluate() : null;
        if (validation is not null) LastValLoss = validation.MeanLoss;
        var line = new MetricsLine
        {
            Step = StepNumber,
            Tokens = Tokens,
            Loss = interval.MeanLoss,
            Lr = optimizer.CurrentLr[0],
            Lrs = optimizer.Groups.Count > 1 ? optimizer.Groups.Select((g, i) => new NamedValue(g.Name, optimizer.CurrentLr[i])).ToArray() : null,
            Extras = interval.MeanExtras().Select(e => new NamedValue(e.Name, e.Mean)).ToArray(),
            GradNorm = interval.Steps > 0 ? interval.GradNorm / interval.Steps : null,
            LayerLosses = interval.LayerMeans(),
            ValLoss = validation?.MeanLoss,
            ValExtras = validation?.MeanExtras().Select(e => new NamedValue(e.Name, e.Mean)).ToArray() ?? [],
            ValLayerLosses = validation?.LayerMeans(),
            ElapsedS = Math.Round(clock.Elapsed.TotalSeconds, 3),
            TokensPerS = Math.Round(Rate(), 1),
            RssMb = Math.Round(Models.ProcessMemory.ResidentBytes() / 1048576.0, 1),
        };
        TrainCheckpoint.AppendMetrics(runDir, line);
        return line;
    }

    /// <summary>
    /// Writes the checkpoint of the current step into the run directory (once per step: a checkpoint already there
    /// from this trainer or the one resumed from is returned as it is) and keeps the newest keep_checkpoints.
    /// </summary>
    public string Save()
    {
        RequireTokenFolder();
        if (savedStep == StepNumber && LastCheckpoint is not null) return LastCheckpoint;
        var state = new TrainerState(StepNumber, Tokens, TotalSteps, optimizer.StepCount, sampler.Position, config.Seed,
            TrainCheckpoint.RngState(), sums, runConfig);
        try { LastCheckpoint = TrainCheckpoint.Write(runDir, objective.Student, optimizer, state, config.KeepCheckpoints); }
        catch (DiskFullException e) { throw Advised(e); }
        savedStep = StepNumber;
        return LastCheckpoint;
    }

    /// <summary>Continues from checkpoint <paramref name="checkpointDir"/> of this run: weights, moments, sampler, RNG, sums; later metrics lines go.</summary>
    public void Resume(string checkpointDir)
    {
        var data = RequireTokenFolder();
        var state = TrainCheckpoint.Read(checkpointDir, objective.Student, optimizer);
        TrainCheckpoint.SetRngState(state.RngState);
        StepNumber = state.Step;
        sampler = new WindowSampler(data.Train.WindowCount(config.SeqLen), config.Seed, state.Sampler);
        sums = state.Sums;
        TrainCheckpoint.TruncateMetrics(runDir, StepNumber);
        TrainCheckpoint.DeleteTemporary(runDir);
        LastCheckpoint = checkpointDir;
        savedStep = StepNumber;
        RestartClock();
    }

    /// <summary>Starts the run over at step 0: an earlier run's metrics and checkpoints in the run directory go.</summary>
    public void StartOver()
    {
        RequireTokenFolder();
        TrainCheckpoint.Clear(runDir);
        RestartClock();
    }

    /// <summary>Resume from the newest checkpoint when <paramref name="resume"/> and there is one, else start over.</summary>
    public void ResumeOrStartOver(bool resume)
    {
        RequireTokenFolder();
        if (resume && TrainCheckpoint.Latest(runDir) is string latest) Resume(latest);
        else StartOver();
    }

    /// <summary>
    /// A full disk: the file that did not fit was never renamed into place, so every complete checkpoint is intact;
    /// the half-made checkpoint directory goes at once to give its space back.
    /// </summary>
    DiskFullException Advised(DiskFullException e)
    {
        TrainCheckpoint.DeleteTemporary(runDir);
        return e.WithAdvice(TrainCheckpoint.ResumeAdvice(runDir));
    }

    /// <summary>A metrics line was written: the next one averages from here.</summary>
    void NextInterval()
    {
        sums = new MetricSums();
        intervalStartTokens = Tokens;
        intervalStart = clock.Elapsed.TotalSeconds;
    }

    void RestartClock()
    {
        clock = Stopwatch.StartNew();
        intervalStartTokens = Tokens;
        intervalStart = 0;
    }

    double Rate() => (Tokens - intervalStartTokens) / Math.Max(1e-9, clock.Elapsed.TotalSeconds - intervalStart);

    /// <summary>The one place a <see cref="TrainProgress"/> is made (a line's event carries the line and its loss).</summary>
    void Report(TrainEvent e, double? loss = null, MetricsLine? line = null) => progress?.Report(new TrainProgress(
        e, StepNumber, TotalSteps, Tokens, TotalSteps * config.TokensPerStep, line?.Loss ?? loss, LastValLoss,
        optimizer.CurrentLr[0], e is TrainEvent.Done or TrainEvent.Interrupted ? 0 : Rate(), line,
        e is TrainEvent.Checkpoint or TrainEvent.Done or TrainEvent.Interrupted ? LastCheckpoint : null));

    /// <summary>The token folder of a trainer made with one (validation, metrics and checkpoints need it and its run directory).</summary>
    TokenDataset RequireTokenFolder() => data ?? throw new InvalidOperationException(
        "this trainer steps on a batch source (Trainer.OnBatches): it has no token folder to validate on and no run directory for metrics or checkpoints.");

    public void Dispose() => optimizer.Dispose();
}
