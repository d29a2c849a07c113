namespace HybridDistill.Data;

/// <summary>Where a <see cref="WindowSampler"/> is: the epoch and the index within that epoch's permutation.</summary>
public readonly record struct SamplerPosition(long Epoch, long Index);

/// <summary>
/// Training windows in an order fixed by a seed: epoch e visits every window once, in the permutation
/// <c>SplitMix64.Permutation(count, seed, e)</c>; a batch that runs past the end continues into the next epoch.
/// Two samplers with the same seed and count give identical batches; the position can be saved and restored.
/// </summary>
public sealed class WindowSampler
{
    private int[] permutation;

    public WindowSampler(long windowCount, long seed, SamplerPosition position = default)
    {
        if (windowCount <= 0) throw new ArgumentOutOfRangeException(nameof(windowCount));
        if (windowCount > int.MaxValue) throw new InputException($"{windowCount} windows are more than one sampler handles; use a longer sequence length.");
        WindowCount = windowCount;
        Seed = seed;
        if (position.Index < 0 || position.Index > windowCount || position.Epoch < 0)
            throw new InputException($"sampler position {position} does not fit {windowCount} windows: the checkpoint belongs to other data.");
        Position = position;
        permutation = SplitMix64.Permutation((int)windowCount, seed, position.Epoch);
    }

    public long WindowCount { get; }
    public long Seed { get; }
    public SamplerPosition Position { get; private set; }

    /// <summary>The next <paramref name="batchSize"/> window indices; advances the position.</summary>
    public long[] Next(int batchSize)
    {
        var batch = new long[batchSize];
        for (int i = 0; i < batchSize; i++)
        {
            if (Position.Index == WindowCount)
            {
                Position = new SamplerPosition(Position.Epoch + 1, 0);
                permutation = SplitMix64.Permutation((int)WindowCount, Seed, Position.Epoch);
            }
            batch[i] = permutation[Position.Index];
            Position = Position with { Index = Position.Index + 1 };
        }
        return batch;
    }

    /// <summary>The next batch without advancing (the loop's step-0 report uses it).</summary>
    public long[] Peek(int batchSize)
    {
        var copy = new WindowSampler(WindowCount, Seed, Position);
        return copy.Next(batchSize);
    }
}
