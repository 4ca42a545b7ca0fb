//! The handwritten backward steps the autodiff ops record, one per op: each runs `B`'s
//! backward kernel and registers the gradients its parents want.

use super::super::ops::{
    BlockActivation, Conv2dGrads, ConvBlockParts, ConvGradients, LayerKernelBackward,
    NormActivation, NormConvGrads, NormConvHandoffs, NormConvParts, PooledHandoff, PooledStash,
    ResidualHandoff, Window2d,
};
use activations::burn::backend::autodiff::NodeId;
use activations::burn::backend::autodiff::checkpoint::base::Checkpointer;
use activations::burn::backend::autodiff::grads::Gradients;
use activations::burn::backend::autodiff::ops::{Backward, Ops};
use activations::burn::backend::tensor::FloatTensor;
use activations::burn::tensor::Shape;
use activations::fused::Channelwise;

/// The gradients a convolution's parents (x, weight, bias) want: those that are tracked.
fn wanted<T>(parents: &[Option<T>; 3]) -> ConvGradients {
    ConvGradients {
        x: parents[0].is_some(),
        weight: parents[1].is_some(),
        bias: parents[2].is_some(),
    }
}

/// Registers each computed gradient with its parent (x, weight, bias).
fn register<B: LayerKernelBackward>(
    grads: &mut Gradients,
    parents: [Option<NodeId>; 3],
    computed: Conv2dGrads<FloatTensor<B>>,
) {
    let computed = [computed.x, computed.weight, computed.bias];
    for (node, grad) in parents.into_iter().zip(computed) {
        if let (Some(node), Some(grad)) = (node, grad) {
            grads.register::<B>(node, grad);
        }
    }
}

/// The convolution's gradients that its parents (x, weight, bias) want, registered with them.
fn convolution_grads<B: LayerKernelBackward>(
    grads: &mut Gradients,
    parents: [Option<NodeId>; 3],
    (x, weight): (FloatTensor<B>, FloatTensor<B>),
    output_grad: FloatTensor<B>,
    window: Window2d,
) {
    let wanted = wanted(&parents);
    if wanted.x || wanted.weight || wanted.bias {
        let computed = B::layer_conv2d_backward(x, weight, output_grad, window, wanted);
        register::<B>(grads, parents, computed);
    }
}

/// The convolution's backward step (parents: x, weight, bias). Its state is the input and the
/// weight.
#[derive(Debug)]
pub(super) struct ConvBackward(pub(super) Window2d);

impl<B: LayerKernelBackward> Backward<B, 3> for ConvBackward {
    type State = (FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let output_grad = grads.consume::<B>(&ops.node);
        let parents = ops.parents.map(|p| p.map(|node| node.id));
        convolution_grads::<B>(grads, parents, ops.state, output_grad, self.0);
    }
}

/// A convolution plus a residual's backward step (parents: x, weight, bias, residual); its
/// state is the input and the weight. The residual's gradient is the output's, left in the
/// handoff when a BatchNorm of the residual armed it.
#[derive(Debug)]
pub(super) struct ConvResidualBackward(pub(super) Window2d, pub(super) Option<ResidualHandoff>);

impl<B: LayerKernelBackward> Backward<B, 4> for ConvResidualBackward {
    type State = (FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 4>, grads: &mut Gradients, _: &mut Checkpointer) {
        let output_grad = grads.consume::<B>(&ops.node);
        let [x, weight, bias, residual] = ops.parents.map(|p| p.map(|node| node.id));
        if let Some(residual) = residual {
            residual_grad::<B>(grads, residual, self.1.as_ref(), output_grad.clone());
        }
        convolution_grads::<B>(grads, [x, weight, bias], ops.state, output_grad, self.0);
    }
}

/// Registers the output's gradient `grad` with the residual `node`, or leaves it in the
/// `handoff` when a BatchNorm of the residual armed it.
fn residual_grad<B: LayerKernelBackward>(
    grads: &mut Gradients,
    node: NodeId,
    handoff: Option<&ResidualHandoff>,
    grad: FloatTensor<B>,
) {
    let handed = match handoff {
        Some(handoff) => handoff.put::<B>(node, grad),
        None => Err(grad),
    };
    if let Err(grad) = handed {
        grads.register::<B>(node, grad);
    }
}

