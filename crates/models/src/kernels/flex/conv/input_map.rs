//! A map the convolution applies to each sample's input before reading it.

/// A map applied to each sample's input before the convolution reads it, in cache (the
/// BatchNorm and activation before a pre-activation block's convolution, `norm_conv.rs`), so
/// the mapped input never goes to memory; the backward maps each sample again for the weight
/// gradient.
pub(in super::super) trait InputMap: Sync {
    /// `out = map(sample)` for one sample `[C_in, H, W]`.
    fn map(&self, sample: &[f32], out: &mut [f32]);

    /// How many parameters of the map's last step get a gradient from
    /// [`last_step_grad`](Self::last_step_grad) (0: none).
    fn parameter_len(&self) -> usize;

    /// `grad` (the map's output gradient for `sample`) taken back through the map's last,
    /// element-wise step (the activation), in place, adding its parameters' gradient to
    /// `parameter_grad`; the caller runs the rest (BatchNorm's backward needs the whole
    /// batch). `mapped` is `map(sample)` when the caller has it.
    fn last_step_grad(
        &self,
        sample: &[f32],
        mapped: Option<&[f32]>,
        grad: &mut [f32],
        parameter_grad: &mut [f32],
    );
}

/// `x`'s samples `[images, C_in, H, W]` through `map` into `buffer`, or `x` itself without
/// one.
pub(super) fn mapped<'a>(
    map: Option<&dyn InputMap>,
    x: &'a [f32],
    sample_len: usize,
    buffer: &'a mut [f32],
) -> &'a [f32] {
    let Some(map) = map else { return x };
    let buffer = &mut buffer[..x.len()];
    for (sample, out) in x.chunks(sample_len).zip(buffer.chunks_mut(sample_len)) {
        map.map(sample, out);
    }
    buffer
}
