using HybridDistill.Evaluation;
using HybridDistill.Tokenization;

namespace HybridDistill.Tests.Evaluation;

public class RecallSuiteTests
{
    public static TheoryData<string> Tokenizers => new() { "stories260K", "babyllama", "gpt2" };

    static ITextTokenizer Tokenizer(string name) => name switch
    {
        "stories260K" => EvalTokenizers.Stories260K,
        "babyllama" => EvalTokenizers.CharLevel,
        _ => EvalTokenizers.Gpt2,
    };

    [Fact]
    public void Vocabulary_SentencePiece512_HasWordKeysDigitValuesAndNewlineLines()
    {
        var tok = EvalTokenizers.Stories260K;
        var v = RecallVocabulary.Build(tok);
        Assert.Equal("\n", v.Separator);
        Assert.Equal([tok.TokenToId("<0x0A>")!.Value], v.SeparatorIds);
        Assert.Empty(v.KeyLeadIds);                                       // "▁cat" is one piece
        Assert.True(v.Keys.Count >= 60, $"{v.Keys.Count} keys");
        Assert.Contains(v.Keys, k => k.Text == "the" && tok.IdToToken(k.Id) == "▁the");
        Assert.Equal(10, v.Values.Count);
        Assert.Equal(["▁"], v.ColonIds.Skip(1).Select(id => tok.IdToToken(id)));  // ":" then the value's lone "▁"
        Assert.Equal(v.Keys.Count, v.Keys.Select(k => k.Id).Distinct().Count());
        foreach (var k in v.Keys) Assert.Equal([k.Id], tok.Encode(" " + k.Text));
    }

    [Fact]
    public void Vocabulary_CharacterLevel_FallsBackToLetterKeysAndCommaLines()
    {
        var tok = EvalTokenizers.CharLevel;
        var v = RecallVocabulary.Build(tok);
        Assert.Equal(",", v.Separator);                                   // babyllama has no newline piece
        Assert.Equal(["▁"], v.KeyLeadIds.Select(id => tok.IdToToken(id)));
        Assert.True(v.Keys.Count >= 50, $"{v.Keys.Count} keys");
        Assert.All(v.Keys, k => Assert.Single(k.Text));
        Assert.Equal(10, v.Values.Count);
    }

    [Fact]
    public void Vocabulary_ByteLevelBpe_HasSpacePrefixedWordKeys()
    {
        var tok = EvalTokenizers.Gpt2;
        var v = RecallVocabulary.Build(tok);
        Assert.Equal("\n", v.Separator);
        Assert.Empty(v.KeyLeadIds);
        Assert.Contains(v.Keys, k => k.Text == "the" && tok.IdToToken(k.Id) == "Ġthe");
        Assert.Equal(["Ġ7"], v.Values.Where(x => x.Text == "7").Select(x => tok.IdToToken(x.Id)));
    }

    [Theory]
    [MemberData(nameof(Tokenizers))]
    public void SameSeedAndTokenizer_GiveIdenticalPrompts_OtherSeedsDiffer(string name)
    {
        var a = new RecallSuite(RecallVocabulary.Build(Tokenizer(name)));
        var b = new RecallSuite(RecallVocabulary.Build(Tokenizer(name)));
        foreach (var task in RecallTasks.All)
        {
            var first = a.Generate(task, 128, 6, seed: 7);
            var again = b.Generate(task, 128, 6, seed: 7);
            var other = b.Generate(task, 128, 6, seed: 8);
            for (int i = 0; i < first.Count; i++)
            {
                Assert.Equal(first[i].Ids, again[i].Ids);
                Assert.Equal(first[i].Answers.Select(x => x.Start), again[i].Answers.Select(x => x.Start));
            }
            Assert.NotEqual(first.Select(x => string.Join(",", x.Ids)), other.Select(x => string.Join(",", x.Ids)));
            // Item i does not depend on how many were asked for.
            Assert.Equal(first[3].Ids, b.Item(task, 128, 3, seed: 7).Ids);
        }
    }

