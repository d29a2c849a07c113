using HybridDistill.Modules;

namespace HybridDistill.Tests.Modules;

/// <summary>The decode helpers' fork-join: every part once, part 0 on the caller, failures surfaced, concurrent callers served.</summary>
public class ForkJoinTests
{
    [Fact]
    public void Run_RunsEveryPartOnce_Part0OnTheCaller()
    {
        for (int count = 1; count <= 4; count++)
        {
            var runs = new int[count];
            var threads = new int[count];
            ForkJoin.Run(count, p => { Interlocked.Increment(ref runs[p]); threads[p] = Environment.CurrentManagedThreadId; });
            Assert.All(runs, r => Assert.Equal(1, r));
            Assert.Equal(Environment.CurrentManagedThreadId, threads[0]);   // the others on a helper or, unclaimed, on the caller
        }
    }

    [Theory]
    [InlineData(0, 2)]
    [InlineData(1, 2)]
    [InlineData(7, 2)]
    [InlineData(32000, 3)]
    public void Share_CoversEveryItemOnceInOrder(int size, int parts)
    {
        var shares = Enumerable.Range(0, parts).Select(p => ForkJoin.Share(size, parts, p)).ToArray();
        Assert.Equal(0, shares[0].Start);
        Assert.Equal(size, shares[^1].End);
        for (int p = 1; p < parts; p++) Assert.Equal(shares[p - 1].End, shares[p].Start);
        Assert.All(shares, s => Assert.InRange(s.End - s.Start, size / parts, (size + parts - 1) / parts));
    }

    [Fact]
    public async Task Run_BackToBackJobs_EachSeesAllItsParts()
    {
        // thousands of jobs in a row, as a decoding token's products: a part run twice, or a late helper running a part
        // of an earlier job's body, would break the sums; a lost part would hang the caller (the test's timeout)
        var task = Task.Run(() =>
        {
            for (int job = 0; job < 5000; job++)
            {
                var sums = new long[3];
                int j = job;
                ForkJoin.Run(3, p => sums[p] = (long)j * (p + 1));
                Assert.Equal(new long[] { job, 2L * job, 3L * job }, sums);
            }
        });
        await task.WaitAsync(TimeSpan.FromSeconds(60));                                      // TimeoutException if a part was lost
    }

    [Fact]
    public void Run_AFailingPart_IsRethrownAndTheNextJobRuns()
    {
        var error = Assert.Throws<AggregateException>(() => ForkJoin.Run(2, p => { if (p == 1) throw new InvalidOperationException("part 1"); }));
        Assert.Contains(error.InnerExceptions, e => e is InvalidOperationException { Message: "part 1" });
        var runs = new int[2];
        ForkJoin.Run(2, p => runs[p]++);
        Assert.Equal(new[] { 1, 1 }, runs);
    }

    [Fact]
    public async Task Run_ConcurrentCallers_AllServed()
    {
        var callers = Enumerable.Range(0, 4).Select(c => Task.Run(() =>
        {
            for (int job = 0; job < 500; job++)
            {
                var parts = new int[2];
                ForkJoin.Run(2, p => parts[p] = c + 1);
                Assert.Equal(new[] { c + 1, c + 1 }, parts);
            }
        })).ToArray();
        await Task.WhenAll(callers).WaitAsync(TimeSpan.FromSeconds(60));                      // TimeoutException if one hung
    }
}
