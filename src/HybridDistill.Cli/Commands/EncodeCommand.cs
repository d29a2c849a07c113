using System.ComponentModel;
using System.Text.Encodings.Web;
using System.Text.Json;
using HybridDistill.Tokenization;
using Spectre.Console.Cli;

namespace HybridDistill.Cli.Commands;

/// <summary><c>hybrid encode</c>: a JSON list of strings -> a JSON list of id lists with a model's tokenizer.</summary>
public sealed class EncodeCommand : Command<EncodeCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandOption("--model <DIR>")]
        [Description("Model directory, or a folder with only the tokenizer files (tokenizer.json + tokenizer_config.json, tokenizer.model, or vocab.json + merges.txt).")]
        public string Model { get; init; } = "";

        [CommandOption("--input <FILE>")]
        [Description("JSON list of strings, e.g. [[\"Hello world\", \"Second text\"]] (/dev/stdin reads a pipe).")]
        public string Input { get; init; } = "";

        [CommandOption("--special")]
        [Description("Add the special tokens the family adds (tokenizer_config.json, the post-processor): Llama 3 prepends <|begin_of_text|>, Qwen adds nothing.")]
        public bool Special { get; init; }
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellation)
    {
        var tokenizer = TokenizerJsonIo.LoadTokenizer(settings.Model);
        var texts = TokenizerJsonIo.ReadList(settings.Input, "a JSON list of strings, e.g. [\"Hello world\"]", (e, i, file) =>
            e.ValueKind == JsonValueKind.String ? e.GetString()!
                : throw new InputException($"{file}: element {i} is {TokenizerJsonIo.Describe(e)}, expected a string. The input is a JSON list of strings."));
        var lines = texts.Select(t => JsonSerializer.Serialize(settings.Special ? tokenizer.EncodeWithSpecialTokens(t) : tokenizer.Encode(t)));
        TokenizerJsonIo.WriteList(lines);
        return 0;
    }
}

/// <summary><c>hybrid decode</c>: a JSON list of id lists -> a JSON list of strings (the inverse of encode).</summary>
public sealed class DecodeCommand : Command<DecodeCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandOption("--model <DIR>")]
        [Description("Model directory, or a folder with only the tokenizer files.")]
        public string Model { get; init; } = "";

        [CommandOption("--input <FILE>")]
        [Description("JSON list of id lists, e.g. [[[[9906, 1917]], [[40, 1097]]]] (what encode prints; /dev/stdin reads a pipe).")]
        public string Input { get; init; } = "";

        [CommandOption("--skip-special")]
        [Description("Leave out special tokens (<|begin_of_text|>, <|endoftext|>, ...), as Hugging Face's skip_special_tokens=True.")]
        public bool SkipSpecial { get; init; }
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellation)
    {
        var tokenizer = TokenizerJsonIo.LoadTokenizer(settings.Model);
        var lists = TokenizerJsonIo.ReadList(settings.Input, "a JSON list of id lists, e.g. [[9906, 1917]]", (e, i, file) =>
        {
            if (e.ValueKind != JsonValueKind.Array)
                throw new InputException($"{file}: element {i} is {TokenizerJsonIo.Describe(e)}, expected a list of token ids. The input is a JSON list of id lists.");
            var ids = new List<int>();
            foreach (var x in e.EnumerateArray())
            {
                if (x.ValueKind != JsonValueKind.Number || !x.TryGetInt32(out int id))
                    throw new InputException($"{file}: list {i} holds {TokenizerJsonIo.Describe(x)}, expected integer token ids.");
                if (id < 0 || tokenizer.IdToToken(id) is null)
                    throw new InputException($"{file}: list {i} holds id {id}, which the tokenizer in {settings.Model} does not have " +
                                             $"(ids 0..{tokenizer.VocabSize - 1}). Decode with the tokenizer that encoded them.");
                if (settings.SkipSpecial && tokenizer is BpeTokenizer bpe && bpe.IsSpecial(id)) continue;
                ids.Add(id);
            }
            return ids;
        });
        var options = new JsonSerializerOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
        TokenizerJsonIo.WriteList(lists.Select(ids => JsonSerializer.Serialize(tokenizer.Decode(ids), options)));
        return 0;
    }
}

/// <summary>Input and output of encode/decode: one JSON list in, one JSON list out (an element per line).</summary>
internal static class TokenizerJsonIo
{
    public static ITextTokenizer LoadTokenizer(string dir)
    {
        if (string.IsNullOrEmpty(dir)) throw new InputException("--model DIR is required: the folder with the tokenizer files.");
        return TokenizerLoader.Load(dir);
    }

    public static List<T> ReadList<T>(string file, string what, Func<JsonElement, int, string, T> element)
    {
        if (string.IsNullOrEmpty(file)) throw new InputException($"--input FILE is required: {what}.");
        string text;
        try { text = File.ReadAllText(file); }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new InputException($"{file}: not found. Pass --input with {what}.", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new InputException($"{file}: cannot be read ({e.Message}).", e);
        }
        JsonDocument doc;
        try { doc = JsonDocument.Parse(text, new JsonDocumentOptions { AllowTrailingCommas = true }); }
        catch (JsonException e)
        {
            throw new InputException($"{file}: not valid JSON ({e.Message}); expected {what}.", e);
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Array)
                throw new InputException($"{file}: holds {Describe(doc.RootElement)}; expected {what}.");
            return doc.RootElement.EnumerateArray().Select((e, i) => element(e, i, file)).ToList();
        }
    }

    public static void WriteList(IEnumerable<string> jsonElements)
    {
        var stdout = CliRunner.Stdout;
        stdout.Write('[');
        bool first = true;
        foreach (var e in jsonElements)
        {
            stdout.Write(first ? "\n" : ",\n");
            stdout.Write(e);
            first = false;
        }
        stdout.Write(first ? "]\n" : "\n]\n");
        stdout.Flush();
    }

    public static string Describe(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.String => "a string",
        JsonValueKind.Number => $"the number {e.GetRawText()}",
        JsonValueKind.Array => "a list",
        JsonValueKind.Object => "an object",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Null => "null",
        _ => e.ValueKind.ToString(),
    };
}
