using System.Text.RegularExpressions;
using HybridDistill.Tokenization;

namespace HybridDistill.Tests.Tokenization;

/// <summary>Possessive quantifiers (Oniguruma / fancy-regex) become .NET atomic groups.</summary>
public class RegexDialectTests
{
    [Theory]
    [InlineData(@"a++b", @"(?>a+)b")]
    [InlineData(@"\p{L}*+|\s?+x", @"(?>\p{L}*)|(?>\s?)x")]
    [InlineData(@"[^\s\p{L}\p{N}]{1,3}+[\r\n]*", @"(?>[^\s\p{L}\p{N}]{1,3})[\r\n]*")]
    [InlineData(@"(ab|c)++d", @"(?>(ab|c)+)d")]
    [InlineData(@"[]+]++", @"(?>[]+]+)")]
    [InlineData(@"\u0041++", @"(?>\u0041+)")]
    public void Possessive_BecomesAtomic(string pattern, string expected) => Assert.Equal(expected, RegexDialect.ToDotNet(pattern));

    [Fact]
    public void PatternsWithoutPossessives_AreUnchanged()
    {
        foreach (var family in new[] { "qwen3", "llama3" })
        {
            using var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(RealTokenizerTests.Dir(family), "tokenizer.json")));
            string pattern = doc.RootElement.GetProperty("pre_tokenizer").GetProperty("pretokenizers")[0].GetProperty("pattern").GetProperty("Regex").GetString()!;
            Assert.Same(pattern, RegexDialect.ToDotNet(pattern));
        }
        foreach (var p in new[] { @"a+?b", @"x{2}", @"\{+", @"'s|'t| ?\p{L}+| ?\p{N}+|\s+(?!\S)|\s+" }) Assert.Same(p, RegexDialect.ToDotNet(p));
    }

    [Fact]
    public void AtomicGroups_NeverGiveBack()
    {
        Assert.Throws<RegexParseException>(() => new Regex("a++a"));          // why the translation exists
        Assert.DoesNotMatch(new Regex(RegexDialect.ToDotNet("a++a")), "aaa");  // possessive: the a+ keeps every a
        Assert.Matches(new Regex("a+a"), "aaa");
        Assert.Equal(" ab", new Regex(RegexDialect.ToDotNet(@" ?+\p{L}++")).Match(" ab1").Value);
    }
}
