//! [`FusedActivationOps`] for Flex: the kernels run on the tensors' f32 storage, in place when
//! the tensor is contiguous and nothing else holds its buffer.

use super::flex_storage::{contiguous, elements, elements_mut, from_vec, new_tensor, owned_copy};
use super::kernels::channel::ChannelLayout;
use super::kernels::spatial_max::{self, Planes};
use super::kernels::spatial_max_backward;
use super::kernels::squeeze::{self, SampleChannels};
use super::op::{Channelwise, Pointwise};
use super::ops::{FusedActivationBackward, FusedActivationOps};
use burn::backend::flex::FlexTensor;
use burn::backend::{Flex, TensorMetadata};

impl FusedActivationOps for Flex {
    fn fused_pointwise(input: FlexTensor, op: Pointwise) -> FlexTensor {
        let mut input = contiguous(input);
        if let Some(values) = elements_mut(&mut input) {
            (op.lowering().forward_in_place)(op.parameters(), values);
            return input;
        }
        new_tensor(input.shape(), |out| {
            (op.lowering().forward_into)(op.parameters(), elements(&input), out)
        })
    }

    fn fused_channelwise(input: FlexTensor, parameters: FlexTensor, op: Channelwise) -> FlexTensor {
        let input = contiguous(input);
        let parameters = contiguous(parameters);
        let layout = channel_layout(&input, &parameters);
        new_tensor(input.shape(), |out| {
            (op.lowering().forward)(elements(&input), elements(&parameters), layout, out)
        })
    }

    fn fused_aprelu_squeeze(input: FlexTensor) -> FlexTensor {
        let input = contiguous(input);
        let layout = sample_channels(&input);
        let summary = squeeze::aprelu_squeeze(elements(&input), layout);
        from_vec(summary, [layout.samples, 2 * layout.channels].into())
    }

    fn fused_spatial_max(
        input: FlexTensor,
        parameters: FlexTensor,
        running: FlexTensor,
        epsilon: f32,
        batch_statistics: bool,
    ) -> (FlexTensor, FlexTensor) {
        let running = (!batch_statistics).then_some(running);
        let (output, statistics, _) =
            spatial_max_forward(input, parameters, running, epsilon, false);
        (output, statistics)
    }
}

/// The spatial max's forward: the output, the statistics used and, with `keep`, `conv(x)`.
fn spatial_max_forward(
    input: FlexTensor,
    parameters: FlexTensor,
    running: Option<FlexTensor>,
    epsilon: f32,
    keep: bool,
) -> (FlexTensor, FlexTensor, Option<FlexTensor>) {
    let (input, parameters) = (contiguous(input), contiguous(parameters));
    let running = running.map(contiguous);
    let planes = planes(&input);
    // Written once each by the kernel (`new_tensor`): no zeroing pass over two batch-sized
    // buffers.
    let mut statistics = Vec::new();
    let mut conv = None;
    let output = new_tensor(input.shape(), |out| {
        let run = |out: &mut [std::mem::MaybeUninit<f32>],
                   conv: Option<&mut [std::mem::MaybeUninit<f32>]>| {
            spatial_max::forward(
                elements(&input),
                elements(&parameters),
                running.as_ref().map(elements),
                planes,
                epsilon,
                out,
                conv,
            )
        };
        if keep {
            conv = Some(new_tensor(input.shape(), |conv| {
                statistics = run(out, Some(conv));
            }));
        } else {
            statistics = run(out, None);
        }
    });
    (
        output,
        from_vec(statistics, [planes.channels, 2].into()),
        conv,
    )
}

/// `[N, C, H, W]`.
fn planes(input: &FlexTensor) -> Planes {
    let dims = input.shape();
    assert_eq!(dims.num_dims(), 4, "the spatial max takes [N, C, H, W]");
    Planes {
        samples: dims[0],
        channels: dims[1],
        height: dims[2],
        width: dims[3],
    }
}

/// `[N, C, ...]` as rows of one sample's channel.
fn sample_channels(input: &FlexTensor) -> SampleChannels {
    let dims = input.shape();
    assert!(dims.num_dims() >= 2, "APReLU: [N, C, ...]");
    SampleChannels {
        samples: dims[0],
        channels: dims[1],
        inner: dims.iter().skip(2).product::<usize>().max(1),
    }
}

