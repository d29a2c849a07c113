using System.Globalization;
using System.IO.Compression;
using System.Text;
using HybridDistill.Tokenization;

namespace HybridDistill.Tests.Tokenization;

/// <summary>The managed NFC/NFD/NFKC/NFKD against Unicode's own conformance file, NormalizationTest.txt (Unicode
/// 15.0.0, assets/unicode/NormalizationTest-15.0.0.txt.gz), whose version is that of the embedded data.</summary>
public class UnicodeNormalizerTests
{
    static string N(string s, TextNormalization f) => UnicodeNormalizer.Normalize(s, f);

    [Fact]
    public void StringNormalize_IsANoOpUnderTheProjectsInvariantGlobalization()
    {
        // Why UnicodeNormalizer exists: with <InvariantGlobalization>true</InvariantGlobalization> .NET 10 returns the
        // input unchanged (and calls it normalized). If this starts failing, globalization was turned on.
        Assert.True(CultureInfo.CurrentCulture.Name.Length == 0);
        Assert.Equal("e\u0301", "e\u0301".Normalize(NormalizationForm.FormC));
        Assert.True("e\u0301".IsNormalized(NormalizationForm.FormC));
        Assert.Equal("\u00e9", N("e\u0301", TextNormalization.Nfc));
    }

    [Fact]
    public void HandPickedCases_MatchTheirKnownForms()
    {
        Assert.Equal("\u00c5", N("A\u030a", TextNormalization.Nfc));
        Assert.Equal("\u00c5", N("\u212b", TextNormalization.Nfc));                 // ANGSTROM SIGN: singleton, never composed back
        Assert.Equal("A\u030a", N("\u212b", TextNormalization.Nfd));
        Assert.Equal("\ufb01", N("\ufb01", TextNormalization.Nfc));                 // ligature: compatibility only
        Assert.Equal("fi", N("\ufb01", TextNormalization.Nfkc));
        Assert.Equal("\uac01", N("\u1100\u1161\u11a8", TextNormalization.Nfc));    // Hangul L V T -> one syllable
        Assert.Equal("\u1100\u1161\u11a8", N("\uac01", TextNormalization.Nfd));
        Assert.Equal("\u1e69", N("s\u0323\u0307", TextNormalization.Nfc));          // s + dot below + dot above
        Assert.Equal("\u1e69", N("s\u0307\u0323", TextNormalization.Nfc));          // reordered first
        Assert.Equal("a\u0328\u0301", N("a\u0301\u0328", TextNormalization.Nfd));   // ccc 202 before 230
        Assert.Equal("\U0001d157\U0001d165", N("\U0001d15e", TextNormalization.Nfc)); // supplementary, excluded from composition
        Assert.Equal("plain ASCII", N("plain ASCII", TextNormalization.Nfkc));
        Assert.Equal("", N("", TextNormalization.Nfc));
    }

    [Fact]
    public void NormalizationTestTxt_AllInvariantsHold()
    {
        using var file = File.OpenRead(TestPaths.Assets("unicode", "NormalizationTest-15.0.0.txt.gz"));
        using var gz = new GZipStream(file, CompressionMode.Decompress);
        using var reader = new StreamReader(gz, Encoding.UTF8);
        string? line;
        string? version = null;
        int lines = 0, part = -1;
        var failures = new List<string>();
        var part1 = new HashSet<int>();
        while ((line = reader.ReadLine()) is not null)
        {
            if (version is null && line.StartsWith("# NormalizationTest-", StringComparison.Ordinal)) version = line[20..line.IndexOf(".txt", StringComparison.Ordinal)];
            if (line.StartsWith("@Part", StringComparison.Ordinal)) { part = line[5] - '0'; continue; }
            int hash = line.IndexOf('#');
            string body = hash >= 0 ? line[..hash] : line;
            if (body.Trim().Length == 0) continue;
            var c = body.Split(';').Take(5).Select(Decode).ToArray();
            lines++;
            if (part == 1) part1.Add(char.ConvertToUtf32(c[0], 0));
            void Check(string expected, string input, TextNormalization f, int col)
            {
                string got = N(input, f);
                if (got != expected && failures.Count < 20)
                    failures.Add($"{f}(c{col}) of {Hex(input)}: expected {Hex(expected)}, got {Hex(got)}");
            }
            for (int i = 0; i < 3; i++)
            {
                Check(c[1], c[i], TextNormalization.Nfc, i + 1);
                Check(c[2], c[i], TextNormalization.Nfd, i + 1);
            }
            for (int i = 0; i < 5; i++)
            {
                Check(c[3], c[i], TextNormalization.Nfkc, i + 1);
                Check(c[4], c[i], TextNormalization.Nfkd, i + 1);
            }
            for (int i = 3; i < 5; i++)
            {
                Check(c[3], c[i], TextNormalization.Nfc, i + 1);
                Check(c[4], c[i], TextNormalization.Nfd, i + 1);
            }
        }
        Assert.Equal("15.0.0", version);
        Assert.Equal(version, UnicodeNormalizer.UnicodeVersion);
        Assert.True(lines > 19_000, $"only {lines} test lines read");

        // Part 1's rule: every code point not listed there is unchanged by all four forms.
        for (int cp = 0; cp <= 0x10FFFF; cp++)
        {
            if (cp is >= 0xD800 and <= 0xDFFF || part1.Contains(cp)) continue;
            string s = char.ConvertFromUtf32(cp);
            foreach (var f in new[] { TextNormalization.Nfc, TextNormalization.Nfd, TextNormalization.Nfkc, TextNormalization.Nfkd })
                if (N(s, f) != s && failures.Count < 20) failures.Add($"{f} changed unlisted U+{cp:X4} to {Hex(N(s, f))}");
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    static string Decode(string field) =>
        string.Concat(field.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(h => char.ConvertFromUtf32(Convert.ToInt32(h, 16))));

    static string Hex(string s) => string.Join(" ", s.EnumerateRunes().Select(r => r.Value.ToString("X4")));
}
