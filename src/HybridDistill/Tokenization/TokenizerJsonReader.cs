using System.Text.Json;
using System.Text.RegularExpressions;

namespace HybridDistill.Tokenization;

/// <summary>Everything a byte-level BPE tokenizer needs, read from tokenizer.json or vocab.json + merges.txt.</summary>
internal sealed class BpeDefinition
{
    public required string SourcePath { get; init; }
    public required Dictionary<string, int> Vocab { get; init; }
    /// <summary>Merge rules in priority order, each "left right".</summary>
    public required List<string> Merges { get; init; }
    public List<AddedToken> AddedTokens { get; init; } = new();
    public List<PreTokenizeStep> PreTokenizers { get; init; } = new();
    public List<TextNormalization> Normalizers { get; init; } = new();
    /// <summary>Llama-3 style: a pre-token that is already in the vocabulary is emitted whole, without merges.</summary>
    public bool IgnoreMerges { get; init; }
    public string? UnknownToken { get; init; }
    public string? ContinuingSubwordPrefix { get; init; }
    public string? EndOfWordSuffix { get; init; }
    public bool FuseUnknown { get; init; }
    /// <summary>The special token the post-processor's template puts before every sequence (Llama-3's
    /// &lt;|begin_of_text|&gt;), i.e. the tokenizer adds BOS by default.</summary>
    public string? TemplateBosToken { get; init; }
    public int? TemplateBosId { get; init; }
    /// <summary>The special token the template puts after every sequence (none of the targeted families has one).</summary>
    public int? TemplateEosId { get; init; }
    /// <summary>Set when the file is a valid tokenizer.json that is not byte-level BPE (SentencePiece-style
    /// Metaspace/byte_fallback BPE, WordPiece, Unigram, ...): why it cannot be used.</summary>
    public string? NotByteLevelReason { get; init; }
}

