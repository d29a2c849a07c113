// Converts a llama2.c "v0" (legacy) checkpoint into a Hugging Face Llama directory.
//   header: 7 x int32 LE  dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len
//           (vocab_size < 0: unshared classifier, stored last)
//   then fp32 arrays, each stacked over layers L:
//     tok_emb [V, D]  rms_att [L, D]  wq [L, D, D]  wk [L, KV, D]  wv [L, KV, D]  wo [L, D, D]  rms_ffn [L, D]
//     w1 [L, H, D]  w2 [L, D, H]  w3 [L, H, D]  rms_final [D]
//     freq_cis_real [S, hs/2]  freq_cis_imag [S, hs/2]  (legacy RoPE tables, skipped)  wcls [V, D] (unshared only)
//   with KV = n_kv_heads * hs, hs = D / n_heads.
// RoPE: llama2.c rotates interleaved pairs (2i, 2i+1) of each head; HF rotates (i, i + hs/2) ("rotate-half"),
// with the same frequency theta^(-2i/hs) for pair i. Reordering each head's q/k rows to [even rows, odd rows]
// makes rotate-half on the new rows equal the interleaved rotation on the old ones (q.k scores are unchanged).
using HybridDistill.Artifacts;
using TorchSharp;
using static TorchSharp.torch;

namespace HybridDistill.Checkpoints;

/// <summary>The 7-int header of a llama2.c v0 checkpoint.</summary>
public sealed record Llama2cHeader(int Dim, int HiddenDim, int Layers, int Heads, int KvHeads, int VocabSize, int SeqLen,
    bool SharedClassifier)
{
    public int HeadSize => Dim / Heads;
    public int KvDim => KvHeads * HeadSize;

    /// <summary>Number of fp32 values after the header that this header describes.</summary>
    public long FloatCount
    {
        get
        {
            checked
            {
                long d = Dim, h = HiddenDim, l = Layers, v = VocabSize, kv = KvDim;
                long perLayer = d + d * d + 2 * kv * d + d * d + d + 3 * h * d;
                long ropeTables = (long)SeqLen * HeadSize; // two tables of [seq_len, hs/2]
                return v * d + l * perLayer + d + ropeTables + (SharedClassifier ? 0 : v * d);
            }
        }
    }

    public long ExpectedFileBytes => checked(Llama2cImporter.HeaderBytes + 4 * FloatCount);

    public override string ToString() =>
        $"dim {Dim}, hidden_dim {HiddenDim}, n_layers {Layers}, n_heads {Heads}, n_kv_heads {KvHeads}, vocab_size {VocabSize}, seq_len {SeqLen}, {(SharedClassifier ? "shared" : "unshared")} classifier";
}

public static class Llama2cImporter
{
    public const int HeaderBytes = 7 * sizeof(int);
    /// <summary>"ak42": the magic of llama2.c's newer (version 1/2) export formats, which this importer does not read.</summary>
    const int VersionedMagic = 0x616b3432;

