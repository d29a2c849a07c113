using HybridDistill.Models;
using HybridDistill.Tests.Cli;
using TorchSharp;

namespace HybridDistill.Tests.Models;

public class ComputeDeviceTests
{
    [Theory]
    [InlineData("cpu", DeviceType.CPU, -1, "cpu")]
    [InlineData(" CPU ", DeviceType.CPU, -1, "cpu")]
    [InlineData("cuda", DeviceType.CUDA, 0, "cuda:0")]
    [InlineData("cuda:3", DeviceType.CUDA, 3, "cuda:3")]
    public void Parse_ReadsCpuCudaAndCudaN(string text, DeviceType type, int index, string shown)
    {
        var device = ComputeDevice.Parse(text);
        Assert.Equal(new ComputeDevice(type, index), device);
        Assert.Equal(shown, device.ToString());
    }

    [Theory]
    [InlineData("gpu")]
    [InlineData("cuda:")]
    [InlineData("cuda:-1")]
    [InlineData("cuda:x")]
    [InlineData("mps")]
    public void Parse_RejectsOtherNames(string text)
    {
        var e = Assert.Throws<InputException>(() => ComputeDevice.Parse(text));
        Assert.Equal($"--device {text}: not a device; use cpu, cuda or cuda:N (N = 0, 1, ...).", e.Message);
    }

    [Fact]
    public void Cuda_OnTheCpuBuild_IsAOneLineErrorNamingTheBuildSwitch()
    {
        Assert.False(ComputeDevice.CudaBuild);                 // CI builds libtorch-cpu
        var e = Assert.Throws<InputException>(() => ComputeDevice.Resolve("cuda"));
        Assert.StartsWith("--device cuda:0: CUDA is not available in this build (libtorch-cpu); build with -p:TorchBackend=cuda", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        Assert.Equal(ComputeDevice.Cpu, ComputeDevice.Resolve("cpu"));
        Assert.Equal(torch.CPU.type, ComputeDevice.Cpu.Torch.type);
    }

    [Theory]
    [InlineData(false, 0, "this CUDA build finds no usable GPU")]
    [InlineData(true, 0, "this CUDA build finds no usable GPU")]
    [InlineData(true, 2, "there are 2 CUDA devices (cuda:0..cuda:1); pick one of them.")]
    [InlineData(true, 1, "there is 1 CUDA device (cuda:0..cuda:0); pick one of them.")]
    public void CheckAvailable_OnACudaBuild_NamesWhatIsMissing(bool available, int count, string expected)
    {
        var e = Assert.Throws<InputException>(() => ComputeDevice.Parse("cuda:2").CheckAvailable(available, count, cudaBuild: true));
        Assert.Contains(expected, e.Message);
        Assert.Equal(new ComputeDevice(DeviceType.CUDA, 1), ComputeDevice.Parse("cuda:1").CheckAvailable(true, 2, cudaBuild: true));
    }

    [Fact]
    public void Commands_RefuseCudaWithExitCode2_BeforeLoadingAnything()
    {
        var run = Path.Combine(TestPaths.NewTempDir("device-refused"), "run");
        foreach (var args in new[]
        {
            new[] { "generate", "--model", TestPaths.Assets("stories260K"), "--device", "cuda" },
            ["eval", "--model", TestPaths.Assets("stories260K"), "--tasks", "passkey", "--device", "cuda:1"],
            ["distill", "stage1", "--teacher", TestPaths.Assets("stories260K"), "--data", run, "--out", run, "--device", "cuda"],
        })
        {
            var (code, output, err) = CliHarness.Run(args);
            Assert.Equal(2, code);
            Assert.Equal("", output);
            Assert.Contains("CUDA is not available in this build (libtorch-cpu)", err);
            Assert.Single(err.Trim().Split('\n'));
        }
        Assert.False(Directory.Exists(run));                  // nothing written
    }
    [Fact]
    public void ScorePretrainBenchAndRun_RefuseCudaWithExitCode2_BeforeTouchingTheirOutput()
    {
        var temp = TestPaths.NewTempDir("device-refused-2");
        string Out(string name) => Path.Combine(temp, name);
        string teacher = TestPaths.Assets("stories260K");
        foreach (var args in new[]
        {
            new[] { "score", "--method", "kl", "--teacher", teacher, "--stage1", teacher, "--data", Out("data"), "--out", Out("score-kl"), "--device", "cuda" },
            ["score", "--method", "uniform", "--teacher", teacher, "--out", Out("score-uniform"), "--device", "cuda:1"],
            ["pretrain", "--recipe", Path.Combine(TestPaths.RepoRoot, "recipes", "default-teacher.json"), "--out", Out("pretrain"), "--device", "cuda"],
            ["bench", "decode", "--model", teacher, "--contexts", "16", "--json", Out("bench-decode"), "--device", "cuda"],
            ["bench", "forward", "--model", teacher, "--device", "cuda"],
            ["bench", "train", "--config", Path.Combine(teacher, "config.json"), "--device", "cuda"],
            ["bench", "attention", "--lengths", "64", "--json", Out("bench-attention"), "--device", "cuda"],
            ["bench", "memory", "--model", teacher, "--device", "cuda"],
            ["run", "--teacher", teacher, "--out", Out("run"), "--device", "cuda"],
        })
        {
            var (code, output, err) = CliHarness.Run(args);
            Assert.True(code == 2, $"{string.Join(' ', args)}: exit {code}, {err}");
            Assert.Equal("", output);
            Assert.StartsWith($"error: --device {(args[^1] == "cuda" ? "cuda:0" : args[^1])}: CUDA is not available in this build (libtorch-cpu)", err.Trim());
            Assert.Single(err.Trim().Split('\n'));
        }
        Assert.Empty(Directory.EnumerateFileSystemEntries(temp));          // no output folder was made
    }
}