/// <summary>Reads Hugging Face tokenizer files into a <see cref="BpeDefinition"/>.</summary>
internal static class TokenizerJsonReader
{
    public static BpeDefinition ReadTokenizerJson(string path)
    {
        JsonDocument doc;
        try
        {
            using var stream = File.OpenRead(path);
            doc = JsonDocument.Parse(stream, new JsonDocumentOptions { AllowTrailingCommas = true, MaxDepth = 256 });
        }
        catch (JsonException e)
        {
            throw new InputException($"'{path}' is not valid JSON ({e.Message}). Re-download or re-save the tokenizer.json.", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new InputException($"Cannot read '{path}': {e.Message}", e);
        }
        using (doc)
        {
            try
            {
                return Parse(path, doc.RootElement);
            }
            catch (Exception e) when (e is InvalidOperationException or FormatException or KeyNotFoundException or JsonException)
            {
                throw new InputException($"'{path}' is not a valid Hugging Face tokenizer.json: {e.Message}", e);
            }
        }
    }

    static BpeDefinition Parse(string path, JsonElement root)
    {
        if (root.ValueKind != JsonValueKind.Object) throw new FormatException("the top level is not a JSON object");
        if (!root.TryGetProperty("model", out var model) || model.ValueKind != JsonValueKind.Object)
            throw new FormatException("missing object 'model'");

        string modelType = model.TryGetProperty("type", out var mt) && mt.ValueKind == JsonValueKind.String ? mt.GetString()!
                         : model.TryGetProperty("merges", out _) ? "BPE" : "unknown";

        var added = new List<AddedToken>();
        if (root.TryGetProperty("added_tokens", out var addedArr) && addedArr.ValueKind == JsonValueKind.Array)
        {
            foreach (var a in addedArr.EnumerateArray())
            {
                added.Add(new AddedToken(
                    Required(a, "content", "added_tokens[]").GetString()!,
                    Required(a, "id", "added_tokens[]").GetInt32(),
                    Bool(a, "special", false), Bool(a, "lstrip", false), Bool(a, "rstrip", false), Bool(a, "single_word", false)));
            }
        }

        if (modelType != "BPE")
            return Unsupported(path, $"its model type is '{modelType}', not BPE");

        var vocabEl = Required(model, "vocab", "model");
        if (vocabEl.ValueKind != JsonValueKind.Object) throw new FormatException("'model.vocab' is not an object of token -> id");
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var p in vocabEl.EnumerateObject()) vocab[p.Name] = p.Value.GetInt32();

        var merges = new List<string>();
        if (model.TryGetProperty("merges", out var mergesEl) && mergesEl.ValueKind == JsonValueKind.Array)
        {
            int i = 0;
            foreach (var m in mergesEl.EnumerateArray())
            {
                string left, right;
                if (m.ValueKind == JsonValueKind.String)
                {
                    var parts = m.GetString()!.Split(' ');
                    if (parts.Length != 2) throw new FormatException($"model.merges[{i}] = \"{m.GetString()}\" is not \"left right\"");
                    (left, right) = (parts[0], parts[1]);
                }
                else if (m.ValueKind == JsonValueKind.Array && m.GetArrayLength() == 2)
                {
                    (left, right) = (m[0].GetString()!, m[1].GetString()!);
                    if (left.Contains(' ') || right.Contains(' '))
                        return Unsupported(path, $"model.merges[{i}] has a token with a space, which byte-level BPE never has");
                }
                else throw new FormatException($"model.merges[{i}] is neither \"left right\" nor [\"left\", \"right\"]");
                merges.Add(left + " " + right);
                i++;
            }
        }

        if (Bool(model, "byte_fallback", false))
            return Unsupported(path, "its BPE model uses byte_fallback (SentencePiece-style, e.g. Llama-2), not byte-level BPE");

        var steps = new List<PreTokenizeStep>();
        bool byteLevel = false;
        if (root.TryGetProperty("pre_tokenizer", out var pre) && pre.ValueKind == JsonValueKind.Object)
        {
            string? reason = ReadPreTokenizer(path, pre, steps, ref byteLevel);
            if (reason is not null) return Unsupported(path, reason);
        }
        if (!byteLevel) return Unsupported(path, "it has no ByteLevel pre-tokenizer, so it is not byte-level BPE");

        var norms = new List<TextNormalization>();
        if (root.TryGetProperty("normalizer", out var norm) && norm.ValueKind == JsonValueKind.Object)
        {
            string? reason = ReadNormalizer(norm, norms);
            if (reason is not null) return Unsupported(path, reason);
        }

        string? templateBos = null, templateEos = null;
        int? templateBosId = null, templateEosId = null;
        if (root.TryGetProperty("post_processor", out var post) && post.ValueKind == JsonValueKind.Object)
        {
            FindTemplateSpecial(post, first: true, ref templateBos, ref templateBosId);
            FindTemplateSpecial(post, first: false, ref templateEos, ref templateEosId);
        }
        int? IdOf(string content) => added.FirstOrDefault(a => a.Content == content)?.Id ?? (vocab.TryGetValue(content, out int v) ? v : null);
        if (templateBos is not null && templateBosId is null) templateBosId = IdOf(templateBos);
        if (templateEos is not null && templateEosId is null) templateEosId = IdOf(templateEos);

        return new BpeDefinition
        {
            SourcePath = path, Vocab = vocab, Merges = merges, AddedTokens = added, PreTokenizers = steps, Normalizers = norms,
            IgnoreMerges = Bool(model, "ignore_merges", false),
            UnknownToken = OptString(model, "unk_token"),
            ContinuingSubwordPrefix = OptString(model, "continuing_subword_prefix"),
            EndOfWordSuffix = OptString(model, "end_of_word_suffix"),
            FuseUnknown = Bool(model, "fuse_unk", false),
            TemplateBosToken = templateBos, TemplateBosId = templateBosId, TemplateEosId = templateEosId,
        };
    }

    static BpeDefinition Unsupported(string path, string reason) =>
        new() { SourcePath = path, Vocab = new(), Merges = new(), NotByteLevelReason = reason };

    static string? ReadPreTokenizer(string path, JsonElement pre, List<PreTokenizeStep> steps, ref bool byteLevel)
    {
        string type = Required(pre, "type", "pre_tokenizer").GetString()!;
        switch (type)
        {
            case "Sequence":
                foreach (var p in Required(pre, "pretokenizers", "pre_tokenizer").EnumerateArray())
                {
                    string? r = ReadPreTokenizer(path, p, steps, ref byteLevel);
                    if (r is not null) return r;
                }
                return null;
            case "ByteLevel":
                byteLevel = true;
                steps.Add(new ByteLevelStep(Bool(pre, "add_prefix_space", true), Bool(pre, "use_regex", true)));
                return null;
            case "Split":
            {
                var pat = Required(pre, "pattern", "pre_tokenizer Split");
                string pattern;
                if (pat.TryGetProperty("Regex", out var re)) pattern = re.GetString()!;
                else if (pat.TryGetProperty("String", out var s)) pattern = Regex.Escape(s.GetString()!);
                else throw new FormatException("pre_tokenizer Split pattern is neither {\"Regex\": ...} nor {\"String\": ...}");
                string behaviorName = pre.TryGetProperty("behavior", out var b) ? b.GetString()! : "Isolated";
                if (!Enum.TryParse<SplitBehavior>(behaviorName, out var behavior))
                    return $"its Split pre-tokenizer has behavior '{behaviorName}'";
                Regex regex;
                try { regex = new Regex(RegexDialect.ToDotNet(pattern), RegexOptions.Compiled | RegexOptions.CultureInvariant); }
                catch (ArgumentException e)
                {
                    throw new InputException($"'{path}': the Split pattern {JsonSerializer.Serialize(pattern)} is not a .NET regular expression ({e.Message}).", e);
                }
                steps.Add(new RegexSplitStep(regex, behavior, Bool(pre, "invert", false)));
                return null;
            }
            case "Digits":
                steps.Add(new DigitsStep(Bool(pre, "individual_digits", false)));
                return null;
            default:
                return $"it uses the '{type}' pre-tokenizer" + (type == "Metaspace" ? " (SentencePiece-style)" : "");
        }
    }