    /// <summary>Reads and validates the header of a v0 checkpoint, including the file size it implies.</summary>
    public static Llama2cHeader ReadHeader(string binPath)
    {
        var path = Path.GetFullPath(binPath);
        if (!File.Exists(path))
            throw new InputException($"{path}: llama2.c checkpoint not found.");
        long length = new FileInfo(path).Length;
        if (length < HeaderBytes)
            throw new InputException(
                $"{path}: the file is truncated: a llama2.c checkpoint starts with a {HeaderBytes}-byte header but the file has {length} bytes.");
        var raw = new int[7];
        using (var stream = File.OpenRead(path))
        using (var reader = new BinaryReader(stream))
            for (int i = 0; i < 7; i++) raw[i] = reader.ReadInt32();
        if (raw[0] == VersionedMagic)
            throw new InputException(
                $"{path}: this is a llama2.c version-{raw[1]} export (magic \"ak42\"); only the legacy v0 format is supported: re-export it with llama2.c's legacy_export.");
        int vocab = raw[5];
        var header = new Llama2cHeader(raw[0], raw[1], raw[2], raw[3], raw[4], Math.Abs(vocab), raw[6], vocab > 0);
        if (raw.Any(v => v == 0) || raw.Where((_, i) => i != 5).Any(v => v < 0) || vocab == int.MinValue)
            throw new InputException($"{path}: the header ({header}) has a zero or negative size: not a llama2.c v0 checkpoint.");
        if (header.Dim % header.Heads != 0 || header.Heads % header.KvHeads != 0 || header.HeadSize % 2 != 0)
            throw new InputException(
                $"{path}: the header ({header}) is inconsistent: dim must divide into n_heads heads of even size and n_heads must be a multiple of n_kv_heads.");
        long expected;
        try
        {
            expected = header.ExpectedFileBytes;
        }
        catch (OverflowException)
        {
            throw new InputException($"{path}: the header ({header}) describes an impossibly large model: not a llama2.c v0 checkpoint.");
        }
        if (length < expected)
            throw new InputException(
                $"{path}: the file is truncated: its header ({header}) needs {expected} bytes but the file has {length} bytes.");
        if (length > expected)
            throw new InputException(
                $"{path}: the file has {length} bytes but its header ({header}) describes {expected} bytes: not a llama2.c v0 checkpoint, or a corrupt one.");
        return header;
    }

    /// <summary>
    /// Writes an HF Llama directory at <paramref name="outDir"/>: config.json, model.safetensors (HF names, q/k rows
    /// in rotate-half order, lm_head.weight written even when tied) and a copy of tokenizer.model.
    /// Holds the whole model in memory (fp32, the size of the .bin); llama2.c models are small.
    /// </summary>
    public static void Import(string binPath, string outDir, string tokenizerModelPath)
    {
        var path = Path.GetFullPath(binPath);
        var tokenizer = Path.GetFullPath(tokenizerModelPath);
        var header = ReadHeader(path);
        if (!File.Exists(tokenizer))
            throw new InputException($"{tokenizer}: tokenizer.model not found (pass the SentencePiece model the checkpoint was trained with).");

        using var scope = torch.NewDisposeScope();
        var named = ReadNamedTensors(path, header);
        var dir = Path.GetFullPath(outDir);
        Directory.CreateDirectory(dir);
        ModelWeights.SaveDirectory(dir, named, long.MaxValue, new Dictionary<string, string>
        {
            ["format"] = "pt",
            ["source"] = $"llama2.c v0 checkpoint {Path.GetFileName(path)}; q/k rows permuted to HF rotate-half order",
        });
        AtomicFile.WriteAllBytes(Path.Combine(dir, "config.json"), ConfigJson(header));
        AtomicFile.WriteAllBytes(Path.Combine(dir, "tokenizer.model"), File.ReadAllBytes(tokenizer));
    }

    /// <summary>
    /// Reorders the rows of a q or k projection [heads*hs, in] from llama2.c's interleaved RoPE pairs to HF's
    /// rotate-half layout: within each head, rows 0, 2, 4, ... then 1, 3, 5, ...
    /// </summary>
    public static Tensor InterleavedToRotateHalf(Tensor weight, int heads)
    {
        long rows = weight.shape[0], columns = weight.shape[1];
        long halfHead = rows / heads / 2;
        return weight
            .view(heads, halfHead, 2, columns)  // [H*hs, in] -> [H, hs/2, 2, in]  (pair i, member 0/1)
            .transpose(1, 2)                    // -> [H, 2, hs/2, in]  (members 0 of all pairs, then members 1)
            .reshape(rows, columns);            // -> [H*hs, in]
    }

