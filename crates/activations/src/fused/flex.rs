//! [`FusedActivationOps`] for Flex: the kernels run on the tensors' f32 storage, in place when
//! the tensor is contiguous and nothing else holds its buffer.

use super::kernels::{self, ChannelLayout};
use super::{FusedActivationBackward, FusedActivationOps, Pointwise};
use burn::backend::flex::{FlexTensor, Layout};
use burn::backend::{Bytes, DType, Flex, TensorMetadata};
use std::mem::MaybeUninit;

/// The tensor, made contiguous if it was a strided view.
fn contiguous(tensor: FlexTensor) -> FlexTensor {
    assert_eq!(
        tensor.dtype(),
        DType::F32,
        "fused activations take f32 tensors (the callers check)"
    );
    if tensor.layout().contiguous_offsets().is_some() {
        tensor
    } else {
        tensor.to_contiguous()
    }
}

/// The contiguous elements of a tensor that `contiguous` returned.
fn elements(tensor: &FlexTensor) -> &[f32] {
    let (start, end) = tensor.layout().contiguous_offsets().expect("contiguous");
    &tensor.storage::<f32>()[start..end]
}

/// Mutable elements when this tensor is the only owner of its buffer.
fn elements_mut(tensor: &mut FlexTensor) -> Option<&mut [f32]> {
    let (start, end) = tensor.layout().contiguous_offsets()?;
    tensor
        .try_storage_mut::<f32>()
        .map(|storage| &mut storage[start..end])
}

/// A new contiguous tensor of `shape`, filled by `fill` (which must write every element).
fn new_tensor(
    shape: burn::tensor::Shape,
    fill: impl FnOnce(&mut [MaybeUninit<f32>]),
) -> FlexTensor {
    let len = shape.num_elements();
    let mut values: Vec<f32> = Vec::with_capacity(len);
    fill(&mut values.spare_capacity_mut()[..len]);
    // SAFETY: `fill` initialised the first `len` elements (every kernel writes each output).
    unsafe { values.set_len(len) };
    FlexTensor::new(
        Bytes::from_elems(values),
        Layout::contiguous(shape),
        DType::F32,
    )
}

impl FusedActivationOps for Flex {
    fn fused_pointwise(input: FlexTensor, op: Pointwise) -> FlexTensor {
        let mut input = contiguous(input);
        if let Some(values) = elements_mut(&mut input) {
            kernels::forward_in_place(op, values);
            return input;
        }
        new_tensor(input.shape(), |out| {
            kernels::forward_into(op, elements(&input), out)
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
            kernels::backward_into_grad(op, elements(&saved), values);
            return grad;
        }
        if let Some(values) = elements_mut(&mut saved) {
            kernels::backward_into_saved(op, values, elements(&grad));
            return saved;
        }
        new_tensor(grad.shape(), |out| {
            kernels::backward_new(op, elements(&saved), elements(&grad), out)
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
        let weight_grad = FlexTensor::new(
            Bytes::from_elems(weight_grad),
            Layout::contiguous(weight.shape()),
            DType::F32,
        );
        (grad, weight_grad)
    }
}

/// A copy of a contiguous tensor with its own buffer.
fn owned_copy(tensor: &FlexTensor) -> FlexTensor {
    FlexTensor::new(
        Bytes::from_elems(elements(tensor).to_vec()),
        Layout::contiguous(tensor.shape()),
        DType::F32,
    )
}
