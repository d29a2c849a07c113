namespace HybridDistill.Data;

/// <summary>
/// A tiny, fully specified PRNG (SplitMix64) so data orders depend only on the seed, never on the .NET version
/// (System.Random's seeded sequence is an implementation detail).
/// </summary>
public struct SplitMix64
{
    private ulong state;

    public SplitMix64(ulong seed) { state = seed; }

    /// <summary>A generator for a (seed, stream) pair, e.g. (run seed, epoch).</summary>
    public static SplitMix64 For(long seed, long stream)
    {
        var mixer = new SplitMix64((ulong)seed);
        ulong a = mixer.Next();
        return new SplitMix64(a ^ (0x9E3779B97F4A7C15UL * (ulong)(stream + 1)));
    }

    public ulong Next()
    {
        ulong z = state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform integer in [0, bound) (rejection sampling: no modulo bias).</summary>
    public long NextBelow(long bound)
    {
        if (bound <= 0) throw new ArgumentOutOfRangeException(nameof(bound));
        ulong b = (ulong)bound;
        ulong limit = ulong.MaxValue - ulong.MaxValue % b;
        ulong r;
        do r = Next(); while (r >= limit);
        return (long)(r % b);
    }

    /// <summary>A permutation of 0..n-1 (Fisher-Yates).</summary>
    public static int[] Permutation(int n, long seed, long stream)
    {
        var rng = For(seed, stream);
        var p = new int[n];
        for (int i = 0; i < n; i++) p[i] = i;
        for (int i = n - 1; i > 0; i--)
        {
            int j = (int)rng.NextBelow(i + 1);
            (p[i], p[j]) = (p[j], p[i]);
        }
        return p;
    }
}
