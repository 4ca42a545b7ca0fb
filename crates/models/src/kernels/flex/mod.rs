//! [`LayerKernelOps`] for Flex: convolution as per-sample im2col + `gemm` (`conv.rs`),
//! max-pooling as one pass (`pool.rs`), over the tensors' f32 storage; samples (or planes)
//! spread over rayon's threads.
mod activated;
mod aprelu_block;
mod batch_norm;
mod block;
mod conv;
mod lanes;
mod norm_conv;
mod parallel;
mod pool;
mod pool_rows;
mod pool_rows_avx512;
mod spatial_max_pool;

use super::ops::{
    BlockActivation, Conv2dGrads, ConvBlockParts, ConvGradients, LayerKernelBackward,
    LayerKernelOps, NormActivation, NormConvGrads, NormConvHandoffs, NormConvParts, PooledHandoff,
    PooledStash, ResidualHandoff, Window2d,
};
use activations::burn::backend::Flex;
use activations::burn::backend::TensorMetadata;
use activations::burn::backend::flex::FlexTensor;
use activations::burn::tensor::Shape;
use activations::fused::Channelwise;
use activations::fused::flex_storage::{contiguous, elements, from_vec};
use std::sync::Arc;

use aprelu_block::{
    SqueezeGrad, SqueezedGrad, channelwise_max_pool, channelwise_pool_backward,
    channelwise_pool_parameter_grad, planes,
};
use block::{BlockAct, BlockSaved, PooledGrad, conv_block_forward};

use conv::{
    ConvDims, DenseGrad, Epilogue, OutputGrad, conv2d_backward, conv2d_forward, conv2d_forward_then,
};
use pool::{PoolDims, max_pool_backward, max_pool_forward};

impl LayerKernelOps for Flex {
    fn layer_conv2d(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        window: Window2d,
    ) -> FlexTensor {
        let (x, weight, bias) = (contiguous(x), contiguous(weight), contiguous(bias));
        let dims = ConvDims::new(&x.shape(), &weight.shape(), window);
        let output = conv2d_forward(&dims, elements(&x), elements(&weight), elements(&bias));
        from_vec(output, dims.output_shape())
    }

    fn layer_conv2d_residual(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        residual: FlexTensor,
        window: Window2d,
        _: Option<ResidualHandoff>,
    ) -> FlexTensor {
        let (x, weight, bias) = (contiguous(x), contiguous(weight), contiguous(bias));
        let residual = contiguous(residual);
        let dims = ConvDims::new(&x.shape(), &weight.shape(), window);
        assert_eq!(
            residual.shape(),
            dims.output_shape(),
            "conv2d_residual: the residual has the output's shape"
        );
        let (x, weight, bias) = (elements(&x), elements(&weight), elements(&bias));
        let epilogue = Epilogue::Residual(elements(&residual));
        let (output, _) = conv2d_forward_then(&dims, x, weight, bias, None, epilogue);
        from_vec(output, dims.output_shape())
    }

    fn layer_spatial_max_pool(
        x: FlexTensor,
        parameters: FlexTensor,
        running: FlexTensor,
        epsilon: f32,
        batch_statistics: bool,
    ) -> (FlexTensor, FlexTensor) {
        let (pooled, statistics, _) =
            spatial_max_pool::forward(x, parameters, running, epsilon, batch_statistics, false);
        (pooled, statistics)
    }

    fn layer_conv_block(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        parameters: FlexTensor,
        window: Window2d,
        activation: BlockActivation,
    ) -> FlexTensor {
        conv_block(x, weight, bias, parameters, window, activation, false).0
    }

    fn layer_channelwise_max_pool(
        x: FlexTensor,
        parameters: FlexTensor,
        op: Channelwise,
        _handoff: Option<PooledHandoff>,
    ) -> FlexTensor {
        channelwise_max_pool(x, parameters, op, false).0
    }

