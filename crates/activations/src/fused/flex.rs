//! [`FusedActivationOps`] for Flex: the kernels run on the tensors' f32 storage, in place when
//! the tensor is contiguous and nothing else holds its buffer.

use super::flex_storage::{contiguous, elements, elements_mut, from_vec, new_tensor, owned_copy};
use super::kernels::channel::{self as kernels, ChannelLayout, SampleChannels};
use super::op::Pointwise;
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

    fn fused_prelu(input: FlexTensor, weight: FlexTensor) -> FlexTensor {
        let input = contiguous(input);
        let weight = contiguous(weight);
        let layout = channel_layout(&input, &weight);
        new_tensor(input.shape(), |out| {
            kernels::prelu_forward(elements(&input), elements(&weight), layout, out)
        })
    }

    fn fused_aprelu_squeeze(input: FlexTensor) -> FlexTensor {
        let input = contiguous(input);
        let layout = sample_channels(&input);
        let summary = kernels::aprelu_squeeze(elements(&input), layout);
        from_vec(summary, [layout.samples, 2 * layout.channels].into())
    }

    fn fused_aprelu_apply(input: FlexTensor, slopes: FlexTensor) -> FlexTensor {
        let input = contiguous(input);
        let slopes = contiguous(slopes);
        let layout = sample_channels(&input);
        new_tensor(input.shape(), |out| {
            kernels::aprelu_apply(elements(&input), elements(&slopes), layout, out)
        })
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

/// `[N, C, ...]` with one weight per channel, or one shared weight over the whole tensor.
fn channel_layout(input: &FlexTensor, weight: &FlexTensor) -> ChannelLayout {
    let dims = input.shape();
    let channels = weight.shape().num_elements();
    if channels == 1 {
        ChannelLayout {
            channels: 1,
            inner: dims.num_elements().max(1),
        }
    } else {
        assert_eq!(dims[1], channels, "PReLU: one weight per channel (axis 1)");
        ChannelLayout {
            channels,
            inner: dims.iter().skip(2).product::<usize>().max(1),
        }
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

    fn fused_prelu_backward(
        input: FlexTensor,
        weight: FlexTensor,
        grad: FlexTensor,
    ) -> (FlexTensor, FlexTensor) {
        let input = contiguous(input);
        let weight = contiguous(weight);
        let mut grad = contiguous(grad);
        if elements_mut(&mut grad).is_none() {
            grad = owned_copy(&grad);
        }
        let layout = channel_layout(&input, &weight);
        let values = elements_mut(&mut grad).expect("owned above");
        let weight_grad =
            kernels::prelu_backward(elements(&input), elements(&weight), layout, values);
        let weight_grad = from_vec(weight_grad, weight.shape());
        (grad, weight_grad)
    }

    fn fused_aprelu_squeeze_backward(input: FlexTensor, grad: FlexTensor) -> FlexTensor {
        let input = contiguous(input);
        let grad = contiguous(grad);
        let layout = sample_channels(&input);
        new_tensor(input.shape(), |out| {
            kernels::aprelu_squeeze_backward(elements(&input), elements(&grad), layout, out)
        })
    }

    fn fused_aprelu_apply_backward(
        input: FlexTensor,
        slopes: FlexTensor,
        grad: FlexTensor,
    ) -> (FlexTensor, FlexTensor) {
        let input = contiguous(input);
        let slopes = contiguous(slopes);
        let mut grad = contiguous(grad);
        if elements_mut(&mut grad).is_none() {
            grad = owned_copy(&grad);
        }
        let layout = sample_channels(&input);
        let values = elements_mut(&mut grad).expect("owned above");
        let slope_grad =
            kernels::aprelu_apply_backward(elements(&input), elements(&slopes), layout, values);
        let slope_grad = from_vec(slope_grad, slopes.shape());
        (grad, slope_grad)
    }
}
