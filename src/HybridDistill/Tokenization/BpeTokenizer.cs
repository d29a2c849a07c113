using System.Text;
using MlTok = Microsoft.ML.Tokenizers;

namespace HybridDistill.Tokenization;

/// <summary>
/// Byte-level BPE as in Hugging Face tokenizers (GPT-2, Llama-3, Qwen2), from tokenizer.json or from
/// vocab.json + merges.txt.
///
/// Encode: added tokens are cut out of the raw text first (leftmost, then longest; lstrip/rstrip/single_word
/// honoured) -> each plain segment is normalized (Qwen2/Qwen3: NFC, by <see cref="UnicodeNormalizer"/>) -> pre-tokenized (ByteLevel with GPT-2's
/// pattern, or Sequence[Split(regex), ByteLevel(use_regex=false)], Digits) -> each piece's UTF-8 bytes are mapped
/// to the byte alphabet ("Ġ" = space) and merged by rank with Microsoft.ML.Tokenizers' BpeTokenizer (ByteLevel).
/// With ignore_merges (Llama-3) a piece that is already a vocabulary token is emitted whole.
///
/// Decode: tokens -> bytes through the byte alphabet (added tokens give their content) -> UTF-8, invalid
/// sequences -> U+FFFD. Added and special tokens are kept in the text, as Hugging Face's decode does by default.
/// </summary>
public sealed class BpeTokenizer : ITextTokenizer
{
    readonly BpeDefinition _def;
    readonly MlTok.BpeTokenizer _ml;
    readonly AddedTokenSplitter _splitter;
    readonly Dictionary<int, AddedToken> _addedById;
    readonly Dictionary<string, int> _addedByContent;
    readonly string?[] _idToToken;

    BpeTokenizer(BpeDefinition def, MlTok.BpeTokenizer ml, AddedTokenSplitter splitter, Dictionary<int, AddedToken> addedById,
                 Dictionary<string, int> addedByContent, string?[] idToToken, int? bosId, IReadOnlyList<int> eosIds, bool addBos, bool addEos)
    {
        _def = def; _ml = ml; _splitter = splitter; _addedById = addedById; _addedByContent = addedByContent; _idToToken = idToToken;
        BosId = bosId; EosIds = eosIds; AddBosByDefault = addBos; AddEosByDefault = addEos;
    }

    /// <summary>Loads a Hugging Face tokenizer.json whose model is byte-level BPE. BOS and AddBosByDefault come
    /// from its post-processor template when that puts a special token first (Llama-3); EOS is unknown until set
    /// from config files (see <see cref="TokenizerLoader"/>).</summary>
    public static BpeTokenizer FromTokenizerJson(string path, SpecialTokenSettings? settings = null)
    {
        var def = TokenizerJsonReader.ReadTokenizerJson(path);
        if (def.NotByteLevelReason is not null)
            throw new InputException($"'{path}' cannot be used: {def.NotByteLevelReason}. Only byte-level BPE tokenizer.json files " +
                                     "(GPT-2, Llama-3, Qwen2 style) are supported; for a SentencePiece model use its tokenizer.model.");
        return Create(def, settings);
    }

    /// <summary>Loads GPT-2-layout vocab.json + merges.txt with GPT-2's pre-tokenizer. Added tokens default to
    /// "&lt;|endoftext|&gt;" when the vocabulary has it.</summary>
    public static BpeTokenizer FromVocabAndMerges(string vocabPath, string mergesPath,
                                                  IEnumerable<(string Content, int Id)>? specialTokens = null,
                                                  SpecialTokenSettings? settings = null)
    {
        var added = specialTokens?.Select(t => new AddedToken(t.Content, t.Id, Special: true)).ToList();
        return Create(TokenizerJsonReader.ReadVocabAndMerges(vocabPath, mergesPath, added), settings);
    }

    internal static BpeTokenizer Create(BpeDefinition def, SpecialTokenSettings? settings)
    {
        if (def.Vocab.Count == 0) throw new InputException($"'{def.SourcePath}': the BPE vocabulary is empty.");
        MlTok.BpeTokenizer ml;
        try
        {
            ml = MlTok.BpeTokenizer.Create(new MlTok.BpeOptions(def.Vocab)
            {
                Merges = def.Merges,
                ByteLevel = true,
                UnknownToken = def.UnknownToken is not null && def.Vocab.ContainsKey(def.UnknownToken) ? def.UnknownToken : null,
                ContinuingSubwordPrefix = def.ContinuingSubwordPrefix,
                EndOfWordSuffix = def.EndOfWordSuffix,
                FuseUnknownTokens = def.FuseUnknown,
            });
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException)
        {
            throw new InputException($"'{def.SourcePath}': Microsoft.ML.Tokenizers rejected the BPE vocabulary/merges: {e.Message}", e);
        }

        var addedById = new Dictionary<int, AddedToken>();
        var addedByContent = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var a in def.AddedTokens)
        {
            if (a.Id < 0) throw new InputException($"'{def.SourcePath}': added token '{a.Content}' has negative id {a.Id}.");
            addedById[a.Id] = a;
            addedByContent[a.Content] = a.Id;
        }

