namespace HybridDistill.Tokenization;

/// <summary>Text to token ids and back, for one model's vocabulary. BOS/EOS are never added by Encode.</summary>
public interface ITextTokenizer
{
    /// <summary>"sentencepiece" or "bpe".</summary>
    string Kind { get; }
    int VocabSize { get; }
    int? BosId { get; }
    int? EosId { get; }
    /// <summary>True when prompts should start with BOS (tokenizer_config.json's add_bos_token, else true for SentencePiece).</summary>
    bool AddBosByDefault { get; }
    IReadOnlyList<int> Encode(string text);
    string Decode(IEnumerable<int> ids);
    /// <summary>The text of one token as it should be appended to a stream of decoded text.</summary>
    string DecodeToken(int id);
}
