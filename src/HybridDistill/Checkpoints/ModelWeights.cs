// The weights of a model directory in Hugging Face layout:
//   model.safetensors                      one file, or
//   model.safetensors.index.json           {"metadata": {"total_size": N}, "weight_map": {tensor name: shard file}}
//   model-00001-of-0000K.safetensors ...   the shards it names.
// Tensors are listed from the headers alone and read one at a time, so a model never needs two copies in memory.
using System.Text.Json;
using HybridDistill.Artifacts;
using TorchSharp;
using static TorchSharp.torch;

namespace HybridDistill.Checkpoints;

/// <summary>A checkpoint tensor as listed in a header: its name, the file holding it, dtype and shape.</summary>
public sealed record WeightInfo(string Name, string File, string DType, long[] Shape);

/// <summary>What <see cref="ModelWeights.LoadInto"/> did.</summary>
public sealed record LoadSummary(int Loaded, IReadOnlyList<string> MissingOptional, IReadOnlyList<string> IgnoredExtra);

public static class ModelWeights
{
    public const string SingleFileName = "model.safetensors";
    public const string IndexFileName = "model.safetensors.index.json";
    /// <summary>Default largest shard written by <see cref="SaveDirectory"/>: 4 GiB.</summary>
    public const long DefaultMaxShardBytes = 4L << 30;

    static readonly IReadOnlyDictionary<string, string> FormatMetadata = new Dictionary<string, string> { ["format"] = "pt" };

