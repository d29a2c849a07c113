namespace HybridDistill.Tokenization;

/// <summary>Text to token ids and back, for one model's vocabulary. BOS/EOS are never added by Encode.</summary>
public interface ITextTokenizer
{
    /// <summary>"sentencepiece" or "bpe".</summary>
    string Kind { get; }
    /// <summary>Number of ids the tokenizer knows (pieces, or max id + 1 over vocab and added tokens).</summary>
    int VocabSize { get; }
    int? BosId { get; }
    /// <summary>The first of <see cref="EosIds"/>, or null when there is none.</summary>
    int? EosId { get; }
    /// <summary>Every id that ends a generation (config.json may list several, e.g. Llama-3's eot ids).</summary>
    IReadOnlyList<int> EosIds { get; }
    /// <summary>True when prompts should start with BOS (tokenizer_config.json's add_bos_token, else true for SentencePiece).</summary>
    bool AddBosByDefault { get; }
    /// <summary>True when a sequence should end with EOS (tokenizer_config.json's add_eos_token, or a post-processor
    /// template that ends with a special token). False for every family the project targets.</summary>
    bool AddEosByDefault => false;
    IReadOnlyList<int> Encode(string text);

    /// <summary>Encode with the special tokens the model's family adds (Hugging Face's add_special_tokens=True):
    /// BOS first when <see cref="AddBosByDefault"/>, EOS last when <see cref="AddEosByDefault"/>.</summary>
    IReadOnlyList<int> EncodeWithSpecialTokens(string text)
    {
        var ids = new List<int>();
        if (AddBosByDefault && BosId is int bos) ids.Add(bos);
        ids.AddRange(Encode(text));
        if (AddEosByDefault && EosId is int eos) ids.Add(eos);
        return ids;
    }
    /// <summary>Text of a whole sequence, decoded as the reference library does (SentencePiece drops the
    /// leading space of the first piece and control tokens; byte-level BPE keeps added tokens' text).</summary>
    string Decode(IEnumerable<int> ids);
    /// <summary>The text of one token as it should be appended to a stream of decoded text that already holds
    /// text: a SentencePiece word-start piece keeps its leading space ("▁the" -> " the"), control tokens give "".
    /// Stateless, so a byte that is only part of a UTF-8 character gives U+FFFD: streams use
    /// <see cref="CreateStreamDecoder"/>, which also drops the leading space at the start of text.</summary>
    string DecodeToken(int id);
    /// <summary>A stateful decoder for generation output: buffers partial UTF-8 characters from byte tokens and,
    /// when <paramref name="atStartOfText"/> is true, drops a SentencePiece leading space until text appears
    /// (so streaming BOS + ids gives exactly <see cref="Decode"/> of the ids).</summary>
    TokenStreamDecoder CreateStreamDecoder(bool atStartOfText = true);
    /// <summary>The vocabulary string of an id (a SentencePiece piece such as "▁the" or "&lt;0x0A&gt;", a byte-level
    /// BPE token such as "Ġthe", an added token's content), or null for an unknown id.</summary>
    string? IdToToken(int id);
    /// <summary>The id of a vocabulary string or added token, or null.</summary>
    int? TokenToId(string token);
}