        int size = Math.Max(def.Vocab.Count == 0 ? 0 : def.Vocab.Values.Max() + 1, addedById.Count == 0 ? 0 : addedById.Keys.Max() + 1);
        var idToToken = new string?[size];
        foreach (var (token, id) in def.Vocab)
        {
            if (id < 0) throw new InputException($"'{def.SourcePath}': vocabulary token '{token}' has negative id {id}.");
            idToToken[id] = token;
        }
        foreach (var (id, a) in addedById) idToToken[id] = a.Content;

        var tok = new BpeTokenizer(def, ml, new AddedTokenSplitter(def.AddedTokens), addedById, addedByContent, idToToken,
                                   def.TemplateBosId, def.TemplateEosId is int templateEos ? [templateEos] : [], addBos: def.TemplateBosId is not null,
                                   addEos: def.TemplateEosId is not null);
        return settings is null ? tok : tok.WithSpecialTokens(settings);
    }

    /// <summary>The same tokenizer with BOS/EOS/AddBos/AddEos replaced where <paramref name="settings"/> sets them.</summary>
    public BpeTokenizer WithSpecialTokens(SpecialTokenSettings settings) =>
        new(_def, _ml, _splitter, _addedById, _addedByContent, _idToToken,
            settings.BosId ?? BosId, settings.EosIds ?? EosIds, settings.AddBosByDefault ?? AddBosByDefault,
            settings.AddEosByDefault ?? AddEosByDefault);

    public string Kind => "bpe";
    public int VocabSize => _idToToken.Length;
    public int? BosId { get; }
    public int? EosId => EosIds.Count > 0 ? EosIds[0] : null;
    public IReadOnlyList<int> EosIds { get; }
    public bool AddBosByDefault { get; }
    public bool AddEosByDefault { get; }

    /// <summary>True for an added token marked special (Hugging Face's skip_special_tokens drops these).</summary>
    public bool IsSpecial(int id) => _addedById.TryGetValue(id, out var a) && a.Special;

    /// <summary>Added tokens (content -> id) that are recognised in text.</summary>
    public IReadOnlyDictionary<string, int> AddedTokens => _addedByContent;

    public IReadOnlyList<int> Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>(text.Length / 3 + 1);
        if (text.Length == 0) return ids;
        if (_splitter.IsEmpty)
        {
            EncodePlain(text, ids);
            return ids;
        }
        foreach (var (segment, id) in _splitter.Split(text))
        {
            if (segment is null) ids.Add(id);
            else EncodePlain(segment, ids);
        }
        return ids;
    }

    void EncodePlain(string text, List<int> ids)
    {
        text = Normalize(text);
        foreach (var piece in PreTokenizeStep.Run(_def.PreTokenizers, text))
        {
            if (piece.Length == 0) continue;
            if (_def.IgnoreMerges && _def.Vocab.TryGetValue(ByteLevelAlphabet.Encode(piece), out int whole))
            {
                ids.Add(whole);
                continue;
            }
            ids.AddRange(_ml.EncodeToIds(piece, considerPreTokenization: false, considerNormalization: false));
        }
    }

    string Normalize(string text)
    {
        foreach (var n in _def.Normalizers)
        {
            text = n switch
            {
                TextNormalization.Lowercase => text.ToLowerInvariant(),
                TextNormalization.None => text,
                _ => UnicodeNormalizer.Normalize(text, n),
            };
        }
        return text;
    }

    void AppendBytes(int id, List<byte> output)
    {
        if ((uint)id >= (uint)_idToToken.Length || _idToToken[id] is null)
            throw new ArgumentOutOfRangeException(nameof(id), id, $"Token id is not in the BPE vocabulary of '{_def.SourcePath}'.");
        if (_addedById.TryGetValue(id, out var added)) output.AddRange(Encoding.UTF8.GetBytes(added.Content));
        else ByteLevelAlphabet.AppendBytes(_idToToken[id]!, output);
    }

    public string Decode(IEnumerable<int> ids)
    {
        var bytes = new List<byte>();
        foreach (var id in ids) AppendBytes(id, bytes);
        return Encoding.UTF8.GetString(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(bytes));
    }

    public string DecodeToken(int id) => Decode([id]);

    public TokenStreamDecoder CreateStreamDecoder(bool atStartOfText = true) => new(id =>
    {
        var bytes = new List<byte>();
        AppendBytes(id, bytes);
        return new TokenSurface(bytes.ToArray(), LeadingSpaceDroppable: false, JoinsPartialCharacter: true);
    }, atStartOfText);

    public string? IdToToken(int id) => (uint)id < (uint)_idToToken.Length ? _idToToken[id] : null;

    public int? TokenToId(string token) =>
        _addedByContent.TryGetValue(token, out int a) ? a : _def.Vocab.TryGetValue(token, out int v) ? v : null;
}
