using System.Text;
using MlTok = Microsoft.ML.Tokenizers;

namespace HybridDistill.Tokenization;

/// <summary>
/// A Llama-2-style SentencePiece BPE tokenizer.model (with or without byte fallback), producing the ids that
/// Google's sentencepiece library produces.
///
/// Encode: text -> SentencePiece normalization (identity character map; remove_extra_whitespaces drops leading,
/// trailing and repeated ' '; add_dummy_prefix puts "▁" in front; ' ' -> "▁") -> BPE merges by piece score
/// (Microsoft.ML.Tokenizers' LlamaTokenizer, called on the already-normalized text) -> pieces missing from the
/// vocabulary become &lt;0xNN&gt; byte pieces (byte fallback) or one &lt;unk&gt; per run of unknown characters.
///
/// Why normalize here: Microsoft.ML.Tokenizers 2.0.1's SentencePieceNormalizer returns "" for text that is one
/// character after trimming spaces ("a", " a", "a ", "\n") and "▁" for " ", so LlamaTokenizer.EncodeToIds("a") is
/// empty (sentencepiece gives [▁a]) and EncodeToIds(" ") is [▁] (sentencepiece gives []). Its merge loop is
/// correct, so only normalization is done here. It also gives one &lt;unk&gt; per unknown character where
/// sentencepiece fuses a run of them into one; that is fixed after encoding.
///
/// Decode follows sentencepiece: "▁" -> ' ', byte pieces are joined into UTF-8 (an invalid byte -> U+FFFD),
/// control pieces (&lt;s&gt;, &lt;/s&gt;) give nothing, &lt;unk&gt; gives the model's unk_surface, and while no text
/// has been produced a leading "▁" is dropped (so [▁Once, ▁upon] -> "Once upon").
/// </summary>
public sealed class SentencePieceTokenizer : ITextTokenizer
{
    readonly SentencePieceModelFile _model;
    readonly MlTok.LlamaTokenizer _ml;
    readonly Dictionary<string, int> _pieceToId;
    readonly TokenSurface[] _surfaces;
    /// <summary>User-defined pieces, longest first: sentencepiece never splits them.</summary>
    readonly (string Piece, int Id)[] _userDefined;

    SentencePieceTokenizer(SentencePieceModelFile model, MlTok.LlamaTokenizer ml, Dictionary<string, int> pieceToId,
                           TokenSurface[] surfaces, (string, int)[] userDefined,
                           int? bosId, IReadOnlyList<int> eosIds, bool addBos, bool addEos = false)
    {
        _model = model; _ml = ml; _pieceToId = pieceToId; _surfaces = surfaces; _userDefined = userDefined;
        BosId = bosId; EosIds = eosIds; AddBosByDefault = addBos; AddEosByDefault = addEos;
    }

    /// <summary>Loads a tokenizer.model. BOS/EOS default to the model's bos_id/eos_id; AddBosByDefault to true.</summary>
    public static SentencePieceTokenizer Load(string modelPath, SpecialTokenSettings? settings = null)
    {
        var model = SentencePieceModelFile.Read(modelPath);
        if (model.ModelType != 2)
            throw new InputException($"'{modelPath}' is a SentencePiece {ModelTypeName(model.ModelType)} model; only BPE models " +
                                     "(Llama-2 style) are supported. Use a checkpoint with a BPE tokenizer.model or a tokenizer.json.");
        if (model.PrecompiledCharsmapLength > 0)
            throw new InputException($"'{modelPath}' uses the SentencePiece normalizer '{model.NormalizerName}' with a precompiled " +
                                     "character map; only the identity normalizer (Llama-2 style) is supported.");
        if (model.TreatWhitespaceAsSuffix)
            throw new InputException($"'{modelPath}' sets treat_whitespace_as_suffix; only whitespace-as-prefix models (Llama-2 style) are supported.");

        MlTok.LlamaTokenizer ml;
        try
        {
            using var stream = File.OpenRead(modelPath);
            ml = MlTok.LlamaTokenizer.Create(stream, addBeginOfSentence: false, addEndOfSentence: false);
        }
        catch (Exception e) when (e is not InputException)
        {
            throw new InputException($"Microsoft.ML.Tokenizers could not load the SentencePiece model '{modelPath}': {e.Message}", e);
        }

        var pieceToId = new Dictionary<string, int>(model.Pieces.Length, StringComparer.Ordinal);
        for (int i = 0; i < model.Pieces.Length; i++) pieceToId.TryAdd(model.Pieces[i], i);

        var surfaces = new TokenSurface[model.Pieces.Length];
        bool dropsLeadingSpace = model.AddDummyPrefix || model.RemoveExtraWhitespaces;
        for (int i = 0; i < surfaces.Length; i++)
            surfaces[i] = PieceSurface(model, i, dropsLeadingSpace);

        var userDefined = Enumerable.Range(0, model.Pieces.Length)
            .Where(i => model.Types[i] == PieceType.UserDefined && model.Pieces[i].Length > 0)
            .Select(i => (model.Pieces[i], i))
            .OrderByDescending(p => p.Item1.Length)
            .ToArray();

        int? bos = model.BosId >= 0 && model.BosId < model.Pieces.Length ? model.BosId : null;
        int[] eos = model.EosId >= 0 && model.EosId < model.Pieces.Length ? [model.EosId] : [];
        var tok = new SentencePieceTokenizer(model, ml, pieceToId, surfaces, userDefined, bos, eos, addBos: true);
        return settings is null ? tok : tok.WithSpecialTokens(settings);
    }

