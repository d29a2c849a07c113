using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using HybridDistill.Checkpoints;
using HybridDistill.Config;
using HybridDistill.Models;

namespace HybridDistill.Selection;

/// <summary>A method that says, per layer, how much it matters to keep that layer softmax.</summary>
public interface ILayerScorer
{
    /// <summary>The name given to <c>--method</c> and written as scores.json's "method".</summary>
    string Name { get; }
    /// <summary>One line for help text.</summary>
    string Description { get; }
    /// <summary>The method's <c>--set key=value</c> settings with their defaults; any other key is an error.</summary>
    IReadOnlyList<ScorerSetting> Settings { get; }
    LayerScores Score(ScoringContext context);
}

/// <summary>A <c>--set key=value</c> setting of a method: its key, default (as text) and meaning.</summary>
public sealed record ScorerSetting(string Key, string Default, string Description);

/// <summary>
/// Everything a scoring run may use. Methods take what they need through the <c>Require*</c> accessors, which
/// throw an <see cref="InputException"/> naming the missing option; <see cref="Used"/> records which options
/// were read, so the CLI can say which ones a method ignored.
/// </summary>
public sealed class ScoringContext
{
    public required string Method { get; init; }
    public string? TeacherDir { get; init; }
    public string? Stage1Dir { get; init; }
    /// <summary>The windows to evaluate; when null, <see cref="DataPath"/> is opened on first use.</summary>
    public ITokenWindowSource? Data { get; init; }
    /// <summary>--data as given: a text file or a token directory, opened only by methods that read data.</summary>
    public string? DataPath { get; init; }
    public string? RecipePath { get; init; }
    /// <summary>Only these layers (per-layer methods; for splitting the work over processes). Null: every layer.</summary>
    public IReadOnlyList<int>? Layers { get; init; }
    /// <summary>Token budget per evaluation (ppl) or per scoring run (kl, removal). Null: the method's default.</summary>
    public long? BudgetTokens { get; init; }
    public long Seed { get; init; }
    /// <summary>The raw <c>--set key=value</c> pairs.</summary>
    public IReadOnlyDictionary<string, string> Set { get; init; } = new Dictionary<string, string>();
    /// <summary>Where per-layer results go (OUT/layers/layer-{l}.json). Null: per-layer methods keep nothing between runs.</summary>
    public string? OutDir { get; init; }
    public IProgress<string>? Progress { get; init; }
    public CancellationToken Cancellation { get; init; }
    /// <summary>Where the methods that run a model run it (models load on the CPU and move; --device). Not part of a
    /// scoring job's provenance, so per-layer results from different devices merge.</summary>
    public ComputeDevice Device { get; init; } = ComputeDevice.Cpu;

    private readonly HashSet<string> used = [];
    private IReadOnlyList<ScorerSetting> settings = [];

    /// <summary>Options (as spelled on the command line) that the method read.</summary>
    public IReadOnlySet<string> Used => used;

    public string RequireTeacher()
    {
        used.Add("--teacher");
        return TeacherDir ?? throw new InputException($"--method {Method} needs --teacher DIR (the all-softmax model whose layers are scored).");
    }

    /// <summary>The teacher's config (config.json only, no weights): enough for methods that only need the layer count.</summary>
    public ModelConfig TeacherConfig() => ModelConfig.Load(HfCheckpoint.ResolveModelDirectory(RequireTeacher()));

    public string RequireStage1()
    {
        used.Add("--stage1");
        return Stage1Dir ?? throw new InputException($"--method {Method} needs --stage1 DIR (the finished stage-1 run: hybrid distill stage1).");
    }

    public ITokenWindowSource RequireData()
    {
        used.Add("--data");
        if (Data is not null) return Data;
        if (DataPath is not null) return TokenWindowSources.FromPath(DataPath);
        throw new InputException($"--method {Method} needs --data FILE-or-DIR (held-out text, or a token directory from hybrid tokenize).");
    }

    public string RequireRecipe()
    {
        used.Add("--recipe");
        return RecipePath ?? throw new InputException($"--method {Method} needs --recipe FILE (its \"score\" section sets the scoring runs).");
    }

    public long BudgetTokensOr(long fallback)
    {
        used.Add("--budget-tokens");
        long budget = BudgetTokens ?? fallback;
        if (budget < 1) throw new InputException($"--budget-tokens must be positive, got {budget}.");
        return budget;
    }

    public long UseSeed()
    {
        used.Add("--seed");
        return Seed;
    }

    /// <summary>The layers to score: --layers (checked against L) or all of them.</summary>
    public IReadOnlyList<int> LayersToScore(int numLayers)
    {
        used.Add("--layers");
        if (Layers is null) return Enumerable.Range(0, numLayers).ToArray();
        var bad = Layers.Where(l => l < 0 || l >= numLayers).ToArray();
        if (bad.Length > 0) throw new InputException($"--layers {string.Join(",", bad)}: out of range, the teacher has layers 0..{numLayers - 1}.");
        return Layers.Distinct().Order().ToArray();
    }

    /// <summary>Checks --set keys against the method's settings (unknown keys are errors) and remembers them.</summary>
    public void Accept(IReadOnlyList<ScorerSetting> methodSettings)
    {
        settings = methodSettings;
        var unknown = Set.Keys.Where(k => methodSettings.All(s => s.Key != k)).ToArray();
        if (unknown.Length > 0)
            throw new InputException($"--set {string.Join(", ", unknown)}: not a setting of --method {Method} " +
                (methodSettings.Count == 0 ? "(it has none)." : $"(settings: {string.Join(", ", methodSettings.Select(s => $"{s.Key}={s.Default}"))})."));
        if (Set.Count > 0) used.Add("--set");
    }

    public string Setting(string key)
    {
        var setting = settings.FirstOrDefault(s => s.Key == key) ?? throw new ArgumentException($"method {Method} has no setting {key}", nameof(key));
        return Set.TryGetValue(key, out var value) ? value : setting.Default;
    }

    public int SettingInt(string key, int min = int.MinValue)
    {
        var text = Setting(key);
        if (!int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int value) || value < min)
            throw new InputException($"--set {key}={text}: expected an integer{(min > int.MinValue ? $" of at least {min}" : "")}.");
        return value;
    }

    public string SettingChoice(string key, params string[] choices)
    {
        var text = Setting(key);
        return choices.Contains(text) ? text : throw new InputException($"--set {key}={text}: expected one of {string.Join(", ", choices)}.");
    }

    /// <summary>Every setting with its resolved value (for provenance).</summary>
    public IReadOnlyDictionary<string, string> ResolvedSettings()
    {
        var resolved = new Dictionary<string, string>();
        foreach (var s in settings) resolved[s.Key] = Setting(s.Key);
        return resolved;
    }

    /// <summary>The teacher's identity for provenance: its directory, config.json's sha256 and its weight files' total size.</summary>
    public ModelFingerprint TeacherFingerprint() => ModelFingerprint.Of(HfCheckpoint.ResolveModelDirectory(RequireTeacher()));
}

/// <summary>A model directory's identity for provenance: the directory, config.json's sha256 and its weight files' total size.</summary>
public sealed record ModelFingerprint(string Path, string ConfigSha256, long WeightsBytes)
{
    public static ModelFingerprint Of(string dir) => new(dir,
        Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(System.IO.Path.Combine(dir, "config.json")))),
        Directory.EnumerateFiles(dir, "*.safetensors").Sum(f => new FileInfo(f).Length));
}
