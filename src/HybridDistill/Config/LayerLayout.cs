using System.Text.Json;
using System.Text.Json.Nodes;

namespace HybridDistill.Config;

/// <summary>
/// Which layers stay softmax: the file <c>hybrid select</c> writes and <c>convert</c> / <c>distill stage2</c> read,
/// <c>{"softmax_layers": [3, 7], "layer_types": ["gdn", ..., "softmax", ...]}</c>.
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
        if (!File.Exists(path)) throw new InputException($"{path}: layout file not found (write one with hybrid select).");
        JsonObject json;
        try { json = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new InputException($"{path}: expected a JSON object."); }
        catch (JsonException e) { throw new InputException($"{path}: not valid JSON ({e.Message}).", e); }
        try
        {
            if (json["layer_types"] is JsonArray types)
            {
                var layout = FromLayerTypes(types.Select(t => t!.GetValue<string>()).ToArray());
                if (json["softmax_layers"] is JsonArray listed && !listed.Select(n => n!.GetValue<int>()).SequenceEqual(layout.SoftmaxLayers))
                    throw new InputException("softmax_layers disagrees with layer_types.");
                return layout;
            }
            throw new InputException("missing \"layer_types\" (a list with one kind per layer).");
        }
        catch (InputException e) { throw new InputException($"{path}: {e.Message}", e); }
        catch (Exception e) when (e is InvalidOperationException or FormatException)
        {
            throw new InputException($"{path}: layer_types must be strings and softmax_layers integers.", e);
        }
    }

    public JsonObject ToJson() => new()
    {
        ["softmax_layers"] = new JsonArray(SoftmaxLayers.Select(l => (JsonNode)l).ToArray()),
        ["layer_types"] = new JsonArray(LayerTypes.Select(t => (JsonNode)t).ToArray()),
    };

    public void Save(string path) => Checkpoints.AtomicFile.WriteAllBytes(path, System.Text.Encoding.UTF8.GetBytes(ToJson().ToJsonString(JsonOptions.Indented)));
}
