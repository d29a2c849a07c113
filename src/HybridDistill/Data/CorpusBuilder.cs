// Text -> a packed token directory:
//   train.bin, val.bin   uint32 little-endian token ids, documents back to back (read via a memory map)
//   manifest.json        tokenizer kind and model dir, separator, sources with sha256, counts, seed, split
// Documents: every JSONL record (its "text" field) is one; a text file is one document per blank-line separated
// paragraph (TinyStories' layout: one story per paragraph; WikiText: one paragraph or heading each), or one per
// file with DocumentSplit "files". Each document's text is trimmed and encoded on its own, then marked with BOS
// in front when the tokenizer prepends BOS (llama2.c models were trained with BOS before each story), otherwise
// EOS after it when the tokenizer has one.
// Validation: whole documents chosen by a seeded permutation (so several input files all contribute) until both
// ValFraction of the documents and MinValTokens tokens are held out; both splits keep the input order.
using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using HybridDistill.Tokenization;

namespace HybridDistill.Data;

/// <summary>Options of <see cref="CorpusBuilder.Build"/>.</summary>
public sealed record TokenizeOptions
{
    /// <summary>Fraction of documents held out for validation (at least one document).</summary>
    public double ValFraction { get; init; } = 0.05;
    /// <summary>Hold out more documents until the validation split has at least this many tokens.</summary>
    public long MinValTokens { get; init; } = 4096;
    /// <summary>Seeds the choice of validation documents.</summary>
    public long Seed { get; init; } = 0;
    /// <summary>"paragraphs" (blank-line separated, the default) or "files": how a text file splits into documents.</summary>
    public string DocumentSplit { get; init; } = DocumentSplits.Paragraphs;
    /// <summary>The JSONL field holding a record's text.</summary>
    public string JsonlField { get; init; } = "text";
}

public static class DocumentSplits
{
    public const string Paragraphs = "paragraphs";
    public const string Files = "files";
}

public static class CorpusBuilder
{
    public const string TrainFile = "train.bin";
    public const string ValFile = "val.bin";

    /// <summary>Text file extensions picked up when an input is a folder (JSONL by its .jsonl extension).</summary>
    public static readonly string[] FolderExtensions = [".txt", ".text", ".md", ".raw", ".jsonl"];

