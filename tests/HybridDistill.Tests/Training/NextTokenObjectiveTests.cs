using HybridDistill.Data;
using HybridDistill.Models;
using HybridDistill.Tests.Models;
using HybridDistill.Training;
using static TorchSharp.torch;

namespace HybridDistill.Tests.Training;

public class NextTokenObjectiveTests
{
    /// <summary>The chunked, class-weighted loss and its closed-form gradient against the obvious version: full logits,
    /// per-target cross-entropy times the class weight, divided by the weight sum, differentiated by autograd.</summary>
    [Theory]
    [InlineData(5)]      // chunks smaller than the batch's 2 x 11 targets
    [InlineData(1024)]   // one chunk
    public void WeightedLossAndGradients_EqualTheFullLogitsReference(int chunk)
    {
        var config = TinyConfigs.Llama(layers: 2);                                        // d 32, vocab 50, tied
        using var model = new HybridCausalLM(config);
        model.InitializeWeights(seed: 5, std: 0.2);
        var generator = new TorchSharp.torch.Generator(11);
        using var tokens = randint(0, config.VocabSize, [2, 12], generator: generator);
        // Classes: story text, copy answers, unscored filler, a pass-key answer.
        var codes = new byte[24];
        for (int i = 0; i < 24; i++)
            codes[i] = (i % 4) switch
            {
                0 => LossClasses.Code(EpisodeKind.Story, TokenRole.Text),
                1 => LossClasses.Code(EpisodeKind.Copy, TokenRole.Answer),
                2 => LossClasses.Code(EpisodeKind.Copy, TokenRole.None),
                _ => LossClasses.Code(EpisodeKind.Passkey, TokenRole.Answer),
            };
        using var classes = tensor(codes, [2, 12], dtype: uint8);
        var train = new TrainConfig { LogitsChunk = chunk, TextWeight = 1.0, AnswerWeight = 6.0 };

        var objective = new NextTokenObjective(model, train);
        var report = objective.ForwardBackward(new TrainingBatch(tokens, classes), lossScale: 0.5);
        var fast = model.parameters().Select(p => p.grad!.clone()).ToList();
        foreach (var p in model.parameters()) p.grad!.zero_();

        var logits = model.forward(tokens.narrow(1, 0, 11));                            // [2, 11, V]
        var targets = tokens.narrow(1, 1, 11);
        var ce = nn.functional.cross_entropy(logits.reshape(22, -1), targets.reshape(22), reduction: nn.Reduction.None);
        var w = LossClasses.Weights(classes.narrow(1, 1, 11).reshape(22), 1.0, 6.0);
        var loss = (ce * w).sum() / w.sum();
        (loss * 0.5).backward();
        Assert.Equal(loss.item<float>(), report.Loss, 4);
        foreach (var (f, p) in fast.Zip(model.parameters()))
            Assert.True(f.allclose(p.grad!, rtol: 1e-4, atol: 1e-6), "gradient differs from the reference");

        // Side values: text CE over text targets only; accuracy extras come with their token counts.
        var textMask = (classes.narrow(1, 1, 11).reshape(22).bitwise_and(3)).eq(1);
        Assert.Equal(ce.masked_select(textMask).mean().item<float>(), report.Extras["text_ce"], 4);
        Assert.Equal(textMask.sum().item<long>(), (long)report.Extras["text_ce" + LossReport.CountSuffix]);
        Assert.True(report.Extras.ContainsKey("acc_copy") && report.Extras.ContainsKey("acc_passkey"));
        Assert.False(report.Extras.ContainsKey("acc_kv"));                              // no kv answers in this batch
    }

    [Fact]
    public void WithoutClasses_ItIsPlainCrossEntropy()
    {
        var config = TinyConfigs.Llama(layers: 1);
        using var model = new HybridCausalLM(config);
        model.InitializeWeights(seed: 2, std: 0.2);
        using var tokens = randint(0, config.VocabSize, [3, 9], generator: new TorchSharp.torch.Generator(3));
        var objective = new NextTokenObjective(model, new TrainConfig { LogitsChunk = 4 });
        var report = objective.Evaluate(new TrainingBatch(tokens));
        using var _ = no_grad();
        var logits = model.forward(tokens.narrow(1, 0, 8));
        var ce = nn.functional.cross_entropy(logits.reshape(24, -1), tokens.narrow(1, 1, 8).reshape(24));
        Assert.Equal(ce.item<float>(), report.Loss, 4);
        Assert.Empty(report.Extras);
    }
}
