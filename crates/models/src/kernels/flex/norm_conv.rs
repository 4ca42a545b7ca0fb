//! A pre-activation block's BatchNorm, activation and convolution as one op: the statistics
//! in one pass over `x`, then the convolution reads each sample through the normalisation and
//! the activation ([`Activated`]), in cache, where the separate layers write BatchNorm's
//! output, rewrite it through the activation and read it back. The backward rebuilds each
//! sample's activated input for the weight gradient the same way, takes the activation's
//! gradient (and a channel-wise activation's parameter sums) while each sample's input
//! gradient is in cache, then runs BatchNorm's backward. Values and gradients are those of the
//! three ops, to the bit (the parameter sums within rounding).

use super::super::ops::{
    BlockActivation, ConvGradients, NormActivation, NormConvGrads, NormConvParts, Window2d,
};
use super::activated::Activated;
use super::batch_norm::{NormDims, batch_norm_backward, batch_statistics, scales};
use super::block::parameter_row;
use super::conv::{ConvDims, DenseGrad, Epilogue, InputMap, conv2d_backward, conv2d_forward_then};
use activations::burn::backend::Flex;
use activations::burn::backend::TensorMetadata;
use activations::burn::backend::flex::FlexTensor;
use activations::burn::tensor::Shape;
use activations::fused::flex_storage::{contiguous, elements, from_vec};

impl InputMap for Activated {
    fn map(&self, sample: &[f32], out: &mut [f32]) {
        self.apply(sample, out);
    }

    fn parameter_len(&self) -> usize {
        Activated::parameter_len(self)
    }

    fn last_step_grad(
        &self,
        sample: &[f32],
        mapped: Option<&[f32]>,
        grad: &mut [f32],
        parameter_grad: &mut [f32],
    ) {
        self.activation_grad(sample, mapped, grad, parameter_grad);
    }
}

/// [`Activated`] for `x`'s channels with the statistics `(mean, variance)` and the
/// activation's `parameters`.
fn activated(
    dims: &NormDims,
    (mean, variance): (Vec<f32>, &[f32]),
    (gamma, beta): (&[f32], &[f32]),
    norm: NormActivation,
    parameters: &[f32],
) -> Activated {
    let (ops, learned) = match norm.activation {
        BlockActivation::Pointwise(op) => (vec![op; dims.channels], None),
        BlockActivation::Channelwise(op) => {
            let count = op.parameter_count();
            let rows = parameters.len() / count;
            assert!(
                parameters.len().is_multiple_of(count) && (rows == 1 || rows == dims.channels),
                "norm_conv2d: one row of {count} parameters, or one per input channel"
            );
            let row = |channel| parameter_row(parameters.len(), count, channel);
            let ops = (0..dims.channels)
                .map(|channel| op.at(&parameters[row(channel)]))
                .collect();
            (ops, Some((op, parameters.to_vec())))
        }
    };
    Activated {
        mean,
        scale: scales(variance, gamma, norm.epsilon),
        shift: beta.to_vec(),
        ops,
        learned,
        plane: dims.plane,
    }
}

/// [`LayerKernelOps::layer_norm_conv2d`](super::super::LayerKernelOps::layer_norm_conv2d) on
/// Flex tensors (`inputs`: x, gamma, beta, running, weight, bias, residual, parameters):
/// `(output, [mean; variance])`.
pub fn forward(
    inputs: [FlexTensor; 8],
    window: Window2d,
    norm: NormActivation,
) -> (FlexTensor, FlexTensor) {
    let [x, gamma, beta, running, weight, bias, residual, parameters] = inputs.map(contiguous);
    let norm_dims = NormDims::new(&x.shape());
    let (mean, variance) = if norm.batch_statistics {
        batch_statistics(&norm_dims, elements(&x))
    } else {
        let (mean, variance) = elements(&running).split_at(norm_dims.channels);
        (mean.to_vec(), variance.to_vec())
    };
    let activated = activated(
        &norm_dims,
        (mean, &variance),
        (elements(&gamma), elements(&beta)),
        norm,
        elements(&parameters),
    );
    let dims = ConvDims::new(&x.shape(), &weight.shape(), window);
    let epilogue = if residual.shape().num_elements() == 0 {
        Epilogue::None
    } else {
        assert_eq!(
            residual.shape(),
            dims.output_shape(),
            "norm_conv2d: the residual has the output's shape"
        );
        Epilogue::Residual(elements(&residual))
    };
    let (output, _) = conv2d_forward_then(
        &dims,
        elements(&x),
        elements(&weight),
        elements(&bias),
        Some(&activated),
        epilogue,
    );
    let mut statistics = activated.mean;
    statistics.extend(variance);
    (
        from_vec(output, dims.output_shape()),
        from_vec(statistics, Shape::new([2, norm_dims.channels])),
    )
}

