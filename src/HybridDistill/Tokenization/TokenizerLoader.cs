namespace HybridDistill.Tokenization;

/// <summary>
/// Picks and loads the tokenizer of a Hugging Face style model directory.
///
/// Which file: tokenizer.json when it is byte-level BPE; otherwise tokenizer.model (SentencePiece BPE), which is
/// also the fallback when tokenizer.json is SentencePiece-style (Llama-2's fast tokenizer, Metaspace/byte_fallback);
/// otherwise vocab.json + merges.txt (GPT-2 layout). A tokenizer.json that is not valid JSON is an error, not a
/// reason to fall back.
///
/// Special tokens: BOS = config.json bos_token_id, else generation_config.json's, else tokenizer_config.json
/// bos_token mapped to its id, else the tokenizer's own (SentencePiece bos_id; tokenizer.json post-processor
/// template). EosIds = config.json eos_token_id (an int or a list) followed by generation_config.json's, else
/// tokenizer_config.json eos_token, else the tokenizer's own; EosId is the first. AddBosByDefault =
/// tokenizer_config.json add_bos_token, else true for SentencePiece, for BPE true when the tokenizer.json
/// post-processor puts a special token first (Llama 3.x) or when the files are the first Llama 3 release (bos_token
/// &lt;|begin_of_text|&gt; without a template, see IsFirstLlama3Release), else false (Qwen, GPT-2); never true
/// without a BOS id. AddEosByDefault = tokenizer_config.json add_eos_token, else whether the template ends with a
/// special token; never true without an EOS id.
/// </summary>
public static class TokenizerLoader
{
    public const string TokenizerJson = "tokenizer.json";
    public const string SentencePieceModel = "tokenizer.model";
    public const string VocabJson = "vocab.json";
    public const string MergesTxt = "merges.txt";

    public static ITextTokenizer Load(string modelDir)
    {
        if (!Directory.Exists(modelDir))
            throw new InputException($"Model directory '{modelDir}' does not exist; pass the folder that holds the tokenizer files.");

        string Path_(string name) => Path.Combine(modelDir, name);
        string tokJson = Path_(TokenizerJson), spModel = Path_(SentencePieceModel), vocab = Path_(VocabJson), merges = Path_(MergesTxt);

        var config = TokenizerSideFile.Read(Path_("config.json"));
        var genConfig = TokenizerSideFile.Read(Path_("generation_config.json"));
        var tokConfig = TokenizerSideFile.Read(Path_("tokenizer_config.json"));

        ITextTokenizer tokenizer;
        if (File.Exists(tokJson))
        {
            var def = TokenizerJsonReader.ReadTokenizerJson(tokJson);
            if (def.NotByteLevelReason is null) tokenizer = BpeTokenizer.Create(def, null);
            else if (File.Exists(spModel)) tokenizer = SentencePieceTokenizer.Load(spModel);
            else
                throw new InputException($"'{tokJson}' cannot be used: {def.NotByteLevelReason}, and there is no {SentencePieceModel} " +
                                         $"beside it. Supported: byte-level BPE tokenizer.json, SentencePiece BPE {SentencePieceModel}, " +
                                         $"or {VocabJson} + {MergesTxt}.");
        }
        else if (File.Exists(spModel))
        {
            tokenizer = SentencePieceTokenizer.Load(spModel);
        }
        else if (File.Exists(vocab) && File.Exists(merges))
        {
            tokenizer = BpeTokenizer.FromVocabAndMerges(vocab, merges, AddedTokensFromConfig(tokConfig, vocab));
        }
        else
        {
            string partial = File.Exists(vocab) ? $" ({VocabJson} is there but {MergesTxt} is missing)"
                           : File.Exists(merges) ? $" ({MergesTxt} is there but {VocabJson} is missing)" : "";
            throw new InputException($"No tokenizer in '{modelDir}'{partial}: looked for {TokenizerJson}, {SentencePieceModel}, " +
                                     $"and {VocabJson} + {MergesTxt}. Copy the tokenizer files of the model into that folder.");
        }

        var settings = ResolveSpecialTokens(tokenizer, config, genConfig, tokConfig);
        return tokenizer switch
        {
            SentencePieceTokenizer sp => sp.WithSpecialTokens(settings),
            BpeTokenizer bpe => bpe.WithSpecialTokens(settings),
            _ => tokenizer,
        };
    }

