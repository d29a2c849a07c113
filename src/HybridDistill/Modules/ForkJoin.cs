namespace HybridDistill.Modules;

// Fork-join for the short parallel parts of a decoding token. One token makes ~40 parallel calls of 20-300 us each
// (the projections of every layer, its attention, the LM head). Parallel.For wakes a thread-pool worker for each: about
// 11 us per call on the 2-core machine, 0.4 ms per token. Here the helpers stay awake between calls: after a part each
// spins for a short while (SpinMicroseconds) watching for the next call, then blocks on a monitor until one comes, so
// back-to-back calls cost a memory write and an atomic decrement, and an idle process burns no CPU. Part p always runs
// on the same thread (part 0 on the caller), and which part does what is fixed by the caller, so results do not depend
// on timing. One caller at a time uses the helpers; a second concurrent caller (tests run in parallel) falls back to
// Parallel.For.

/// <summary>Runs the parts of a short parallel job on the caller and on helper threads that stay awake between jobs.</summary>
internal static class ForkJoin
{
    /// <summary>How long a helper spins for the next job before blocking.</summary>
    const int SpinMicroseconds = 200;

    static readonly object Gate = new();          // guards the helpers' list and their sleeping; pulsed on each job
    static readonly object Caller = new();        // held by the one caller using the helpers
    static readonly List<Thread> Helpers = [];
    static Action<int>? job;
    static int generation;                          // incremented per job; helpers run part (their index + 1) of it
    static int parts;                               // parts of the current job
    static int pending;                             // helper parts of the current job not finished
    static Exception? failure;

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
            job = body;
            parts = count;
            failure = null;
            Volatile.Write(ref pending, count - 1);
            lock (Gate)
            {
                Interlocked.Increment(ref generation);
                Monitor.PulseAll(Gate);
            }
            Exception? own = null;
            try { body(0); } catch (Exception e) { own = e; }
            var spin = new SpinWait();
            while (Volatile.Read(ref pending) > 0) spin.SpinOnce(sleep1Threshold: -1);
            job = null;
            if (own is not null || failure is not null)
                throw new AggregateException(new[] { own, failure }.OfType<Exception>());
        }
        finally { Monitor.Exit(Caller); }
    }

    static void EnsureHelpers(int count)
    {
        lock (Gate)
            while (Helpers.Count < count)
            {
                int part = Helpers.Count + 1, seen = Volatile.Read(ref generation);   // the job about to start is new to it
                var thread = new Thread(() => HelperLoop(part, seen)) { IsBackground = true, Name = $"decode helper {part}" };
                Helpers.Add(thread);
                thread.Start();
            }
    }

    static void HelperLoop(int part, int seen)
    {
        long spinTicks = System.Diagnostics.Stopwatch.Frequency * SpinMicroseconds / 1_000_000;
        while (true)
        {
            long deadline = System.Diagnostics.Stopwatch.GetTimestamp() + spinTicks;
            while (Volatile.Read(ref generation) == seen)
            {
                if (System.Diagnostics.Stopwatch.GetTimestamp() > deadline)
                {
                    lock (Gate)
                        while (Volatile.Read(ref generation) == seen) Monitor.Wait(Gate);
                    break;
                }
                Thread.SpinWait(20);
            }
            seen = Volatile.Read(ref generation);
            if (part < parts)
            {
                try { job!(part); }
                catch (Exception e) { failure = e; }
                Interlocked.Decrement(ref pending);
            }
        }
    }
}
