using HybridDistill.Evaluation;
using HybridDistill.Tokenization;
using HybridDistill.Tests.Tokenization;
using static TorchSharp.torch;

namespace HybridDistill.Tests.Evaluation;

/// <summary>Knows every next token (it reads ahead): row t puts logit 30 on ids[t + 1]. Scores 1.0 on anything.</summary>
internal sealed class OracleModel(int vocab, int context = 4096) : ILogitModel
{
    public int ContextLength => context;
    public int VocabSize => vocab;
    public Tensor Logits(Tensor ids)
    {
        if (ids.shape[1] > context) throw new InvalidOperationException($"{ids.shape[1]} tokens exceed the context {context}");
        using var scope = NewDisposeScope();
        var next = ids.roll(-1, 1);                                                           // [B, T]: ids[t + 1]
        var logits = nn.functional.one_hot(next, vocab).to_type(ScalarType.Float32) * 30;   // [B, T, V]
        return scope.MoveToOuter(logits);
    }
}

/// <summary>Answers at random: at every position one token drawn uniformly from <paramref name="candidates"/> gets the top logit.</summary>
internal sealed class RandomGuesser(int vocab, IReadOnlyList<int> candidates, int seed, int context = 4096) : ILogitModel
{
    readonly Random _rng = new(seed);
    public int ContextLength => context;
    public int VocabSize => vocab;
    public Tensor Logits(Tensor ids)
    {
        long b = ids.shape[0], t = ids.shape[1];
        var logits = new float[b * t * vocab];
        for (long row = 0; row < b * t; row++) logits[row * vocab + candidates[_rng.Next(candidates.Count)]] = 1;
        return tensor(logits, [b, t, vocab]);
    }
}

/// <summary>Logits that depend only on the current token: row t = <paramref name="table"/>(ids[t]) (a bigram model;
/// a unigram one when the table ignores its argument).</summary>
internal sealed class TableModel(int vocab, Func<int, float[]> table, int context = 4096) : ILogitModel
{
    public int ContextLength => context;
    public int VocabSize => vocab;
    public Tensor Logits(Tensor ids)
    {
        if (ids.shape[1] > context) throw new InvalidOperationException($"{ids.shape[1]} tokens exceed the context {context}");
        var flat = ids.data<long>().ToArray();
        var logits = new float[flat.Length * vocab];
        for (int i = 0; i < flat.Length; i++) Array.Copy(table((int)flat[i]), 0, logits, i * vocab, vocab);
        return tensor(logits, [ids.shape[0], ids.shape[1], vocab]);
    }
}

internal static class EvalTokenizers
{
    public static ITextTokenizer Stories260K { get; } = TokenizerLoader.Load(TestPaths.Assets("stories260K"));
    public static ITextTokenizer CharLevel { get; } = TokenizerLoader.Load(TestPaths.Assets("babyllama-tok105"));
    public static ITextTokenizer Gpt2 { get; } = BpeTokenizer.FromVocabAndMerges(TokenizerJsonFiles.Gpt2VocabPath, TokenizerJsonFiles.Gpt2MergesPath);
}
