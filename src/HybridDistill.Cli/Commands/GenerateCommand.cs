using System.ComponentModel;
using System.Text.Json.Nodes;
using HybridDistill.Checkpoints;
using HybridDistill.Config;
using HybridDistill.Generation;
using HybridDistill.Models;
using HybridDistill.Tokenization;
using Spectre.Console.Cli;

namespace HybridDistill.Cli.Commands;

public sealed class GenerateCommand : Command<GenerateCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandOption("--model <DIR>")]
        [Description("Model directory (teacher, hybrid or finished run directory).")]
        public string Model { get; init; } = "";

        [CommandOption("--prompt <TEXT>")]
        [Description("Prompt text. Empty: start from BOS alone.")]
        public string Prompt { get; init; } = "";

        [CommandOption("--max-new-tokens <N>")]
        [DefaultValue(256)]
        public int MaxNewTokens { get; init; } = 256;

        [CommandOption("--temperature <T>")]
        [Description("Sampling temperature; 0 (the default) is greedy.")]
        [DefaultValue(0.0)]
        public double Temperature { get; init; }

        [CommandOption("--top-k <K>")]
        [Description("Sample among the K most likely tokens only (0: no limit).")]
        [DefaultValue(0)]
        public int TopK { get; init; }

        [CommandOption("--top-p <P>")]
        [Description("Nucleus sampling: the smallest set of tokens with probability >= P.")]
        [DefaultValue(1.0)]
        public double TopP { get; init; } = 1.0;

        [CommandOption("--seed <S>")]
        [DefaultValue(0)]
        public int Seed { get; init; }

        [CommandOption("--stop-token <ID>")]
        [Description("Extra token id that ends generation (repeatable). EOS always does, and BOS for SentencePiece models.")]
        public int[] StopTokens { get; init; } = [];

        [CommandOption("--no-cache")]
        [Description("Re-run the full forward for every token instead of cached decoding (slow; a reference).")]
        public bool NoCache { get; init; }

        [CommandOption("--json")]
        [Description("Print {\"text\", \"tokens\"} as JSON instead of streaming text.")]
        public bool Json { get; init; }

        [CommandOption("--device <DEVICE>")]
        [Description(CliParsing.DeviceHelp)]
        [DefaultValue("cpu")]
        public string Device { get; init; } = "cpu";

        public override Spectre.Console.ValidationResult Validate() =>
            string.IsNullOrEmpty(Model) ? Spectre.Console.ValidationResult.Error("--model DIR is required.")
            : MaxNewTokens < 0 ? Spectre.Console.ValidationResult.Error("--max-new-tokens must be >= 0.")
            : Spectre.Console.ValidationResult.Success();
    }

    public override int Execute(CommandContext context, Settings s, CancellationToken cancellation)
    {
        var device = ComputeDevice.Resolve(s.Device);
        var tokenizer = TokenizerLoader.Load(HfCheckpoint.ResolveModelDirectory(s.Model));
        using var model = HfCheckpoint.Load(s.Model, device.Torch);
        var prompt = PromptTokens(tokenizer, s.Prompt, model.Config);
        var stop = new HashSet<int>(s.StopTokens);
        stop.UnionWith(model.Config.EosTokenIds);
        if (tokenizer.EosId is int eos) stop.Add(eos);
        // llama2.c-style models start every story with BOS and were never taught EOS: a new BOS ends the text.
        if (tokenizer.Kind == "sentencepiece" && tokenizer.BosId is int bos) stop.Add(bos);
        var options = new SamplingOptions
        {
            Temperature = s.Temperature, TopK = s.TopK, TopP = s.TopP, Seed = s.Seed,
            MaxNewTokens = s.MaxNewTokens, StopTokens = stop,
        };

        var generated = new List<int>();
        string printed = "";
        foreach (int token in TokenGenerator.Generate(model, prompt, options, useCache: !s.NoCache))
        {
            cancellation.ThrowIfCancellationRequested();
            generated.Add(token);
            if (s.Json) continue;
            // Decode the whole continuation and print what is new, so multi-byte characters split across
            // byte-fallback tokens come out whole.
            string text = tokenizer.Decode(generated);
            if (text.EndsWith('\uFFFD') || text.Length < printed.Length || !text.StartsWith(printed)) continue;
            CliRunner.Stdout.Write(text[printed.Length..]);
            CliRunner.Stdout.Flush();
            printed = text;
        }
        string final = tokenizer.Decode(generated);
        if (s.Json)
        {
            var json = new JsonObject
            {
                ["prompt_tokens"] = new JsonArray(prompt.Select(t => (JsonNode)t).ToArray()),
                ["tokens"] = new JsonArray(generated.Select(t => (JsonNode)t).ToArray()),
                ["text"] = final,
            };
            CliRunner.Stdout.WriteLine(json.ToJsonString(JsonOptions.Indented));
        }
        else
        {
            if (final.StartsWith(printed)) CliRunner.Stdout.Write(final[printed.Length..]);
            CliRunner.Stdout.WriteLine();
        }
        return 0;
    }

    /// <summary>BOS (when the tokenizer says prompts start with it) followed by the prompt's tokens.</summary>
    public static List<int> PromptTokens(ITextTokenizer tokenizer, string text, ModelConfig config)
    {
        var ids = new List<int>();
        int? bos = tokenizer.BosId ?? config.BosTokenId;
        if ((tokenizer.AddBosByDefault || text.Length == 0) && bos is int b) ids.Add(b);
        ids.AddRange(tokenizer.Encode(text));
        if (ids.Count == 0)
            throw new InputException("the prompt is empty and the tokenizer defines no BOS token to start from; pass --prompt TEXT.");
        return ids;
    }
}
