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
    config.AddCommand<ConvertCommand>("convert")
        .WithDescription("Write an untrained hybrid initialised from a teacher (RADLADS weight transfer).")
        .WithExample("convert", "--teacher", "../shared/assets/stories260K", "--softmax-layers", "2", "--out", "out/hybrid-untrained")
        .WithExample("convert", "--teacher", "../shared/assets/stories260K", "--layer-types", "gdn,gdn,softmax,gdn,gdn", "--out", "out/h");
    config.AddBranch("score", score =>
    {
        // the description is Spectre markup: [[ and ]] print brackets
        score.SetDescription("Per-layer importance scores for choosing which layers stay softmax.\n" +
            "  hybrid score --method NAME --teacher DIR --out DIR\n" +
            "    [[--data FILE]] [[--stage1 DIR]] [[--recipe FILE]] [[--layers 0,1,5]]\n" +
            "    [[--budget-tokens N]] [[--set key=value ...]] [[--seed S]]\n" +
            "    [[--plot-budget 25%]] [[--json]]\n" +
            "Methods: uniform (--set anchor=last|first), random (--seed), ends,\n" +
            "  ppl (--data; --set window=256 --set batch=8).\n" +
            "Writes OUT/scores.json and OUT/scores.png; per-layer methods also write\n" +
            "OUT/layers/layer-{l}.json, and a re-run skips finished layers.");
        score.AddExample("score", "--method", "ppl", "--teacher", "../shared/assets/stories260K", "--data", "../shared/assets/text/tinystories_val_slice.txt", "--out", "out/scores-ppl");
        score.AddExample("score", "--method", "uniform", "--teacher", "../shared/assets/stories260K", "--set", "anchor=first", "--out", "out/scores-uniform");
        score.SetDefaultCommand<ScoreCommand>();
        score.AddCommand<ScoreMergeCommand>("merge")
            .WithDescription("Combine OUT/layers/layer-{l}.json from one or several processes into OUT/scores.json.")
            .WithExample("score", "merge", "out/scores-ppl");
    });
    config.AddCommand<SelectCommand>("select")
        .WithDescription("The softmax layers for a budget from scores.json; writes the layout file stage 2 and convert read.")
        .WithExample("select", "--scores", "out/scores-ppl/scores.json", "--budget", "25%", "--out", "out/layout.json")
        .WithExample("select", "--scores", "out/scores-uniform", "--keep", "2", "--json");
    config.AddBranch("bench", bench =>
    {
        bench.SetDescription("Measure speed and memory.");
        bench.AddCommand<BenchForwardCommand>("forward")
            .WithDescription("Prefill tokens/s, FLOPs and GFLOP/s against the machine's matmul, decode ms/token.")
            .WithExample("bench", "forward", "--config", "configs/bench-d512.json", "--tokens", "1024");
        bench.AddCommand<BenchAttentionCommand>("attention")
            .WithDescription("Each attention kind's fast path vs its naive reference, and chunked GDN vs SDPA, fwd and fwd+bwd.")
            .WithExample("bench", "attention")
            .WithExample("bench", "attention", "--kinds", "gdn,softmax", "--lengths", "512,1024,2048,4096,8192", "--json", "out/");
        bench.AddCommand<BenchMemoryCommand>("memory")
            .WithDescription("Resident memory while generating N tokens: growth after warm-up vs the KV-cache bytes added.")
            .WithExample("bench", "memory", "--tokens", "2000");
        bench.AddCommand<BenchDecodeCommand>("decode")
            .WithDescription("Decode ms/token and cache bytes vs context: a teacher and its hybrids, timings interleaved.")
            .WithExample("bench", "decode")
            .WithExample("bench", "decode", "--model", "out/teacher", "--model", "out/hybrid", "--contexts", "256,512", "--json", "out/");
    });
});
return CliRunner.Run(app, args);