    static List<KeyValuePair<string, Tensor>> ReadNamedTensors(string path, Llama2cHeader h)
    {
        long d = h.Dim, hidden = h.HiddenDim, l = h.Layers, v = h.VocabSize, kv = h.KvDim;
        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1, FileOptions.SequentialScan);
        long offset = HeaderBytes;
        Tensor Next(params long[] shape)
        {
            var t = torch.empty(shape, dtype: float32);
            if (!TensorBytes.ReadInto(file.SafeFileHandle, offset, "F32", t))
                throw new InputException($"{path}: the file ended early at byte {offset} (was it truncated while being read?).");
            offset += t.numel() * sizeof(float);
            return t;
        }

        var tokEmb = Next(v, d);
        var rmsAtt = Next(l, d);
        var wq = Next(l, d, d);
        var wk = Next(l, kv, d);
        var wv = Next(l, kv, d);
        var wo = Next(l, d, d);
        var rmsFfn = Next(l, d);
        var w1 = Next(l, hidden, d);
        var w2 = Next(l, d, hidden);
        var w3 = Next(l, hidden, d);
        var rmsFinal = Next(d);
        offset += 4L * h.SeqLen * h.HeadSize; // freq_cis_real and freq_cis_imag: HF recomputes RoPE from rope_theta
        var classifier = h.SharedClassifier ? tokEmb.clone() : Next(v, d);

        var named = new List<KeyValuePair<string, Tensor>> { new("model.embed_tokens.weight", tokEmb) };
        for (int i = 0; i < h.Layers; i++)
        {
            var p = $"model.layers.{i}.";
            named.Add(new(p + "input_layernorm.weight", rmsAtt[i]));
            named.Add(new(p + "self_attn.q_proj.weight", InterleavedToRotateHalf(wq[i], h.Heads)));
            named.Add(new(p + "self_attn.k_proj.weight", InterleavedToRotateHalf(wk[i], h.KvHeads)));
            named.Add(new(p + "self_attn.v_proj.weight", wv[i]));
            named.Add(new(p + "self_attn.o_proj.weight", wo[i]));
            named.Add(new(p + "post_attention_layernorm.weight", rmsFfn[i]));
            named.Add(new(p + "mlp.gate_proj.weight", w1[i]));
            named.Add(new(p + "mlp.up_proj.weight", w3[i]));
            named.Add(new(p + "mlp.down_proj.weight", w2[i]));
        }
        named.Add(new("model.norm.weight", rmsFinal));
        named.Add(new("lm_head.weight", classifier));
        return named;
    }

    static byte[] ConfigJson(Llama2cHeader h) => ArtifactJson.Bytes(new Llama2cConfigFile(
        Architectures: ["LlamaForCausalLM"], ModelType: "llama", HiddenSize: h.Dim, IntermediateSize: h.HiddenDim,
        NumHiddenLayers: h.Layers, NumAttentionHeads: h.Heads, NumKeyValueHeads: h.KvHeads, HeadDim: h.HeadSize,
        VocabSize: h.VocabSize, MaxPositionEmbeddings: h.SeqLen, RmsNormEps: 1e-5, RopeTheta: 10000.0,
        TieWordEmbeddings: h.SharedClassifier, HiddenAct: "silu", AttentionBias: false, MlpBias: false,
        BosTokenId: 1, EosTokenId: 2, TorchDtype: "float32"), ArtifactJson.Types.Llama2cConfigFile, trailingNewline: true);
}

/// <summary>The config.json an imported llama2.c checkpoint gets: HF LlamaConfig keys, in the order of the stories260K
/// asset's config.json (llama2.c's eps, RoPE theta and special ids are fixed).</summary>
public sealed record Llama2cConfigFile(IReadOnlyList<string> Architectures, string ModelType, int HiddenSize, int IntermediateSize,
    int NumHiddenLayers, int NumAttentionHeads, int NumKeyValueHeads, int HeadDim, int VocabSize, int MaxPositionEmbeddings,
    double RmsNormEps, double RopeTheta, bool TieWordEmbeddings, string HiddenAct, bool AttentionBias, bool MlpBias,
    int BosTokenId, int EosTokenId, string TorchDtype);