    public static CorpusManifest Build(string modelDir, IReadOnlyList<string> inputs, string outDir, TokenizeOptions? options = null,
        IProgress<string>? progress = null, CancellationToken cancellation = default)
    {
        options ??= new TokenizeOptions();
        if (options.ValFraction <= 0 || options.ValFraction >= 0.5)
            throw new InputException($"--val-fraction must be in (0, 0.5), got {options.ValFraction}.");
        if (options.DocumentSplit is not (DocumentSplits.Paragraphs or DocumentSplits.Files))
            throw new InputException($"--split must be \"{DocumentSplits.Paragraphs}\" or \"{DocumentSplits.Files}\", got \"{options.DocumentSplit}\".");
        if (inputs.Count == 0) throw new InputException("no --input given: pass text files, folders of text files or JSONL files.");

        var files = ResolveInputs(inputs);
        var tokenizer = TokenizerLoader.Load(modelDir);
        string separator = tokenizer.AddBosByDefault && tokenizer.BosId is not null ? DocumentSeparator.BosBefore
            : tokenizer.EosId is not null ? DocumentSeparator.EosAfter
            : DocumentSeparator.None;

        var outFull = Path.GetFullPath(outDir);
        bool createdOut = !Directory.Exists(outFull);
        Directory.CreateDirectory(outFull);
        var allPath = Path.Combine(outFull, ".all-tokens.tmp");
        var docStarts = new List<long>();   // token offset of each document in the temporary stream
        var docLengths = new List<int>();
        var sources = new List<CorpusSource>();
        long maxId = -1;
        try
        {
            using (var all = new FileStream(allPath, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
            {
                long offset = 0;
                var buffer = new byte[4];
                foreach (var file in files)
                {
                    cancellation.ThrowIfCancellationRequested();
                    progress?.Report($"tokenizing {file}");
                    long fileDocs = 0, fileTokens = 0;
                    foreach (var text in ReadDocuments(file, options))
                    {
                        var ids = Mark(tokenizer.Encode(text), tokenizer, separator);
                        if (ids.Count == 0) continue;
                        foreach (var id in ids)
                        {
                            BinaryPrimitives.WriteUInt32LittleEndian(buffer, checked((uint)id));
                            all.Write(buffer);
                            if (id > maxId) maxId = id;
                        }
                        docStarts.Add(offset);
                        docLengths.Add(ids.Count);
                        offset += ids.Count;
                        fileDocs++;
                        fileTokens += ids.Count;
                    }
                    sources.Add(new CorpusSource(file, Sha256(file), new FileInfo(file).Length, fileDocs, fileTokens));
                }
            }

            long totalTokens = docLengths.Sum(l => (long)l);
            if (docLengths.Count == 0 || totalTokens == 0)
                throw new InputException($"{string.Join(", ", files)}: no text found (empty input). Pass non-empty text or JSONL files.");
            if (docLengths.Count < 2)
                throw new InputException(
                    $"{string.Join(", ", files)}: only one document, so nothing can be held out for validation. " +
                    "Pass more files or records, or use --split paragraphs for blank-line separated text.");

            bool[] isVal = ChooseValidation(docLengths, options, totalTokens, files);
            progress?.Report("writing splits");
            var (trainTokens, trainDocs) = WriteSplit(allPath, Path.Combine(outFull, TrainFile), docStarts, docLengths, isVal, wantVal: false);
            var (valTokens, valDocs) = WriteSplit(allPath, Path.Combine(outFull, ValFile), docStarts, docLengths, isVal, wantVal: true);

            var manifest = new CorpusManifest
            {
                TokenizerKind = tokenizer.Kind,
                TokenizerModelDir = Path.GetFullPath(modelDir),
                TokenizerVocabSize = tokenizer.VocabSize,
                BosId = tokenizer.BosId,
                EosId = tokenizer.EosId,
                Separator = separator,
                DocumentSplit = options.DocumentSplit,
                Seed = options.Seed,
                ValFraction = options.ValFraction,
                MinValTokens = options.MinValTokens,
                MaxTokenId = maxId,
                Train = new CorpusSplit(TrainFile, trainTokens, trainDocs),
                Val = new CorpusSplit(ValFile, valTokens, valDocs),
                Sources = sources,
            };
            manifest.Save(outFull);
            return manifest;
        }
        catch
        {
            // Nothing half-written: a failed run leaves no directory it created (and no manifest in one it did not).
            if (File.Exists(allPath)) File.Delete(allPath);
            if (createdOut && Directory.Exists(outFull)) Directory.Delete(outFull, recursive: true);
            throw;
        }
        finally
        {
            if (File.Exists(allPath)) File.Delete(allPath);
        }
    }

    /// <summary>Files named by the inputs, folders expanded (recursively, sorted, text extensions only).</summary>
    public static IReadOnlyList<string> ResolveInputs(IReadOnlyList<string> inputs)
    {
        var files = new List<string>();
        foreach (var input in inputs)
        {
            var full = Path.GetFullPath(input);
            if (File.Exists(full)) files.Add(full);
            else if (Directory.Exists(full))
            {
                var found = Directory.EnumerateFiles(full, "*", SearchOption.AllDirectories)
                    .Where(f => FolderExtensions.Contains(Path.GetExtension(f).ToLowerInvariant()) && !Path.GetFileName(f).StartsWith('.'))
                    .Order(StringComparer.Ordinal).ToList();
                if (found.Count == 0)
                    throw new InputException($"{full}: folder holds no text files ({string.Join(", ", FolderExtensions)}).");
                files.AddRange(found);
            }
            else throw new InputException($"{full}: input not found.");
        }
        return files;
    }

    /// <summary>The documents of one file, as trimmed non-empty strings.</summary>
    public static IEnumerable<string> ReadDocuments(string file, TokenizeOptions options)
    {
        bool jsonl = Path.GetExtension(file).Equals(".jsonl", StringComparison.OrdinalIgnoreCase);
        StreamReader reader;
        try { reader = new StreamReader(file, Encoding.UTF8, detectEncodingFromByteOrderMarks: true); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new InputException($"{file}: cannot be read ({e.Message}).", e);
        }
        using (reader)
        {
            if (jsonl)
            {
                long lineNumber = 0;
                foreach (var line in Lines(reader, file))
                {
                    lineNumber++;
                    if (string.IsNullOrWhiteSpace(line)) continue;
                    string? text;
                    try { text = RecordField(line, options.JsonlField); }
                    catch (JsonException e) { throw new InputException($"{file}:{lineNumber}: not valid JSON ({e.Message}).", e); }
                    if (text is null)
                        throw new InputException(
                            $"{file}:{lineNumber}: expected an object with a string \"{options.JsonlField}\" field (choose the field with --field).");
                    text = text.Trim();
                    if (text.Length > 0) yield return text;
                }
                yield break;
            }

            var document = new StringBuilder();
            bool paragraphs = options.DocumentSplit == DocumentSplits.Paragraphs;
            foreach (var raw in Lines(reader, file))
            {
                var line = raw.TrimEnd('\r');
                if (paragraphs && line.Trim().Length == 0)
                {
                    if (document.Length > 0)
                    {
                        var text = document.ToString().Trim();
                        document.Clear();
                        if (text.Length > 0) yield return text;
                    }
                    continue;
                }
                if (document.Length > 0) document.Append('\n');
                document.Append(line);
            }
            var last = document.ToString().Trim();
            if (last.Length > 0) yield return last;
        }
    }

    /// <summary>
    /// The string <paramref name="field"/> of one JSONL record; null when the record is not an object or the field is
    /// missing or not a string. The other fields are skipped, whatever their type (records carry their own metadata);
    /// a line that is not one valid JSON value throws <see cref="JsonException"/>.
    /// </summary>
    static string? RecordField(string line, string field)
    {
        var reader = new Utf8JsonReader(Encoding.UTF8.GetBytes(line));
        string? text = null;
        bool isObject = reader.Read() && reader.TokenType == JsonTokenType.StartObject;
        if (isObject)
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                bool wanted = reader.ValueTextEquals(field);
                reader.Read();
                if (wanted) text = reader.TokenType == JsonTokenType.String ? reader.GetString() : null;
                reader.Skip();                                            // a nested object or array; a no-op on a scalar
            }
        while (reader.Read()) { }                                         // the rest must still be valid JSON
        return isObject ? text : null;
    }

    static IEnumerable<string> Lines(StreamReader reader, string file)
    {
        while (true)
        {
            string? line;
            try { line = reader.ReadLine(); }
            catch (IOException e) { throw new InputException($"{file}: read failed ({e.Message}).", e); }
            if (line is null) yield break;
            yield return line;
        }
    }

    static IReadOnlyList<int> Mark(IReadOnlyList<int> ids, ITextTokenizer tokenizer, string separator)
    {
        if (ids.Count == 0) return ids;
        return separator switch
        {
            DocumentSeparator.BosBefore => [tokenizer.BosId!.Value, .. ids],
            DocumentSeparator.EosAfter => [.. ids, tokenizer.EosId!.Value],
            _ => ids,
        };
    }

    static bool[] ChooseValidation(List<int> docLengths, TokenizeOptions options, long totalTokens, IReadOnlyList<string> files)
    {
        int n = docLengths.Count;
        int wantDocs = Math.Max(1, (int)Math.Ceiling(options.ValFraction * n));
        var order = SplitMix64.Permutation(n, options.Seed, stream: 0);
        var isVal = new bool[n];
        int docs = 0;
        long tokens = 0;
        foreach (int d in order)
        {
            if (docs >= wantDocs && tokens >= options.MinValTokens) break;
            if (docs == n - 1) break;
            isVal[d] = true;
            docs++;
            tokens += docLengths[d];
        }
        if (tokens < options.MinValTokens || tokens * 2 > totalTokens)
            throw new InputException(
                $"{string.Join(", ", files)}: {totalTokens} tokens are too few to hold out {options.MinValTokens} validation tokens " +
                $"and keep most for training. Add text, or lower --min-val-tokens.");
        return isVal;
    }

    static (long Tokens, long Documents) WriteSplit(string allPath, string path, List<long> starts, List<int> lengths, bool[] isVal, bool wantVal)
    {
        long tokens = 0, documents = 0;
        using var map = MemoryMappedFile.CreateFromFile(allPath, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        using var view = map.CreateViewStream(0, 0, MemoryMappedFileAccess.Read);
        Checkpoints.AtomicFile.Write(path, output =>
        {
            var buffer = new byte[1 << 16];
            for (int d = 0; d < lengths.Count; d++)
            {
                if (isVal[d] != wantVal) continue;
                view.Position = starts[d] * sizeof(uint);
                long remaining = (long)lengths[d] * sizeof(uint);
                while (remaining > 0)
                {
                    int n = view.Read(buffer, 0, (int)Math.Min(buffer.Length, remaining));
                    if (n <= 0) throw new IOException($"{allPath}: ended early.");
                    output.Write(buffer, 0, n);
                    remaining -= n;
                }
                tokens += lengths[d];
                documents++;
            }
        });
        return (tokens, documents);
    }

    static string Sha256(string file)
    {
        using var stream = File.OpenRead(file);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }
}
