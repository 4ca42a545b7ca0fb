//! [`FusedActivationOps`] for `Autodiff<B>`: the forward runs `B`'s fused kernel and records a
//! handwritten backward step that runs `B`'s fused backward kernel.

use super::op::{Channelwise, Pointwise};
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

/// A channel-wise activation's backward step; its state is the input and the parameters.
#[derive(Debug)]
struct ChannelwiseBackward(Channelwise);

impl<B: FusedActivationBackward> Backward<B, 2> for ChannelwiseBackward {
    type State = (FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [input_node, parameters_node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (input, parameters) = ops.state;
        let (input_grad, parameter_grad) =
            B::fused_channelwise_backward(input, parameters, grad, self.0);
        if let Some(node) = input_node {
            grads.register::<B>(node.id, input_grad);
        }
        if let Some(node) = parameters_node {
            grads.register::<B>(node.id, parameter_grad);
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

/// The spatial max's backward step; its state is the input, the convolution the forward kept,
/// the parameters and the statistics.
#[derive(Debug)]
struct SpatialMaxBackward {
    epsilon: f32,
    batch_statistics: bool,
}

impl<B: FusedActivationBackward> Backward<B, 2> for SpatialMaxBackward {
    type State = [FloatTensor<B>; 4];

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [input_node, parameters_node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let [input, conv, parameters, statistics] = ops.state;
        let (input_grad, parameter_grad) = B::fused_spatial_max_backward(
            input,
            conv,
            parameters,
            statistics,
            grad,
            self.epsilon,
            self.batch_statistics,
        );
        if let Some(node) = input_node {
            grads.register::<B>(node.id, input_grad);
        }
        if let Some(node) = parameters_node {
            grads.register::<B>(node.id, parameter_grad);
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

    fn fused_channelwise(
        input: FloatTensor<Self>,
        parameters: FloatTensor<Self>,
        op: Channelwise,
    ) -> FloatTensor<Self> {
        let (input, input_node) = input.into_parts();
        let (parameters, parameters_node) = parameters.into_parts();
        match ChannelwiseBackward(op)
            .prepare::<C>([input_node, parameters_node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let output = B::fused_channelwise(input.clone(), parameters.clone(), op);
                prep.finish((input, parameters), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::fused_channelwise(input, parameters, op)),
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

    fn fused_spatial_max(
        input: FloatTensor<Self>,
        parameters: FloatTensor<Self>,
        running: FloatTensor<Self>,
        epsilon: f32,
        batch_statistics: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let (input, input_node) = input.into_parts();
        let (parameters, parameters_node) = parameters.into_parts();
        // Constants of the step: with batch statistics the backward differentiates through
        // them itself.
        let running = running.into_primitive();
        let step = SpatialMaxBackward {
            epsilon,
            batch_statistics,
        };
        let (output, statistics) = match step
            .prepare::<C>([input_node, parameters_node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (output, statistics, conv) = B::fused_spatial_max_keeping(
                    input.clone(),
                    parameters.clone(),
                    running,
                    epsilon,
                    batch_statistics,
                );
                let state = [input, conv, parameters, statistics.clone()];
                (prep.finish(state, output), statistics)
            }
            OpsKind::UnTracked(prep) => {
                let (output, statistics) =
                    B::fused_spatial_max(input, parameters, running, epsilon, batch_statistics);
                (prep.finish(output), statistics)
            }
        };
        (output, <FloatTensor<Self>>::new(statistics))
    }
}
