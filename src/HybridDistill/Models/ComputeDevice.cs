using TorchSharp;

namespace HybridDistill.Models;

/// <summary>
/// Where a command runs its models: <c>--device cpu|cuda|cuda:N</c>, parsed once and checked against the libtorch
/// build. Models are built on the CPU (checkpoints load there) and moved; inputs follow the model's device
/// (<see cref="Evaluation.CausalLMLogits"/>, the generator, the benchmarks). Paths written for the CPU's raw memory
/// (the GDN token step) take their tensor-op fallback on any other device. Compute is fp32 everywhere.
/// </summary>
public sealed record ComputeDevice(DeviceType Type, int Index)
{
    public static ComputeDevice Cpu { get; } = new(DeviceType.CPU, -1);

    /// <summary>True when this assembly was built with <c>-p:TorchBackend=cuda</c> (the CUDA libtorch package).</summary>
#if TORCH_CUDA
    public const bool CudaBuild = true;
#else
    public const bool CudaBuild = false;
#endif

    public bool IsCpu => Type == DeviceType.CPU;

    public torch.Device Torch => IsCpu ? torch.CPU : new torch.Device(DeviceType.CUDA, Index);

    public override string ToString() => IsCpu ? "cpu" : $"cuda:{Index}";

    /// <summary>cpu, cuda (= cuda:0) or cuda:N; anything else is an error naming the option.</summary>
    public static ComputeDevice Parse(string text, string option = "--device")
    {
        string t = text.Trim().ToLowerInvariant();
        if (t == "cpu") return Cpu;
        if (t == "cuda") return new(DeviceType.CUDA, 0);
        if (t.StartsWith("cuda:") && int.TryParse(t.AsSpan(5), System.Globalization.NumberStyles.None, null, out int index))
            return new(DeviceType.CUDA, index);
        throw new InputException($"{option} {text}: not a device; use cpu, cuda or cuda:N (N = 0, 1, ...).");
    }

    /// <summary>This device when this process can use it; otherwise an error saying why and what to do.</summary>
    public ComputeDevice CheckAvailable(bool cudaAvailable, int cudaDevices, bool cudaBuild = CudaBuild, string option = "--device")
    {
        if (IsCpu) return this;
        if (!cudaBuild)
            throw new InputException($"{option} {this}: CUDA is not available in this build (libtorch-cpu); build with " +
                                     "-p:TorchBackend=cuda on a machine with an NVIDIA GPU (see README, Device and precision), or use --device cpu.");
        if (!cudaAvailable || cudaDevices == 0)
            throw new InputException($"{option} {this}: this CUDA build finds no usable GPU (check the NVIDIA driver and " +
                                     "CUDA_VISIBLE_DEVICES), or use --device cpu.");
        if (Index >= cudaDevices)
            throw new InputException($"{option} {this}: there {(cudaDevices == 1 ? "is 1 CUDA device" : $"are {cudaDevices} CUDA devices")} " +
                                     $"(cuda:0..cuda:{cudaDevices - 1}); pick one of them.");
        return this;
    }

    /// <summary>Parses <paramref name="text"/> and checks it against this process's libtorch.</summary>
    public static ComputeDevice Resolve(string text, string option = "--device")
    {
        var device = Parse(text, option);
        return device.IsCpu ? device : device.CheckAvailable(torch.cuda.is_available(), torch.cuda.device_count(), option: option);
    }
}
