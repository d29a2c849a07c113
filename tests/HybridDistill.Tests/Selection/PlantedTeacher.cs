using System.Text.Json.Nodes;
using HybridDistill.Checkpoints;
using HybridDistill.Config;
using HybridDistill.Models;
using static TorchSharp.torch;

namespace HybridDistill.Tests.Selection;

/// <summary>
/// A tiny hand-built llama teacher in which exactly one layer's attention carries the information a recall task
/// needs, so a layer selector has one right answer at K = 1.
///
/// Vocabulary (25 ids): BOS = 0; pair tokens P(k, v) = 1 + 4k + v (key k, value v, both 0..3); query tokens
/// Q(k) = 17 + k; answer tokens A(v) = 21 + v. A sequence is BOS, the four pairs P(k, σ(k)) in a random order
/// (σ a random map keys -> values), then query/answer pairs Q(k) A(σ(k)) for random keys. Only the token after
/// each Q(k) is predictable, and only by looking back at the pair with key k.
///
/// Weights (hidden 32 = one dimension per token id 0..24, value dimensions 25..28, 3 spare; head dim 16):
/// - embeddings are one-hot; every MLP's down_proj is zero (the MLPs add nothing);
/// - the planted layer, head 0: a Q(k) query points along a_k = e_{4+k} and the key of P(k, v) is a_k, so the
///   query attends to its pair (logit c/sqrt(16) = 15); every other token queries along u = e_3, the key of BOS,
///   whose value is zero (an attention sink). The value of P(k, v) is e_v and o_proj writes it to residual
///   dimension 25 + v; head 1 is zero. The signal lives in head dimensions 3..7, whose RoPE frequencies are tiny
///   (rope_theta 1e8), so positions barely move the logits;
/// - the other layers keep small random q/k/v and an o_proj scaled to std 2e-4 (near-zero attention output);
/// - lm_head reads only the value dimensions: logit(A(v)) = 5 * normed[25 + v] (about 20 after a copy), every
///   other logit is 0, so the teacher is uniform over the 25 ids everywhere else.
/// Ablating the planted layer makes the answers uniform (NLL log 25 instead of ~0); ablating any other layer
/// changes next to nothing.
/// </summary>
public static class PlantedTeacher
{
    public const int Bos = 0, Keys = 4, Values = 4, Vocab = 25, Hidden = 32, ValueDims = 25;
    public static int Pair(int key, int value) => 1 + Keys * key + value;
    public static int Query(int key) => 17 + key;
    public static int Answer(int value) => 21 + value;

    public static ModelConfig Config(int layers) => ModelConfig.FromJson(new JsonObject
    {
        ["model_type"] = "llama", ["hidden_size"] = Hidden, ["intermediate_size"] = 16, ["num_hidden_layers"] = layers,
        ["num_attention_heads"] = 2, ["num_key_value_heads"] = 2, ["head_dim"] = 16, ["vocab_size"] = Vocab,
        ["max_position_embeddings"] = 128, ["rms_norm_eps"] = 1e-5, ["rope_theta"] = 1e8, ["tie_word_embeddings"] = false,
        ["bos_token_id"] = Bos,
    });

    public static HybridCausalLM Build(int layers = 4, int plantedLayer = 2, long seed = 7)
    {
        var model = new HybridCausalLM(Config(layers));
        model.InitializeWeights(seed, std: 0.02);
        var p = model.state_dict();
        double s = Math.Sqrt(Hidden);         // RMSNorm of a one-hot row is sqrt(hidden) times it
        const double c = 60;                  // q.k for a match; / sqrt(16) = 15
        using (no_grad())
        {
            p["model.embed_tokens.weight"].copy_(eye(Vocab, Hidden));
            for (int l = 0; l < layers; l++)
            {
                string at = $"model.layers.{l}.";
                p[at + "mlp.down_proj.weight"].zero_();
                if (l != plantedLayer) p[at + "self_attn.o_proj.weight"].mul_(0.01);
            }
            string a = $"model.layers.{plantedLayer}.self_attn.";
            var q = new float[32, Hidden];               // [H*D, hidden]; head 0 = rows 0..15, head 1 stays zero
            var k = new float[32, Hidden];
            var v = new float[32, Hidden];
            var o = new float[Hidden, 32];               // [hidden, H*D]
            for (int tok = 0; tok < Vocab; tok++)
            {
                bool isQuery = tok >= Query(0) && tok < Query(0) + Keys;
                q[isQuery ? 4 + (tok - Query(0)) : 3, tok] = (float)(c / s);
            }
            k[3, Bos] = (float)(1 / s);
            for (int key = 0; key < Keys; key++)
                for (int value = 0; value < Values; value++)
                {
                    k[4 + key, Pair(key, value)] = (float)(1 / s);
                    v[value, Pair(key, value)] = (float)(1 / s);
                }
            for (int value = 0; value < Values; value++) o[ValueDims + value, value] = 1;
            var head = new float[Vocab, Hidden];         // [V, hidden]
            for (int value = 0; value < Values; value++) head[Answer(value), ValueDims + value] = 5;
            p[a + "q_proj.weight"].copy_(tensor(q));
            p[a + "k_proj.weight"].copy_(tensor(k));
            p[a + "v_proj.weight"].copy_(tensor(v));
            p[a + "o_proj.weight"].copy_(tensor(o));
            p["lm_head.weight"].copy_(tensor(head));
        }
        return model;
    }

    /// <summary>One sequence: BOS, the 4 pairs in random order, then <paramref name="queries"/> query/answer pairs. Answer positions are returned.</summary>
    public static (int[] Ids, int[] AnswerPositions) Sequence(Random rng, int queries)
    {
        var sigma = Enumerable.Range(0, Keys).Select(_ => rng.Next(Values)).ToArray();
        var ids = new List<int> { Bos };
        foreach (int key in Enumerable.Range(0, Keys).OrderBy(_ => rng.Next())) ids.Add(Pair(key, sigma[key]));
        var answers = new List<int>();
        for (int i = 0; i < queries; i++)
        {
            int key = rng.Next(Keys);
            ids.Add(Query(key));
            answers.Add(ids.Count);
            ids.Add(Answer(sigma[key]));
        }
        return (ids.ToArray(), answers.ToArray());
    }

    public static IReadOnlyList<int[]> Sequences(int count, int queries, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => Sequence(rng, queries).Ids).ToArray();
    }

    /// <summary>Saves the teacher as a model directory (config.json + model.safetensors; no tokenizer: it reads token ids).</summary>
    public static string SaveTo(string dir, int layers = 4, int plantedLayer = 2)
    {
        using var model = Build(layers, plantedLayer);
        HfCheckpoint.Save(model, dir);
        return dir;
    }
}