    static string? ReadNormalizer(JsonElement norm, List<TextNormalization> output)
    {
        string type = Required(norm, "type", "normalizer").GetString()!;
        switch (type)
        {
            case "Sequence":
                foreach (var n in Required(norm, "normalizers", "normalizer").EnumerateArray())
                {
                    string? r = ReadNormalizer(n, output);
                    if (r is not null) return r;
                }
                return null;
            case "NFC": output.Add(TextNormalization.Nfc); return null;
            case "NFKC": output.Add(TextNormalization.Nfkc); return null;
            case "NFD": output.Add(TextNormalization.Nfd); return null;
            case "NFKD": output.Add(TextNormalization.Nfkd); return null;
            case "Lowercase": output.Add(TextNormalization.Lowercase); return null;
            default: return $"it uses the '{type}' normalizer";
        }
    }

    /// <summary>The special token a TemplateProcessing post-processor puts first (<paramref name="first"/>) or last in
    /// its "single" template, if any.</summary>
    static void FindTemplateSpecial(JsonElement post, bool first, ref string? token, ref int? id)
    {
        string? type = post.TryGetProperty("type", out var t) ? t.GetString() : null;
        if (type == "Sequence" && post.TryGetProperty("processors", out var procs) && procs.ValueKind == JsonValueKind.Array)
        {
            foreach (var p in procs.EnumerateArray()) FindTemplateSpecial(p, first, ref token, ref id);
            return;
        }
        if (type != "TemplateProcessing" || !post.TryGetProperty("single", out var single) ||
            single.ValueKind != JsonValueKind.Array || single.GetArrayLength() == 0)
            return;
        var end = single[first ? 0 : single.GetArrayLength() - 1];
        if (!end.TryGetProperty("SpecialToken", out var st) || !st.TryGetProperty("id", out var name)) return;
        token = name.GetString();
        if (token is not null && post.TryGetProperty("special_tokens", out var sts) && sts.ValueKind == JsonValueKind.Object &&
            sts.TryGetProperty(token, out var entry) && entry.TryGetProperty("ids", out var ids) &&
            ids.ValueKind == JsonValueKind.Array && ids.GetArrayLength() > 0)
            id = ids[0].GetInt32();
    }

    /// <summary>GPT-2 layout: vocab.json (token -> id) and merges.txt ("left right" lines after an optional
    /// "#version" line), with GPT-2's ByteLevel pre-tokenizer (no prefix space).</summary>
    public static BpeDefinition ReadVocabAndMerges(string vocabPath, string mergesPath, IReadOnlyList<AddedToken>? addedTokens)
    {
        var vocab = ReadVocab(vocabPath);

        var merges = new List<string>();
        string[] lines;
        try { lines = File.ReadAllLines(mergesPath); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new InputException($"Cannot read '{mergesPath}': {e.Message}", e);
        }
        for (int i = 0; i < lines.Length; i++)
        {
            string line = lines[i];
            if (line.Length == 0 || (i == 0 && line.StartsWith("#version", StringComparison.Ordinal))) continue;
            int sp = line.IndexOf(' ');
            if (sp <= 0 || sp == line.Length - 1 || line.IndexOf(' ', sp + 1) >= 0)
                throw new InputException($"'{mergesPath}' line {i + 1} is \"{line}\", expected two tokens separated by one space.");
            merges.Add(line);
        }

        var added = addedTokens?.ToList() ?? new List<AddedToken>();
        if (addedTokens is null && vocab.TryGetValue("<|endoftext|>", out int eot))
            added.Add(new AddedToken("<|endoftext|>", eot, Special: true));

        return new BpeDefinition
        {
            SourcePath = vocabPath, Vocab = vocab, Merges = merges, AddedTokens = added,
            PreTokenizers = [new ByteLevelStep(addPrefixSpace: false, useRegex: true)],
        };
    }

