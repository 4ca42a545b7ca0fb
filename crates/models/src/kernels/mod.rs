//! The CNN's convolution and max-pooling with this project's own kernels on Flex.
//!
//! Burn's Flex convolution is an im2col + gemm over the whole batch; its backward runs as a
//! transposed convolution (input gradient) and as a convolution of the swapped input with the
//! swapped output gradient (weight gradient), with layout copies around both; its max-pooling
//! computes indices in a generic loop. On the reference CNN these took three quarters of a
//! training step (docs/performance.md). The kernels here work one sample at a time, so every
//! intermediate stays in cache, and call the same `gemm` crate:
//! - forward: im2col of one sample, then `out = W · col` with the bias as the initial value;
//! - backward, one pass per sample: `dW += dout · colᵀ`, `db += Σ dout`, and
//!   `dx = col2im(Wᵀ · dout)` — each only when its tensor is tracked;
//! - max-pooling: one pass; its backward finds each window's maximum again in the saved input
//!   instead of keeping an index tensor;
//! - a conv block (convolution → element-wise activation or PReLU → 2×2 max-pool, the CNN's):
//!   one pass per sample that applies the activation and pools while the convolution's output
//!   is in cache, keeping only each window's winner and the value the activation's backward
//!   needs;
//! - APReLU's conv block, whose slopes need the whole convolution output: the squeeze in the
//!   convolution's output pass, the excitation by Burn, then the apply and the pooling in one
//!   pass; its backward builds each sample's output gradient once, in cache
//!   ([`PooledHandoff`]);
//! - FReLU's spatial max and the 2×2 max-pool after it: each plane of the activation's output
//!   pooled while it is in cache, and in the backward each plane's gradient rebuilt from the
//!   pooled one and the winners ([`activation_max_pool`]).
//!
//! # Map
//! - [`LayerKernelOps`]: the backend extension (`#[backend_extension]`), implemented for Flex
//!   (`flex/`: `conv.rs` with `conv/backward.rs`, `conv/matrix.rs`, `conv/im2col.rs`, the
//!   direct 3×3 path `conv/direct3x3.rs` with `conv/phases.rs`, `conv/stack.rs` and
//!   `conv/input_map.rs`, the small-plane weight gradient `conv/patch_grad.rs`, the stride-2
//!   input gradient by phases `conv/phase_grad.rs`, `pool.rs`, `block.rs`, `aprelu_block.rs`, `spatial_max_pool.rs`,
//!   `batch_norm.rs`, `norm_conv.rs` with `activated.rs`, and the 2×2 pooling rows they use,
//!   `pool_rows.rs` with `pool_rows_avx512.rs`; work buffers from `parallel.rs`) and for
//!   `Autodiff<B>` with handwritten
//!   backward steps (`autodiff/steps.rs`) that call [`LayerKernelBackward`].
//! - [`conv2d`], [`max_pool2d`] and [`conv_block`]: what the CNN calls in place of
//!   `Conv2d::forward`, `MaxPool2d::forward` and the three together; [`conv2d_residual`]: a
//!   residual block's second convolution with the shortcut added in its output pass (the
//!   ResNet's); [`batch_norm`] (PyTorch's running statistics); [`norm_conv2d`] and
//!   [`norm_conv2d_residual`]: a pre-activation block's BatchNorm, activation and
//!   convolution as one op, the activated input made per sample where the convolution reads
//!   it (the ResNet's, unless diagnostics tap the activation). They take Burn's modules,
//!   so parameters, records and exports are unchanged, use the kernels for f32 on Flex, and
//!   run the modules' own forward otherwise (other backends and dtypes, groups, asymmetric
//!   padding, ceil mode; for the block, activations without an element-wise kernel other than
//!   PReLU and APReLU, and other pooling windows). The CNN uses the block unless BatchNorm
//!   sits between the layers or diagnostics tap the activation's input and output.
//!
//! The kernels follow the activations' switch: `ACTIVATIONS_FUSED=0` or
//! [`activations::fused::without_fused`] turn them off too.

mod autodiff;
mod batch_norm;
#[cfg(feature = "flex")]
mod flex;
mod layers;
mod norm_conv;
mod ops;

pub use batch_norm::{batch_norm, batch_norm_of_residual};
pub use layers::{
    activation_max_pool, conv_block, conv2d, conv2d_residual, has_kernels, max_pool2d,
};
pub use norm_conv::{norm_conv2d, norm_conv2d_residual};
pub use ops::{
    BlockActivation, Conv2dGrads, ConvBlockParts, ConvGradients, LayerKernelBackward,
    LayerKernelOps, NormActivation, NormConvGrads, NormConvHandoffs, NormConvParts, PooledHandoff,
    PooledStash, ResidualHandoff, Window2d,
};
