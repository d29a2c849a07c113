namespace HybridDistill.Tokenization;

/// <summary>BOS/EOS settings that replace what a tokenizer file says on its own (they come from config.json,
/// generation_config.json and tokenizer_config.json; see <see cref="TokenizerLoader"/>). A null member keeps the
/// tokenizer's own value.</summary>
public sealed record SpecialTokenSettings
{
    public int? BosId { get; init; }
    public IReadOnlyList<int>? EosIds { get; init; }
    public bool? AddBosByDefault { get; init; }
    public bool? AddEosByDefault { get; init; }
}