/// `[N, C, ...]` with parameters `[rows, K]`: one row per channel, per sample and channel, or
/// one for the whole tensor.
fn channel_layout(input: &FlexTensor, parameters: &FlexTensor) -> ChannelLayout {
    let dims = input.shape();
    let rows = parameters.shape()[0];
    if rows == 1 {
        return ChannelLayout {
            rows: 1,
            inner: dims.num_elements().max(1),
        };
    }
    assert!(
        dims.num_dims() >= 2 && (dims[1] == rows || dims[0] * dims[1] == rows),
        "channel-wise parameters: one row per channel (axis 1) or per sample and channel"
    );
    ChannelLayout {
        rows,
        inner: dims.iter().skip(2).product::<usize>().max(1),
    }
}

impl FusedActivationBackward for Flex {
    fn fused_pointwise_backward(saved: FlexTensor, grad: FlexTensor, op: Pointwise) -> FlexTensor {
        let mut saved = contiguous(saved);
        let mut grad = contiguous(grad);
        // Write into whichever buffer nobody else holds; allocate only when both are shared.
        if let Some(values) = elements_mut(&mut grad) {
            (op.lowering().backward_into_grad)(op.parameters(), elements(&saved), values);
            return grad;
        }
        if let Some(values) = elements_mut(&mut saved) {
            (op.lowering().backward_into_saved)(op.parameters(), values, elements(&grad));
            return saved;
        }
        new_tensor(grad.shape(), |out| {
            (op.lowering().backward_new)(op.parameters(), elements(&saved), elements(&grad), out)
        })
    }

    fn fused_channelwise_backward(
        input: FlexTensor,
        parameters: FlexTensor,
        grad: FlexTensor,
        op: Channelwise,
    ) -> (FlexTensor, FlexTensor) {
        let input = contiguous(input);
        let parameters = contiguous(parameters);
        let mut grad = contiguous(grad);
        if elements_mut(&mut grad).is_none() {
            grad = owned_copy(&grad);
        }
        let layout = channel_layout(&input, &parameters);
        let values = elements_mut(&mut grad).expect("owned above");
        let parameter_grad =
            (op.lowering().backward)(elements(&input), elements(&parameters), layout, values);
        (grad, from_vec(parameter_grad, parameters.shape()))
    }

    fn fused_aprelu_squeeze_backward(input: FlexTensor, grad: FlexTensor) -> FlexTensor {
        let input = contiguous(input);
        let grad = contiguous(grad);
        let layout = sample_channels(&input);
        new_tensor(input.shape(), |out| {
            squeeze::aprelu_squeeze_backward(elements(&input), elements(&grad), layout, out)
        })
    }

    fn fused_spatial_max_keeping(
        input: FlexTensor,
        parameters: FlexTensor,
        running: FlexTensor,
        epsilon: f32,
        batch_statistics: bool,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let running = (!batch_statistics).then_some(running);
        let (output, statistics, conv) =
            spatial_max_forward(input, parameters, running, epsilon, true);
        (output, statistics, conv.expect("kept"))
    }

    fn fused_spatial_max_backward(
        input: FlexTensor,
        conv: FlexTensor,
        parameters: FlexTensor,
        statistics: FlexTensor,
        grad: FlexTensor,
        epsilon: f32,
        batch_statistics: bool,
    ) -> (FlexTensor, FlexTensor) {
        let (input, conv) = (contiguous(input), contiguous(conv));
        let (parameters, statistics) = (contiguous(parameters), contiguous(statistics));
        let grad = contiguous(grad);
        let planes = planes(&input);
        let mut parameter_grad = Vec::new();
        let input_grad = new_tensor(input.shape(), |input_grad| {
            parameter_grad = spatial_max_backward::backward(
                elements(&input),
                elements(&conv),
                elements(&parameters),
                elements(&statistics),
                elements(&grad),
                planes,
                epsilon,
                batch_statistics,
                input_grad,
            );
        });
        (input_grad, from_vec(parameter_grad, parameters.shape()))
    }
}
