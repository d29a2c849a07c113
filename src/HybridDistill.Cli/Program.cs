using HybridDistill.Cli;
using HybridDistill.Cli.Commands;
using Spectre.Console.Cli;

// Before the first TorchSharp call of any command (OpenMP reads its variables once, when it loads; the allocator policy
// should hold for every tensor): see each for the measurements.
HybridDistill.Models.CpuThreading.PreferShortSpinning();
HybridDistill.Models.ProcessMemory.KeepFreedMemory();
return CliRunner.Run(CliApp.Create(), args);

/// <summary>The command tree.</summary>
public static class CliApp
{
    /// <param name="console">where Spectre writes help and usage (default: the process's stdout)</param>
    public static CommandApp Create(Spectre.Console.IAnsiConsole? console = null)
    {
        var app = new CommandApp();
        app.Configure(Configure);
        if (console is not null) app.Configure(c => c.ConfigureConsole(console));
        return app;
    }

    /// <summary>Every command, its options and examples (a test's CommandAppTester takes it too).</summary>
    public static void Configure(IConfigurator config)
    {
    config.SetApplicationName("hybrid");
    config.PropagateExceptions();
    config.AddCommand<RunCommand>("run")
        .WithDescription("Run the whole pipeline (with no options: on the embedded default).")
        .WithExample("run");
    config.AddCommand<GenerateCommand>("generate")
        .WithDescription("Generate text from a model directory.")
        .WithExample("generate", "--model", "assets/stories260K", "--prompt", "Once upon a time", "--max-new-tokens", "50");
    config.AddCommand<InspectCommand>("inspect")
        .WithDescription("Show a model's architecture, layer kinds, parameter counts and tokenizer.")
        .WithExample("inspect", "assets/stories260K", "--json");
    config.AddCommand<EncodeCommand>("encode")
        .WithDescription("Token ids of texts: a JSON list of strings in, a JSON list of id lists out (--special adds BOS/EOS as the family does).")
        .WithExample("encode", "--model", "assets/tokenizers/llama3", "--input", "texts.json", "--special");
    config.AddCommand<DecodeCommand>("decode")
        .WithDescription("Texts of token ids: a JSON list of id lists in (what encode prints), a JSON list of strings out.")
        .WithExample("decode", "--model", "assets/tokenizers/qwen3", "--input", "ids.json");
    config.AddCommand<ImportLlama2cCommand>("import-llama2c")
        .WithDescription("Convert a llama2.c .bin checkpoint into a Hugging Face model directory.")
        .WithExample("import-llama2c", "assets/stories260K/stories260K.bin", "out/stories260K", "--tokenizer", "assets/stories260K/tokenizer.model");
    config.AddCommand<ConvertCommand>("convert")
        .WithDescription("Write an untrained hybrid initialised from a teacher (RADLADS weight transfer).")
        .WithExample("convert", "--teacher", "assets/stories260K", "--softmax-layers", "2", "--out", "out/hybrid-untrained")
        .WithExample("convert", "--teacher", "assets/stories260K", "--layer-types", "gdn,gdn,softmax,gdn,gdn", "--out", "out/h");
    config.AddCommand<ExportCommand>("export").WithDescription("Write a GDN/softmax hybrid in another library's format (fla: flash-linear-attention's gated_deltanet).").WithExample("export", "--model", "out/run/hybrid", "--format", "fla", "--out", "out/hybrid-fla", "--verify");
    config.AddCommand<ImportCommand>("import").WithDescription("Read a model written in another library's format (fla: flash-linear-attention's gated_deltanet).").WithExample("import", "--format", "fla", "--model", "out/hybrid-fla", "--out", "out/hybrid-back", "--verify");
    config.AddCommand<ScoreCommand>("score")
        .WithDescription("Per-layer importance scores (kl, uniform, random, ends, ppl, stage1, removal, ar, ar-multihop) -> OUT/scores.json and scores.png; " +
            "per-layer methods also write OUT/layers/layer-{l}.json, and a re-run skips finished layers. \"score merge DIR\" combines slices.")
        .WithExample("score", "--method", "kl", "--teacher", "assets/stories260K", "--stage1", "out/s1", "--data", "out/data/ts", "--out", "out/scores-kl")
        .WithExample("score", "--method", "ppl", "--teacher", "assets/stories260K", "--data", "assets/text/tinystories_val_slice.txt", "--out", "out/scores-ppl")
        .WithExample("score", "--method", "uniform", "--teacher", "assets/stories260K", "--set", "anchor=first", "--out", "out/scores-uniform")
        .WithExample("score", "merge", "out/scores-kl");
    config.AddCommand<SelectCommand>("select")
        .WithDescription("The softmax layers for a budget from scores.json; writes the layout file stage 2 and convert read.")
        .WithExample("select", "--scores", "out/scores-ppl/scores.json", "--budget", "25%", "--out", "out/layout.json")
        .WithExample("select", "--scores", "out/scores-uniform", "--keep", "2", "--json");
    // ---- data and distillation (wip-distill) ----
    config.AddCommand<TokenizeCommand>("tokenize")
        .WithDescription("Tokenize text, folders of text and JSONL into a packed token directory with a validation split.")
        .WithExample("tokenize", "--model", "assets/stories260K", "--input", "assets/text/tinystories_val_slice.txt", "--out", "out/data/tinystories");
    config.AddBranch("corpus", corpus =>
    {
        corpus.SetDescription("Synthetic corpora.");
        corpus.AddCommand<CorpusSynthCommand>("synth")
            .WithDescription("A deterministic corpus teaching in-context recall (copy, pass keys, key-value, alias chains) beside story text, with per-token loss classes.")
            .WithExample("corpus", "synth", "--recipe", "recipes/corpus-recall.json", "--out", "out/data/recall");
    });
    config.AddCommand<PretrainCommand>("pretrain")
        .WithDescription("Train a Llama-architecture model from scratch through the phases of a recipe (the embedded teacher was made this way); resumable.")
        .WithExample("pretrain", "--recipe", "recipes/default-teacher.json", "--out", "out/teacher")
        .WithExample("pretrain", "--recipe", "recipes/default-teacher.json", "--out", "out/teacher", "--resume");
    config.AddBranch("distill", distill =>
    {
        distill.SetDescription("RADLADS distillation stages (method.md section 5); each writes a loadable run directory.");
        distill.AddCommand<DistillStage1Command>("stage1")
            .WithDescription("Attention-output alignment of an all-linear student, teacher-forced per layer.")
            .WithExample("distill", "stage1", "--teacher", "assets/stories260K", "--data", "out/data/tinystories", "--out", "out/s1", "--recipe", "recipes/stories260K.json");
        distill.AddCommand<DistillStage2Command>("stage2")
            .WithDescription("KL distillation of the hybrid: stage-1 weights with softmax attention restored at the kept layers.")
            .WithExample("distill", "stage2", "--teacher", "assets/stories260K", "--data", "out/data/tinystories", "--from", "out/s1", "--softmax-layers", "2", "--out", "out/s2", "--recipe", "recipes/stories260K.json");
        distill.AddCommand<DistillStage3Command>("stage3")
            .WithDescription("Optional next-token cross-entropy fine-tune of a student (no teacher), e.g. at a longer context.")
            .WithExample("distill", "stage3", "--teacher", "assets/stories260K", "--data", "out/data/tinystories", "--from", "out/s2", "--out", "out/s3", "--recipe", "recipes/stories260K.json");
    });
    // ---- end data and distillation ----
    config.AddBranch("bench", bench =>
    {
        bench.SetDescription("Measure speed and memory.");
        bench.AddCommand<BenchTrainCommand>("train")   // wip-distill
            .WithDescription("Training-step tokens/s of stage 1 or 2 on a random teacher, step time per phase, GFLOP/s against the machine's matmul.")
            .WithExample("bench", "train", "--config", "configs/bench-d512.json", "--stage", "2", "--seq", "512", "--batch", "4");
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
            .WithDescription("Decode ms/token (median step) and cache bytes vs context: a teacher and its hybrids, timings interleaved.")
            .WithExample("bench", "decode")
            .WithExample("bench", "decode", "--model", "out/teacher", "--model", "out/hybrid", "--contexts", "256,512", "--json", "out/");
    });
    config.AddCommand<EvalCommand>("eval")
        .WithDescription("Evaluate a model: perplexity, teacher agreement, recall suites, multiple choice (JSON + Markdown).")
        .WithExample("eval", "--model", "assets/stories260K", "--tasks", "ppl,recall", "--data",
                     "assets/text/tinystories_val_slice.txt", "--limit", "20", "--json", "out/teacher/");
    config.AddCommand<ReportCommand>("report")
        .WithDescription("Put several models' eval.json and bench_decode.json side by side in Markdown with PNG plots.")
        .WithExample("report", "out/teacher", "out/hybrid-25", "out/hybrid-12.5", "--out", "out/report.md");
    }
}
