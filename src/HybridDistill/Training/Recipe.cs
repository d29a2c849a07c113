using System.Text.Json;
using System.Text.Json.Nodes;

namespace HybridDistill.Training;

/// <summary>
/// A run recipe: one JSON file with a section per pipeline step,
/// <c>{"description": "...", "stage1": {...}, "stage2": {...}, "stage3": {...}, "score": {...}}</c>.
/// Each command reads its own section (stage sections hold <see cref="TrainConfig"/> keys; the score section
/// belongs to layer selection). Unknown sections are errors; so are unknown keys inside a stage section.
/// </summary>
public sealed class Recipe
{
    public static readonly string[] Sections = ["stage1", "stage2", "stage3", "score"];

    Recipe(string? path, JsonObject json)
    {
        Path = path;
        Json = json;
    }

    /// <summary>The file it came from (null for an empty recipe).</summary>
    public string? Path { get; }
    public JsonObject Json { get; }

    public static Recipe Empty { get; } = new(null, new JsonObject());

    public static Recipe Load(string path)
    {
        var full = System.IO.Path.GetFullPath(path);
        if (!File.Exists(full)) throw new InputException($"{full}: recipe not found.");
        JsonNode? node;
        try { node = JsonNode.Parse(File.ReadAllText(full), documentOptions: new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true }); }
        catch (JsonException e) { throw new InputException($"{full}: not valid JSON ({e.Message}).", e); }
        if (node is not JsonObject obj) throw new InputException($"{full}: a recipe is a JSON object with sections {string.Join(", ", Sections)}.");
        foreach (var (key, value) in obj)
        {
            if (key == "description")
            {
                if (value is not JsonValue) throw new InputException($"{full}: \"description\" should be a string.");
                continue;
            }
            if (!Sections.Contains(key))
                throw new InputException($"{full}: unknown section \"{key}\" (known: description, {string.Join(", ", Sections)}).");
            if (value is not JsonObject) throw new InputException($"{full}: section \"{key}\" should be an object.");
        }
        var recipe = new Recipe(full, obj);
        // Check every stage section now, so a typo in stage2 is caught before stage 1 runs for an hour.
        foreach (var stage in new[] { Stage.Stage1, Stage.Stage2, Stage.Stage3 })
            recipe.Resolve(stage);
        return recipe;
    }

    public JsonObject? Section(string name) => Json[name] as JsonObject;

    /// <summary>The resolved config of a stage: defaults, this recipe's section, then the overrides.</summary>
    public TrainConfig Resolve(Stage stage, IEnumerable<string>? overrides = null) =>
        TrainConfig.Resolve(stage, Section(Stages.Name(stage)), overrides, Path is null ? "recipe" : $"{Path} [{Stages.Name(stage)}]");
}