/// The backward step of a BatchNorm, activation and convolution (parents: x, gamma, beta,
/// weight, bias, residual, the activation's parameters); its state is what [`NormConvParts`]
/// holds.
#[derive(Debug)]
pub(super) struct NormConvBackward(
    pub(super) Window2d,
    pub(super) NormActivation,
    pub(super) NormConvHandoffs,
);

impl<B: LayerKernelBackward> Backward<B, 7> for NormConvBackward {
    type State = NormConvParts<B>;

    fn backward(self, ops: Ops<Self::State, 7>, grads: &mut Gradients, _: &mut Checkpointer) {
        let output_grad = grads.consume::<B>(&ops.node);
        let [x, gamma, beta, weight, bias, residual, parameters] =
            ops.parents.map(|p| p.map(|node| node.id));
        let Self(window, norm, handoffs) = self;
        if let Some(residual) = residual {
            residual_grad::<B>(
                grads,
                residual,
                handoffs.residual.as_ref(),
                output_grad.clone(),
            );
        }
        let handed = handoffs.x.and_then(|handoff| handoff.take::<B>());
        let nodes = NormConvGrads {
            x,
            gamma,
            beta,
            weight,
            bias,
            parameters,
        };
        let wanted = NormConvGrads {
            x: x.is_some(),
            gamma: gamma.is_some(),
            beta: beta.is_some(),
            weight: weight.is_some(),
            bias: bias.is_some(),
            parameters: parameters.is_some(),
        };
        let computed =
            B::layer_norm_conv2d_backward(ops.state, output_grad, window, norm, wanted, handed);
        let pairs = [
            (nodes.x, computed.x),
            (nodes.gamma, computed.gamma),
            (nodes.beta, computed.beta),
            (nodes.weight, computed.weight),
            (nodes.bias, computed.bias),
            (nodes.parameters, computed.parameters),
        ];
        for (node, grad) in pairs {
            if let (Some(node), Some(grad)) = (node, grad) {
                grads.register::<B>(node, grad);
            }
        }
    }
}

/// BatchNorm's backward step (parents: x, gamma, beta); its state is the input, gamma and the
/// statistics used. Holds ε, whether they were the batch's own, and the handoff where a
/// residual convolution of `x` leaves its gradient.
#[derive(Debug)]
pub(super) struct BatchNormBackward(
    pub(super) f64,
    pub(super) bool,
    pub(super) Option<ResidualHandoff>,
);

impl<B: LayerKernelBackward> Backward<B, 3> for BatchNormBackward {
    type State = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let output_grad = grads.consume::<B>(&ops.node);
        let (x, gamma, statistics) = ops.state;
        let residual_grad = self.2.and_then(|handoff| handoff.take::<B>());
        let computed = B::layer_batch_norm_backward(
            x,
            gamma,
            statistics,
            self.0,
            self.1,
            output_grad,
            residual_grad,
        );
        for (parent, grad) in ops.parents.into_iter().zip(computed) {
            if let Some(parent) = parent {
                grads.register::<B>(parent.id, grad);
            }
        }
    }
}

/// The spatial max + pooling's backward step (parents: x, the parameters); its state is the
/// input, the kept convolution, the parameters, the statistics and the winners. Holds ε and
/// whether the statistics were the batch's own.
#[derive(Debug)]
pub(super) struct SpatialMaxPoolBackward(pub(super) f32, pub(super) bool);

impl<B: LayerKernelBackward> Backward<B, 2> for SpatialMaxPoolBackward {
    type State = ([FloatTensor<B>; 4], <B as LayerKernelBackward>::BlockSaved);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let output_grad = grads.consume::<B>(&ops.node);
        let ([x, conv, parameters, statistics], saved) = ops.state;
        let (x_grad, parameter_grad) = B::layer_spatial_max_pool_backward(
            x,
            conv,
            parameters,
            statistics,
            saved,
            output_grad,
            self.0,
            self.1,
        );
        let [x_node, parameters_node] = ops.parents;
        for (parent, grad) in [(x_node, x_grad), (parameters_node, parameter_grad)] {
            if let Some(parent) = parent {
                grads.register::<B>(parent.id, grad);
            }
        }
    }
}

