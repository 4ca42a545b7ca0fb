//! [`FusedActivationOps`] for `Autodiff<B>`: the forward runs `B`'s fused kernel and records a
//! handwritten backward step that runs `B`'s fused backward kernel.

use super::op::Pointwise;
use super::ops::{FusedActivationBackward, FusedActivationOps};
use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::CheckpointStrategy};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;

/// The backward step of an element-wise activation. Its state is the one tensor the formula
/// needs: the output or the input (see [`Pointwise::saves_output`]).
#[derive(Debug)]
struct PointwiseBackward(Pointwise);

impl<B: FusedActivationBackward> Backward<B, 1> for PointwiseBackward {
    type State = FloatTensor<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [parent] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        if let Some(parent) = parent {
            let grad = B::fused_pointwise_backward(ops.state, grad, self.0);
            grads.register::<B>(parent.id, grad);
        }
    }
}

/// PReLU's backward step; its state is the input and the weight.
#[derive(Debug)]
struct PreluBackward;

impl<B: FusedActivationBackward> Backward<B, 2> for PreluBackward {
    type State = (FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [input_node, weight_node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (input, weight) = ops.state;
        let (input_grad, weight_grad) = B::fused_prelu_backward(input, weight, grad);
        if let Some(node) = input_node {
            grads.register::<B>(node.id, input_grad);
        }
        if let Some(node) = weight_node {
            grads.register::<B>(node.id, weight_grad);
        }
    }
}

/// APReLU's squeeze backward step; its state is the input.
#[derive(Debug)]
struct AprReluSqueezeBackward;

impl<B: FusedActivationBackward> Backward<B, 1> for AprReluSqueezeBackward {
    type State = FloatTensor<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [parent] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        if let Some(parent) = parent {
            let grad = B::fused_aprelu_squeeze_backward(ops.state, grad);
            grads.register::<B>(parent.id, grad);
        }
    }
}

/// The backward step of APReLU's `x > 0 ? x : α x`; its state is the input and the slopes.
#[derive(Debug)]
struct AprReluApplyBackward;

impl<B: FusedActivationBackward> Backward<B, 2> for AprReluApplyBackward {
    type State = (FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [input_node, slopes_node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (input, slopes) = ops.state;
        let (input_grad, slope_grad) = B::fused_aprelu_apply_backward(input, slopes, grad);
        if let Some(node) = input_node {
            grads.register::<B>(node.id, input_grad);
        }
        if let Some(node) = slopes_node {
            grads.register::<B>(node.id, slope_grad);
        }
    }
}

impl<B: FusedActivationBackward, C: CheckpointStrategy> FusedActivationOps for Autodiff<B, C> {
    fn fused_pointwise(input: FloatTensor<Self>, op: Pointwise) -> FloatTensor<Self> {
        let (primitive, node) = input.into_parts();
        // Compute-bound: the state is kept, never recomputed by a checkpointing strategy,
        // since it is the single tensor the step needs.
        match PointwiseBackward(op)
            .prepare::<C>([node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                if op.saves_output() {
                    // The input is no longer needed: the kernel may overwrite it.
                    let output = B::fused_pointwise(primitive, op);
                    prep.finish(output.clone(), output)
                } else {
                    let output = B::fused_pointwise(primitive.clone(), op);
                    prep.finish(primitive, output)
                }
            }
            OpsKind::UnTracked(prep) => prep.finish(B::fused_pointwise(primitive, op)),
        }
    }

    fn fused_prelu(input: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self> {
        let (input, input_node) = input.into_parts();
        let (weight, weight_node) = weight.into_parts();
        match PreluBackward
            .prepare::<C>([input_node, weight_node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let output = B::fused_prelu(input.clone(), weight.clone());
                prep.finish((input, weight), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::fused_prelu(input, weight)),
        }
    }

    fn fused_aprelu_squeeze(input: FloatTensor<Self>) -> FloatTensor<Self> {
        let (input, node) = input.into_parts();
        match AprReluSqueezeBackward
            .prepare::<C>([node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let output = B::fused_aprelu_squeeze(input.clone());
                prep.finish(input, output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::fused_aprelu_squeeze(input)),
        }
    }

    fn fused_aprelu_apply(
        input: FloatTensor<Self>,
        slopes: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let (input, input_node) = input.into_parts();
        let (slopes, slopes_node) = slopes.into_parts();
        match AprReluApplyBackward
            .prepare::<C>([input_node, slopes_node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let output = B::fused_aprelu_apply(input.clone(), slopes.clone());
                prep.finish((input, slopes), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::fused_aprelu_apply(input, slopes)),
        }
    }
}