    fn layer_conv2d_squeeze(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        window: Window2d,
        _handoff: PooledHandoff,
    ) -> (FlexTensor, FlexTensor) {
        let (x, weight, bias) = (contiguous(x), contiguous(weight), contiguous(bias));
        let dims = ConvDims::new(&x.shape(), &weight.shape(), window);
        let (x, weight, bias) = (elements(&x), elements(&weight), elements(&bias));
        let (output, summary) =
            conv2d_forward_then(&dims, x, weight, bias, None, Epilogue::Squeeze);
        let summary_shape = Shape::new([dims.batch, 2 * dims.out_channels]);
        (
            from_vec(output, dims.output_shape()),
            from_vec(summary, summary_shape),
        )
    }

    fn layer_batch_norm(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        running: FlexTensor,
        epsilon: f64,
        batch_statistics: bool,
        _: Option<ResidualHandoff>,
    ) -> (FlexTensor, FlexTensor) {
        batch_norm::forward(x, gamma, beta, running, epsilon, batch_statistics)
    }

    fn layer_norm_conv2d(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        running: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        residual: FlexTensor,
        parameters: FlexTensor,
        window: Window2d,
        norm: NormActivation,
        _: NormConvHandoffs,
    ) -> (FlexTensor, FlexTensor) {
        let inputs = [x, gamma, beta, running, weight, bias, residual, parameters];
        norm_conv::forward(inputs, window, norm)
    }

    fn layer_max_pool2d(x: FlexTensor, window: Window2d) -> FlexTensor {
        let x = contiguous(x);
        let shape = x.shape();
        let dims = PoolDims::new(&shape, window);
        let output = max_pool_forward(&dims, elements(&x));
        from_vec(
            output,
            Shape::new([shape[0], shape[1], dims.out_height, dims.out_width]),
        )
    }
}

/// The conv block's forward on the tensors' storage; `save` keeps what the backward needs.
fn conv_block(
    x: FlexTensor,
    weight: FlexTensor,
    bias: FlexTensor,
    parameters: FlexTensor,
    window: Window2d,
    activation: BlockActivation,
    save: bool,
) -> (FlexTensor, Option<BlockSaved>) {
    let (x, weight, bias, parameters) = (
        contiguous(x),
        contiguous(weight),
        contiguous(bias),
        contiguous(parameters),
    );
    let dims = ConvDims::new(&x.shape(), &weight.shape(), window);
    let (output, saved) = conv_block_forward(
        &dims,
        elements(&x),
        elements(&weight),
        elements(&bias),
        block_act(activation, elements(&parameters), &dims),
        save,
    );
    let shape = Shape::new([
        dims.batch,
        dims.out_channels,
        dims.out_height / 2,
        dims.out_width / 2,
    ]);
    (from_vec(output, shape), saved)
}

/// The kernels' view of a block's activation.
fn block_act<'a>(
    activation: BlockActivation,
    parameters: &'a [f32],
    dims: &ConvDims,
) -> BlockAct<'a> {
    match activation {
        BlockActivation::Pointwise(op) => BlockAct::Pointwise(op),
        BlockActivation::Channelwise(op) => {
            let rows = parameters.len() / op.parameter_count();
            assert!(
                parameters.len().is_multiple_of(op.parameter_count())
                    && (rows == 1 || rows == dims.out_channels),
                "conv block: one row of {} parameters, or one per output channel",
                op.parameter_count()
            );
            BlockAct::Channelwise { op, parameters }
        }
    }
}

/// The convolution's backward on contiguous `x` and `weight`, as tensors, and a conv block's
/// activation parameters' gradient (empty for element-wise activations).
fn conv_grads(
    dims: &ConvDims,
    x: &FlexTensor,
    weight: &FlexTensor,
    output_grad: &impl OutputGrad,
    wanted: ConvGradients,
) -> (Conv2dGrads<FlexTensor>, Vec<f32>) {
    let (dx, sums) = conv2d_backward(
        dims,
        elements(x),
        elements(weight),
        output_grad,
        wanted,
        None,
    );
    let grads = Conv2dGrads {
        x: dx.map(|dx| from_vec(dx, x.shape())),
        weight: wanted.weight.then(|| from_vec(sums.weight, weight.shape())),
        bias: wanted
            .bias
            .then(|| from_vec(sums.bias, Shape::new([dims.out_channels]))),
    };
    (grads, sums.parameter)
}