    static SpecialTokenSettings ResolveSpecialTokens(ITextTokenizer tok, TokenizerSideFile? config, TokenizerSideFile? genConfig, TokenizerSideFile? tokConfig)
    {
        int? bos = FirstOrNull(IdList(config, "bos_token_id", tok)) ?? FirstOrNull(IdList(genConfig, "bos_token_id", tok))
                   ?? TokenStringId(tokConfig, "bos_token", tok) ?? tok.BosId;

        var eos = IdList(config, "eos_token_id", tok).Concat(IdList(genConfig, "eos_token_id", tok)).Distinct().ToList();
        if (eos.Count == 0 && TokenStringId(tokConfig, "eos_token", tok) is int e) eos.Add(e);
        if (eos.Count == 0) eos.AddRange(tok.EosIds);

        bool addBos = ConfigBool(tokConfig, "add_bos_token") ?? (tok.AddBosByDefault || IsFirstLlama3Release(tok, tokConfig));
        bool addEos = ConfigBool(tokConfig, "add_eos_token") ?? tok.AddEosByDefault;

        return new SpecialTokenSettings
        {
            BosId = bos, EosIds = eos, AddBosByDefault = addBos && bos is not null, AddEosByDefault = addEos && eos.Count > 0,
        };
    }

    /// <summary>Llama 3's tokenizer files as first published (and as the npm packages that the project's reference
    /// ids come from ship them) have a ByteLevel-only post-processor and no add_bos_token, so neither Hugging Face
    /// nor transformers.js adds BOS with them; Meta's own tokenizer (and the later Llama 3 / 3.1 / 3.2 files, whose
    /// template prepends it) starts every sequence with &lt;|begin_of_text|&gt;, which the models were trained with.
    /// This is that case: a byte-level BPE without a BOS template whose tokenizer_config.json names
    /// &lt;|begin_of_text|&gt; as bos_token.</summary>
    static bool IsFirstLlama3Release(ITextTokenizer tok, TokenizerSideFile? tokConfig) =>
        tok is BpeTokenizer && TokenContent(tokConfig, "bos_token") == Llama3BeginOfText;

    /// <summary>Llama 3's BOS.</summary>
    public const string Llama3BeginOfText = "<|begin_of_text|>";

    static bool? ConfigBool(TokenizerSideFile? file, string key) => file?.Bool(key);

    static int? FirstOrNull(List<int> ids) => ids.Count > 0 ? ids[0] : null;

    /// <summary>An id or list of ids under <paramref name="key"/>; each must be a token of the tokenizer.</summary>
    static List<int> IdList(TokenizerSideFile? file, string key, ITextTokenizer tok)
    {
        if (file is null) return [];
        var ids = file.Ids(key);
        foreach (var id in ids)
            if (tok.IdToToken(id) is null)
                throw new InputException($"'{file.Path}': {key} = {id} is not a token of the tokenizer ({tok.VocabSize} ids). " +
                                         "The config and the tokenizer files belong to different models.");
        return ids;
    }

    /// <summary>tokenizer_config.json's bos_token / eos_token (a string or {"content": ...}) as an id.</summary>
    static int? TokenStringId(TokenizerSideFile? file, string key, ITextTokenizer tok)
    {
        string? content = TokenContent(file, key);
        if (content is null) return null;
        return tok.TokenToId(content)
               ?? throw new InputException($"'{file!.Path}': {key} \"{content}\" is not a token of the tokenizer.");
    }

    static string? TokenContent(TokenizerSideFile? file, string key) => file?.TokenContent(key);

    /// <summary>For vocab.json + merges.txt: special tokens named in tokenizer_config.json (added_tokens_decoder,
    /// bos/eos/unk/pad_token); null (the GPT-2 default, &lt;|endoftext|&gt;) when it names none.</summary>
    static List<(string, int)>? AddedTokensFromConfig(TokenizerSideFile? tokConfig, string vocabPath)
    {
        if (tokConfig is null) return null;
        var result = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var (content, id) in tokConfig.AddedTokensDecoder()) result[content] = id;
        Dictionary<string, int>? vocab = null;
        foreach (var key in new[] { "bos_token", "eos_token", "unk_token", "pad_token" })
        {
            string? content = TokenContent(tokConfig, key);
            if (content is null || result.ContainsKey(content)) continue;
            vocab ??= TokenizerJsonReader.ReadVocab(vocabPath);
            if (vocab.TryGetValue(content, out int id)) result[content] = id;
        }
        return result.Count == 0 ? null : result.Select(kv => (kv.Key, kv.Value)).ToList();
    }
}
