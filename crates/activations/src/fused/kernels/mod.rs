//! The Flex kernels on slices. Each formula is written once, generic over
//! [`Real`](super::real::Real), in its activation's own file; here it runs on `f32`.
//!
//! - `loops.rs`: the SIMD/rayon loops every kernel is made of.
//! - `pointwise.rs`: the element-wise kernels of any [`Formula`](super::formula::Formula).
//! - `channel.rs`: the channel-wise kernels of any learned formula, whose parameters vary by
//!   channel (PReLU) or by sample and channel (APReLU's apply).
//! - `squeeze.rs`: APReLU's squeeze (per-channel means of the two signs) and its backward.
//! - `depthwise3x3.rs`: one plane's 3×3 convolution, its transpose and weight sums (with
//!   `depthwise3x3_simd.rs`, the same in AVX-512 or AVX2 registers, blocked over rows).
//! - `spatial_max.rs`: `max(x, BN(depthwise 3×3 conv(x)))` (FReLU's funnel condition).
//! - `spatial_max_backward.rs`: its backward.
//! - `spatial_max_each.rs`: its forward handing each output plane to a consumer in cache.

pub(crate) mod block_sums;
pub(crate) mod channel;
pub(crate) mod depthwise3x3;
#[cfg(target_arch = "x86_64")]
mod depthwise3x3_simd;
pub(crate) mod loops;
pub(crate) mod pointwise;
pub(crate) mod spatial_max;
pub(crate) mod spatial_max_backward;
pub(crate) mod spatial_max_each;
pub(crate) mod squeeze;
