using System.Diagnostics;

namespace HybridDistill.Pipeline;

/// <summary>What a <see cref="StepRunner"/> did with a step, for the caller to show.</summary>
public enum StepEventKind { Skipped, HeldElsewhere, Redoing, Started, Resuming, Finished }

/// <param name="Detail">for Redoing the changed input, for HeldElsewhere the process id</param>
public sealed record StepEvent(StepEventKind Kind, string Step, double? Seconds = null, string? Detail = null);

/// <summary>
/// Runs the steps of one run folder by the rules of <see cref="RunLayout"/>: a step that finished with the same
/// inputs is skipped; one whose recorded inputs differ stops the run (an <see cref="InputException"/> naming the step
/// and the input) unless forced, when its output is cleared and it is redone; an interrupted step is resumed when its
/// work can resume, else redone. A step held by another process of the same run is left to it and waited for in
/// <see cref="AwaitOthers"/>, which the caller puts before the steps that read those outputs.
/// </summary>
public sealed class StepRunner(RunLayout layout, bool force, IProgress<StepEvent>? events = null, CancellationToken cancellation = default)
{
    readonly List<(StepInputs Inputs, string Output, bool Resumable, Action<bool> Work)> deferred = [];

    /// <param name="output">the step's folder or file</param>
    /// <param name="resumable">the work continues from what an interrupted attempt left in <paramref name="output"/></param>
    /// <param name="work">does the step; its argument is true when it resumes</param>
    public void Run(StepInputs inputs, string output, bool resumable, Action<bool> work)
    {
        cancellation.ThrowIfCancellationRequested();
        if (layout.Check(inputs, output).Status == StepStatus.Done)
        {
            events?.Report(new StepEvent(StepEventKind.Skipped, inputs.Step));
            return;
        }
        using var held = layout.TryLock(inputs.Step, out int? owner);
        if (held is null)
        {
            events?.Report(new StepEvent(StepEventKind.HeldElsewhere, inputs.Step, Detail: owner?.ToString()));
            deferred.Add((inputs, output, resumable, work));
            return;
        }
        var check = layout.Check(inputs, output);                 // again: another process may have finished it
        if (check.Status == StepStatus.Done) return;
        if (check.Status == StepStatus.Differs)
        {
            if (!force)
                throw new InputException($"step \"{inputs.Step}\" was made with other inputs: {check.Key} was {Short(check.Recorded)}, now {Short(check.Current)}. " +
                                         "Rerun with --force to redo it (and the steps that read it), or use another --out.");
            events?.Report(new StepEvent(StepEventKind.Redoing, inputs.Step, Detail: check.Key));
            Clear(output);
        }
        bool resume = check.Status == StepStatus.Started && resumable && Exists(output);
        if (check.Status == StepStatus.Started && !resume) Clear(output);
        events?.Report(new StepEvent(resume ? StepEventKind.Resuming : StepEventKind.Started, inputs.Step));
        layout.Record(inputs, finished: false);
        var clock = Stopwatch.StartNew();
        work(resume);
        layout.Record(inputs, finished: true, Math.Round(clock.Elapsed.TotalSeconds, 1));
        events?.Report(new StepEvent(StepEventKind.Finished, inputs.Step, clock.Elapsed.TotalSeconds));
    }

    /// <summary>Waits for the steps other processes were doing (doing any they left unfinished).</summary>
    public void AwaitOthers()
    {
        while (deferred.Count > 0)
        {
            var pending = deferred.ToArray();
            deferred.Clear();
            foreach (var d in pending)
            {
                if (layout.Check(d.Inputs, d.Output).Status == StepStatus.Done) continue;
                using (var probe = layout.TryLock(d.Inputs.Step, out _))
                    if (probe is null) { deferred.Add(d); continue; }
                Run(d.Inputs, d.Output, d.Resumable, d.Work);
            }
            if (deferred.Count > 0 && cancellation.WaitHandle.WaitOne(TimeSpan.FromSeconds(5))) cancellation.ThrowIfCancellationRequested();
        }
    }

    static bool Exists(string path) => Directory.Exists(path) ? Directory.EnumerateFileSystemEntries(path).Any() : File.Exists(path);

    static void Clear(string path)
    {
        if (Directory.Exists(path)) Directory.Delete(path, recursive: true);
        else if (File.Exists(path)) File.Delete(path);
    }

    static string Short(string? text) => text is null ? "(none)" : text.Length <= 80 ? text : text[..77] + "...";
}