impl LayerKernelBackward for Flex {
    type BlockSaved = Arc<BlockSaved>;

    fn layer_spatial_max_pool_keeping(
        x: FlexTensor,
        parameters: FlexTensor,
        running: FlexTensor,
        epsilon: f32,
        batch_statistics: bool,
    ) -> (FlexTensor, FlexTensor, FlexTensor, Arc<BlockSaved>) {
        let (pooled, statistics, kept) =
            spatial_max_pool::forward(x, parameters, running, epsilon, batch_statistics, true);
        let (conv, saved) = kept.expect("asked to keep");
        (pooled, statistics, conv, Arc::new(saved))
    }

    fn layer_spatial_max_pool_backward(
        x: FlexTensor,
        conv: FlexTensor,
        parameters: FlexTensor,
        statistics: FlexTensor,
        saved: Arc<BlockSaved>,
        output_grad: FlexTensor,
        epsilon: f32,
        batch_statistics: bool,
    ) -> (FlexTensor, FlexTensor) {
        spatial_max_pool::backward(
            x,
            conv,
            parameters,
            statistics,
            &saved,
            output_grad,
            epsilon,
            batch_statistics,
        )
    }

    fn layer_batch_norm_backward(
        x: FlexTensor,
        gamma: FlexTensor,
        statistics: FlexTensor,
        epsilon: f64,
        batch_statistics: bool,
        output_grad: FlexTensor,
        residual_grad: Option<FlexTensor>,
    ) -> [FlexTensor; 3] {
        batch_norm::backward(
            x,
            gamma,
            statistics,
            epsilon,
            batch_statistics,
            output_grad,
            residual_grad,
        )
    }

    fn layer_conv_block_saving(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        parameters: FlexTensor,
        window: Window2d,
        activation: BlockActivation,
    ) -> (FlexTensor, Arc<BlockSaved>) {
        let (output, saved) = conv_block(x, weight, bias, parameters, window, activation, true);
        (output, Arc::new(saved.expect("asked to save")))
    }

    fn layer_conv_block_backward(
        parts: ConvBlockParts<Self>,
        output_grad: FlexTensor,
        window: Window2d,
        activation: BlockActivation,
        wanted: ConvGradients,
    ) -> (Conv2dGrads<FlexTensor>, Option<FlexTensor>) {
        let (x, weight, parameters, output_grad) = (
            contiguous(parts.x),
            contiguous(parts.weight),
            contiguous(parts.parameters),
            contiguous(output_grad),
        );
        let dims = ConvDims::new(&x.shape(), &weight.shape(), window);
        let act = block_act(activation, elements(&parameters), &dims);
        let pooled = PooledGrad::new(&dims, elements(&output_grad), &parts.saved, act);
        let (grads, parameter_grad) = conv_grads(&dims, &x, &weight, &pooled, wanted);
        let parameter_grad = matches!(activation, BlockActivation::Channelwise(_))
            .then(|| from_vec(parameter_grad, parameters.shape()));
        (grads, parameter_grad)
    }

    fn layer_channelwise_max_pool_saving(
        x: FlexTensor,
        parameters: FlexTensor,
        op: Channelwise,
    ) -> (FlexTensor, Arc<BlockSaved>) {
        let (output, saved) = channelwise_max_pool(x, parameters, op, true);
        (output, Arc::new(saved.expect("asked to save")))
    }

    fn layer_channelwise_max_pool_parameter_grad(
        x_shape: Shape,
        parameters: FlexTensor,
        saved: Arc<BlockSaved>,
        output_grad: FlexTensor,
        op: Channelwise,
    ) -> (FlexTensor, FlexTensor) {
        let (parameters, output_grad) = (contiguous(parameters), contiguous(output_grad));
        let activation = BlockAct::PerSample {
            op,
            parameters: elements(&parameters),
            channels: x_shape[1],
        };
        let batch = x_shape[0];
        let grad = PooledGrad::of_pooling(
            planes(&x_shape),
            batch,
            elements(&output_grad),
            &saved,
            activation,
        );
        let (parameter_grad, winner_grad) = channelwise_pool_parameter_grad(&grad, batch);
        (
            from_vec(parameter_grad, parameters.shape()),
            from_vec(winner_grad, output_grad.shape()),
        )
    }

