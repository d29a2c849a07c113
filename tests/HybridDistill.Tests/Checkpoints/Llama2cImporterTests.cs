using System.Text.Json;
using HybridDistill.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace HybridDistill.Tests.Checkpoints;

public class Llama2cImporterTests
{
    static string ImportStories260K()
    {
        var outDir = TestPaths.NewTempDir("l2c-import");
        Llama2cImporter.Import(TestPaths.Assets("stories260K", "stories260K.bin"), outDir,
            TestPaths.Assets("stories260K", "tokenizer.model"));
        return outDir;
    }

    [Fact]
    public void Stories260KImport_EqualsTheHfCopyTensorByTensor()
    {
        var outDir = ImportStories260K();
        using var expected = SafeTensorsReader.Open(TestPaths.Assets("stories260K", "model.safetensors"));
        using var actual = SafeTensorsReader.Open(Path.Combine(outDir, "model.safetensors"));
        Assert.Equal(expected.Entries.Select(e => e.Name), actual.Entries.Select(e => e.Name));
        double worst = 0;
        foreach (var entry in expected.Entries)
        {
            using var scope = torch.NewDisposeScope();
            var want = expected.ReadTensor(entry);
            var got = actual.ReadTensor(entry.Name);
            Assert.Equal(want.shape, got.shape);
            worst = Math.Max(worst, (want - got).abs().max().item<float>());
        }
        Assert.True(worst == 0, $"largest difference {worst}"); // a pure re-layout of fp32 values: bit-exact
        Assert.Equal(File.ReadAllBytes(TestPaths.Assets("stories260K", "tokenizer.model")),
            File.ReadAllBytes(Path.Combine(outDir, "tokenizer.model")));
        Assert.Empty(Directory.GetFiles(outDir, "*.tmp"));
    }