    /// <summary>
    /// Lists the tensors of a model directory from the headers (no tensor data is read): from model.safetensors
    /// when present, else from model.safetensors.index.json and its shards. Grouped by file, in data order.
    /// </summary>
    public static IReadOnlyList<WeightInfo> ListTensors(string dir)
    {
        var full = Path.GetFullPath(dir);
        if (!Directory.Exists(full))
            throw new InputException($"{full}: model directory not found.");
        var single = Path.Combine(full, SingleFileName);
        if (File.Exists(single))
        {
            using var reader = SafeTensorsReader.Open(single);
            return reader.Entries.Select(e => new WeightInfo(e.Name, reader.FilePath, e.DType, e.Shape)).ToList();
        }
        var index = Path.Combine(full, IndexFileName);
        if (!File.Exists(index))
            throw new InputException(
                $"{full}: no {SingleFileName} or {IndexFileName}: not a model directory with safetensors weights.");

        var weightMap = ReadWeightMap(index);
        var result = new List<WeightInfo>();
        foreach (var shard in weightMap.Values.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal))
        {
            var shardPath = Path.Combine(full, shard);
            if (!File.Exists(shardPath))
            {
                var example = weightMap.First(kv => kv.Value == shard).Key;
                throw new InputException(
                    $"{index}: shard '{shard}' (holding tensor '{example}') does not exist in {full}: the download is incomplete.");
            }
            using var reader = SafeTensorsReader.Open(shardPath);
            var wanted = weightMap.Where(kv => kv.Value == shard).Select(kv => kv.Key).ToHashSet(StringComparer.Ordinal);
            foreach (var name in wanted)
                if (!reader.Contains(name))
                    throw new InputException(
                        $"{shardPath}: tensor '{name}' is listed for this shard in {IndexFileName} but the shard does not contain it.");
            // Tensors a shard holds beyond the weight map are ignored: the index is the declared content.
            result.AddRange(reader.Entries.Where(e => wanted.Contains(e.Name))
                .Select(e => new WeightInfo(e.Name, reader.FilePath, e.DType, e.Shape)));
        }
        return result;
    }

    /// <summary>
    /// Lazily reads every tensor of a model directory as fp32, one at a time (file listing and header validation
    /// happen at the call). The caller owns each yielded tensor and should dispose it.
    /// </summary>
    public static IEnumerable<KeyValuePair<string, Tensor>> ReadDirectory(string dir)
    {
        var infos = ListTensors(dir);
        return ReadLazily(infos);
    }

    static IEnumerable<KeyValuePair<string, Tensor>> ReadLazily(IReadOnlyList<WeightInfo> infos)
    {
        foreach (var group in infos.GroupBy(i => i.File))
        {
            using var reader = SafeTensorsReader.Open(group.Key);
            foreach (var info in group)
                yield return new(info.Name, reader.ReadTensor(info.Name));
        }
    }

    /// <summary>
    /// Copies every checkpoint tensor of <paramref name="dir"/> into the parameter of the same name (under no_grad,
    /// converting dtype/device as the parameter needs). Everything is checked before anything is copied:
    /// a parameter absent from the checkpoint (unless in <paramref name="optionalNames"/>), a shape mismatch, or a
    /// checkpoint tensor no parameter expects (unless <paramref name="ignoreExtra"/> says so) is an InputException.
    /// </summary>
    public static LoadSummary LoadInto(string dir, IReadOnlyDictionary<string, Tensor> parameters,
        ISet<string>? optionalNames = null, Func<string, bool>? ignoreExtra = null)
    {
        var full = Path.GetFullPath(dir);
        var infos = ListTensors(full);
        var byName = infos.ToDictionary(i => i.Name, StringComparer.Ordinal);

        var missing = parameters.Keys.Where(n => !byName.ContainsKey(n)).ToList();
        var missingRequired = missing.Where(n => optionalNames is null || !optionalNames.Contains(n)).ToList();
        if (missingRequired.Count > 0)
            throw new InputException(
                $"{full}: the checkpoint has no tensor '{missingRequired[0]}'" +
                (missingRequired.Count > 1 ? $" ({missingRequired.Count} missing: {ListSome(missingRequired)})" : "") +
                ": the checkpoint does not match the model config (check num_hidden_layers, layer_types and the model type).");

        foreach (var (name, parameter) in parameters)
        {
            if (!byName.TryGetValue(name, out var info)) continue;
            if (!info.Shape.SequenceEqual(parameter.shape))
                throw new InputException(
                    $"{info.File}: tensor {name} has shape {SafeTensorsEntry.FormatShape(info.Shape)} but the config expects {SafeTensorsEntry.FormatShape(parameter.shape)}: the checkpoint does not match config.json.");
        }

        var extra = infos.Where(i => !parameters.ContainsKey(i.Name)).Select(i => i.Name).ToList();
        var unexpected = extra.Where(n => ignoreExtra is null || !ignoreExtra(n)).ToList();
        if (unexpected.Count > 0)
            throw new InputException(
                $"{full}: the checkpoint has {unexpected.Count} tensor(s) the model does not expect: {ListSome(unexpected)}: the checkpoint does not match the model config (check num_hidden_layers, layer_types and tie_word_embeddings).");

        int loaded = 0;
        foreach (var group in infos.Where(i => parameters.ContainsKey(i.Name)).GroupBy(i => i.File))
        {
            using var reader = SafeTensorsReader.Open(group.Key);
            foreach (var info in group)
            {
                using var scope = torch.NewDisposeScope();
                var source = reader.ReadTensor(info.Name);
                using (torch.no_grad())
                    parameters[info.Name].copy_(source);
                loaded++;
            }
        }
        return new LoadSummary(loaded, missing, extra);
    }

    /// <summary>
    /// Writes tensors (stored as <paramref name="dtype"/>, F32 unless asked) into <paramref name="dir"/>: model.safetensors when they fit in one shard of
    /// <paramref name="maxShardBytes"/>, else model-0000i-of-0000K.safetensors shards plus model.safetensors.index.json.
    /// Tensors are packed in the given order; a tensor larger than the limit gets a shard of its own. Each file is
    /// written to a temp name and renamed (the index last); weight files of the other layout are removed.
    /// </summary>
    public static void SaveDirectory(string dir, IEnumerable<KeyValuePair<string, Tensor>> tensors,
        long maxShardBytes = DefaultMaxShardBytes, IReadOnlyDictionary<string, string>? metadata = null, StoredDType dtype = StoredDType.F32)
    {
        if (maxShardBytes <= 0) throw new ArgumentOutOfRangeException(nameof(maxShardBytes));
        var full = Path.GetFullPath(dir);
        Directory.CreateDirectory(full);
        var list = tensors.ToList();
        var fileMetadata = metadata ?? FormatMetadata;

        var shards = new List<List<KeyValuePair<string, Tensor>>> { new() };
        long shardBytes = 0;
        foreach (var item in list)
        {
            long bytes = item.Value.numel() * dtype.ElementSize();
            if (shards[^1].Count > 0 && shardBytes + bytes > maxShardBytes)
            {
                shards.Add(new());
                shardBytes = 0;
            }
            shards[^1].Add(item);
            shardBytes += bytes;
        }

        var stale = StaleShards(full);
        var index = Path.Combine(full, IndexFileName);
        if (shards.Count == 1)
        {
            SafeTensorsWriter.Write(Path.Combine(full, SingleFileName), list, fileMetadata, dtype);
            DeleteIfExists(index);
            foreach (var old in stale) DeleteIfExists(Path.Combine(full, old));
            return;
        }

        var weightMap = new List<KeyValuePair<string, string>>();
        var written = new HashSet<string>(StringComparer.Ordinal);
        for (int s = 0; s < shards.Count; s++)
        {
            var shardName = $"model-{s + 1:D5}-of-{shards.Count:D5}.safetensors";
            SafeTensorsWriter.Write(Path.Combine(full, shardName), shards[s], fileMetadata, dtype);
            written.Add(shardName);
            weightMap.AddRange(shards[s].Select(kv => new KeyValuePair<string, string>(kv.Key, shardName)));
        }
        long totalSize = list.Sum(kv => kv.Value.numel() * dtype.ElementSize());
        AtomicFile.WriteAllBytes(index, IndexJson(totalSize, weightMap));
        // The single file would shadow the index when reading: remove it, and shards the new index no longer names.
        DeleteIfExists(Path.Combine(full, SingleFileName));
        foreach (var old in stale.Where(o => !written.Contains(o))) DeleteIfExists(Path.Combine(full, old));
    }

    static byte[] IndexJson(long totalSize, IEnumerable<KeyValuePair<string, string>> weightMap) =>
        ArtifactJson.ExternalBytes(new ShardIndexFile(new ShardIndexMetadata(totalSize), weightMap.ToDictionary(kv => kv.Key, string? (kv) => kv.Value)), ArtifactJson.Types.ShardIndexFile);

    static Dictionary<string, string> ReadWeightMap(string index)
    {
        ShardIndexFile? file;
        try
        {
            // A tensor listed twice is an error here, not "the last one wins".
            file = JsonSerializer.Deserialize(File.ReadAllBytes(index), ArtifactJson.NoDuplicateKeys.ShardIndexFile);
        }
        catch (JsonException e)
        {
            // The duplicate-key message names no key; the path does ($.weight_map.NAME).
            string where = e.Path is string at && !e.Message.Contains(at, StringComparison.Ordinal) ? $" at {at}" : "";
            throw new InputException($"{index}: not a shard index ({e.Message}{where}): the index file is corrupt; save or download the model again.", e);
        }
        if (file?.WeightMap is null)
            throw new InputException($"{index}: no \"weight_map\" object (tensor name -> shard file): the index file is corrupt.");
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (name, shard) in file.WeightMap)
        {
            if (shard is null || shard.Length == 0 || Path.IsPathRooted(shard) || shard.Split('/', '\\').Contains(".."))
                throw new InputException(
                    $"{index}: tensor '{name}' maps to {(shard is null ? "null" : $"\"{shard}\"")}, not a shard file name inside the model directory.");
            result.Add(name, shard);
        }
        return result;
    }

    /// <summary>Shard files named by an existing index (best effort: an unreadable index names none).</summary>
    static List<string> StaleShards(string dir)
    {
        var index = Path.Combine(dir, IndexFileName);
        if (!File.Exists(index)) return new();
        try
        {
            return ReadWeightMap(index).Values.Distinct(StringComparer.Ordinal).ToList();
        }
        catch (InputException)
        {
            return new();
        }
    }

    static void DeleteIfExists(string path)
    {
        if (File.Exists(path)) File.Delete(path);
    }

    static string ListSome(IReadOnlyList<string> names) =>
        string.Join(", ", names.Take(5)) + (names.Count > 5 ? $" and {names.Count - 5} more" : "");
}

/// <summary>model.safetensors.index.json (Hugging Face's sharded layout): the total byte size of the tensors and, in
/// the order the shards hold them, which shard file holds each tensor.</summary>
public sealed record ShardIndexFile(ShardIndexMetadata? Metadata, IReadOnlyDictionary<string, string?>? WeightMap);

public sealed record ShardIndexMetadata(long? TotalSize);
