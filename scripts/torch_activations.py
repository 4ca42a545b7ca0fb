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
    """x * sigmoid(beta * x), beta fixed or learned (`learnable_beta`: one, or one per channel of
    dim 1 with `per_channel`)."""

    def __init__(self, beta=1.0, learnable=False, per_channel=False, channels=1):
        super().__init__()
        self.beta = beta
        if learnable:
            count = channels if per_channel else 1
            self.learnable_beta = nn.Parameter(torch.full((count,), float(beta)))

    def forward(self, x):
        if hasattr(self, "learnable_beta"):
            beta = self.learnable_beta
            if beta.numel() > 1:
                beta = beta.reshape((1, -1) + (1,) * (x.dim() - 2))
            return x * torch.sigmoid(beta * x)
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


class MetaAconC(nn.Module):
    """Ma et al.'s Meta-ACON, the reference for crates/activations/src/meta_acon.rs: the
    authors' `MetaAconC` (github.com/nmaac/acon, acon.py), with its 1x1 convolutions on the
    pooled [N, C, 1, 1] written as the equal linears on [N, C], and [N, C] inputs accepted
    (their channel means are themselves)."""

    def __init__(self, width, r=16, init="normal", momentum=0.1, epsilon=1e-5):
        super().__init__()
        hidden = max(r, width // r)
        self.fc1 = nn.Linear(width, hidden)
        self.bn1 = nn.BatchNorm1d(hidden, eps=epsilon, momentum=momentum)
        self.fc2 = nn.Linear(hidden, width)
        self.bn2 = nn.BatchNorm1d(width, eps=epsilon, momentum=momentum)
        acon = AconC(width, init)
        self.p1, self.p2 = acon.p1, acon.p2

    def forward(self, x):
        dims = tuple(range(2, x.dim()))
        means = x.mean(dims) if dims else x
        beta = torch.sigmoid(self.bn2(self.fc2(self.bn1(self.fc1(means)))))
        shape = beta.shape + (1,) * len(dims)
        p1, p2 = (t.reshape((1, -1) + (1,) * len(dims)) for t in (self.p1, self.p2))
        beta = beta.reshape(shape)
        return (p1 * x - p2 * x) * torch.sigmoid(beta * (p1 * x - p2 * x)) + p2 * x


class DyReluB(nn.Module):
    """Chen et al.'s Dynamic ReLU, variant B (ECCV 2020), the reference for
    crates/activations/src/dyrelu.rs: `DyReLUB` of github.com/Islanna/DynamicReLU (K = 2,
    lambdas [1, 1, 0.5, 0.5], init_v [1, 0, 0, 0]), for any [N, C, ...] input."""

    def __init__(self, channels, reduction=4, k=2):
        super().__init__()
        self.channels, self.k = channels, k
        self.fc1 = nn.Linear(channels, channels // reduction)
        self.fc2 = nn.Linear(channels // reduction, 2 * k * channels)
        # Constants, not state: left out of state_dict, as the Rust module has no such tensors.
        self.register_buffer("lambdas", torch.tensor([1.0] * k + [0.5] * k), persistent=False)
        self.register_buffer("init_v", torch.tensor([1.0] + [0.0] * (2 * k - 1)), persistent=False)

    def forward(self, x):
        dims = tuple(range(2, x.dim()))
        theta = x.mean(dims) if dims else x
        theta = 2 * torch.sigmoid(self.fc2(F.relu(self.fc1(theta)))) - 1
        coefs = theta.view(-1, self.channels, 2 * self.k) * self.lambdas + self.init_v
        # [N, C, ...] -> [..., N, C, 1]: broadcast against [N, C, K]
        perm = tuple(range(2, x.dim())) + (0, 1)
        x_perm = x.permute(*perm).unsqueeze(-1)
        output = x_perm * coefs[:, :, :self.k] + coefs[:, :, self.k:]
        back = (x.dim() - 2, x.dim() - 1) + tuple(range(x.dim() - 2))
        return torch.max(output, dim=-1)[0].permute(*back)


class FRelu(nn.Module):
    """Ma et al.'s funnel activation (ECCV 2020), the reference for
    crates/activations/src/frelu.rs: the authors' `FReLU` (github.com/megvii-model/FunnelAct),
    max(x, BN(depthwise 3x3 conv(x)))."""

    def __init__(self, in_channels):
        super().__init__()
        self.conv_frelu = nn.Conv2d(in_channels, in_channels, 3, 1, 1, groups=in_channels)
        self.bn_frelu = nn.BatchNorm2d(in_channels)

    def forward(self, x):
        return torch.max(x, self.bn_frelu(self.conv_frelu(x)))


class Softmax(nn.Module):
    """nn.Softmax with the registry's default dim (-1)."""

    def __init__(self, dim=-1, log=False):
        super().__init__()
        self.dim, self.log = dim, log

    def forward(self, x):
        return (F.log_softmax if self.log else F.softmax)(x, dim=self.dim)


# kind -> (parameters, channels of the slot) -> module; defaults are PyTorch's and the registry's.
class Pau(nn.Module):
    """Molina et al.'s Padé Activation Unit (ICLR 2020), the reference for
    crates/activations/src/pau/: P(x)/Q(x) with P = a0 + a1 x + ... + am x^m and the "safe"
    denominators of the authors' code, version A `1 + sum |b_k| |x|^k` (ml-research/pau,
    python_imp/Pade.py, in its order of operations) or version B `1 + |sum b_k x^k|`
    (ml-research/rational_activations). `numerator` [rows, m+1] and `denominator` [rows, n]
    with rows = 1 (the layer) or one per channel of dim 1. The coefficients start at zero here:
    golden.py sets them, torch_model.py loads them from an export (the Rust side computes the
    least-squares initial fit)."""

    def __init__(self, channels=1, degrees=(5, 4), version="a", per_channel=False):
        super().__init__()
        m, n = degrees
        rows = channels if per_channel else 1
        self.version = version.lower()
        self.numerator = nn.Parameter(torch.zeros(rows, m + 1))
        self.denominator = nn.Parameter(torch.zeros(rows, n))

    def forward(self, x):
        rows, m = self.numerator.shape[0], self.numerator.shape[1] - 1
        n = self.denominator.shape[1]
        shape = [1] * x.dim()
        if rows > 1:
            shape[1] = rows
        a = [self.numerator[:, j].reshape(shape) for j in range(m + 1)]
        b = [self.denominator[:, k].reshape(shape) for k in range(n)]
        xps = [x]
        for _ in range(2, max(m, n) + 1):
            xps.append(xps[-1] * x)
        numerator = x * a[1] + a[0]
        for j in range(2, m + 1):
            numerator = numerator + a[j] * xps[j - 1]
        if self.version == "a":
            denominator = x.abs() * b[0].abs() + 1
            for k in range(2, n + 1):
                denominator = denominator + b[k - 1].abs() * xps[k - 1].abs()
        else:
            total = x * b[0]
            for k in range(2, n + 1):
                total = total + b[k - 1] * xps[k - 1]
            denominator = total.abs() + 1
        return numerator / denominator


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
    "silu": lambda p, c: Silu(p.get("beta", 1.0), p.get("learnable", False),
                              p.get("per_channel", False), c),
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
    "dyrelu": lambda p, c: DyReluB(c, p.get("reduction", 4)),
    "frelu": lambda p, c: FRelu(c),
    "pau": lambda p, c: Pau(c, tuple(p.get("degrees", (5, 4))), p.get("version", "a"),
                            p.get("per_channel", False)),
    "meta_acon": lambda p, c: MetaAconC(c, p.get("reduction", 16), p.get("init", "normal"),
                                        p.get("momentum", 0.1), p.get("epsilon", 1e-5)),
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