    [Fact]
    public void Stories260KConfig_EqualsTheHfCopy()
    {
        var outDir = ImportStories260K();
        using var expected = JsonDocument.Parse(File.ReadAllBytes(TestPaths.Assets("stories260K", "config.json")));
        using var actual = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(outDir, "config.json")));
        var want = expected.RootElement.EnumerateObject().ToList();
        var got = actual.RootElement.EnumerateObject().ToDictionary(p => p.Name, p => p.Value);
        Assert.Equal(want.Select(p => p.Name).Order(), got.Keys.Order());
        foreach (var p in want)
        {
            var g = got[p.Name];
            Assert.True(p.Value.ValueKind == g.ValueKind || p.Value.ValueKind is JsonValueKind.True or JsonValueKind.False,
                $"{p.Name}: {p.Value.ValueKind} vs {g.ValueKind}");
            if (p.Value.ValueKind == JsonValueKind.Number)
                Assert.Equal(p.Value.GetDouble(), g.GetDouble());
            else
                Assert.Equal(p.Value.GetRawText(), g.GetRawText());
        }
    }

    /// <summary>
    /// A synthetic unshared-classifier checkpoint whose every float is its own index, so each HF tensor's
    /// source position in the .bin can be checked by arithmetic.
    /// </summary>
    [Fact]
    public void UnsharedClassifierLayoutAndQkPermutation_FollowTheV0Format()
    {
        const int dim = 8, hidden = 6, layers = 2, heads = 2, kvHeads = 1, vocab = 5, seqLen = 3;
        const int hs = dim / heads, kvDim = kvHeads * hs;
        long floats = vocab * dim + layers * (dim + 2 * dim * dim + 2 * kvDim * dim + dim + 3 * hidden * dim) + dim
                      + seqLen * hs + vocab * dim;
        var dir = TestPaths.NewTempDir("l2c-synthetic");
        var bin = Path.Combine(dir, "tiny.bin");
        using (var writer = new BinaryWriter(File.Create(bin)))
        {
            foreach (var v in new[] { dim, hidden, layers, heads, kvHeads, -vocab, seqLen }) writer.Write(v);
            for (long i = 0; i < floats; i++) writer.Write((float)i);
        }
        var tokenizer = Path.Combine(dir, "tok.model");
        File.WriteAllBytes(tokenizer, [1, 2, 3]);
        var outDir = Path.Combine(dir, "hf");
        Llama2cImporter.Import(bin, outDir, tokenizer);

        var t = ModelWeights.ReadDirectory(outDir).ToDictionary();
        long embed = 0, rmsAtt = vocab * dim, wq = rmsAtt + layers * dim, wk = wq + layers * dim * dim;
        long wv = wk + layers * kvDim * dim, wo = wv + layers * kvDim * dim, rmsFfn = wo + layers * dim * dim;
        long w1 = rmsFfn + layers * dim, w2 = w1 + layers * hidden * dim, w3 = w2 + layers * dim * hidden;
        long rmsFinal = w3 + layers * hidden * dim, wcls = rmsFinal + dim + seqLen * hs;
        float At(string name, params long[] index) => t[name][index].item<float>();

        Assert.Equal(embed + 4 * dim + 3, At("model.embed_tokens.weight", 4, 3));
        Assert.Equal(wcls + 2 * dim + 1, At("lm_head.weight", 2, 1));
        Assert.Equal(rmsFinal + 5, At("model.norm.weight", 5));
        Assert.Equal(rmsAtt + dim + 2, At("model.layers.1.input_layernorm.weight", 2));
        Assert.Equal(rmsFfn + dim + 7, At("model.layers.1.post_attention_layernorm.weight", 7));
        Assert.Equal(wv + kvDim * dim + 3 * dim + 1, At("model.layers.1.self_attn.v_proj.weight", 3, 1));
        Assert.Equal(wo + 2 * dim, At("model.layers.0.self_attn.o_proj.weight", 2, 0));
        Assert.Equal(w1 + hidden * dim + 5 * dim + 6, At("model.layers.1.mlp.gate_proj.weight", 5, 6));
        Assert.Equal(w2 + 7 * hidden + 5, At("model.layers.0.mlp.down_proj.weight", 7, 5));
        Assert.Equal(w3 + hidden * dim + 1, At("model.layers.1.mlp.up_proj.weight", 0, 1));
        // q/k: HF row (head h, j) comes from llama2.c row (h, 2j) for j < hs/2 and (h, 2(j - hs/2) + 1) after.
        for (int h = 0; h < heads; h++)
            for (int j = 0; j < hs; j++)
            {
                int source = h * hs + (j < hs / 2 ? 2 * j : 2 * (j - hs / 2) + 1);
                Assert.Equal(wq + dim * dim + source * dim + 3, At("model.layers.1.self_attn.q_proj.weight", h * hs + j, 3));
                if (h < kvHeads)
                    Assert.Equal(wk + source * dim, At("model.layers.0.self_attn.k_proj.weight", h * hs + j, 0));
            }

        using var config = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(outDir, "config.json")));
        Assert.False(config.RootElement.GetProperty("tie_word_embeddings").GetBoolean());
        Assert.Equal(vocab, config.RootElement.GetProperty("vocab_size").GetInt32());
        Assert.Equal(hs, config.RootElement.GetProperty("head_dim").GetInt32());
        foreach (var v in t.Values) v.Dispose();
    }

    /// <summary>
    /// The permutation's purpose: rotate-half RoPE on permuted weights gives the same attention scores as
    /// llama2.c's interleaved RoPE on the original weights. Both RoPEs are written out here with plain loops.
    /// </summary>
    [Fact]
    public void RotateHalfOnPermutedWeights_GivesTheInterleavedScores()
    {
        const int heads = 2, hs = 8, dim = heads * hs, positions = 5;
        var g = torch.manual_seed(3);
        using var wq = torch.randn(dim, dim, generator: g);
        using var wk = torch.randn(dim, dim, generator: g);
        using var x = torch.randn(positions, dim, generator: g);
        using var wqHf = Llama2cImporter.InterleavedToRotateHalf(wq, heads);
        using var wkHf = Llama2cImporter.InterleavedToRotateHalf(wk, heads);

        float[] Project(Tensor w) { using var y = x.matmul(w.t()); return y.contiguous().data<float>().ToArray(); } // [T, dim]
        static double Angle(int pos, int pair) => pos * Math.Pow(10000, -2.0 * pair / hs);
        static double[] Interleaved(float[] v)
        {
            var r = new double[v.Length];
            for (int t = 0; t < positions; t++)
                for (int h = 0; h < heads; h++)
                    for (int i = 0; i < hs / 2; i++)
                    {
                        int a = t * dim + h * hs + 2 * i, b = a + 1;
                        double c = Math.Cos(Angle(t, i)), s = Math.Sin(Angle(t, i));
                        r[a] = v[a] * c - v[b] * s;
                        r[b] = v[a] * s + v[b] * c;
                    }
            return r;
        }
        static double[] RotateHalf(float[] v)
        {
            var r = new double[v.Length];
            for (int t = 0; t < positions; t++)
                for (int h = 0; h < heads; h++)
                    for (int i = 0; i < hs / 2; i++)
                    {
                        int a = t * dim + h * hs + i, b = a + hs / 2;
                        double c = Math.Cos(Angle(t, i)), s = Math.Sin(Angle(t, i));
                        r[a] = v[a] * c - v[b] * s;
                        r[b] = v[b] * c + v[a] * s;
                    }
            return r;
        }
        double Score(double[] q, double[] k, int tq, int tk, int h) =>
            Enumerable.Range(0, hs).Sum(d => q[tq * dim + h * hs + d] * k[tk * dim + h * hs + d]);

        var qL = Interleaved(Project(wq));
        var kL = Interleaved(Project(wk));
        var qH = RotateHalf(Project(wqHf));
        var kH = RotateHalf(Project(wkHf));
        for (int h = 0; h < heads; h++)
            for (int tq = 0; tq < positions; tq++)
                for (int tk = 0; tk <= tq; tk++)
                    Assert.Equal(Score(qL, kL, tq, tk, h), Score(qH, kH, tq, tk, h), 3);
        // Without the permutation the scores differ (the test can fail).
        var qWrong = RotateHalf(Project(wq));
        var kWrong = RotateHalf(Project(wk));
        Assert.True(Math.Abs(Score(qL, kL, 4, 1, 0) - Score(qWrong, kWrong, 4, 1, 0)) > 1e-2);
    }

    [Fact]
    public void TruncatedBin_IsRejectedWithExpectedAndFoundBytes()
    {
        var dir = TestPaths.NewTempDir("l2c-trunc");
        var source = File.ReadAllBytes(TestPaths.Assets("stories260K", "stories260K.bin"));
        var bin = Path.Combine(dir, "cut.bin");
        File.WriteAllBytes(bin, source[..500_000]);
        var outDir = Path.Combine(dir, "out");
        HandBuilt.AssertInputError(() => Llama2cImporter.Import(bin, outDir, TestPaths.Assets("stories260K", "tokenizer.model")),
            bin, "truncated", "1056540 bytes", "500000 bytes");
        Assert.False(Directory.Exists(outDir));

        var tiny = Path.Combine(dir, "tiny.bin");
        File.WriteAllBytes(tiny, source[..10]);
        HandBuilt.AssertInputError(() => Llama2cImporter.ReadHeader(tiny), tiny, "truncated", "10 bytes");

        var padded = Path.Combine(dir, "padded.bin");
        File.WriteAllBytes(padded, source.Concat(new byte[4]).ToArray());
        HandBuilt.AssertInputError(() => Llama2cImporter.ReadHeader(padded), padded, "1056544 bytes", "1056540 bytes");
    }

    [Fact]
    public void HeaderOfStories260K_IsRead()
    {
        var h = Llama2cImporter.ReadHeader(TestPaths.Assets("stories260K", "stories260K.bin"));
        Assert.Equal(new Llama2cHeader(64, 172, 5, 8, 4, 512, 512, true), h);
        Assert.Equal(8, h.HeadSize);
        Assert.Equal(32, h.KvDim);
    }
}
