using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace HybridDistill.Modules;

/// <summary>
/// fp32 CPU tensors read and written as plain spans, without copying: the raw-memory paths (the decode kernels, the GDN
/// token step, the fused AdamW, the bandwidth reader) all go through here.
/// </summary>
internal static class RawFloats
{
    public static bool IsCpuFloat(Tensor t) => t.dtype == ScalarType.Float32 && t.device_type == DeviceType.CPU;

    /// <summary>True when a matrix is stored column-major (its transpose is contiguous): dense, though not contiguous.</summary>
    public static bool IsColumnMajor(Tensor matrix) => matrix.dim() == 2 && matrix.t().is_contiguous();

    /// <summary>The elements of a dense fp32 CPU tensor in memory order: a contiguous tensor, or a column-major matrix
    /// (through its contiguous transpose). Anything else is an <see cref="ArgumentException"/>.</summary>
    public static Span<float> Of(Tensor t)
    {
        if (!IsCpuFloat(t)) throw new ArgumentException("raw floats need an fp32 CPU tensor", nameof(t));
        if (t.is_contiguous()) return MemoryMarshal.Cast<byte, float>(t.bytes);
        if (!IsColumnMajor(t)) throw new ArgumentException("raw floats need a contiguous tensor or a column-major matrix", nameof(t));
        using var rowMajor = t.t();
        return MemoryMarshal.Cast<byte, float>(rowMajor.bytes);
    }

    /// <summary>The address of the first element of <paramref name="t"/> (its storage offset included), for any strided
    /// view. Not through <c>t.storage&lt;float&gt;()</c>: TorchSharp's Storage holds an alias of the tensor that its Dispose
    /// does not release, so the tensor's memory stayed allocated until the enclosing dispose scope ended (or, outside one,
    /// until the GC finalised the alias), and the allocator, seeing no freed blocks to reuse, mapped fresh memory for the
    /// next tensors: a scratch loop of empty [256, 64, 64] + batched product + dispose mapped a new 4 MB block per call
    /// (23 mmaps in 20 calls, 4 without the alias).</summary>
    public static IntPtr Address(Tensor t) => TensorData(t.Handle);

    [DllImport("LibTorchSharp", EntryPoint = "THSTensor_data")]
    static extern IntPtr TensorData(IntPtr tensor);
}
