using HybridDistill.Config;

namespace HybridDistill.Attention;

/// <summary>The one place that maps a layer_types entry to its attention module.</summary>
public static class AttentionFactory
{
    public static AttentionLayer Create(ModelConfig config, int layerIndex)
    {
        string kind = config.LayerTypes[layerIndex];
        return kind switch
        {
            LayerKinds.Softmax => new SoftmaxAttention(config),
            LayerKinds.GatedDeltaNet => new GatedDeltaNet(config),
            LayerKinds.GatedLinearAttention => new GatedLinearAttention(config),
            LayerKinds.SlidingWindow => new SlidingWindowAttention(config),
            _ => throw new InputException($"layer {layerIndex}: unknown attention kind \"{kind}\"."),
        };
    }
}