    fn layer_conv2d_squeeze_backward(
        x: FlexTensor,
        weight: FlexTensor,
        output: FlexTensor,
        squeeze_grad: FlexTensor,
        pooled: Option<PooledStash<Self>>,
        window: Window2d,
        wanted: ConvGradients,
    ) -> Conv2dGrads<FlexTensor> {
        let (x, weight, output, squeeze_grad) = (
            contiguous(x),
            contiguous(weight),
            contiguous(output),
            contiguous(squeeze_grad),
        );
        let dims = ConvDims::new(&x.shape(), &weight.shape(), window);
        let squeeze = SqueezeGrad::new(
            elements(&output),
            elements(&squeeze_grad),
            dims.batch,
            dims.out_channels,
        );
        let pooled = pooled.map(|stash| (contiguous(stash.winner_grad), stash.saved));
        let pooled_grad = pooled.as_ref().map(|(grad, saved)| {
            let pooling = planes(&dims.output_shape());
            PooledGrad::of_pooling(
                pooling,
                dims.batch,
                elements(grad),
                saved,
                BlockAct::Applied,
            )
        });
        let output_grad = SqueezedGrad {
            squeeze,
            pooled: pooled_grad,
            sample_len: dims.output_len(),
        };
        conv_grads(&dims, &x, &weight, &output_grad, wanted).0
    }

    fn layer_channelwise_max_pool_backward(
        x_shape: Shape,
        parameters: FlexTensor,
        saved: Arc<BlockSaved>,
        output_grad: FlexTensor,
        op: Channelwise,
    ) -> (FlexTensor, FlexTensor) {
        let (parameters, output_grad) = (contiguous(parameters), contiguous(output_grad));
        let pooling = planes(&x_shape);
        let activation = BlockAct::PerSample {
            op,
            parameters: elements(&parameters),
            channels: x_shape[1],
        };
        let batch = x_shape[0];
        let grad =
            PooledGrad::of_pooling(pooling, batch, elements(&output_grad), &saved, activation);
        let (x_grad, parameter_grad) = channelwise_pool_backward(&grad, batch);
        (
            from_vec(x_grad, x_shape),
            from_vec(parameter_grad, parameters.shape()),
        )
    }

    fn layer_norm_conv2d_backward(
        parts: NormConvParts<Flex>,
        output_grad: FlexTensor,
        window: Window2d,
        norm: NormActivation,
        wanted: NormConvGrads<bool>,
        residual_grad: Option<FlexTensor>,
    ) -> NormConvGrads<Option<FlexTensor>> {
        norm_conv::backward(parts, output_grad, window, norm, wanted, residual_grad)
    }

    fn layer_conv2d_backward(
        x: FlexTensor,
        weight: FlexTensor,
        output_grad: FlexTensor,
        window: Window2d,
        wanted: ConvGradients,
    ) -> Conv2dGrads<FlexTensor> {
        let (x, weight, output_grad) = (contiguous(x), contiguous(weight), contiguous(output_grad));
        let dims = ConvDims::new(&x.shape(), &weight.shape(), window);
        assert_eq!(
            output_grad.shape(),
            dims.output_shape(),
            "conv2d output gradient"
        );
        let output_grad = DenseGrad {
            grad: elements(&output_grad),
            sample_len: dims.output_len(),
        };
        conv_grads(&dims, &x, &weight, &output_grad, wanted).0
    }

    fn layer_max_pool2d_backward(
        x: FlexTensor,
        output_grad: FlexTensor,
        window: Window2d,
    ) -> FlexTensor {
        let (x, output_grad) = (contiguous(x), contiguous(output_grad));
        let dims = PoolDims::new(&x.shape(), window);
        let dx = max_pool_backward(&dims, elements(&x), elements(&output_grad));
        from_vec(dx, x.shape())
    }
}
