using System.Text.Json.Serialization;
using HybridDistill.Artifacts;

namespace HybridDistill.Data;

/// <summary>How documents are marked in the packed token stream.</summary>
public static class DocumentSeparator
{
    /// <summary>BOS before every document (tokenizers that prepend BOS: llama2.c, Llama, Mistral).</summary>
    public const string BosBefore = "bos_before_document";
    /// <summary>EOS after every document (tokenizers without BOS, e.g. Qwen's &lt;|endoftext|&gt;).</summary>
    public const string EosAfter = "eos_after_document";
    /// <summary>Documents simply concatenated (a tokenizer with neither).</summary>
    public const string None = "none";
}

/// <summary>One input file of a corpus: its path as given, its content hash and what it contributed.</summary>
public sealed record CorpusSource([property: JsonRequired] string Path, [property: JsonRequired] string Sha256,
    [property: JsonRequired] long Bytes, [property: JsonRequired] long Documents, [property: JsonRequired] long Tokens);

/// <summary>One split of a corpus: its token file (relative to the corpus directory) and counts.</summary>
public sealed record CorpusSplit([property: JsonRequired] string File, [property: JsonRequired] long Tokens, [property: JsonRequired] long Documents);

/// <summary>
/// manifest.json of a tokenized corpus directory: which tokenizer made the ids, how documents are separated,
/// the source files with their sha256, the train/validation split and the seed that chose it.
/// </summary>
public sealed record CorpusManifest
{
    public const string FileName = "manifest.json";
    public const string Format = "hybrid-tokens-v1";

    public required string TokenizerKind { get; init; }
    public required string TokenizerModelDir { get; init; }
    public required int TokenizerVocabSize { get; init; }
    public int? BosId { get; init; }
    public int? EosId { get; init; }
    public required string Separator { get; init; }
    public required string DocumentSplit { get; init; }
    public required long Seed { get; init; }
    public required double ValFraction { get; init; }
    public required long MinValTokens { get; init; }
    /// <summary>Largest token id in either split: must be below the model's vocab_size.</summary>
    public required long MaxTokenId { get; init; }
    public required CorpusSplit Train { get; init; }
    public required CorpusSplit Val { get; init; }
    public required IReadOnlyList<CorpusSource> Sources { get; init; }
    /// <summary>True for a synthetic corpus: train.classes.bin / val.classes.bin hold each token's loss class.</summary>
    public bool LossClasses { get; init; }
    /// <summary>The recipe a synthetic corpus was generated from (null for tokenized text).</summary>
    public OpaqueJson? Synthetic { get; init; }

    /// <summary>manifest.json's content.</summary>
    public CorpusManifestFile ToFile() => new(Format, "uint32", "little",
        new TokenizerEntry(TokenizerKind, TokenizerModelDir, TokenizerVocabSize, BosId, EosId),
        Separator, DocumentSplit, Seed, ValFraction, MinValTokens, MaxTokenId, Train.Tokens + Val.Tokens, Train.Documents + Val.Documents,
        Train, Val, Sources, LossClasses ? new LossClassFiles(Data.LossClasses.TrainFile, Data.LossClasses.ValFile) : null,
        Synthetic);

    public static CorpusManifest Load(string dir)
    {
        var path = System.IO.Path.Combine(dir, FileName);
        if (!File.Exists(path))
            throw new InputException($"{path}: not found. Make a token directory with `hybrid tokenize --model DIR --input PATH --out {dir}`.");
        const string fix = "Re-run `hybrid tokenize` into a fresh directory";
        var file = ArtifactJson.Read(path, ArtifactJson.Types.CorpusManifestFile, "a valid token manifest", fix);
        if (file.Format != Format)
            throw new InputException($"{path}: not a valid token manifest (format is \"{file.Format}\", expected \"{Format}\"). {fix}.");
        return new CorpusManifest
        {
            TokenizerKind = file.Tokenizer.Kind, TokenizerModelDir = file.Tokenizer.ModelDir, TokenizerVocabSize = file.Tokenizer.VocabSize,
            BosId = file.Tokenizer.BosId, EosId = file.Tokenizer.EosId,
            Separator = file.Separator, DocumentSplit = file.DocumentSplit, Seed = file.Seed, ValFraction = file.ValFraction,
            MinValTokens = file.MinValTokens, MaxTokenId = file.MaxTokenId, Train = file.Train, Val = file.Val, Sources = file.Sources,
            LossClasses = file.LossClasses is not null, Synthetic = file.Synthetic,
        };
    }

    public void Save(string dir) =>
        ArtifactJson.Write(System.IO.Path.Combine(dir, FileName), ToFile(), ArtifactJson.Types.CorpusManifestFile, trailingNewline: true);
}

/// <summary>
/// manifest.json as stored: format, dtype and byte order of the token files, the tokenizer, document separation,
/// split settings and counts, the sources; loss_classes and synthetic only for a synthetic corpus.
/// </summary>
public sealed record CorpusManifestFile(
    [property: JsonRequired] string Format, string Dtype, string ByteOrder, [property: JsonRequired] TokenizerEntry Tokenizer,
    [property: JsonRequired] string Separator, [property: JsonRequired] string DocumentSplit, [property: JsonRequired] long Seed,
    [property: JsonRequired] double ValFraction, [property: JsonRequired] long MinValTokens, [property: JsonRequired] long MaxTokenId,
    long Tokens, long Documents, [property: JsonRequired] CorpusSplit Train, [property: JsonRequired] CorpusSplit Val,
    [property: JsonRequired] IReadOnlyList<CorpusSource> Sources,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] LossClassFiles? LossClasses,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] OpaqueJson? Synthetic);

public sealed record TokenizerEntry([property: JsonRequired] string Kind, [property: JsonRequired] string ModelDir,
    [property: JsonRequired] int VocabSize, int? BosId, int? EosId);

/// <summary>The loss-class files of a synthetic corpus (relative to its directory).</summary>
public sealed record LossClassFiles(string Train, string Val);
