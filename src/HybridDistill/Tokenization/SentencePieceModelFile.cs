using System.Text;

namespace HybridDistill.Tokenization;

/// <summary>SentencePiece piece types (sentencepiece_model.proto).</summary>
internal enum PieceType { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 }

/// <summary>
/// The parts of a SentencePiece tokenizer.model (a ModelProto protobuf) that decoding and normalization need:
/// pieces with types, and the trainer/normalizer flags. Read with a small wire-format parser, so a damaged file
/// is reported with its path instead of a protobuf stack trace.
/// Field numbers: ModelProto{1 pieces, 2 trainer_spec, 3 normalizer_spec}; SentencePiece{1 piece, 2 score, 3 type};
/// TrainerSpec{3 model_type, 24 treat_whitespace_as_suffix, 35 byte_fallback, 40 unk_id, 41 bos_id, 42 eos_id,
/// 43 pad_id, 44 unk_surface}; NormalizerSpec{1 name, 2 precompiled_charsmap, 3 add_dummy_prefix,
/// 4 remove_extra_whitespaces, 5 escape_whitespaces}.
/// </summary>
internal sealed class SentencePieceModelFile
{
    public required string Path { get; init; }
    public required string[] Pieces { get; init; }
    public required float[] Scores { get; init; }
    public required PieceType[] Types { get; init; }
    /// <summary>1 unigram, 2 BPE, 3 word, 4 char.</summary>
    public int ModelType { get; init; } = 1;
    public bool ByteFallback { get; init; }
    public bool TreatWhitespaceAsSuffix { get; init; }
    public int UnkId { get; init; }
    public int BosId { get; init; } = 1;
    public int EosId { get; init; } = 2;
    public int PadId { get; init; } = -1;
    /// <summary>Text that decoding writes for the unknown piece (SentencePiece default " ⁇ ").</summary>
    public string UnkSurface { get; init; } = " \u2047 ";
    public string NormalizerName { get; init; } = "";
    public int PrecompiledCharsmapLength { get; init; }
    public bool AddDummyPrefix { get; init; } = true;
    public bool RemoveExtraWhitespaces { get; init; } = true;
    public bool EscapeWhitespaces { get; init; } = true;

    public static SentencePieceModelFile Read(string path)
    {
        byte[] data;
        try { data = File.ReadAllBytes(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new InputException($"Cannot read SentencePiece model '{path}': {e.Message}", e);
        }
        try
        {
            return Parse(path, data);
        }
        catch (Exception e) when (e is FormatException or IndexOutOfRangeException or ArgumentOutOfRangeException or DecoderFallbackException)
        {
            throw new InputException($"'{path}' is not a valid SentencePiece model (protobuf ModelProto): {e.Message}. " +
                                     "Use the tokenizer.model that was saved with the checkpoint.", e);
        }
    }

    static SentencePieceModelFile Parse(string path, byte[] data)
    {
        var pieces = new List<string>();
        var scores = new List<float>();
        var types = new List<PieceType>();
        int modelType = 1, unkId = 0, bosId = 1, eosId = 2, padId = -1;
        bool byteFallback = false, suffix = false, addDummy = true, removeWs = true, escapeWs = true;
        string unkSurface = " \u2047 ", normName = "";
        int charsmapLen = 0;

        foreach (var (field, _, value, bytes) in Fields(data, 0, data.Length))
        {
            switch (field)
            {
                case 1:
                    string piece = "";
                    float score = 0;
                    var type = PieceType.Normal;
                    foreach (var (f, wt, v, b) in Fields(data, bytes.Start, bytes.End))
                    {
                        if (f == 1) piece = Utf8(data, b);
                        else if (f == 2 && wt == 5) score = BitConverter.Int32BitsToSingle((int)v);
                        else if (f == 3) type = (PieceType)(int)v;
                    }
                    pieces.Add(piece); scores.Add(score); types.Add(type);
                    break;
                case 2:
                    foreach (var (f, _, v, b) in Fields(data, bytes.Start, bytes.End))
                    {
                        switch (f)
                        {
                            case 3: modelType = (int)v; break;
                            case 24: suffix = v != 0; break;
                            case 35: byteFallback = v != 0; break;
                            case 40: unkId = (int)(long)v; break;
                            case 41: bosId = (int)(long)v; break;
                            case 42: eosId = (int)(long)v; break;
                            case 43: padId = (int)(long)v; break;
                            case 44: unkSurface = Utf8(data, b); break;
                        }
                    }
                    break;
                case 3:
                    foreach (var (f, _, v, b) in Fields(data, bytes.Start, bytes.End))
                    {
                        switch (f)
                        {
                            case 1: normName = Utf8(data, b); break;
                            case 2: charsmapLen = b.End - b.Start; break;
                            case 3: addDummy = v != 0; break;
                            case 4: removeWs = v != 0; break;
                            case 5: escapeWs = v != 0; break;
                        }
                    }
                    break;
            }
        }
        if (pieces.Count == 0) throw new FormatException("no pieces found");
        return new SentencePieceModelFile
        {
            Path = path, Pieces = pieces.ToArray(), Scores = scores.ToArray(), Types = types.ToArray(),
            ModelType = modelType, ByteFallback = byteFallback, TreatWhitespaceAsSuffix = suffix,
            UnkId = unkId, BosId = bosId, EosId = eosId, PadId = padId, UnkSurface = unkSurface,
            NormalizerName = normName, PrecompiledCharsmapLength = charsmapLen,
            AddDummyPrefix = addDummy, RemoveExtraWhitespaces = removeWs, EscapeWhitespaces = escapeWs,
        };
    }

    static string Utf8(byte[] data, (int Start, int End) r) =>
        new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(data, r.Start, r.End - r.Start);

    /// <summary>Protobuf wire format: (field number, wire type, varint or fixed value, length-delimited range).</summary>
    static IEnumerable<(int Field, int WireType, ulong Value, (int Start, int End) Bytes)> Fields(byte[] d, int start, int end)
    {
        int i = start;
        while (i < end)
        {
            ulong key = Varint(d, ref i, end);
            int field = (int)(key >> 3), wt = (int)(key & 7);
            if (field == 0) throw new FormatException($"field number 0 at byte {i}");
            switch (wt)
            {
                case 0:
                    yield return (field, wt, Varint(d, ref i, end), (0, 0));
                    break;
                case 1:
                    if (i + 8 > end) throw new FormatException($"truncated fixed64 at byte {i}");
                    yield return (field, wt, BitConverter.ToUInt64(d, i), (0, 0));
                    i += 8;
                    break;
                case 2:
                    ulong len = Varint(d, ref i, end);
                    if (len > (ulong)(end - i)) throw new FormatException($"length {len} at byte {i} runs past the end");
                    int s = i;
                    i += (int)len;
                    yield return (field, wt, 0, (s, i));
                    break;
                case 5:
                    if (i + 4 > end) throw new FormatException($"truncated fixed32 at byte {i}");
                    yield return (field, wt, BitConverter.ToUInt32(d, i), (0, 0));
                    i += 4;
                    break;
                default:
                    throw new FormatException($"unsupported wire type {wt} at byte {i}");
            }
        }
    }

    static ulong Varint(byte[] d, ref int i, int end)
    {
        ulong r = 0;
        for (int shift = 0; shift < 64; shift += 7)
        {
            if (i >= end) throw new FormatException($"truncated varint at byte {i}");
            byte b = d[i++];
            r |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80) return r;
        }
        throw new FormatException($"varint longer than 10 bytes at byte {i}");
    }
}