    /// <summary>The same tokenizer with BOS/EOS/AddBos/AddEos replaced where <paramref name="settings"/> sets them.</summary>
    public SentencePieceTokenizer WithSpecialTokens(SpecialTokenSettings settings) =>
        new(_model, _ml, _pieceToId, _surfaces, _userDefined,
            settings.BosId ?? BosId, settings.EosIds ?? EosIds, settings.AddBosByDefault ?? AddBosByDefault,
            settings.AddEosByDefault ?? AddEosByDefault);

    static string ModelTypeName(int t) => t switch { 1 => "unigram", 2 => "BPE", 3 => "word", 4 => "char", _ => $"type-{t}" };

    static TokenSurface PieceSurface(SentencePieceModelFile model, int id, bool dropsLeadingSpace)
    {
        string piece = model.Pieces[id];
        switch (model.Types[id])
        {
            case PieceType.Control:
                return TokenSurface.Empty;
            case PieceType.Unknown:
                return new(Encoding.UTF8.GetBytes(model.UnkSurface), false, false);
            case PieceType.Byte:
                if (piece.Length == 6 && piece.StartsWith("<0x", StringComparison.Ordinal) && piece[5] == '>' &&
                    byte.TryParse(piece.AsSpan(3, 2), System.Globalization.NumberStyles.HexNumber, null, out byte b))
                    return new([b], false, true);
                throw new InputException($"'{model.Path}': byte piece {id} is '{piece}', expected <0xNN>.");
            default:
                string text = model.EscapeWhitespaces ? piece.Replace('\u2581', ' ') : piece;
                return new(Encoding.UTF8.GetBytes(text), dropsLeadingSpace && piece.StartsWith('\u2581'), false);
        }
    }

    public string Kind => "sentencepiece";
    public int VocabSize => _model.Pieces.Length;
    public int? BosId { get; }
    public int? EosId => EosIds.Count > 0 ? EosIds[0] : null;
    public IReadOnlyList<int> EosIds { get; }
    public bool AddBosByDefault { get; }
    public bool AddEosByDefault { get; }
    public int UnknownId => _model.UnkId;
    public bool ByteFallback => _model.ByteFallback;

    /// <summary>The text sentencepiece's normalizer produces (what the BPE merges run on).</summary>
    public string Normalize(string text)
    {
        ReadOnlySpan<char> s = text;
        if (_model.RemoveExtraWhitespaces) s = s.TrimStart(' ');
        if (s.IsEmpty) return "";
        char space = _model.EscapeWhitespaces ? '\u2581' : ' ';
        var sb = new StringBuilder(s.Length + 1);
        if (_model.AddDummyPrefix) sb.Append(space);
        bool prevSpace = false;
        foreach (char c in s)
        {
            if (c == ' ')
            {
                if (_model.RemoveExtraWhitespaces && prevSpace) continue;
                sb.Append(space);
                prevSpace = true;
            }
            else
            {
                sb.Append(c);
                prevSpace = false;
            }
        }
        if (_model.RemoveExtraWhitespaces)
        {
            int end = sb.Length;
            while (end > 0 && sb[end - 1] == space) end--;
            sb.Length = end;
        }
        return sb.ToString();
    }

    public IReadOnlyList<int> Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        string normalized = Normalize(text);
        var ids = new List<int>(normalized.Length);
        if (normalized.Length == 0) return ids;

        int start = 0;
        if (_userDefined.Length > 0)
        {
            for (int i = 0; i < normalized.Length;)
            {
                int matched = MatchUserDefined(normalized, i);
                if (matched < 0) { i++; continue; }
                EncodeSegment(normalized.AsSpan(start, i - start), ids);
                ids.Add(_userDefined[matched].Id);
                i += _userDefined[matched].Piece.Length;
                start = i;
            }
        }
        EncodeSegment(normalized.AsSpan(start), ids);

        if (!_model.ByteFallback) FuseUnknownRuns(ids, _model.UnkId);
        return ids;
    }

    void EncodeSegment(ReadOnlySpan<char> normalized, List<int> ids)
    {
        if (normalized.IsEmpty) return;
        ids.AddRange(_ml.EncodeToIds(normalized, addBeginningOfSentence: false, addEndOfSentence: false,
                                     considerPreTokenization: false, considerNormalization: false));
    }

    int MatchUserDefined(string text, int at)
    {
        for (int k = 0; k < _userDefined.Length; k++)
            if (text.AsSpan(at).StartsWith(_userDefined[k].Piece, StringComparison.Ordinal))
                return k;
        return -1;
    }

    /// <summary>sentencepiece emits one &lt;unk&gt; for a run of unknown characters.</summary>
    static void FuseUnknownRuns(List<int> ids, int unkId)
    {
        int w = 0;
        for (int r = 0; r < ids.Count; r++)
        {
            if (ids[r] == unkId && w > 0 && ids[w - 1] == unkId) continue;
            ids[w++] = ids[r];
        }
        ids.RemoveRange(w, ids.Count - w);
    }

    TokenSurface Surface(int id)
    {
        if ((uint)id >= (uint)_surfaces.Length)
            throw new ArgumentOutOfRangeException(nameof(id), id, $"Token id is outside the SentencePiece vocabulary of {_surfaces.Length} pieces ({_model.Path}).");
        return _surfaces[id];
    }

    public string Decode(IEnumerable<int> ids)
    {
        var decoder = CreateStreamDecoder(atStartOfText: true);
        return decoder.Append(ids) + decoder.Flush();
    }

    public string DecodeToken(int id) => Utf8Text.DecodePerByteLossy(Surface(id).Bytes);

    public TokenStreamDecoder CreateStreamDecoder(bool atStartOfText = true) => new(Surface, atStartOfText);

    public string? IdToToken(int id) => (uint)id < (uint)_model.Pieces.Length ? _model.Pieces[id] : null;

    public int? TokenToId(string token) => _pieceToId.TryGetValue(token, out int id) ? id : null;
}
