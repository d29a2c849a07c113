namespace HybridDistill.Modules;

// Fork-join for the short parallel parts of a decoding token. One token makes ~40 parallel calls of 20-300 us each
// (the projections of every layer, its attention, the LM head). Parallel.For wakes a thread-pool worker for each: about
// 11 us per call on the 2-core machine, 0.4 ms per token. Here the helpers stay awake between calls: after a job each
// spins for a short while (SpinMicroseconds) watching for the next one, then blocks on a monitor until one comes, so
// back-to-back calls cost a few memory writes and atomic increments, and an idle process burns no CPU. Parts are claimed
// from a counter by whoever comes first, the caller included: when a helper is off its core (another process on the
// machine), the caller runs the parts itself instead of waiting a time slice for it (measured: an empty two-part job
// took 214 us while the test suite ran beside it when part 1 was bound to the helper). Which range a part covers is
// fixed by the caller, so results do not depend on which thread ran it. One caller at a time uses the helpers; a second
// concurrent caller (tests run in parallel) falls back to Parallel.For.

/// <summary>Runs the parts of a short parallel job on the caller and on helper threads that stay awake between jobs.</summary>
internal static class ForkJoin
{
    /// <summary>How long a helper spins for the next job before blocking.</summary>
    const int SpinMicroseconds = 200;

    static readonly object Gate = new();          // guards the helpers' list and their sleeping; pulsed on each job
    static readonly object Caller = new();        // held by the one caller using the helpers
    static readonly List<Thread> Helpers = [];
    static Job? current;                            // the latest job; a helper that wakes late finds its parts all claimed
    static int generation;                          // incremented per job

    /// <summary>One call's parts: claimed by index (part 0 is the caller's), counted down as they finish.</summary>
    sealed class Job(Action<int> body, int parts)
    {
        public readonly Action<int> Body = body;
        public readonly int Parts = parts;
        public int Next = 1;                        // the next unclaimed part
        public int Pending = parts - 1;             // parts 1.. not finished
        public Exception? Failure;

        /// <summary>Claims and runs parts until none is left.</summary>
        public void RunClaimed()
        {
            for (int p = Interlocked.Increment(ref Next) - 1; p < Parts; p = Interlocked.Increment(ref Next) - 1)
            {
                try { Body(p); }
                catch (Exception e) { Failure = e; }
                Interlocked.Decrement(ref Pending);
            }
        }
    }

    /// <summary>Parts for a job of <paramref name="items"/> independent items: libtorch's thread count (the user's --threads),
    /// at most the cores and the items, at least one.</summary>
    public static int PartsFor(long items) => (int)Math.Clamp(Math.Min(TorchSharp.torch.get_num_threads(), items), 1, Environment.ProcessorCount);

    /// <summary>The items [Start, End) of part <paramref name="p"/> of <paramref name="parts"/> over <paramref name="size"/> items:
    /// contiguous, in order, fixed by the sizes alone (so results do not depend on which thread ran which part).</summary>
    public static (int Start, int End) Share(int size, int parts, int p) => ((int)((long)size * p / parts), (int)((long)size * (p + 1) / parts));

    /// <summary>Runs <paramref name="body"/>(p) for p in [0, <paramref name="count"/>), part 0 on the calling thread; returns when all are done.</summary>
    public static void Run(int count, Action<int> body)
    {
        if (count <= 1) { if (count == 1) body(0); return; }
        if (!Monitor.TryEnter(Caller))
        {
            Parallel.For(0, count, new ParallelOptions { MaxDegreeOfParallelism = count }, body);
            return;
        }
        try
        {
            EnsureHelpers(count - 1);
            var job = new Job(body, count);
            Volatile.Write(ref current, job);
            lock (Gate)
            {
                generation++;
                Monitor.PulseAll(Gate);
            }
            Exception? own = null;
            try { body(0); } catch (Exception e) { own = e; }
            job.RunClaimed();
            var spin = new SpinWait();
            while (Volatile.Read(ref job.Pending) > 0) spin.SpinOnce(sleep1Threshold: -1);   // parts a helper is running
            Volatile.Write(ref current, null);
            if (own is not null || job.Failure is not null)
                throw new AggregateException(new[] { own, job.Failure }.OfType<Exception>());
        }
        finally { Monitor.Exit(Caller); }
    }

    static void EnsureHelpers(int count)
    {
        lock (Gate)
            while (Helpers.Count < count)
            {
                var thread = new Thread(HelperLoop) { IsBackground = true, Name = $"decode helper {Helpers.Count + 1}" };
                Helpers.Add(thread);
                thread.Start();
            }
    }

    static void HelperLoop()
    {
        int seen = 0;
        long spinTicks = System.Diagnostics.Stopwatch.Frequency * SpinMicroseconds / 1_000_000;
        while (true)
        {
            long deadline = System.Diagnostics.Stopwatch.GetTimestamp() + spinTicks;
            while (Volatile.Read(ref generation) == seen)
            {
                if (System.Diagnostics.Stopwatch.GetTimestamp() > deadline)
                {
                    lock (Gate)
                        while (generation == seen) Monitor.Wait(Gate);
                    break;
                }
                Thread.SpinWait(20);
            }
            seen = Volatile.Read(ref generation);
            Volatile.Read(ref current)?.RunClaimed();
        }
    }
}
