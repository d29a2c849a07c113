using HybridDistill.Cli;
using HybridDistill.Cli.Commands;
using Spectre.Console.Cli;

var app = new CommandApp();
app.Configure(config =>
{
    config.SetApplicationName("hybrid");
    config.PropagateExceptions();
    config.AddCommand<RunCommand>("run")
        .WithDescription("Run the whole pipeline (with no options: on the embedded default).")
        .WithExample("run");
    config.AddCommand<GenerateCommand>("generate")
        .WithDescription("Generate text from a model directory.")
        .WithExample("generate", "--model", "../shared/assets/stories260K", "--prompt", "Once upon a time", "--max-new-tokens", "50");
    config.AddCommand<InspectCommand>("inspect")
        .WithDescription("Show a model's architecture, layer kinds, parameter counts and tokenizer.")
        .WithExample("inspect", "../shared/assets/stories260K", "--json");
    config.AddCommand<ImportLlama2cCommand>("import-llama2c")
        .WithDescription("Convert a llama2.c .bin checkpoint into a Hugging Face model directory.")
        .WithExample("import-llama2c", "stories260K.bin", "out/stories260K", "--tokenizer", "tokenizer.model");
    // ---- data and distillation (wip-distill) ----
    config.AddCommand<TokenizeCommand>("tokenize")
        .WithDescription("Tokenize text, folders of text and JSONL into a packed token directory with a validation split.")
        .WithExample("tokenize", "--model", "../shared/assets/stories260K", "--input", "../shared/assets/text/tinystories_val_slice.txt", "--out", "out/data/tinystories");
    // ---- end data and distillation ----
    config.AddBranch("bench", bench =>
    {
        bench.SetDescription("Measure speed and memory.");
        bench.AddCommand<BenchForwardCommand>("forward")
            .WithDescription("Prefill tokens/s, FLOPs and GFLOP/s against the machine's matmul, decode ms/token.")
            .WithExample("bench", "forward", "--config", "configs/bench-d512.json", "--tokens", "1024");
    });
});
return CliRunner.Run(app, args);
