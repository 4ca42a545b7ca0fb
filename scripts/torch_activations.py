"""The PyTorch module of every kind in the `activations` registry, shared by the scripts.

`scripts/golden.py` evaluates these modules to write the fixture the Rust golden tests compare
against, and `scripts/torch_model.py` puts them in the networks that load `fmnist export`'s
weights: what is tested is what a PyTorch user gets. `crates/activations/tests/golden.rs`
fails when a registered kind has no entry in `MODULES`.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


class Silu(nn.Module):
    """x * sigmoid(beta * x), beta fixed or learned (`learnable_beta`)."""

    def __init__(self, beta=1.0, learnable=False):
        super().__init__()
        self.beta = beta
        if learnable:
            self.learnable_beta = nn.Parameter(torch.tensor([float(beta)]))

    def forward(self, x):
        if hasattr(self, "learnable_beta"):
            return x * torch.sigmoid(self.learnable_beta * x)
        if self.beta == 1.0:
            return F.silu(x)
        return x * torch.sigmoid(self.beta * x)


class AprRelu(nn.Module):
    """Zhao et al.'s adaptively parametric ReLU, the reference for crates/activations/src/aprelu.rs:
    pos + alpha * neg, alpha from an SE network on the pooled positive and negative parts."""

    def __init__(self, channels, reduction=1, momentum=0.1, epsilon=1e-5):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc1 = nn.Linear(2 * channels, hidden)
        self.bn1 = nn.BatchNorm1d(hidden, eps=epsilon, momentum=momentum)
        self.fc2 = nn.Linear(hidden, channels)
        self.bn2 = nn.BatchNorm1d(channels, eps=epsilon, momentum=momentum)

    def forward(self, x):
        pos, neg = F.relu(x), torch.clamp(x, max=0.0)
        dims = tuple(range(2, x.dim()))
        pooled = torch.cat([pos.mean(dims) if dims else pos, neg.mean(dims) if dims else neg], 1)
        alpha = torch.sigmoid(self.bn2(self.fc2(F.relu(self.bn1(self.fc1(pooled))))))
        return pos + alpha.reshape(alpha.shape + (1,) * len(dims)) * neg


class AconC(nn.Module):
    """Ma et al.'s ACON-C ("Activate or Not", CVPR 2021), the reference for
    crates/activations/src/acon_c.rs: the authors' `AconC` (github.com/nmaac/acon, acon.py),
    with p1, p2 and beta per channel of any [N, C, ...] input instead of [N, C, H, W] only."""

    def __init__(self, width, init="normal", beta=1.0):
        super().__init__()
        if init == "swish":
            self.p1 = nn.Parameter(torch.ones(width))
            self.p2 = nn.Parameter(torch.zeros(width))
        else:
            self.p1 = nn.Parameter(torch.randn(width))
            self.p2 = nn.Parameter(torch.randn(width))
        self.beta = nn.Parameter(torch.full((width,), float(beta)))

    def forward(self, x):
        shape = (1, -1) + (1,) * (x.dim() - 2)
        p1, p2, beta = (t.reshape(shape) for t in (self.p1, self.p2, self.beta))
        return (p1 * x - p2 * x) * torch.sigmoid(beta * (p1 * x - p2 * x)) + p2 * x


class Softmax(nn.Module):
    """nn.Softmax with the registry's default dim (-1)."""

    def __init__(self, dim=-1, log=False):
        super().__init__()
        self.dim, self.log = dim, log

    def forward(self, x):
        return (F.log_softmax if self.log else F.softmax)(x, dim=self.dim)


# kind -> (parameters, channels of the slot) -> module; defaults are PyTorch's and the registry's.
MODULES = {
    "identity": lambda p, c: nn.Identity(),
    "sigmoid": lambda p, c: nn.Sigmoid(),
    "tanh": lambda p, c: nn.Tanh(),
    "relu": lambda p, c: nn.ReLU(),
    "relu6": lambda p, c: nn.ReLU6(),
    "leaky_relu": lambda p, c: nn.LeakyReLU(p.get("negative_slope", 0.01)),
    "prelu": lambda p, c: nn.PReLU(c if p.get("per_channel", False) else 1, p.get("init", 0.25)),
    "rrelu": lambda p, c: nn.RReLU(p.get("lower", 1 / 8), p.get("upper", 1 / 3)),
    "elu": lambda p, c: nn.ELU(p.get("alpha", 1.0)),
    "selu": lambda p, c: nn.SELU(),
    "celu": lambda p, c: nn.CELU(p.get("alpha", 1.0)),
    "gelu": lambda p, c: nn.GELU(approximate=p.get("approximate", "none")),
    "silu": lambda p, c: Silu(p.get("beta", 1.0), p.get("learnable", False)),
    "mish": lambda p, c: nn.Mish(),
    "softplus": lambda p, c: nn.Softplus(p.get("beta", 1.0), p.get("threshold", 20.0)),
    "softsign": lambda p, c: nn.Softsign(),
    "hardtanh": lambda p, c: nn.Hardtanh(p.get("min_val", -1.0), p.get("max_val", 1.0)),
    "hardsigmoid": lambda p, c: nn.Hardsigmoid(),
    "hardswish": lambda p, c: nn.Hardswish(),
    "logsigmoid": lambda p, c: nn.LogSigmoid(),
    "tanhshrink": lambda p, c: nn.Tanhshrink(),
    "softshrink": lambda p, c: nn.Softshrink(p.get("lambda", 0.5)),
    "softmax": lambda p, c: Softmax(p.get("dim", -1)),
    "log_softmax": lambda p, c: Softmax(p.get("dim", -1), log=True),
    "aprelu": lambda p, c: AprRelu(c, p.get("reduction", 1), p.get("momentum", 0.1),
                                   p.get("epsilon", 1e-5)),
    "acon_c": lambda p, c: AconC(c, p.get("init", "normal"), p.get("beta", 1.0)),
}
ALIASES = {"swish": "silu"}


def activation(spec, channels=1):
    """The torch module for one registry entry (a name or a table with `kind`)."""
    if isinstance(spec, str):
        spec = {"kind": spec}
    kind = ALIASES.get(spec["kind"], spec["kind"])
    if kind not in MODULES:
        raise ValueError(f"activation {kind!r} has no PyTorch counterpart in {__file__}")
    return MODULES[kind](spec, channels)
