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
    config.AddBranch("bench", bench =>
    {
        bench.SetDescription("Measure speed and memory.");
        bench.AddCommand<BenchForwardCommand>("forward")
            .WithDescription("Prefill tokens/s, FLOPs and GFLOP/s against the machine's matmul, decode ms/token.")
            .WithExample("bench", "forward", "--config", "configs/bench-d512.json", "--tokens", "1024");
    });
    config.AddCommand<EvalCommand>("eval")
        .WithDescription("Evaluate a model: perplexity, teacher agreement, recall suites, multiple choice (JSON + Markdown).")
        .WithExample("eval", "--model", "../shared/assets/stories260K", "--tasks", "ppl,recall", "--data",
                     "../shared/assets/text/tinystories_val_slice.txt", "--limit", "20", "--json", "out/teacher/");
    config.AddCommand<ReportCommand>("report")
        .WithDescription("Put several models' eval.json and bench_decode.json side by side in Markdown with PNG plots.")
        .WithExample("report", "out/teacher", "out/hybrid-25", "out/hybrid-12.5", "--out", "out/report.md");
});
return CliRunner.Run(app, args);