/// [`LayerKernelBackward::layer_norm_conv2d_backward`](super::super::LayerKernelBackward::layer_norm_conv2d_backward)
/// on Flex tensors.
pub fn backward(
    parts: NormConvParts<Flex>,
    output_grad: FlexTensor,
    window: Window2d,
    norm: NormActivation,
    wanted: NormConvGrads<bool>,
    residual_grad: Option<FlexTensor>,
) -> NormConvGrads<Option<FlexTensor>> {
    let NormConvParts {
        x,
        gamma,
        beta,
        statistics,
        weight,
        parameters,
    } = parts;
    let [x, gamma, beta, statistics, weight, parameters, output_grad] =
        [x, gamma, beta, statistics, weight, parameters, output_grad].map(contiguous);
    let residual_grad = residual_grad.map(contiguous);
    let norm_dims = NormDims::new(&x.shape());
    let dims = ConvDims::new(&x.shape(), &weight.shape(), window);
    assert_eq!(
        output_grad.shape(),
        dims.output_shape(),
        "norm_conv2d output gradient"
    );
    let (mean, variance) = elements(&statistics).split_at(norm_dims.channels);
    let (gamma_values, beta_values) = (elements(&gamma), elements(&beta));
    let activated = activated(
        &norm_dims,
        (mean.to_vec(), variance),
        (gamma_values, beta_values),
        norm,
        elements(&parameters),
    );
    // The activation's output gradient is needed for any of BatchNorm's and the
    // activation's.
    let through_norm = wanted.x || wanted.gamma || wanted.beta || wanted.parameters;
    let conv_wanted = ConvGradients {
        x: through_norm,
        weight: wanted.weight,
        bias: wanted.bias,
    };
    let dense = DenseGrad {
        grad: elements(&output_grad),
        sample_len: dims.output_len(),
    };
    let (activation_grad, sums) = conv2d_backward(
        &dims,
        elements(&x),
        elements(&weight),
        &dense,
        conv_wanted,
        Some(&activated),
    );
    let per_channel = || Shape::new([norm_dims.channels]);
    let mut grads = NormConvGrads {
        x: None,
        gamma: None,
        beta: None,
        weight: wanted.weight.then(|| from_vec(sums.weight, weight.shape())),
        bias: wanted
            .bias
            .then(|| from_vec(sums.bias, Shape::new([dims.out_channels]))),
        parameters: (wanted.parameters && activated.learned.is_some())
            .then(|| from_vec(sums.parameter, parameters.shape())),
    };
    if let Some(activation_grad) = activation_grad {
        let (x_grad, gamma_grad, beta_grad) = batch_norm_backward(
            &norm_dims,
            elements(&x),
            gamma_values,
            mean,
            variance,
            norm.epsilon,
            norm.batch_statistics,
            &activation_grad,
            residual_grad.as_ref().map(elements),
        );
        grads.x = wanted.x.then(|| from_vec(x_grad, x.shape()));
        grads.gamma = wanted.gamma.then(|| from_vec(gamma_grad, per_channel()));
        grads.beta = wanted.beta.then(|| from_vec(beta_grad, per_channel()));
    }
    grads
}
