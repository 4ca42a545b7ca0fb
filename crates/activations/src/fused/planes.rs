//! FReLU's spatial max ([`super::spatial_max`]) on slices, for fused layers of other crates
//! that consume its output, or produce its output gradient, one plane at a time while the
//! plane is in cache: the models' FReLU + 2×2 max-pool, whose forward pools each output plane
//! as it is made and whose backward rebuilds each plane's gradient from the pooled one, so that
//! neither FReLU's output nor its dense gradient goes to memory. Both spread the planes over
//! rayon's threads; the callbacks run on those threads.

pub use super::kernels::spatial_max::{Planes, ROW};
pub use super::kernels::spatial_max_backward::{PlaneGrads, backward as spatial_max_backward};
pub use super::kernels::spatial_max_each::forward_each as spatial_max_forward_each;
