using HybridDistill.Data;
using HybridDistill.Tokenization;

namespace HybridDistill.Tests.Data;

public class CorpusBuilderTests
{
    static string Stories => TestPaths.Assets("stories260K");

    static uint[] ReadAll(string path)
    {
        var bytes = File.ReadAllBytes(path);
        var ids = new uint[bytes.Length / 4];
        Buffer.BlockCopy(bytes, 0, ids, 0, bytes.Length);
        return ids;
    }

    static string WriteText(string dir, string name, string text)
    {
        var path = Path.Combine(dir, name);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, text);
        return path;
    }

    [Fact]
    public void TinyStoriesSlice_PacksParagraphsWithBos_AndHoldsOutValidation()
    {
        var input = TestPaths.Assets("text", "tinystories_val_slice.txt");
        var outDir = TestPaths.NewTempDir("corpus-tinystories");
        var m = CorpusBuilder.Build(Stories, [input], outDir);

        var tok = TokenizerLoader.Load(Stories);
        var docs = CorpusBuilder.ReadDocuments(input, new TokenizeOptions()).ToList();
        Assert.Equal(docs.Count, m.Train.Documents + m.Val.Documents);
        Assert.Equal(DocumentSeparator.BosBefore, m.Separator);
        Assert.Equal("sentencepiece", m.TokenizerKind);

        var train = ReadAll(Path.Combine(outDir, "train.bin"));
        var val = ReadAll(Path.Combine(outDir, "val.bin"));
        Assert.Equal(m.Train.Tokens, train.Length);
        Assert.Equal(m.Val.Tokens, val.Length);
        // Every document starts with BOS, and BOS appears nowhere else.
        Assert.Equal(m.Train.Documents, train.Count(t => t == 1));
        Assert.Equal(m.Val.Documents, val.Count(t => t == 1));
        // Validation: >= 5% of documents and >= 4096 tokens, whole documents.
        Assert.True(m.Val.Documents >= Math.Ceiling(0.05 * docs.Count));
        Assert.True(m.Val.Tokens >= 4096);
        Assert.Equal(1u, val[0]);

        // The stream is BOS + Encode(document) per document, in input order, split by the manifest's choice.
        var expected = docs.Select(d => new[] { 1 }.Concat(tok.Encode(d)).Select(i => (uint)i).ToArray()).ToList();
        Assert.Equal(m.Train.Tokens + m.Val.Tokens, expected.Sum(e => (long)e.Length));
        var trainDocs = Split(train);
        var valDocs = Split(val);
        Assert.Equal(expected.Count, trainDocs.Count + valDocs.Count);
        // Re-merge: walking the documents in input order, each is the next train or the next val document.
        int ti = 0, vi = 0;
        foreach (var e in expected)
        {
            if (ti < trainDocs.Count && trainDocs[ti].SequenceEqual(e)) ti++;
            else { Assert.True(vi < valDocs.Count && valDocs[vi].SequenceEqual(e)); vi++; }
        }
        Assert.Equal(trainDocs.Count, ti);
        Assert.Equal(m.Sources[0].Sha256, Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(input))));
    }

    static List<uint[]> Split(uint[] stream)
    {
        var result = new List<uint[]>();
        int start = 0;
        for (int i = 1; i <= stream.Length; i++)
            if (i == stream.Length || stream[i] == 1) { result.Add(stream[start..i]); start = i; }
        return result;
    }

    [Fact]
    public void SameSeed_SameBytes_OtherSeed_OtherValidation()
    {
        var dir = TestPaths.NewTempDir("corpus-seed");
        var input = WriteText(dir, "in.txt", string.Join("\n\n", Enumerable.Range(0, 200).Select(i => $"Story number {i}. The cat sat.")));
        var opts = new TokenizeOptions { MinValTokens = 10 };
        CorpusBuilder.Build(Stories, [input], Path.Combine(dir, "a"), opts);
        CorpusBuilder.Build(Stories, [input], Path.Combine(dir, "b"), opts);
        CorpusBuilder.Build(Stories, [input], Path.Combine(dir, "c"), opts with { Seed = 7 });
        Assert.Equal(File.ReadAllBytes(Path.Combine(dir, "a", "val.bin")), File.ReadAllBytes(Path.Combine(dir, "b", "val.bin")));
        Assert.Equal(File.ReadAllBytes(Path.Combine(dir, "a", "train.bin")), File.ReadAllBytes(Path.Combine(dir, "b", "train.bin")));
        Assert.NotEqual(File.ReadAllBytes(Path.Combine(dir, "a", "val.bin")), File.ReadAllBytes(Path.Combine(dir, "c", "val.bin")));
        Assert.Equal(10, CorpusManifest.Load(Path.Combine(dir, "a")).Val.Documents);   // ceil(5% of 200)
    }

    [Fact]
    public void FolderAndJsonl_EachRecordAndParagraphIsADocument_EosWhenNoBos()
    {
        var dir = TestPaths.NewTempDir("corpus-jsonl");
        // A tokenizer directory that does not prepend BOS: documents end with EOS instead.
        var model = Path.Combine(dir, "model");
        Directory.CreateDirectory(model);
        File.Copy(TestPaths.Assets("stories260K", "tokenizer.model"), Path.Combine(model, "tokenizer.model"));
        File.WriteAllText(Path.Combine(model, "tokenizer_config.json"), """{"add_bos_token": false}""");
        File.WriteAllText(Path.Combine(model, "config.json"), """{"bos_token_id": 1, "eos_token_id": 2}""");

        var data = Path.Combine(dir, "data");
        WriteText(data, "a.txt", "First one.\r\nStill first.\r\n\r\n\r\nSecond one.\n");
        WriteText(data, "sub/b.jsonl", "{\"text\": \"Third.\"}\n\n{\"text\": \"  \"}\n{\"text\": \"Fourth.\", \"meta\": 1}\n");
        WriteText(data, "ignored.bin", "not text");
        var m = CorpusBuilder.Build(model, [data], Path.Combine(dir, "out"), new TokenizeOptions { MinValTokens = 1 });

        Assert.Equal(DocumentSeparator.EosAfter, m.Separator);
        Assert.Equal(2, m.Sources.Count);
        Assert.Equal(2, m.Sources[0].Documents);
        Assert.Equal(2, m.Sources[1].Documents);    // the blank-text record is skipped
        var tok = TokenizerLoader.Load(model);
        var all = ReadAll(Path.Combine(dir, "out", "train.bin")).Concat(ReadAll(Path.Combine(dir, "out", "val.bin"))).ToArray();
        Assert.Equal(4, all.Count(t => t == 2));
        Assert.Equal(0, all.Count(t => t == 1));
        var expectedFirst = tok.Encode("First one.\nStill first.").Select(i => (uint)i).Append(2u).ToArray();
        var train = ReadAll(Path.Combine(dir, "out", "train.bin"));
        var val = ReadAll(Path.Combine(dir, "out", "val.bin"));
        Assert.True(train.Take(expectedFirst.Length).SequenceEqual(expectedFirst) || val.Take(expectedFirst.Length).SequenceEqual(expectedFirst));
    }

    [Fact]
    public void FilesMode_OneDocumentPerFile()
    {
        var dir = TestPaths.NewTempDir("corpus-files");
        var a = WriteText(dir, "a.txt", "One.\n\nTwo.\n\nThree.");
        var b = WriteText(dir, "b.txt", "Four.\n\nFive.");
        var m = CorpusBuilder.Build(Stories, [a, b], Path.Combine(dir, "out"),
            new TokenizeOptions { DocumentSplit = DocumentSplits.Files, MinValTokens = 1, ValFraction = 0.4 });
        Assert.Equal(2, m.Train.Documents + m.Val.Documents);
    }

    [Fact]
    public void BadInput_IsAClearInputException()
    {
        var dir = TestPaths.NewTempDir("corpus-errors");
        var empty = WriteText(dir, "empty.txt", "\n\n  \n");
        var e1 = Assert.Throws<InputException>(() => CorpusBuilder.Build(Stories, [empty], Path.Combine(dir, "o1")));
        Assert.Contains("empty.txt", e1.Message);
        Assert.Contains("no text", e1.Message);

        var e2 = Assert.Throws<InputException>(() => CorpusBuilder.Build(Stories, [Path.Combine(dir, "missing.txt")], Path.Combine(dir, "o2")));
        Assert.Contains("missing.txt", e2.Message);

        var bad = WriteText(dir, "bad.jsonl", "{\"text\": \"ok\"}\n{\"body\": \"no text field\"}\n");
        var e3 = Assert.Throws<InputException>(() => CorpusBuilder.Build(Stories, [bad], Path.Combine(dir, "o3")));
        Assert.Contains("bad.jsonl:2", e3.Message);
        Assert.Contains("--field", e3.Message);

        var broken = WriteText(dir, "broken.jsonl", "{\"text\": \"ok\"\n");
        Assert.Contains("broken.jsonl:1", Assert.Throws<InputException>(() => CorpusBuilder.Build(Stories, [broken], Path.Combine(dir, "o4"))).Message);

        var small = WriteText(dir, "small.txt", "A cat.\n\nA dog.");
        var e5 = Assert.Throws<InputException>(() => CorpusBuilder.Build(Stories, [small], Path.Combine(dir, "o5")));
        Assert.Contains("--min-val-tokens", e5.Message);

        var noText = Path.Combine(dir, "nothing");
        Directory.CreateDirectory(noText);
        Assert.Contains("no text files", Assert.Throws<InputException>(() => CorpusBuilder.Build(Stories, [noText], Path.Combine(dir, "o6"))).Message);
        Assert.False(Directory.Exists(Path.Combine(dir, "o1")));   // nothing half-written
        Assert.False(Directory.Exists(Path.Combine(dir, "o5")));
    }

    [Fact]
    public void DatasetWindows_AreConsecutiveSlices_AndMismatchedVocabIsRejected()
    {
        var input = TestPaths.Assets("text", "tinystories_val_slice.txt");
        var outDir = TestPaths.NewTempDir("corpus-windows");
        CorpusBuilder.Build(Stories, [input], outDir);
        using var data = new TokenDataset(outDir);
        var train = ReadAll(Path.Combine(outDir, "train.bin"));
        const int T = 32;
        Assert.Equal((train.Length - 1) / T, data.Train.WindowCount(T));
        using var batch = data.Train.Windows([0, 5, data.Train.WindowCount(T) - 1], T);
        Assert.Equal(new long[] { 3, T + 1 }, batch.shape);
        var rows = batch.data<long>().ToArray();
        long last = data.Train.WindowCount(T) - 1;
        for (int j = 0; j <= T; j++)
        {
            Assert.Equal(train[j], rows[j]);
            Assert.Equal(train[5 * T + j], rows[(T + 1) + j]);
            Assert.Equal(train[last * T + j], rows[2 * (T + 1) + j]);
        }
        var e = Assert.Throws<InputException>(() => data.CheckFits(vocabSize: 105, seqLen: T, modelDir: "babyllama"));
        Assert.Contains("Re-tokenize", e.Message);
        data.CheckFits(512, T, Stories);
        var valBatches = data.ValidationBatches(T, 4, 10 * T).ToList();
        Assert.Equal(new long[] { 4, 4, 2 }, valBatches.Select(b => b.Windows).ToArray());
        foreach (var b in valBatches) b.Dispose();
    }
}
