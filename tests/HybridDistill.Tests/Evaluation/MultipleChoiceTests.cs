using HybridDistill.Checkpoints;
using HybridDistill.Evaluation;

namespace HybridDistill.Tests.Evaluation;

public class MultipleChoiceTests
{
    // Character-level tokenizer: " ab" continues any context as ▁ a b, so log-likelihoods are easy to add up.
    static readonly HybridDistill.Tokenization.ITextTokenizer Tok = EvalTokenizers.CharLevel;

    /// <summary>A unigram model: p(▁) = 0.2, p(a) = 0.1, p(b) = p(c) = 0.05, the rest shared evenly.</summary>
    internal static TableModel Unigram()
    {
        int v = Tok.VocabSize;
        var p = new double[v];
        Array.Fill(p, 0.6 / (v - 4));
        p[Tok.TokenToId("▁")!.Value] = 0.2;
        p[Tok.TokenToId("a")!.Value] = 0.1;
        p[Tok.TokenToId("b")!.Value] = 0.05;
        p[Tok.TokenToId("c")!.Value] = 0.05;
        var logits = p.Select(x => (float)Math.Log(x)).ToArray();
        return new TableModel(v, _ => logits);
    }

    static string WriteJsonl(string name, params string[] lines)
    {
        var path = Path.Combine(TestPaths.NewTempDir("mc"), name);
        File.WriteAllLines(path, lines);
        return path;
    }

    [Fact]
    public void ThreeItems_AccAndAccNorm_MatchHandComputedLogLikelihoods()
    {
        // ll(" a") = ln .2 + ln .1 = -3.912   ll(" bcb") = ln .2 + 3 ln .05 = -10.596 (/3 = -3.532)
        //   item 1 gold 0: acc picks "a" (right), acc_norm picks "bcb" (wrong)
        // ll(" aaaa") = ln .2 + 4 ln .1 = -10.820 (/4 = -2.705)   ll(" b") = ln .2 + ln .05 = -4.605
        //   item 2 gold 0: acc picks "b" (wrong), acc_norm picks "aaaa" (right)
        // ll(" ab") = ln .2 + ln .1 + ln .05 = -6.908 (/2 = -3.454)   ll(" c") = -4.605
        //   item 3 gold 0: acc picks "c" (wrong), acc_norm picks "ab" (right)
        // acc = 1/3, acc_norm = 2/3.
        var path = WriteJsonl("three.jsonl",
            """{"query": "Question: one", "choices": ["a", "bcb"], "gold": 0}""",
            """{"query": "Question: two", "choices": ["aaaa", "b"], "gold": 0}""",
            """{"query": "Question: three", "choices": ["ab", "c"], "gold": 0}""");
        var set = MultipleChoice.Load(path);
        Assert.Equal(McLayout.QueryChoices, set.Layout);
        var model = Unigram();

        var requests = set.Items.SelectMany(i => i.Requests).Select(r => MultipleChoice.EncodePair(Tok, r.Context, r.Continuation)).ToList();
        var scores = MultipleChoice.Score(model, requests, batchSize: 2);
        double l2 = Math.Log(0.2), l1 = Math.Log(0.1), l05 = Math.Log(0.05);
        double[] expected = [l2 + l1, l2 + 3 * l05, l2 + 4 * l1, l2 + l05, l2 + l1 + l05, l2 + l05];
        for (int i = 0; i < expected.Length; i++) Assert.Equal(expected[i], scores[i].LogProb, 4);

        var r = MultipleChoice.Evaluate(model, Tok, set);
        Assert.Equal(3, r.N);
        Assert.Equal(1.0 / 3, r.Acc.Accuracy, 10);
        Assert.Equal(2.0 / 3, r.AccNorm!.Value.Accuracy, 10);
    }

    [Fact]
    public void EncodePair_FollowsTheHarness_ContinuationAfterContextTokens_TrailingSpaceMoved()
    {
        var sp = EvalTokenizers.Stories260K;
        var (context, continuation) = MultipleChoice.EncodePair(sp, "Once upon a\n", " time");
        Assert.Equal([sp.BosId!.Value, .. sp.Encode("Once upon a")], context);
        var whole = sp.Encode("Once upon a\n time");
        Assert.Equal(whole.Skip(context.Length - 1), continuation);
        Assert.Equal("<0x0A>", sp.IdToToken(continuation[0]));          // the context's "\n" moved to the continuation
    }

    [Fact]
    public void WinoGrande_ScoresTheSharedContinuationUnderEachOption()
    {
        // A bigram model: after "x" the continuation's "▁" is likely, after "y" unlikely.
        int v = Tok.VocabSize, x = Tok.TokenToId("x")!.Value, space = Tok.TokenToId("▁")!.Value;
        var model = new TableModel(v, prev =>
        {
            var row = new float[v];
            row[space] = prev == x ? 5 : -5;
            return row;
        });
        var path = WriteJsonl("wino.jsonl",
            """{"context_options": ["the y", "the x"], "continuation": "ran.", "gold": 1}""",
            """{"context_options": ["a x", "a y"], "continuation": "sat.", "gold": 1}""");
        var set = MultipleChoice.Load(path);
        Assert.Equal(McLayout.ContextOptions, set.Layout);
        var r = MultipleChoice.Evaluate(model, Tok, set);
        Assert.Equal(new Proportion(1, 2), r.Acc);
        Assert.Equal(r.Acc, r.AccNorm);                                  // one continuation: normalising changes nothing
    }

