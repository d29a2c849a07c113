using HybridDistill.Benchmarks;
using HybridDistill.Models;
using HybridDistill.Tests.Models;
using static TorchSharp.torch;

namespace HybridDistill.Tests.Benchmarks;

public class MachineLimitsTests
{
    [Theory]
    [InlineData(1, 1)]
    [InlineData(1000003, 1)]                                  // odd length: a ragged vector tail and scalar tail
    [InlineData(1000003, 2)]
    [InlineData(77, 3)]                                       // slices shorter than one vector
    public void SumSlices_EqualsTheExactSum(int length, int threads)
    {
        // 0, 1, 2, ... mod 7 as floats: small integers, so every partial sum is exact in float and double.
        using var data = arange(length, dtype: int64).remainder(7).to(float32);
        long expected = 0;
        for (long i = 0; i < length; i++) expected += i % 7;
        Assert.Equal(expected, MachineLimits.SumSlices(data, threads));
    }

    [Fact]
    public void SumSlices_RefusesWhatItCannotReadAsRawFloats()
    {
        using var doubles = ones(10, dtype: float64);
        Assert.Throws<ArgumentException>(() => MachineLimits.SumSlices(doubles, 2));
        using var strided = ones(4, 4).t();
        Assert.Throws<ArgumentException>(() => MachineLimits.SumSlices(strided, 2));
    }

    [Fact]
    public void DecodeBound_IsWeightsAndCacheAtTheReadBandwidth()
    {
        var limits = new MachineLimits(SgemmPeakGflops: 200, SgemmSize: 2048, ReadBandwidthGBps: 25, ReadBytes: 1 << 30, Threads: 2);
        Assert.Equal(4.0, limits.ReadMs(100e6), 12);                                 // 100 MB at 25 GB/s
        var r = new ForwardBenchmarkResult(1, 64, 10, 6400, 0.1, 50, 80, new Dictionary<int, double> { [128] = 8.0 },
            new Dictionary<int, long> { [128] = 50_000_000 }, limits, DecodeWeightBytes: 150_000_000);
        Assert.Equal(8.0, r.DecodeBoundMs(128), 12);                                 // 200 MB at 25 GB/s
        Assert.Equal(1.0, r.DecodeFractionOfBandwidth(128), 12);
        Assert.Equal(0.25, r.FractionOfSgemmPeak, 12);
    }

    [Fact]
    public void DecodeWeightBytes_CountEveryParameterButTheEmbeddingTable()
    {
        var tied = TinyConfigs.Llama(layers: 2);                                  // d 32, vocab 50, tied embeddings
        using var model = new HybridCausalLM(tied);
        long all = model.parameters().Sum(p => p.numel());
        // tied: the table is read whole as the LM head, so it counts once
        Assert.Equal(all * 4, ForwardBenchmark.DecodeWeightBytes(model));
        using var untied = new HybridCausalLM(tied with { TieWordEmbeddings = false });
        long untiedAll = untied.parameters().Sum(p => p.numel());
        Assert.Equal((untiedAll - 50 * 32) * 4, ForwardBenchmark.DecodeWeightBytes(untied));
    }

    [Fact]
    public void PlainDecodeBenchFile_CarriesRowsAndTheMachine_NotTheComparisonsKeys()
    {
        var limits = new MachineLimits(SgemmPeakGflops: 163.5, SgemmSize: 2048, ReadBandwidthGBps: 31.25, ReadBytes: 1 << 30, Threads: 2);
        var text = DecodeBenchFile.Of([new DecodeRow("teacher", 512, 7.5, 4096, 1000)], limits).ToJson();
        var json = System.Text.Json.Nodes.JsonNode.Parse(text)!.AsObject();
        Assert.Equal(new[] { "rows", "machine" }, json.Select(p => p.Key));
        Assert.Equal(31.25, (double)json["machine"]!["read_bandwidth_gbps"]!);
        Assert.Equal(163.5, (double)json["machine"]!["sgemm_peak_gflops"]!);
        Assert.Equal(new[] { "sgemm_peak_gflops", "sgemm_size", "read_bandwidth_gbps", "read_bytes", "threads" },
            json["machine"]!.AsObject().Select(p => p.Key));
        var row = json["rows"]![0]!;
        Assert.Equal(("teacher", 512, 7.5, 4096L, 1000L),
            ((string)row["model"]!, (int)row["context"]!, (double)row["ms_per_token"]!, (long)row["cache_bytes"]!, (long)row["weight_bytes"]!));
    }
}
