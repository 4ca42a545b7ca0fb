//! The f32 storage of Flex tensors, for kernels that run on it directly (this crate's fused
//! activations, and the layer kernels of the `models` crate).

use burn::backend::flex::{FlexTensor, Layout};
use burn::backend::{Bytes, DType, TensorMetadata};
use std::mem::MaybeUninit;

/// The tensor, made contiguous if it was a strided view.
pub fn contiguous(tensor: FlexTensor) -> FlexTensor {
    assert_eq!(
        tensor.dtype(),
        DType::F32,
        "the fused kernels take f32 tensors (the callers check)"
    );
    if tensor.layout().contiguous_offsets().is_some() {
        tensor
    } else {
        tensor.to_contiguous()
    }
}

/// The contiguous elements of a tensor that `contiguous` returned.
pub fn elements(tensor: &FlexTensor) -> &[f32] {
    let (start, end) = tensor.layout().contiguous_offsets().expect("contiguous");
    &tensor.storage::<f32>()[start..end]
}

/// Mutable elements when this tensor is the only owner of its buffer.
pub fn elements_mut(tensor: &mut FlexTensor) -> Option<&mut [f32]> {
    let (start, end) = tensor.layout().contiguous_offsets()?;
    tensor
        .try_storage_mut::<f32>()
        .map(|storage| &mut storage[start..end])
}

/// A new contiguous tensor of `shape`, filled by `fill` (which must write every element; this
/// crate's kernels do, so it stays private to them).
pub(crate) fn new_tensor(
    shape: burn::tensor::Shape,
    fill: impl FnOnce(&mut [MaybeUninit<f32>]),
) -> FlexTensor {
    let len = shape.num_elements();
    let mut values: Vec<f32> = Vec::with_capacity(len);
    fill(&mut values.spare_capacity_mut()[..len]);
    // SAFETY: `fill` initialised the first `len` elements (every kernel writes each output).
    unsafe { values.set_len(len) };
    from_vec(values, shape)
}

/// A contiguous tensor of `shape` that owns `values`.
pub fn from_vec(values: Vec<f32>, shape: burn::tensor::Shape) -> FlexTensor {
    assert_eq!(values.len(), shape.num_elements(), "values fill the shape");
    FlexTensor::new(
        Bytes::from_elems(values),
        Layout::contiguous(shape),
        DType::F32,
    )
}

/// A copy of a contiguous tensor with its own buffer.
pub fn owned_copy(tensor: &FlexTensor) -> FlexTensor {
    from_vec(elements(tensor).to_vec(), tensor.shape())
}