    /// <summary>A bigram model whose argmax after each token is <paramref name="next"/>[token] (logit 30, else 0).</summary>
    static TableModel Bigram(int vocab, IReadOnlyDictionary<int, int> next, int context = 4096) =>
        new(vocab, prev =>
        {
            var row = new float[vocab];
            if (next.TryGetValue(prev, out int n)) row[n] = 30;
            return row;
        }, context);

    static int Id(string piece) => Tok.TokenToId(piece)!.Value;

    [Fact]
    public void Cloze_AccIsEveryContinuationTokenTheArgmax_NoAccNorm()
    {
        // After "t" comes "▁", after "▁" "s", then "a", "t": " sat" after "the cat" is greedy; " ran" after "a dog" is not.
        var model = Bigram(Tok.VocabSize, new Dictionary<int, int>
        {
            [Id("t")] = Id("▁"), [Id("g")] = Id("▁"), [Id("▁")] = Id("s"), [Id("s")] = Id("a"), [Id("a")] = Id("t"),
        });
        var path = WriteJsonl("cloze.jsonl",
            """{"context": "the cat", "continuation": "sat"}""",
            """{"context": "a dog", "continuation": "ran"}""");
        var set = MultipleChoice.Load(path);
        Assert.Equal(McLayout.Cloze, set.Layout);
        var r = MultipleChoice.Evaluate(model, Tok, set);
        Assert.Equal(new Proportion(1, 2), r.Acc);
        Assert.Null(r.AccNorm);
        // The unigram model's argmax is always "▁": " sat" gets only its first token right.
        Assert.Equal(0.0, MultipleChoice.Evaluate(Unigram(), Tok, set).Acc.Accuracy);
    }

    [Fact]
    public void LongItems_AreTruncatedFromTheLeftToTheContext()
    {
        // 40 context tokens + 2 continuation tokens into a 16-token model (TableModel rejects longer input).
        var request = (Context: Enumerable.Repeat(5, 40).ToArray(), Continuation: new[] { 6, 7 });
        var scores = MultipleChoice.Score(Bigram(10, new Dictionary<int, int> { [5] = 6, [6] = 7 }, context: 16), [request]);
        Assert.True(scores[0].Greedy);
        Assert.True(Math.Abs(scores[0].LogProb) < 1e-6);
    }

    [Theory]
    [InlineData("""{"query": "q", "choices": ["a", "b"], "gold": 2}""", "not an index")]
    [InlineData("""{"question": "q"}""", "none of the keys")]
    [InlineData("""{"query": "q", "choices": "a", "gold": 0}""", "'choices' has the wrong type")]
    [InlineData("not json", "not valid JSON")]
    [InlineData("""{"query": "q", "choices": ["a", "b"]""", "not valid JSON")]
    [InlineData("[1, 2]", "is not a JSON object")]
    [InlineData("null", "is not a JSON object")]
    [InlineData("""{"query": "q", "choices": ["a", "b"], "gold": "first"}""", "'gold' has the wrong type")]
    public void BadFiles_NameTheFileAndLine(string line, string message)
    {
        var path = WriteJsonl("bad.jsonl", line);
        var e = Assert.Throws<InputException>(() => MultipleChoice.Load(path));
        Assert.Contains("line 1", e.Message);
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void Stories260K_OnPiqaAndArcEasy_IsNearChance()
    {
        using var lm = HfCheckpoint.Load(TestPaths.Assets("stories260K"));
        var model = new CausalLMLogits(lm);
        var piqa = MultipleChoice.Evaluate(model, EvalTokenizers.Stories260K, MultipleChoice.Load(TestPaths.Assets("eval", "piqa.jsonl"), limit: 10));
        Assert.Equal(10, piqa.N);
        Assert.InRange(piqa.Acc.Accuracy, 0.1, 0.9);                      // two choices: chance 0.5
        var arc = MultipleChoice.Evaluate(model, EvalTokenizers.Stories260K, MultipleChoice.Load(TestPaths.Assets("eval", "arc_easy.jsonl"), limit: 10));
        Assert.InRange(arc.Acc.Accuracy, 0.0, 0.7);                       // four choices: chance 0.25
    }

    [Fact]
    public void Stories260K_BatchedRightPaddedScores_EqualOneByOne()
    {
        using var lm = HfCheckpoint.Load(TestPaths.Assets("stories260K"));
        var model = new CausalLMLogits(lm);
        var set = MultipleChoice.Load(TestPaths.Assets("eval", "arc_easy.jsonl"), limit: 2);
        var requests = set.Items.SelectMany(i => i.Requests).Select(r => MultipleChoice.EncodePair(EvalTokenizers.Stories260K, r.Context, r.Continuation)).ToList();
        Assert.True(requests.Select(r => r.Context.Length + r.Continuation.Length).Distinct().Count() > 1);  // padding happens
        var batched = MultipleChoice.Score(model, requests, batchSize: 8);
        var single = MultipleChoice.Score(model, requests, batchSize: 1);
        for (int i = 0; i < requests.Count; i++)
        {
            Assert.Equal(single[i].LogProb, batched[i].LogProb, 3);
            Assert.Equal(single[i].Greedy, batched[i].Greedy);
            Assert.True(single[i].LogProb < 0);
        }
    }
}
