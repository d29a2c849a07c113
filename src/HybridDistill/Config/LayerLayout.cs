using HybridDistill.Artifacts;

namespace HybridDistill.Config;

/// <summary>
/// Which layers stay softmax: the file <c>hybrid select</c> writes and <c>convert</c> / <c>distill stage2</c> read,
/// <c>{"softmax_layers": [3, 7], "layer_types": ["gdn", ..., "softmax", ...]}</c>, written and read through
/// <see cref="ArtifactJson"/> (this record is the file's schema).
/// </summary>
public sealed record LayerLayout(IReadOnlyList<int> SoftmaxLayers, IReadOnlyList<string> LayerTypes)
{
    /// <summary>Every layer <paramref name="linearKind"/> except <paramref name="softmaxLayers"/>.</summary>
    public static LayerLayout FromSoftmaxLayers(int numLayers, IEnumerable<int> softmaxLayers, string linearKind = LayerKinds.GatedDeltaNet)
    {
        var types = Enumerable.Repeat(LayerKinds.Normalize(linearKind), numLayers).ToArray();
        foreach (int l in softmaxLayers)
        {
            if (l < 0 || l >= numLayers) throw new InputException($"softmax layer {l} is out of range: the model has layers 0..{numLayers - 1}.");
            types[l] = LayerKinds.Softmax;
        }
        return FromLayerTypes(types);
    }

    public static LayerLayout FromLayerTypes(IReadOnlyList<string> layerTypes)
    {
        var types = layerTypes.Select(LayerKinds.Normalize).ToArray();
        var softmax = Enumerable.Range(0, types.Length).Where(i => types[i] == LayerKinds.Softmax).ToArray();
        return new LayerLayout(softmax, types);
    }

    /// <summary>Parses "softmax,gdn,gdn" (commas, optional spaces).</summary>
    public static LayerLayout Parse(string layerTypes) =>
        FromLayerTypes(layerTypes.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));

    public static LayerLayout Load(string path)
    {
        var file = ArtifactJson.Read(path, ArtifactJson.Types.LayerLayout, "a layout file (layer_types strings, softmax_layers integers)",
                                     "write one with hybrid select");
        if (file.LayerTypes is null)
            throw new InputException($"{path}: missing \"layer_types\" (a list with one kind per layer).");
        LayerLayout layout;
        try { layout = FromLayerTypes(file.LayerTypes); }
        catch (InputException e) { throw new InputException($"{path}: {e.Message}", e); }
        // softmax_layers is optional on reading (layer_types says it all); when given it must agree.
        if (file.SoftmaxLayers is not null && !file.SoftmaxLayers.SequenceEqual(layout.SoftmaxLayers))
            throw new InputException($"{path}: softmax_layers disagrees with layer_types.");
        return layout;
    }

    public void Save(string path) => ArtifactJson.Write(path, this, ArtifactJson.Types.LayerLayout);
}
