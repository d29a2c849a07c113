using HybridDistill.Attention;
using static TorchSharp.torch;

namespace HybridDistill.Benchmarks;

/// <summary>One timing: an attention kind's code path at sequence length T, forward or forward+backward.</summary>
public sealed record AttentionTiming(string Kind, string Path, int T, string Pass, double Ms);

/// <summary>
/// Times each attention kind's fast path against its naive reference, and chunked GDN against softmax
/// attention (scaled_dot_product_attention), on fp32 inputs of shape B=1, H, T, D. Forward passes run under
/// no_grad; forward+backward passes backpropagate output.sum() into every input.
/// </summary>
public static class AttentionBenchmark
{
    /// <summary><paramref name="Device"/>: where inputs are drawn and timed (null: the CPU; on CUDA the clock is read after a synchronize).</summary>
    public sealed record Options(int Heads = 8, int HeadDim = 64, int SwaWindow = 256, int Repeats = 3,
        int NaiveMaxT = 8192, int NaiveBackwardMaxT = 2048, int ChunkSize = 64, Device? Device = null);

    /// <summary>The code paths measured: (kind, path) pairs.</summary>
    public static readonly (string Kind, string Path)[] Paths =
    [
        ("gdn", "chunked"), ("gdn", "naive"), ("gla", "chunked"), ("gla", "naive"),
        ("swa", "masked"), ("swa", "naive"), ("softmax", "sdpa"),
    ];

    public static IReadOnlyList<AttentionTiming> Run(IReadOnlyList<int> lengths, IReadOnlyCollection<string> kinds, Options options,
        IProgress<string>? progress = null, CancellationToken cancellation = default)
    {
        var rows = new List<AttentionTiming>();
        foreach (int t in lengths)
            foreach (var (kind, path) in Paths.Where(p => kinds.Contains(p.Kind)))
            {
                if (path == "naive" && t > options.NaiveMaxT) continue;
                foreach (var pass in new[] { "fwd", "fwdbwd" })
                {
                    // Autograd through a per-token loop writes a full-size gradient per step: O(T^2) memory traffic.
                    if (path == "naive" && pass == "fwdbwd" && t > options.NaiveBackwardMaxT) continue;
                    cancellation.ThrowIfCancellationRequested();
                    progress?.Report($"{kind} {path} T={t} {pass}");
                    // The naive loops are slow and their timing steady: one timed run after the warm-up is enough.
                    int repeats = path == "naive" ? 1 : options.Repeats;
                    rows.Add(new AttentionTiming(kind, path, t, pass, Time(kind, path, t, pass == "fwdbwd", options, repeats)));
                }
            }
        return rows;
    }

    /// <summary>The smallest measured T at which chunked GDN forward+backward beats SDPA's, or null.</summary>
    public static int? GdnCrossover(IReadOnlyList<AttentionTiming> rows)
    {
        foreach (var gdn in rows.Where(r => r is { Kind: "gdn", Path: "chunked", Pass: "fwdbwd" }).OrderBy(r => r.T))
        {
            var sdpa = rows.FirstOrDefault(r => r is { Kind: "softmax", Pass: "fwdbwd" } && r.T == gdn.T);
            if (sdpa is not null && gdn.Ms < sdpa.Ms) return gdn.T;
        }
        return null;
    }

    private static double Time(string kind, string path, int t, bool backward, Options o, int repeats)
    {
        using var scope = NewDisposeScope();
        manual_seed(0);
        var inputs = Inputs(kind, t, o);
        foreach (var x in inputs) x.requires_grad_(backward);
        Func<Tensor> run = (kind, path) switch
        {
            ("gdn", "chunked") => () => GatedDeltaNet.Chunked(inputs[0], inputs[1], inputs[2], inputs[3], inputs[4], null, o.ChunkSize).Output,
            ("gdn", "naive") => () => GatedDeltaNet.Naive(inputs[0], inputs[1], inputs[2], inputs[3], inputs[4]).Output,
            ("gla", "chunked") => () => GatedLinearAttention.Chunked(inputs[0], inputs[1], inputs[2], inputs[3], null, o.ChunkSize).Output,
            ("gla", "naive") => () => GatedLinearAttention.Naive(inputs[0], inputs[1], inputs[2], inputs[3]).Output,
            ("swa", "masked") => () => SlidingWindowAttention.Masked(inputs[0], inputs[1], inputs[2], o.SwaWindow),
            ("swa", "naive") => () => SlidingWindowAttention.Naive(inputs[0], inputs[1], inputs[2], o.SwaWindow),
            ("softmax", "sdpa") => () => nn.functional.scaled_dot_product_attention(inputs[0], inputs[1], inputs[2], is_casual: true),
            _ => throw new ArgumentException($"unknown path {kind}/{path}"),
        };
        return Measure.MedianMs(() =>
        {
            using var step = NewDisposeScope();
            if (!backward)
            {
                using var _ = no_grad();
                run();
                return;
            }
            foreach (var x in inputs) x.grad?.zero_();
            run().sum().backward();
        }, repeats, warmup: 1, o.Device);
    }

    /// <summary>Leaf inputs as the layers would produce them: normalised q/k, gates in range.</summary>
    private static Tensor[] Inputs(string kind, int t, Options o)
    {
        long h = o.Heads, d = o.HeadDim;
        Tensor Qk() => nn.functional.normalize(randn(1, h, t, d), dim: -1).detach();
        Tensor[] inputs = kind switch
        {
            "gdn" => [(Qk() * Math.Pow(d, -0.5)).detach(), Qk(), randn(1, h, t, d), rand(1, h, t), (-rand(1, h, t) * 0.2).detach()],
            "gla" => [(randn(1, h, t, d) * Math.Pow(d, -0.5)).detach(), randn(1, h, t, d), randn(1, h, t, d),
                      nn.functional.logsigmoid(randn(1, h, t, d)).div(16).detach()],
            _ => [randn(1, h, t, d), randn(1, h, t, d), randn(1, h, t, d)],
        };
        // drawn on the CPU (the same values on every device), then moved: leaves on the device
        return o.Device is null || o.Device.type == TorchSharp.DeviceType.CPU ? inputs : inputs.Select(x => x.to(o.Device).detach()).ToArray();
    }
}
