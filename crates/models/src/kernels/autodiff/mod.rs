//! [`LayerKernelOps`] for `Autodiff<B>`: the forward runs `B`'s kernel and records a
//! handwritten backward step (`steps.rs`) that runs `B`'s backward kernel.

mod steps;

use super::ops::{
    BlockActivation, ConvBlockParts, LayerKernelBackward, LayerKernelOps, NormActivation,
    NormConvHandoffs, NormConvParts, PooledHandoff, ResidualHandoff, Window2d,
};
use activations::burn::backend::Autodiff;
use activations::burn::backend::TensorMetadata;
use activations::burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use activations::burn::backend::autodiff::ops::{Backward, OpsKind};
use activations::burn::backend::tensor::FloatTensor;
use activations::fused::Channelwise;
use steps::{
    BatchNormBackward, ChannelwiseMaxPoolBackward, ConvBackward, ConvBlockBackward,
    ConvResidualBackward, ConvSqueezeBackward, MaxPoolBackward, NormConvBackward,
    SpatialMaxPoolBackward,
};

impl<B: LayerKernelBackward, C: CheckpointStrategy> LayerKernelOps for Autodiff<B, C> {
    fn layer_channelwise_max_pool(
        x: FloatTensor<Self>,
        parameters: FloatTensor<Self>,
        op: Channelwise,
        handoff: Option<PooledHandoff>,
    ) -> FloatTensor<Self> {
        let (x, x_node) = x.into_parts();
        let (parameters, parameters_node) = parameters.into_parts();
        match ChannelwiseMaxPoolBackward(op, handoff)
            .prepare::<C>([x_node, parameters_node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let shape = x.shape();
                let (output, saved) =
                    B::layer_channelwise_max_pool_saving(x, parameters.clone(), op);
                prep.finish((shape, parameters, saved), output)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::layer_channelwise_max_pool(x, parameters, op, None))
            }
        }
    }

    fn layer_conv2d_squeeze(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        window: Window2d,
        handoff: PooledHandoff,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let (x, x_node) = x.into_parts();
        let (weight, weight_node) = weight.into_parts();
        let (bias, bias_node) = bias.into_parts();
        let step = ConvSqueezeBackward(window, handoff.clone());
        match step
            .prepare::<C>([x_node, weight_node, bias_node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (output, squeeze) =
                    B::layer_conv2d_squeeze(x.clone(), weight.clone(), bias, window, handoff);
                let squeeze = prep.finish((x, weight, output.clone()), squeeze);
                // The output's gradient reaches the convolution through the handoff.
                (FloatTensor::<Self>::new(output), squeeze)
            }
            OpsKind::UnTracked(prep) => {
                let (output, squeeze) = B::layer_conv2d_squeeze(x, weight, bias, window, handoff);
                (FloatTensor::<Self>::new(output), prep.finish(squeeze))
            }
        }
    }

    fn layer_conv_block(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        parameters: FloatTensor<Self>,
        window: Window2d,
        activation: BlockActivation,
    ) -> FloatTensor<Self> {
        let (x, x_node) = x.into_parts();
        let (weight, weight_node) = weight.into_parts();
        let (bias, bias_node) = bias.into_parts();
        let (parameters, parameters_node) = parameters.into_parts();
        match ConvBlockBackward(window, activation)
            .prepare::<C>([x_node, weight_node, bias_node, parameters_node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (output, saved) = B::layer_conv_block_saving(
                    x.clone(),
                    weight.clone(),
                    bias,
                    parameters.clone(),
                    window,
                    activation,
                );
                let parts = ConvBlockParts {
                    x,
                    weight,
                    parameters,
                    saved,
                };
                prep.finish(parts, output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::layer_conv_block(
                x, weight, bias, parameters, window, activation,
            )),
        }
    }

    fn layer_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        window: Window2d,
    ) -> FloatTensor<Self> {
        let (x, x_node) = x.into_parts();
        let (weight, weight_node) = weight.into_parts();
        let (bias, bias_node) = bias.into_parts();
        // Compute-bound: the state is kept, never recomputed by a checkpointing strategy.
        match ConvBackward(window)
            .prepare::<C>([x_node, weight_node, bias_node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let output = B::layer_conv2d(x.clone(), weight.clone(), bias, window);
                prep.finish((x, weight), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::layer_conv2d(x, weight, bias, window)),
        }
    }

    fn layer_conv2d_residual(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        residual: FloatTensor<Self>,
        window: Window2d,
        handoff: Option<ResidualHandoff>,
    ) -> FloatTensor<Self> {
        let (x, x_node) = x.into_parts();
        let (weight, weight_node) = weight.into_parts();
        let (bias, bias_node) = bias.into_parts();
        let (residual, residual_node) = residual.into_parts();
        match ConvResidualBackward(window, handoff)
            .prepare::<C>([x_node, weight_node, bias_node, residual_node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let output = B::layer_conv2d_residual(
                    x.clone(),
                    weight.clone(),
                    bias,
                    residual,
                    window,
                    None,
                );
                prep.finish((x, weight), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::layer_conv2d_residual(
                x, weight, bias, residual, window, None,
            )),
        }
    }

    fn layer_batch_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        running: FloatTensor<Self>,
        epsilon: f64,
        batch_statistics: bool,
        handoff: Option<ResidualHandoff>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let x_id = x.id();
        let (x, x_node) = x.into_parts();
        let (gamma, gamma_node) = gamma.into_parts();
        let (beta, beta_node) = beta.into_parts();
        let running = running.into_primitive();
        match BatchNormBackward(epsilon, batch_statistics, handoff.clone())
            .prepare::<C>([x_node, gamma_node, beta_node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (output, statistics) = B::layer_batch_norm(
                    x.clone(),
                    gamma.clone(),
                    beta,
                    running,
                    epsilon,
                    batch_statistics,
                    None,
                );
                if let Some(handoff) = &handoff {
                    handoff.arm(x_id);
                }
                let output = prep.finish((x, gamma, statistics.clone()), output);
                (output, FloatTensor::<Self>::new(statistics))
            }
            OpsKind::UnTracked(prep) => {
                let (output, statistics) =
                    B::layer_batch_norm(x, gamma, beta, running, epsilon, batch_statistics, None);
                (prep.finish(output), FloatTensor::<Self>::new(statistics))
            }
        }
    }

    fn layer_norm_conv2d(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        running: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        residual: FloatTensor<Self>,
        parameters: FloatTensor<Self>,
        window: Window2d,
        norm: NormActivation,
        handoffs: NormConvHandoffs,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let x_id = x.id();
        let (x, x_node) = x.into_parts();
        let (gamma, gamma_node) = gamma.into_parts();
        let (beta, beta_node) = beta.into_parts();
        let (weight, weight_node) = weight.into_parts();
        let (bias, bias_node) = bias.into_parts();
        let (residual, residual_node) = residual.into_parts();
        let (parameters, parameters_node) = parameters.into_parts();
        let running = running.into_primitive();
        let parents = [
            x_node,
            gamma_node,
            beta_node,
            weight_node,
            bias_node,
            residual_node,
            parameters_node,
        ];
        let forward = |x, gamma, beta, weight, parameters| {
            B::layer_norm_conv2d(
                x,
                gamma,
                beta,
                running,
                weight,
                bias,
                residual,
                parameters,
                window,
                norm,
                NormConvHandoffs::default(),
            )
        };
        match NormConvBackward(window, norm, handoffs.clone())
            .prepare::<C>(parents)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (output, statistics) = forward(
                    x.clone(),
                    gamma.clone(),
                    beta.clone(),
                    weight.clone(),
                    parameters.clone(),
                );
                if let Some(handoff) = &handoffs.x {
                    handoff.arm(x_id);
                }
                let parts = NormConvParts {
                    x,
                    gamma,
                    beta,
                    statistics: statistics.clone(),
                    weight,
                    parameters,
                };
                let output = prep.finish(parts, output);
                (output, FloatTensor::<Self>::new(statistics))
            }
            OpsKind::UnTracked(prep) => {
                let (output, statistics) = forward(x, gamma, beta, weight, parameters);
                (prep.finish(output), FloatTensor::<Self>::new(statistics))
            }
        }
    }

    fn layer_spatial_max_pool(
        x: FloatTensor<Self>,
        parameters: FloatTensor<Self>,
        running: FloatTensor<Self>,
        epsilon: f32,
        batch_statistics: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let (x, x_node) = x.into_parts();
        let (parameters, parameters_node) = parameters.into_parts();
        // Constants of the step: with batch statistics the backward differentiates through
        // them itself.
        let running = running.into_primitive();
        match SpatialMaxPoolBackward(epsilon, batch_statistics)
            .prepare::<C>([x_node, parameters_node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (output, statistics, conv, saved) = B::layer_spatial_max_pool_keeping(
                    x.clone(),
                    parameters.clone(),
                    running,
                    epsilon,
                    batch_statistics,
                );
                let state = ([x, conv, parameters, statistics.clone()], saved);
                let output = prep.finish(state, output);
                (output, FloatTensor::<Self>::new(statistics))
            }
            OpsKind::UnTracked(prep) => {
                let (output, statistics) =
                    B::layer_spatial_max_pool(x, parameters, running, epsilon, batch_statistics);
                (prep.finish(output), FloatTensor::<Self>::new(statistics))
            }
        }
    }

    fn layer_max_pool2d(x: FloatTensor<Self>, window: Window2d) -> FloatTensor<Self> {
        let (x, node) = x.into_parts();
        match MaxPoolBackward(window)
            .prepare::<C>([node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let output = B::layer_max_pool2d(x.clone(), window);
                prep.finish(x, output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::layer_max_pool2d(x, window)),
        }
    }
}