/// Max-pooling's backward step; its state is the input.
#[derive(Debug)]
pub(super) struct MaxPoolBackward(pub(super) Window2d);

impl<B: LayerKernelBackward> Backward<B, 1> for MaxPoolBackward {
    type State = FloatTensor<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [parent] = ops.parents;
        let output_grad = grads.consume::<B>(&ops.node);
        if let Some(parent) = parent {
            let grad = B::layer_max_pool2d_backward(ops.state, output_grad, self.0);
            grads.register::<B>(parent.id, grad);
        }
    }
}

/// A conv block's backward step (parents: x, weight, bias, the activation's parameters). Its
/// state is the input, the weight, the parameters and what the forward kept for it.
#[derive(Debug)]
pub(super) struct ConvBlockBackward(pub(super) Window2d, pub(super) BlockActivation);

impl<B: LayerKernelBackward> Backward<B, 4> for ConvBlockBackward {
    type State = ConvBlockParts<B>;

    fn backward(self, ops: Ops<Self::State, 4>, grads: &mut Gradients, _: &mut Checkpointer) {
        let output_grad = grads.consume::<B>(&ops.node);
        let [x, weight, bias, parameters] = ops.parents.map(|p| p.map(|node| node.id));
        let conv_parents = [x, weight, bias];
        let (computed, parameter_grad) = B::layer_conv_block_backward(
            ops.state,
            output_grad,
            self.0,
            self.1,
            wanted(&conv_parents),
        );
        register::<B>(grads, conv_parents, computed);
        if let (Some(node), Some(grad)) = (parameters, parameter_grad) {
            grads.register::<B>(node, grad);
        }
    }
}

/// The backward step of a channel-wise activation with per-sample parameters and 2×2
/// max-pooling (parents: x, parameters). Its state is the input's shape, the parameters and
/// what the forward kept; with a handoff, the output gradient goes there for the convolution's
/// step instead of becoming x's.
#[derive(Debug)]
pub(super) struct ChannelwiseMaxPoolBackward(
    pub(super) Channelwise,
    pub(super) Option<PooledHandoff>,
);

impl<B: LayerKernelBackward> Backward<B, 2> for ChannelwiseMaxPoolBackward {
    type State = (Shape, FloatTensor<B>, B::BlockSaved);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let output_grad = grads.consume::<B>(&ops.node);
        let [x, parameters_node] = ops.parents.map(|p| p.map(|node| node.id));
        let (shape, parameters, saved) = ops.state;
        let op = self.0;
        if let Some(handoff) = self.1 {
            let (parameter_grad, winner_grad) = B::layer_channelwise_max_pool_parameter_grad(
                shape,
                parameters,
                saved.clone(),
                output_grad,
                op,
            );
            if let Some(node) = parameters_node {
                grads.register::<B>(node, parameter_grad);
            }
            handoff.put::<B>(PooledStash { winner_grad, saved });
            return;
        }
        let (x_grad, parameter_grad) =
            B::layer_channelwise_max_pool_backward(shape, parameters, saved, output_grad, op);
        for (node, grad) in [(x, x_grad), (parameters_node, parameter_grad)] {
            if let Some(node) = node {
                grads.register::<B>(node, grad);
            }
        }
    }
}

/// The backward step of a convolution and APReLU's squeeze of its output (parents: x, weight,
/// bias): from the squeeze's gradient and the pooling's output gradient left in the handoff.
/// Its state is the input, the weight and the convolution's output.
#[derive(Debug)]
pub(super) struct ConvSqueezeBackward(pub(super) Window2d, pub(super) PooledHandoff);

impl<B: LayerKernelBackward> Backward<B, 3> for ConvSqueezeBackward {
    type State = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let squeeze_grad = grads.consume::<B>(&ops.node);
        let wanted = wanted(&ops.parents);
        let (x, weight, output) = ops.state;
        let pooled = self.1.take::<B>();
        let computed = B::layer_conv2d_squeeze_backward(
            x,
            weight,
            output,
            squeeze_grad,
            pooled,
            self.0,
            wanted,
        );
        register::<B>(grads, ops.parents.map(|p| p.map(|node| node.id)), computed);
    }
}