    [Theory]
    [MemberData(nameof(Tokenizers))]
    public void Prompts_HaveExactLength_AndTheirAnswersFollowFromTheContext(string name)
    {
        var tok = Tokenizer(name);
        var v = RecallVocabulary.Build(tok);
        var suite = new RecallSuite(v);
        foreach (int length in new[] { 128, 256 })
        {
            foreach (var item in suite.Generate(RecallTasks.KvRecall, length, 5, seed: 1))
            {
                Assert.Equal(length, item.Length);
                Assert.Equal(4, item.Answers.Count);
                foreach (var answer in item.Answers)
                {
                    int key = item.Ids[answer.Start - v.ColonIds.Length - 1];
                    int line = LineOf(item, v, key);                                  // the key's line among the pairs
                    Assert.True(line < item.Answers[0].Start - 4);
                    Assert.Equal(item.Ids[line + 1 + v.ColonIds.Length], Assert.Single(answer.Ids));
                    Assert.Contains(answer.Ids[0], v.Values.Select(x => x.Id));
                }
            }
            foreach (var item in suite.Generate(RecallTasks.KvMultihop, length, 5, seed: 1))
            {
                Assert.Equal(length, item.Length);
                Assert.Equal(["hop1", "hop2", "hop1", "hop2"], item.Answers.Select(x => x.Label));
                foreach (var answer in item.Answers)
                {
                    // Follow "a -> b" lines to "b: v".
                    int key = item.Ids[answer.Start - v.ColonIds.Length - 1], hops = 0;
                    while (true)
                    {
                        int at = LineOf(item, v, key);
                        if (item.Ids.AsSpan(at + 1, v.ArrowIds.Length).SequenceEqual(v.ArrowIds))
                        {
                            key = item.Ids[at + 1 + v.ArrowIds.Length];
                            hops++;
                            continue;
                        }
                        Assert.Equal(item.Ids[at + 1 + v.ColonIds.Length], answer.Ids[0]);
                        break;
                    }
                    Assert.Equal(answer.Label, $"hop{hops}");
                }
            }
            foreach (var item in suite.Generate(RecallTasks.Passkey, length, 5, seed: 1))
            {
                Assert.Equal(length, item.Length);
                string number = tok.Decode(item.AnswerIds).Trim();
                Assert.Matches("^[1-9][0-9]{4}$", number);
                Assert.Contains($"The pass key is {number}. Remember it.", tok.Decode(item.PromptIds));
            }
            foreach (var item in suite.Generate(RecallTasks.Copy, length, 5, seed: 1))
            {
                Assert.Equal(length, item.Length);
                var repeat = item.Answers[0];
                var first = item.FirstOccurrences[0];
                Assert.Equal(item.Ids[first.Start..(first.Start + first.Ids.Length)], repeat.Ids);
                Assert.Equal(item.Ids[repeat.Start..], repeat.Ids);                 // the repeat ends the prompt
                Assert.True(first.Start + first.Ids.Length < repeat.Start);
            }
        }
    }

    /// <summary>Position of <paramref name="key"/> at the start of a line ("key:" or "key ->") after the padding.</summary>
    static int LineOf(RecallItem item, RecallVocabulary v, int key)
    {
        int offset = (int)Math.Round(item.Depth * item.Length);
        for (int p = offset; p < item.Length; p++)
        {
            if (item.Ids[p] != key) continue;
            int lineStart = p - v.KeyLeadIds.Length;
            bool startsLine = lineStart == offset ||
                (lineStart >= v.SeparatorIds.Length && item.Ids.AsSpan(lineStart - v.SeparatorIds.Length, v.SeparatorIds.Length).SequenceEqual(v.SeparatorIds));
            if (startsLine) return p;
        }
        throw new Xunit.Sdk.XunitException($"key {key} starts no line");
    }

    [Fact]
    public void PasskeyDepths_PlaceTheNeedleFromStartToEnd()
    {
        var suite = new RecallSuite(RecallVocabulary.Build(EvalTokenizers.Stories260K));
        var depths = suite.Generate(RecallTasks.Passkey, 256, 5, seed: 0).Select(i => i.Depth).ToList();
        Assert.True(depths[0] < 0.02, $"depth 0 at {depths[0]}");
        Assert.True(depths.Zip(depths.Skip(1)).All(p => p.First < p.Second), string.Join(", ", depths));
        Assert.True(depths[4] > 0.6, $"depth 1 at {depths[4]}");
    }

    [Theory]
    [InlineData("stories260K")]
    [InlineData("gpt2")]
    public void KeyValueLines_AreTheTokenizersOwnEncodingOfTheirText(string name)
    {
        var tok = Tokenizer(name);
        var v = RecallVocabulary.Build(tok);
        var suite = new RecallSuite(v);
        foreach (var task in new[] { RecallTasks.KvRecall, RecallTasks.KvMultihop })
            foreach (var item in suite.Generate(task, 256, 5, seed: 3))
            {
                int offset = (int)Math.Round(item.Depth * item.Length);           // the first key line
                var lines = item.Ids[offset..];
                Assert.Equal(lines, tok.Encode(tok.Decode(lines)));
            }
    }

    [Fact]
    public void DiagnosticLayout_FiftyLinesAndOneQuery_WithoutPadding()
    {
        var v = RecallVocabulary.Build(EvalTokenizers.Stories260K);
        var suite = new RecallSuite(v, null, new RecallSuiteOptions { Pairs = 50, Queries = 1 });
        var item = suite.Item(RecallTasks.KvRecall, 0, 0, seed: 5);
        int line = v.KeyLeadIds.Length + 1 + v.ColonIds.Length + 1;               // key : ▁ value
        Assert.Equal(v.StartIds.Length + 51 * (line + v.SeparatorIds.Length) - v.SeparatorIds.Length, item.Length);
        Assert.Equal(item.Length - 1, Assert.Single(item.Answers).Start);         // the answer is the last token
        Assert.Equal(item.Ids[..^1], item.PromptIds);
        Assert.Equal([item.Ids[^1]], item.AnswerIds);
        Assert.Equal(v.StartIds.Length, (int)Math.Round(item.Depth * item.Length));  // the first line follows BOS: no filler
    }

    [Fact]
    public void TooShortLength_IsAnInputError()
    {
        var suite = new RecallSuite(RecallVocabulary.Build(EvalTokenizers.Stories260K));
        var e = Assert.Throws<InputException>(() => suite.Item(RecallTasks.Passkey, 20, 0, 0));
        Assert.Contains("too short", e.Message);
    }
}
