using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace HybridDistill.Modules;

/// <summary>The Llama MLP: <c>down(silu(gate(x)) * up(x))</c>, no biases.</summary>
public sealed class SwiGluMlp : nn.Module<Tensor, Tensor>
{
    private readonly Linear gate_proj;
    private readonly Linear up_proj;
    private readonly Linear down_proj;

    public SwiGluMlp(long hiddenSize, long intermediateSize) : base("SwiGluMlp")
    {
        gate_proj = nn.Linear(hiddenSize, intermediateSize, hasBias: false);
        up_proj = nn.Linear(hiddenSize, intermediateSize, hasBias: false);
        down_proj = nn.Linear(intermediateSize, hiddenSize, hasBias: false);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        if (x.dim() == 3 && x.size(1) == 1 && DecodeKernels.CanProject(x, gate_proj, up_proj))
        {
            // one decoding token: gate and up in one pass over their weights, the SwiGLU in place, then down
            var projected = DecodeKernels.Project(x, gate_proj, up_proj);                      // 2 x [B, 1, I]
            var hidden = projected[0];
            DecodeKernels.SiluMultiplyInPlace(hidden, projected[1]);
            var down = DecodeKernels.CanProject(hidden, down_proj) ? DecodeKernels.Project(hidden, down_proj)[0] : down_proj.forward(hidden);
            return scope.MoveToOuter(down);                                                     // [B, 1, I] -> [B, 1, d]
        }
        // [B, T, d] -> [B, T, I] -> [B, T, d]
        var y = down_proj.forward(nn.functional.silu(gate_proj.forward(x)) * up_proj.forward(x));
        return scope.MoveToOuter(y);
    }
}
