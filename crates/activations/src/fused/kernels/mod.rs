//! The Flex kernels on slices. Each formula is written once, generic over
//! [`Real`](super::real::Real), in its activation's own file; here it runs on `f32`.
//!
//! - `loops.rs`: the SIMD/rayon loops every kernel is made of.
//! - `pointwise.rs`: the element-wise kernels of any [`Formula`](super::formula::Formula).
//! - `channel.rs`: PReLU's and APReLU's kernels, whose slopes vary by channel or by sample
//!   and channel.

pub(crate) mod channel;
pub(crate) mod loops;
pub(crate) mod pointwise;
