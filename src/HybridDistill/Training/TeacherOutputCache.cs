using System.Security.Cryptography;
using static TorchSharp.torch;

namespace HybridDistill.Training;

/// <summary>
/// The teacher's final hidden states (after its last norm; logits = lm_head of them) of stage-2 batches, kept in
/// memory so that several stage-2 runs of one process on the same batches (a comparison's scoring candidates and its
/// hybrids, which all read the same windows in the same order) run the frozen teacher once per batch.
/// Keyed by the teacher (its directory and weights file stamp) and the batch's token ids; a hit returns exactly the
/// tensor a fresh forward computed, so runs with and without the cache are bit-identical. Off unless a caller
/// enables it with a memory limit; once full it stops adding (it never evicts: every run reads batches in order).
/// </summary>
public sealed class TeacherOutputCache
{
    readonly Dictionary<string, Tensor> entries = [];
    readonly long maxBytes;
    long bytes;

    public TeacherOutputCache(long maxBytes) { this.maxBytes = maxBytes; }

    /// <summary>The process's cache, or null when caching is off (the default).</summary>
    public static TeacherOutputCache? Shared { get; private set; }

    public static void EnableShared(long maxBytes) => Shared ??= new TeacherOutputCache(maxBytes);

    public int Hits { get; private set; }
    public int Misses { get; private set; }
    public long Bytes => bytes;

    /// <summary>Time spent computing the teacher on misses; hits x its mean per batch estimates the time the cache saved.</summary>
    public TimeSpan MissTime { get; private set; }

    public TimeSpan EstimatedSaving => Misses == 0 ? TimeSpan.Zero : MissTime / Misses * Hits;

    /// <summary>A key for a teacher directory: its path and the size and write time of its files.</summary>
    public static string TeacherKey(string teacherDir)
    {
        var dir = Path.GetFullPath(teacherDir);
        var stamp = string.Join(";", Directory.EnumerateFiles(dir).Order(StringComparer.Ordinal)
            .Select(f => new FileInfo(f)).Select(f => $"{f.Name}:{f.Length}:{f.LastWriteTimeUtc.Ticks}"));
        return dir + "|" + stamp;
    }

    /// <summary>The teacher's hidden states for <paramref name="ids"/> [B, T]: cached, or computed by <paramref name="compute"/> (and kept when there is room).
    /// The returned tensor belongs to the caller's dispose scope (a copy-free alias of the cached one on a hit).</summary>
    public Tensor GetOrCompute(string teacherKey, Tensor ids, Func<Tensor> compute)
    {
        string key = teacherKey + "|" + ids.shape[0] + "x" + ids.shape[1] + "|" + Hash(ids);
        lock (entries)
        {
            if (entries.TryGetValue(key, out var cached))
            {
                Hits++;
                return cached.alias();
            }
        }
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var hidden = compute();
        MissTime += sw.Elapsed;
        Misses++;
        long size = hidden.numel() * hidden.element_size();
        lock (entries)
        {
            if (bytes + size <= maxBytes && !entries.ContainsKey(key))
            {
                var kept = hidden.detach().clone();
                kept.DetachFromDisposeScope();
                entries[key] = kept;
                bytes += size;
            }
        }
        return hidden;
    }

    static string Hash(Tensor ids)
    {
        using var contiguous = ids.to(ScalarType.Int64, CPU).contiguous();        // the hash reads CPU memory (ids may be on a GPU)
        var values = contiguous.data<long>().ToArray();
        var raw = new byte[values.Length * sizeof(long)];
        Buffer.BlockCopy(values, 0, raw, 0, raw.Length);
        return Convert.ToHexStringLower(SHA256.HashData(raw));
    }
}
