using HybridDistill.Data;

namespace HybridDistill.Tests.Data;

/// <summary>A JSONL record's text field, read by name; every other field is skipped whatever its type.</summary>
public class JsonlDocumentsTests
{
    static string Write(string text)
    {
        var path = Path.Combine(TestPaths.NewTempDir("jsonl-docs"), "docs.jsonl");
        File.WriteAllText(path, text);
        return path;
    }

    [Fact]
    public void ReadDocuments_TakesTheNamedField_SkippingNestedAndOtherFields()
    {
        var path = Write("""
            {"meta": {"text": "nested, not this", "tags": [1, {"text": "nor this"}]}, "text": "  First.  ", "n": 1.5}
            {"body": "the body", "text": "Second.", "ok": true, "none": null}

            {"text": "Third.", "body": "other body"}
            """);
        Assert.Equal(["First.", "Second.", "Third."], CorpusBuilder.ReadDocuments(path, new TokenizeOptions()));
        var bodies = Write("""{"body": "the body", "text": 1}""" + "\n" + """{"text": "Fourth.", "body": "other body"}""");
        Assert.Equal(["the body", "other body"], CorpusBuilder.ReadDocuments(bodies, new TokenizeOptions { JsonlField = "body" }));
    }

    [Theory]
    [InlineData("""{"text": 5}""", "docs.jsonl:1: expected an object with a string \"text\" field (choose the field with --field).")]
    [InlineData("""["text", "a list"]""", "docs.jsonl:1: expected an object with a string \"text\" field")]
    [InlineData("""{"text": "a"} {"text": "b"}""", "docs.jsonl:1: not valid JSON")]
    [InlineData("""{"text": "a", "meta": [1, 2}""", "docs.jsonl:1: not valid JSON")]
    public void BadRecords_NameTheFileAndLine(string line, string message)
    {
        var path = Write(line + "\n");
        var e = Assert.Throws<InputException>(() => CorpusBuilder.ReadDocuments(path, new TokenizeOptions()).ToList());
        Assert.Contains(message, e.Message);
    }
}
