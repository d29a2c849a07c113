namespace HybridDistill.Checkpoints;

/// <summary>
/// The element type a finished model's weights are written in. Compute is fp32 either way (bf16 matmul is ~5x slower
/// on this CPU): BF16 files halve disk and load time and are widened to fp32 on load (exactly: bf16 is the top half of
/// an fp32). Training checkpoints (weights and AdamW moments) are always F32, so <c>--resume</c> stays exact.
/// </summary>
public enum StoredDType
{
    F32,
    /// <summary>bfloat16, rounded from fp32 to nearest, ties to even (as torch's <c>.to(torch.bfloat16)</c>).</summary>
    BF16,
}

public static class StoredDTypes
{
    /// <summary>The dtype string in a safetensors header.</summary>
    public static string SafeTensorsName(this StoredDType d) => d == StoredDType.BF16 ? "BF16" : "F32";

    /// <summary>config.json's <c>torch_dtype</c>.</summary>
    public static string TorchName(this StoredDType d) => d == StoredDType.BF16 ? "bfloat16" : "float32";

    public static int ElementSize(this StoredDType d) => d == StoredDType.BF16 ? 2 : 4;

    /// <summary>The command-line spelling (<c>--dtype bf16|fp32</c>, also bfloat16 / float32).</summary>
    public static StoredDType Parse(string text, string option = "--dtype") => text.Trim().ToLowerInvariant() switch
    {
        "fp32" or "f32" or "float32" => StoredDType.F32,
        "bf16" or "bfloat16" => StoredDType.BF16,
        _ => throw new InputException($"{option} {text}: unknown dtype; use bf16 or fp32."),
    };

    /// <summary>
    /// fp32 -> bf16 bits, round to nearest, ties to even: add 0x7FFF plus the lowest kept bit, keep the top 16 bits.
    /// Values past bf16's largest finite one round to infinity; NaN stays NaN (quiet, sign kept).
    /// </summary>
    public static ushort ToBFloat16Bits(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value)) return (ushort)((bits >> 16) | 0x0040);
        uint roundingBias = 0x7FFFu + ((bits >> 16) & 1u);
        return (ushort)((bits + roundingBias) >> 16);
    }

    /// <summary>bf16 bits -> fp32 (exact).</summary>
    public static float FromBFloat16Bits(ushort bits) => BitConverter.Int32BitsToSingle(bits << 16);
}
