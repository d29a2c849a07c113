using System.Text.Json.Nodes;
using HybridDistill.Artifacts;
using HybridDistill.Selection;

namespace HybridDistill.Tests.Selection;

/// <summary>kl's method settings parsed once into a typed record, and recorded as provenance.method.</summary>
public class KlSettingsTests
{
    /// <summary>The defaults of <see cref="KlScorer.Settings"/>, with <paramref name="set"/> on top (as --set gives them).</summary>
    static Func<string, string> Texts(params (string Key, string Value)[] set)
    {
        var defaults = new KlScorer().Settings.ToDictionary(s => s.Key, s => s.Default);
        foreach (var (key, value) in set) defaults[key] = value;
        return key => defaults[key];
    }

    [Fact]
    public void Parse_OfTheCommittedStudysSettings_RecordsItsProvenanceMethod()
    {
        var committed = JsonNode.Parse(File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "docs", "results", "teacher", "scores", "kl", "scores.json")))!
            ["provenance"]!["method"]!;
        var settings = KlSettings.Parse(Texts(("stable_budgets", "1L,2L"), ("full_budget", "true")), numLayers: 8);
        Assert.Equal((3, KlCurve.Training, KlEarlyStop.Auto, true), (settings.LastN, settings.Curve, settings.EarlyStop, settings.FullBudget));
        Assert.Equal(new KlCurves.StopRule(0.3, 3, 2, 3), settings.Rule);
        Assert.Equal([1, 2], settings.StopKs);
        Assert.Equal(committed.ToJsonString(), ArtifactJson.ToNode(settings.ToRecord(), ArtifactJson.Types.KlMethodSettings).ToJsonString());
    }

    [Fact]
    public void Parse_ReadsTheWordsOfCurveAndEarlyStop()
    {
        var settings = KlSettings.Parse(Texts(("curve", "val"), ("early_stop", "off"), ("last_n", "5")), numLayers: 4);
        Assert.Equal((KlCurve.Validation, KlEarlyStop.Off, 5), (settings.Curve, settings.EarlyStop, settings.LastN));
        Assert.Equal(("val", "off"), (settings.ToRecord().Curve, settings.ToRecord().EarlyStop));
    }

    [Theory]
    [InlineData("last_n", "0", "--set last_n=0: expected an integer of at least 1.")]
    [InlineData("min_fraction", "1.5", "--set min_fraction=1.5: expected a fraction between 0 and 1.")]
    [InlineData("margin_z", "-1", "--set margin_z=-1: expected a number of at least 0.")]
    [InlineData("curve", "loss", "--set curve=loss: expected train or val.")]
    [InlineData("early_stop", "on", "--set early_stop=on: expected auto or off.")]
    [InlineData("full_budget", "yes", "--set full_budget=yes: expected true or false.")]
    public void Parse_OfABadSetting_NamesTheKeyAndItsWords(string key, string value, string message) =>
        Assert.Equal(message, Assert.Throws<InputException>(() => KlSettings.Parse(Texts((key, value)), numLayers: 4)).Message);
}
