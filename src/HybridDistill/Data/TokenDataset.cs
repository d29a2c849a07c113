using static TorchSharp.torch;

namespace HybridDistill.Data;

/// <summary>
/// An opened token directory (see <see cref="CorpusBuilder"/>): the manifest and the two splits, memory-mapped.
/// Training draws windows through a <see cref="WindowSampler"/>; validation uses the first windows of the
/// validation split, always the same ones in the same order.
/// </summary>
public sealed class TokenDataset : IDisposable
{
    public TokenDataset(string dir)
    {
        Directory = Path.GetFullPath(dir);
        if (!System.IO.Directory.Exists(Directory))
            throw new InputException($"{Directory}: data directory not found. Make one with `hybrid tokenize --model DIR --input PATH --out {dir}`.");
        Manifest = CorpusManifest.Load(Directory);
        Train = new TokenFile(Path.Combine(Directory, Manifest.Train.File));
        Val = new TokenFile(Path.Combine(Directory, Manifest.Val.File));
        if (Train.Length != Manifest.Train.Tokens || Val.Length != Manifest.Val.Tokens)
            throw new InputException($"{Directory}: token files do not match manifest.json's counts: the directory is corrupt; re-run `hybrid tokenize`.");
        if (Manifest.LossClasses)
        {
            TrainClasses = new ClassFile(Path.Combine(Directory, LossClasses.TrainFile), Train.Length);
            ValClasses = new ClassFile(Path.Combine(Directory, LossClasses.ValFile), Val.Length);
        }
    }

    public string Directory { get; }
    public CorpusManifest Manifest { get; }
    public TokenFile Train { get; }
    public TokenFile Val { get; }
    /// <summary>Loss classes of a synthetic corpus (null for tokenized text, where every target counts the same).</summary>
    public ClassFile? TrainClasses { get; }
    public ClassFile? ValClasses { get; }

    /// <summary>Training windows (tokens and, when the corpus has them, loss classes).</summary>
    public TrainingBatch TrainBatch(IReadOnlyList<long> windowIndices, int seqLen) =>
        new(Train.Windows(windowIndices, seqLen), TrainClasses?.Windows(windowIndices, seqLen));

    /// <summary>Throws unless every token id fits the model's vocabulary and the splits hold at least one window of <paramref name="seqLen"/>.</summary>
    public void CheckFits(int vocabSize, int seqLen, string modelDir)
    {
        if (Manifest.MaxTokenId >= vocabSize)
            throw new InputException(
                $"{Directory}: token id {Manifest.MaxTokenId} does not fit the vocabulary of {modelDir} (vocab_size {vocabSize}): " +
                $"the data was tokenized for {Manifest.TokenizerModelDir}. Re-tokenize with --model {modelDir}.");
        if (Train.WindowCount(seqLen) < 1)
            throw new InputException($"{Directory}: the training split ({Train.Length} tokens) is shorter than one window of {seqLen + 1} tokens; lower seq_len or add text.");
        if (Val.WindowCount(seqLen) < 1)
            throw new InputException($"{Directory}: the validation split ({Val.Length} tokens) is shorter than one window of {seqLen + 1} tokens; lower seq_len or re-tokenize with a larger --min-val-tokens.");
    }

    /// <summary>Validation batches [B, T + 1]: the first windows of the validation split covering up to <paramref name="maxTokens"/> input tokens (at least one window).</summary>
    public IEnumerable<TrainingBatch> ValidationBatches(int seqLen, int batchSize, long maxTokens)
    {
        long count = Math.Clamp(maxTokens / seqLen, 1, Val.WindowCount(seqLen));
        for (long start = 0; start < count; start += batchSize)
        {
            var indices = new List<long>();
            for (long i = start; i < Math.Min(count, start + batchSize); i++) indices.Add(i);
            yield return new TrainingBatch(Val.Windows(indices, seqLen), ValClasses?.Windows(indices, seqLen));
        }
    }

    public void Dispose()
    {
        Train.Dispose();
        Val.Dispose();
        TrainClasses?.Dispose();
        ValClasses?.Dispose();
    }
}
