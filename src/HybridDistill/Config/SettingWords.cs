namespace HybridDistill.Config;

/// <summary>
/// The words an enum-valued setting is written with in recipes, <c>--set</c> and JSON files (run_config.json,
/// checkpoints), in a fixed order (the order errors list them in). Settings are parsed to the enum once, where they
/// are read; everything after that works with the enum.
/// </summary>
public sealed class SettingWords<T>(params (string Word, T Value)[] words) where T : struct, Enum
{
    public IReadOnlyList<string> All { get; } = words.Select(w => w.Word).ToArray();

    public string Of(T value) => words.First(w => EqualityComparer<T>.Default.Equals(w.Value, value)).Word;

    public bool TryParse(string word, out T value)
    {
        foreach (var (w, v) in words)
            if (w == word) { value = v; return true; }
        value = default;
        return false;
    }
}
