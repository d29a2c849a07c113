// The fused AdamW update: one pass over each parameter's p, g, m, v (fp32, dense and laid out alike, on the CPU), in slices of
// SliceLength elements that the cores take in turn. Per element, the float expressions of AdamWOptimizer's tensor
// path in torch's order (its AVX2 kernels use fused multiply-adds in lerp and in addcmul; written here the same way):
//   g = g clip                                         g.mul_(clip)                  (clip 1 when not clipping; g itself stays as it was)
//   m = fma(1 - b1, g - m, m)                          m.lerp_(g, 1 - b1)
//   v = fma((1 - b2) g, g, v b2)                       v.mul_(b2).addcmul_(g, g, 1 - b2)
//   p = p decay                                        p.mul_(1 - lr wd)             (decay 1 for parameters not decayed)
//   p = p + (step m) / (sqrt(v) + eps s)               p.addcdiv_(m, sqrt(v) + eps s, step)
// with s = sqrt(1 - b2^t) and step = -lr s / (1 - b1^t), all constants rounded to float once, as torch does.
// m and v come out equal to the bit. p can differ in its last bit: the square root here is IEEE's correctly rounded
// one, while libtorch's vectorised sqrt_ (MKL's vector math on this build) is off by one ulp on about 17% of inputs
// (measured on 155,617 random values); that is below the rounding of the update itself, and a resumed run still
// repeats the same path bit for bit. A factor of 1 (no clipping, no decay) is applied too: x * 1 is x to the bit.
using System.Numerics;
using System.Runtime.InteropServices;
using HybridDistill.Modules;
using TorchSharp;
using static TorchSharp.torch;

namespace HybridDistill.Training;

internal static class FusedAdamW
{
    /// <summary>Elements per unit of work: 4 arrays x 256 KiB, large enough that scheduling costs nothing, small enough
    /// that two cores share even a single large matrix evenly.</summary>
    public const int SliceLength = 1 << 16;

    /// <summary>The per-group constants of one step, each rounded to float once (GradScale and Decay are 1 when unused).</summary>
    public readonly record struct Constants(float GradScale, float Mixing, float Beta2, float SquareWeight, float EpsScaled, float StepSize, float Decay);

    /// <summary>One parameter's tensors for this step.</summary>
    public readonly record struct Slot(Tensor Parameter, Tensor Grad, Tensor M, Tensor V, Constants C);

    public static bool Supported => Vector.IsHardwareAccelerated;

    /// <summary>Whether <paramref name="t"/> is fp32 on the CPU with its elements in one dense block: contiguous, or a
    /// column-major matrix (a transposed copy, as a gradient may be).</summary>
    public static bool CanUse(Tensor t) =>
        RawFloats.IsCpuFloat(t) && t.numel() <= int.MaxValue / sizeof(float)
        && (t.is_contiguous() || Modules.RawFloats.IsColumnMajor(t));

    /// <summary>Whether the update can run element by element over the four tensors' raw memory: each one dense and all
    /// four laid out alike (element i of one is element i of the others).</summary>
    public static bool SameDenseLayout(Tensor p, Tensor g, Tensor m, Tensor v) =>
        new[] { p, g, m, v }.All(CanUse) && new[] { g, m, v }.All(t => t.stride().SequenceEqual(p.stride()));

    public static void Run(IReadOnlyList<Slot> slots, int threads)
    {
        var slices = new List<(int Slot, int From, int Length)>();
        for (int i = 0; i < slots.Count; i++)
        {
            int n = (int)slots[i].Parameter.numel();
            for (int from = 0; from < n; from += SliceLength) slices.Add((i, from, Math.Min(SliceLength, n - from)));
        }
        void UpdateSlice(int index)
        {
            var (slot, from, length) = slices[index];
            var s = slots[slot];
            Update(RawFloats.Of(s.Parameter).Slice(from, length), RawFloats.Of(s.Grad).Slice(from, length),
                RawFloats.Of(s.M).Slice(from, length), RawFloats.Of(s.V).Slice(from, length), s.C);
        }
        if (threads <= 1 || slices.Count == 1)
            for (int i = 0; i < slices.Count; i++) UpdateSlice(i);
        else
            Parallel.For(0, slices.Count, new ParallelOptions { MaxDegreeOfParallelism = threads }, UpdateSlice);
    }

    /// <summary>The update of one slice, in place on <paramref name="p"/>, <paramref name="m"/> and <paramref name="v"/>.</summary>
    public static void Update(Span<float> p, ReadOnlySpan<float> g, Span<float> m, Span<float> v, Constants c)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var pv = MemoryMarshal.Cast<float, Vector<float>>(p);
            var gv = MemoryMarshal.Cast<float, Vector<float>>(g);
            var mv = MemoryMarshal.Cast<float, Vector<float>>(m);
            var vv = MemoryMarshal.Cast<float, Vector<float>>(v);
            var gradScale = new Vector<float>(c.GradScale);
            var mixing = new Vector<float>(c.Mixing);
            var beta2 = new Vector<float>(c.Beta2);
            var squareWeight = new Vector<float>(c.SquareWeight);
            var eps = new Vector<float>(c.EpsScaled);
            var step = new Vector<float>(c.StepSize);
            var decayBy = new Vector<float>(c.Decay);
            for (int k = 0; k < pv.Length; k++)
            {
                var gk = gv[k] * gradScale;
                var mk = Vector.FusedMultiplyAdd(mixing, gk - mv[k], mv[k]);
                var vk = Vector.FusedMultiplyAdd(squareWeight * gk, gk, vv[k] * beta2);
                mv[k] = mk;
                vv[k] = vk;
                pv[k] = pv[k] * decayBy + step * mk / (Vector.SquareRoot(vk) + eps);
            }
            i = pv.Length * Vector<float>.Count;
        }
        for (; i < p.Length; i++)
        {
            float gi = g[i] * c.GradScale;
            float mk = MathF.FusedMultiplyAdd(c.Mixing, gi - m[i], m[i]);
            float vk = MathF.FusedMultiplyAdd(c.SquareWeight * gi, gi, v[i] * c.Beta2);
            m[i] = mk;
            v[i] = vk;
            p[i] = p[i] * c.Decay + c.StepSize * mk / (MathF.Sqrt(vk) + c.EpsScaled);
        }
    }
}
