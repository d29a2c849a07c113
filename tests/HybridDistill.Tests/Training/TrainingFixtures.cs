using HybridDistill.Checkpoints;
using HybridDistill.Data;
using HybridDistill.Models;

namespace HybridDistill.Tests.Training;

/// <summary>Shared inputs for training tests: the TinyStories slice tokenized once per test process with stories260K's tokenizer.</summary>
public static class TrainingFixtures
{
    static readonly Lazy<string> data = new(() =>
    {
        var dir = TestPaths.NewTempDir("training-data");
        CorpusBuilder.Build(TestPaths.Assets("stories260K"), [TestPaths.Assets("text", "tinystories_val_slice.txt")], dir);
        return dir;
    });

    public static string StoriesData => data.Value;
    public static string StoriesTeacher => TestPaths.Assets("stories260K");

    public static HybridCausalLM LoadTeacher() => HfCheckpoint.Load(StoriesTeacher);

    /// <summary>name -> a copy of every tensor of the module's state.</summary>
    public static Dictionary<string, TorchSharp.torch.Tensor> Snapshot(TorchSharp.torch.nn.Module module) =>
        module.state_dict().ToDictionary(p => p.Key, p => p.Value.detach().clone());

    /// <summary>Names of tensors whose bytes differ between two snapshots.</summary>
    public static List<string> Changed(Dictionary<string, TorchSharp.torch.Tensor> before, Dictionary<string, TorchSharp.torch.Tensor> after) =>
        before.Where(p => !BitEqual(p.Value, after[p.Key])).Select(p => p.Key).ToList();

    /// <summary>Same shape and the same fp32 bit patterns everywhere.</summary>
    public static bool BitEqual(TorchSharp.torch.Tensor a, TorchSharp.torch.Tensor b)
    {
        if (!a.shape.SequenceEqual(b.shape)) return false;
        var x = a.contiguous().data<float>().ToArray();
        var y = b.contiguous().data<float>().ToArray();
        for (int i = 0; i < x.Length; i++)
            if (BitConverter.SingleToInt32Bits(x[i]) != BitConverter.SingleToInt32Bits(y[i])) return false;
        return true;
    }
}