    /// <summary>vocab.json: an object of token -> id.</summary>
    public static Dictionary<string, int> ReadVocab(string vocabPath)
    {
        try
        {
            using var stream = File.OpenRead(vocabPath);
            return JsonSerializer.Deserialize<Dictionary<string, int>>(stream)
                    ?? throw new InputException($"'{vocabPath}' holds null instead of an object of token -> id.");
        }
        catch (JsonException e)
        {
            throw new InputException($"'{vocabPath}' is not a JSON object of token -> id ({e.Message}).", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new InputException($"Cannot read '{vocabPath}': {e.Message}", e);
        }
    }

    static JsonElement Required(JsonElement obj, string name, string where) =>
        obj.ValueKind == JsonValueKind.Object && obj.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null
            ? v : throw new FormatException($"missing '{name}' in {where}");

    static bool Bool(JsonElement obj, string name, bool fallback) =>
        obj.TryGetProperty(name, out var v) && (v.ValueKind == JsonValueKind.True || v.ValueKind == JsonValueKind.False) ? v.GetBoolean() : fallback;

    /// <summary>A string member; "" counts as absent (GPT-2's tokenizer.json writes "" for no prefix/suffix).</summary>
    static string? OptString(JsonElement obj, string name) =>
        obj.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String && v.GetString()!.Length > 0 ? v.GetString() : null;
}

/// <summary>
/// One of the JSON files beside a tokenizer that name its special tokens (config.json, generation_config.json,
/// tokenizer_config.json), read leniently: a key of an unexpected kind counts as absent unless it is an id, which
/// must be an integer or a list of them. Trailing commas are allowed, as Python's tokenizers tolerate them.
/// </summary>
internal sealed class TokenizerSideFile
{
    public string Path { get; }
    readonly JsonElement _root;

    TokenizerSideFile(string path, JsonElement root) => (Path, _root) = (path, root);

    /// <summary>The file's object, or null when there is no such file.</summary>
    public static TokenizerSideFile? Read(string path)
    {
        if (!File.Exists(path)) return null;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(path), new JsonDocumentOptions { AllowTrailingCommas = true });
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new InputException($"'{path}' must hold a JSON object.");
            return new TokenizerSideFile(path, doc.RootElement.Clone());
        }
        catch (JsonException e)
        {
            throw new InputException($"'{path}' is not valid JSON ({e.Message}).", e);
        }
    }

    public bool? Bool(string key) =>
        _root.TryGetProperty(key, out var v) && v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean() : null;

    /// <summary>An id or a list of ids (bos_token_id, eos_token_id); empty when absent or null.</summary>
    public List<int> Ids(string key)
    {
        var ids = new List<int>();
        if (!_root.TryGetProperty(key, out var v) || v.ValueKind == JsonValueKind.Null) return ids;
        if (v.ValueKind == JsonValueKind.Number) ids.Add(Id(v, key));
        else if (v.ValueKind == JsonValueKind.Array) foreach (var x in v.EnumerateArray()) ids.Add(Id(x, key));
        else throw new InputException($"'{Path}': '{key}' must be an integer or a list of integers, not {v.ValueKind}.");
        return ids;
    }

    int Id(JsonElement v, string key) =>
        v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int id) && id >= 0 ? id
            : throw new InputException($"'{Path}': '{key}' holds {v.GetRawText()}, expected a non-negative integer.");

    /// <summary>A token given as a string or as {"content": ...} (tokenizer_config.json's bos_token, eos_token, ...).</summary>
    public string? TokenContent(string key)
    {
        if (!_root.TryGetProperty(key, out var v)) return null;
        return v.ValueKind switch
        {
            JsonValueKind.String => v.GetString(),
            JsonValueKind.Object when v.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String => c.GetString(),
            _ => null,
        };
    }

    /// <summary>tokenizer_config.json's added_tokens_decoder: {"id": {"content": ...}} as (content, id) pairs.</summary>
    public IEnumerable<(string Content, int Id)> AddedTokensDecoder()
    {
        if (!_root.TryGetProperty("added_tokens_decoder", out var dec) || dec.ValueKind != JsonValueKind.Object) yield break;
        foreach (var p in dec.EnumerateObject())
        {
            if (!int.TryParse(p.Name, out int id) || !p.Value.TryGetProperty("content", out var c) || c.ValueKind != JsonValueKind.String)
                throw new InputException($"'{Path}': added_tokens_decoder entry \"{p.Name}\" needs an integer key and a \"content\" string.");
            yield return (c.GetString()!, id);
        }
    }
}
