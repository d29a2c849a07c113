using System.Text.Json;
using System.Text.Json.Nodes;
using HybridDistill.Config;

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
public sealed record CorpusSource(string Path, string Sha256, long Bytes, long Documents, long Tokens);

/// <summary>One split of a corpus: its token file (relative to the corpus directory) and counts.</summary>
public sealed record CorpusSplit(string File, long Tokens, long Documents);

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
    public JsonObject? Synthetic { get; init; }

    public JsonObject ToJson()
    {
        var json = Common();
        if (LossClasses) json["loss_classes"] = new JsonObject { ["train"] = Data.LossClasses.TrainFile, ["val"] = Data.LossClasses.ValFile };
        if (Synthetic is not null) json["synthetic"] = Synthetic.DeepClone();
        return json;
    }

    JsonObject Common() => new()
    {
        ["format"] = Format,
        ["dtype"] = "uint32",
        ["byte_order"] = "little",
        ["tokenizer"] = new JsonObject
        {
            ["kind"] = TokenizerKind, ["model_dir"] = TokenizerModelDir, ["vocab_size"] = TokenizerVocabSize,
            ["bos_id"] = BosId, ["eos_id"] = EosId,
        },
        ["separator"] = Separator,
        ["document_split"] = DocumentSplit,
        ["seed"] = Seed,
        ["val_fraction"] = ValFraction,
        ["min_val_tokens"] = MinValTokens,
        ["max_token_id"] = MaxTokenId,
        ["tokens"] = Train.Tokens + Val.Tokens,
        ["documents"] = Train.Documents + Val.Documents,
        ["train"] = SplitJson(Train),
        ["val"] = SplitJson(Val),
        ["sources"] = new JsonArray(Sources.Select(s => (JsonNode)new JsonObject
        {
            ["path"] = s.Path, ["sha256"] = s.Sha256, ["bytes"] = s.Bytes, ["documents"] = s.Documents, ["tokens"] = s.Tokens,
        }).ToArray()),
    };

    static JsonObject SplitJson(CorpusSplit s) => new() { ["file"] = s.File, ["tokens"] = s.Tokens, ["documents"] = s.Documents };

    public static CorpusManifest Load(string dir)
    {
        var path = System.IO.Path.Combine(dir, FileName);
        if (!File.Exists(path))
            throw new InputException($"{path}: not found. Make a token directory with `hybrid tokenize --model DIR --input PATH --out {dir}`.");
        try
        {
            var json = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new InputException("expected a JSON object");
            if ((string?)json["format"] != Format)
                throw new InputException($"format is \"{json["format"]}\", expected \"{Format}\"");
            var tok = (JsonObject)json["tokenizer"]!;
            return new CorpusManifest
            {
                TokenizerKind = (string)tok["kind"]!,
                TokenizerModelDir = (string)tok["model_dir"]!,
                TokenizerVocabSize = (int)tok["vocab_size"]!,
                BosId = (int?)tok["bos_id"],
                EosId = (int?)tok["eos_id"],
                Separator = (string)json["separator"]!,
                DocumentSplit = (string)json["document_split"]!,
                Seed = (long)json["seed"]!,
                ValFraction = (double)json["val_fraction"]!,
                MinValTokens = (long)json["min_val_tokens"]!,
                MaxTokenId = (long)json["max_token_id"]!,
                Train = ReadSplit(json["train"]!),
                Val = ReadSplit(json["val"]!),
                Sources = ((JsonArray)json["sources"]!).Select(s => new CorpusSource(
                    (string)s!["path"]!, (string)s["sha256"]!, (long)s["bytes"]!, (long)s["documents"]!, (long)s["tokens"]!)).ToList(),
                LossClasses = json["loss_classes"] is JsonObject,
                Synthetic = json["synthetic"] as JsonObject,
            };
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or NullReferenceException or InvalidCastException
                                      or FormatException or InputException)
        {
            throw new InputException($"{path}: not a valid token manifest ({e.Message}). Re-run `hybrid tokenize` into a fresh directory.", e);
        }
    }

    static CorpusSplit ReadSplit(JsonNode n) => new((string)n["file"]!, (long)n["tokens"]!, (long)n["documents"]!);

    public void Save(string dir) =>
        Checkpoints.AtomicFile.WriteAllBytes(System.IO.Path.Combine(dir, FileName),
            System.Text.Encoding.UTF8.GetBytes(ToJson().ToJsonString(JsonOptions.Indented) + "\n"));
}
