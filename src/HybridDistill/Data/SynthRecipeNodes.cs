using System.Text.Json;
using System.Text.Json.Nodes;
using HybridDistill.Artifacts;

namespace HybridDistill.Data;

// The recipe as a JSON tree, for the callers that still hold one: Training/Pretraining (a pretraining recipe's phases
// merge their corpus objects before they become recipes; it also reads the recipe file and numbers through these)
// and CorpusManifest.Synthetic. Everything goes through the typed SynthRecipeFile / SynthRecipeRecord; delete this
// file when those callers take the typed records.
public sealed partial record SynthRecipe
{
    /// <summary>A recipe file as a JSON object (comments and trailing commas allowed).</summary>
    public static JsonObject LoadObject(string full)
    {
        if (!File.Exists(full)) throw new InputException($"{full}: recipe not found.");
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(File.ReadAllText(full), documentOptions: new JsonDocumentOptions
                { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        }
        catch (JsonException e) { throw new InputException($"{full}: not valid JSON ({e.Message}).", e); }
        return node as JsonObject ?? throw new InputException($"{full}: a recipe is a JSON object.");
    }

    /// <summary>A recipe from a JSON object, read as <see cref="Parse"/> reads its text.</summary>
    public static SynthRecipe FromJson(JsonObject json, string baseDir, string source) => Parse(json.ToJsonString(), baseDir, source);

    /// <summary>A JSON number of any stored type (parsed, or set from a long or an int in code), else null.</summary>
    public static double? Number(JsonNode? node) =>
        node is not JsonValue v ? null
        : v.TryGetValue<double>(out var d) ? d
        : v.TryGetValue<long>(out var l) ? l
        : v.TryGetValue<int>(out var i) ? i
        : null;

    public JsonObject ToJson() => ArtifactJson.ToNode(ToRecord(), ArtifactJson.Types.SynthRecipeRecord);
}
