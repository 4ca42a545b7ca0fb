use crate::InvalidConfig;
use crate::fused::{Pointwise, formula::formula};
use crate::kind::ActivationKind;
use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// HardTanh: `x` clamped to `[min_val, max_val]`.
///
/// PyTorch: `nn.Hardtanh(min_val=-1.0, max_val=1.0)`. The gradient is 1 strictly inside the
/// interval and 0 on and outside its edges (PyTorch's choice at the kinks; NaN gets 0 too).
#[derive(Module, Debug)]
pub struct HardTanh {
    /// Lower bound of the output.
    pub min_val: f64,
    /// Upper bound of the output.
    pub max_val: f64,
}

/// Configuration of [`HardTanh`]; PyTorch's defaults are `min_val = -1`, `max_val = 1`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HardTanhConfig {
    /// Lower bound of the output. Default -1.
    pub min_val: f64,
    /// Upper bound of the output. Default 1.
    pub max_val: f64,
}

impl Default for HardTanhConfig {
    fn default() -> Self {
        Self {
            min_val: -1.0,
            max_val: 1.0,
        }
    }
}

impl HardTanhConfig {
    /// Checks `min_val < max_val`, both finite.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        if !(self.min_val.is_finite() && self.max_val.is_finite() && self.min_val < self.max_val) {
            return Err(InvalidConfig::new(
                "hardtanh",
                format!("needs finite min_val < max_val, got min_val = {}, max_val = {}",
                self.min_val, self.max_val),
            ));
        }
        Ok(())
    }

    /// Builds the module.
    pub fn init(&self) -> HardTanh {
        HardTanh {
            min_val: self.min_val,
            max_val: self.max_val,
        }
    }
}

impl HardTanh {
    /// Applies the clamp element-wise.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        clamp_with_open_gradient(input, self.min_val, self.max_val)
    }
}

formula!(
    /// `clamp(x, min_val, max_val)` keeping NaN (also ReLU6's, on `[0, 6]`); derivative 1
    /// strictly inside the interval, 0 on and outside its edges and for NaN.
    HardTanhFormula { min_val, max_val },
    value: |x| {
        let low = R::select(x.less(min_val), min_val, x);
        R::select(low.greater(max_val), max_val, low)
    },
    backward: |x, grad| R::select(x.greater(min_val) & x.less(max_val), grad, 0.0),
);

impl ActivationKind for HardTanh {
    const KIND: &'static str = "hardtanh";
    const ALIASES: &'static [&'static str] = &[];
    const DESCRIPTION: &'static str = "clamp to [min_val, max_val]";
    const BOUNDED: bool = true;
    const ELEMENTWISE: bool = true;
    type Config = HardTanhConfig;

    fn validate(config: &HardTanhConfig) -> Result<(), InvalidConfig> {
        config.validate()
    }
    fn from_config(config: &HardTanhConfig, _: usize, _: &Device) -> Self {
        config.init()
    }
    fn has_fused_kernel(_: &HardTanhConfig) -> bool {
        false
    }
    fn is_learnable(_: &HardTanhConfig) -> bool {
        false
    }
    fn formula(&self) -> Option<Pointwise> {
        Some(Pointwise::new(HardTanhFormula {
            min_val: self.min_val as f32,
            max_val: self.max_val as f32,
        }))
    }
}

fn inside<const D: usize>(input: &Tensor<D>, min: f64, max: f64) -> Tensor<D, burn::tensor::Bool> {
    input
        .clone()
        .greater_elem(min)
        .bool_and(input.clone().lower_elem(max))
}

/// `clamp(x, min, max)` whose gradient is 1 only strictly inside the interval.
///
/// Burn's `clamp` passes the gradient on the edges; PyTorch's hardtanh/relu6 do not, so the
/// clamped value is taken as a constant and only the interior is differentiated.
pub(crate) fn clamp_with_open_gradient<const D: usize>(
    input: Tensor<D>,
    min: f64,
    max: f64,
) -> Tensor<D> {
    let interior = inside(&input, min, max);
    let clamped = input.clone().detach().clamp(min, max);
    clamped.mask_where(interior, input)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    #[test]
    fn defaults_match_pytorch() {
        let config = HardTanhConfig::default();
        assert_eq!((config.min_val, config.max_val), (-1.0, 1.0));
    }

    #[test]
    fn gradient_is_zero_on_the_edges() {
        let module = HardTanhConfig::default().init();
        let (y, g) = value_and_grad(&[-2.0, -1.0, 0.5, 1.0, f32::NAN], |x| module.forward(x));
        assert_close(&y, &[-1.0, -1.0, 0.5, 1.0, f32::NAN]);
        assert_close(&g, &[0.0, 0.0, 1.0, 0.0, 0.0]);
    }

    #[test]
    fn rejects_empty_interval() {
        let config = HardTanhConfig {
            min_val: 1.0,
            max_val: 1.0,
        };
        assert!(config.validate().unwrap_err().to_string().contains("min_val < max_val"));
    }
}
