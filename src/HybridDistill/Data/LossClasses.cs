// What each token of a synthetic corpus is, as a target: one byte per token in train.classes.bin / val.classes.bin,
// beside the token files. The low two bits are the role (how much the next-token loss counts the token), the
// rest the episode kind it belongs to (so training can report per-kind answer accuracy, where the phase change
// of in-context recall shows):
//   byte = kind << 2 | role
// The byte of token i applies when token i is the target, i.e. to the prediction made at position i - 1.
using static TorchSharp.torch;

namespace HybridDistill.Data;

/// <summary>How the loss counts a target token.</summary>
public enum TokenRole : byte
{
    /// <summary>Not counted: unpredictable by construction (random filler keys, the first token of a span, a window's leading BOS).</summary>
    None = 0,
    /// <summary>Ordinary language and the predictable glue of an episode.</summary>
    Text = 1,
    /// <summary>Predictable only by recalling the context: copied span tokens, pass-key digits, queried values.</summary>
    Answer = 2,
}

/// <summary>The episode kinds of <see cref="SyntheticCorpus"/>, in the order of their class codes.</summary>
public enum EpisodeKind : byte
{
    Story = 0,
    /// <summary>A run of random keys repeated until the episode ends (trains the induction mechanism).</summary>
    Repeat = 1,
    /// <summary>Filler (random keys or story text), then a span of it repeated.</summary>
    Copy = 2,
    /// <summary>A pass key sentence hidden in filler text, then a question whose answer is the key.</summary>
    Passkey = 3,
    /// <summary>"key: value" lines, then queries "key:" answered by the value.</summary>
    KeyValue = 4,
    /// <summary>Key-value lines with alias chains "a -> b"; queries on the first key of a chain.</summary>
    Multihop = 5,
}

public static class LossClasses
{
    public const string TrainFile = "train.classes.bin";
    public const string ValFile = "val.classes.bin";

    /// <summary>Recipe and metric names of the kinds.</summary>
    public static string Name(EpisodeKind kind) => kind switch
    {
        EpisodeKind.Story => "story",
        EpisodeKind.Repeat => "repeat",
        EpisodeKind.Copy => "copy",
        EpisodeKind.Passkey => "passkey",
        EpisodeKind.KeyValue => "kv",
        _ => "multihop",
    };

    public static IReadOnlyList<EpisodeKind> Kinds { get; } = Enum.GetValues<EpisodeKind>();

    public static byte Code(EpisodeKind kind, TokenRole role) => (byte)((byte)kind << 2 | (byte)role);
    public static TokenRole Role(byte code) => (TokenRole)(code & 3);
    public static EpisodeKind Kind(byte code) => (EpisodeKind)(code >> 2);

    /// <summary>Per-token loss weights [B, T] from class codes [B, T]: <paramref name="textWeight"/> for Text,
    /// <paramref name="answerWeight"/> for Answer, 0 for None.</summary>
    public static Tensor Weights(Tensor codes, double textWeight, double answerWeight)
    {
        var role = codes.bitwise_and(3);
        return role.eq(1).to(float32).mul(textWeight).add_(role.eq(2).to(float32).mul_(answerWeight));
    }
}
