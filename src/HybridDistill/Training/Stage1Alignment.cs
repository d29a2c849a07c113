// Stage 1 (RADLADS attention-output alignment), method.md section 5. The teacher runs frozen; at every layer l
// the student's attention gets the teacher's own normalised input n_l = RMSNorm_l(x_l), and the teacher's
// output continues down the residual stream, so the layers train independently, in one pass:
//   x_0 = embed(ids);  o_l = Attn_teacher_l(n_l);  x_{l+1} = MLP-block_l(x_l + o_l)
//   loss_l = mean over tokens of ||o_l - Attn_student_l(n_l)||_2 / sqrt(d_model)     (an RMS error, not squared)
//   loss   = mean over the trained (non-softmax) layers
// baseline_loss is the same loss for a student that outputs zeros: mean ||o_l||_2 / sqrt(d_model).
// Only the student's non-softmax attention layers train; every other student parameter is the teacher's.
using HybridDistill.Attention;
using HybridDistill.Config;
using HybridDistill.Data;
using HybridDistill.Models;
using static TorchSharp.torch;

namespace HybridDistill.Training;

public sealed class Stage1Alignment : ITrainingObjective
{
    private readonly HybridCausalLM teacher;
    private readonly int[] trainedLayers;

    public Stage1Alignment(HybridCausalLM teacher, HybridCausalLM student)
    {
        this.teacher = teacher;
        Student = student;
        trainedLayers = Enumerable.Range(0, student.Config.NumHiddenLayers)
            .Where(l => student.Config.LayerTypes[l] != LayerKinds.Softmax).ToArray();
        if (trainedLayers.Length == 0)
            throw new InputException("stage 1 needs at least one non-softmax layer in the student's layer_types.");
        foreach (var p in teacher.parameters()) p.requires_grad = false;
        // Only the trained layers' attention needs gradients; everything else is frozen (and stays bit-identical).
        foreach (var (name, p) in student.named_parameters())
            p.requires_grad = StudentBuilder.AttentionLayerOf(name) is int l && trainedLayers.Contains(l);
    }

    public HybridCausalLM Student { get; }
    public IReadOnlyList<int> TrainedLayers => trainedLayers;

    public IReadOnlyList<ParameterGroup> ParameterGroups(TrainConfig config) =>
    [
        new ParameterGroup("linear_attention",
            Student.named_parameters().Where(p => StudentBuilder.AttentionLayerOf(p.name) is int l && trainedLayers.Contains(l)).ToList(),
            config.Lr),
    ];

    public LossReport ForwardBackward(TrainingBatch batch, double lossScale, ITrainPhaseObserver? phases = null) =>
        Run(batch.Tokens.to(Student.LmHeadWeight.device), lossScale, backward: true, phases);          // batches are read on the CPU

    public LossReport Evaluate(TrainingBatch batch)
    {
        using var _ = no_grad();
        return Run(batch.Tokens.to(Student.LmHeadWeight.device), 0, backward: false, phases: null);
    }

    LossReport Run(Tensor batch, double lossScale, bool backward, ITrainPhaseObserver? phases)
    {
        using var scope = NewDisposeScope();
        long t = batch.shape[1] - 1;
        var ids = batch.narrow(1, 0, t);                                                       // [B, T + 1] -> [B, T]
        Tensor[] inputs, outputs;
        AttentionContext context;
        using (phases.Time(PhaseTimes.TeacherForward))
            (inputs, outputs, context) = TeacherAttentionInputsAndOutputs(ids);
        var losses = new double[trainedLayers.Length];
        double baseline = 0;
        for (int i = 0; i < trainedLayers.Length; i++)
        {
            using var layerScope = NewDisposeScope();
            int l = trainedLayers[i];
            Tensor loss;
            using (phases.Time(PhaseTimes.StudentForward))
            {
                var student = Student.Layers[l].Attention.forward(inputs[l], context, null);  // [B, T, d]
                loss = AlignmentLoss(outputs[l], student);
                losses[i] = loss.item<float>();
            }
            using (phases.Time(PhaseTimes.Backward))
                if (backward) (loss * (lossScale / trainedLayers.Length)).backward();
            using (no_grad()) baseline += AlignmentLoss(outputs[l], null).item<float>();
        }
        return new LossReport(losses.Average(),
            new Dictionary<string, double> { ["baseline_loss"] = baseline / trainedLayers.Length }, losses);
    }

    /// <summary>mean over tokens of ||teacher - student||_2 / sqrt(d): [B, T, d] x 2 -> scalar (student null: zeros).</summary>
    public static Tensor AlignmentLoss(Tensor teacherOutput, Tensor? studentOutput)
    {
        using var scope = NewDisposeScope();
        var diff = studentOutput is null ? teacherOutput : teacherOutput - studentOutput;
        double d = teacherOutput.shape[^1];
        var perToken = linalg.vector_norm(diff, 2, [-1L], false);                                // [B, T, d] -> [B, T]
        return scope.MoveToOuter(perToken.mean() / Math.Sqrt(d));
    }

    /// <summary>
    /// The frozen teacher's pass: per layer its attention input n_l [B, T, d] (after input_layernorm) and its
    /// attention output o_l [B, T, d], and the attention context for the positions.
    /// </summary>
    public (Tensor[] Inputs, Tensor[] Outputs, AttentionContext Context) TeacherAttentionInputsAndOutputs(Tensor ids)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        long t = ids.shape[1];
        var context = new AttentionContext(teacher.Rotary.Tables(0, t, ids.device), 0);
        int layers = teacher.Config.NumHiddenLayers;
        var inputs = new Tensor[layers];
        var outputs = new Tensor[layers];
        var x = teacher.Stack.Embeddings.forward(ids);                                        // [B, T] -> [B, T, d]
        for (int l = 0; l < layers; l++)
        {
            var layer = teacher.Layers[l];
            inputs[l] = layer.InputNorm.forward(x);
            outputs[l] = layer.Attention.forward(inputs[l], context, null);
            x = layer.MlpResidual(x + outputs[l]);
        }
        scope.MoveToOuter(inputs);
        scope.MoveToOuter(outputs);
        scope.MoveToOuter(context.Rotary.Cos, context.Rotary.Sin);
        return (inputs, outputs, context);
    }
}
