#!/usr/bin/env python3
"""Writes the PyTorch reference values the `activations` crate is tested against.

    python3 scripts/golden.py            # rewrites crates/activations/tests/fixtures/golden.json

Every element-wise activation is evaluated on one fixed grid (edge values, +-inf, NaN and
random normals); `grad` is d(sum(f(x)))/dx, i.e. f'(x) as PyTorch's autograd computes it,
including its subgradient choice at kinks. PReLU (per channel), softmax/log_softmax and
APReLU (fixed weights, [N,C] and [N,C,H,W], train and eval) also record parameter gradients.
Non-finite floats are written as the strings "nan", "inf", "-inf" (JSON has no literal for them).
"""
import json
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(20261123)
torch.set_num_threads(1)
OUT = os.path.join(os.path.dirname(__file__), "..", "crates", "activations", "tests", "fixtures", "golden.json")


def enc(t):
    out = []
    for v in t.detach().reshape(-1).tolist():
        if math.isnan(v):
            out.append("nan")
        elif math.isinf(v):
            out.append("inf" if v > 0 else "-inf")
        else:
            out.append(v)
    return out


EDGES = [-1e4, -100.0, -20.5, -6.0, -3.0, -1.0, -1e-3, 0.0, 1e-3, 1.0, 3.0, 6.0, 20.5, 100.0, 1e4,
         float("inf"), float("-inf"), float("nan"),
         # a few more kinks: hardtanh/hardsigmoid/relu6/softplus thresholds
         -2.0, 2.0, -0.5, 0.5, 10.0, 20.0, 19.999, 20.001, -17.0, 17.0, 88.0, 89.0, -88.0, -104.0]
GRID = torch.tensor(EDGES + torch.randn(300).mul(3.0).tolist(), dtype=torch.float32)


def elementwise(name, fn, params=None):
    x = GRID.clone().requires_grad_(True)
    y = fn(x)
    y.sum().backward()
    return {"name": name, "params": params or {}, "y": enc(y), "grad": enc(x.grad)}


def rrelu_eval(x, lower=1 / 8, upper=1 / 3):
    return F.rrelu(x, lower, upper, training=False)


cases = [
    elementwise("identity", lambda x: x * 1.0),
    elementwise("sigmoid", torch.sigmoid),
    elementwise("tanh", torch.tanh),
    elementwise("relu", F.relu),
    elementwise("relu6", F.relu6),
    elementwise("leaky_relu", F.leaky_relu, {"negative_slope": 0.01}),
    elementwise("leaky_relu", lambda x: F.leaky_relu(x, 0.2), {"negative_slope": 0.2}),
    elementwise("prelu", lambda x: F.prelu(x, torch.tensor([0.25])), {"init": 0.25}),
    elementwise("rrelu", rrelu_eval, {"lower": 1 / 8, "upper": 1 / 3}),
    elementwise("elu", F.elu, {"alpha": 1.0}),
    elementwise("elu", lambda x: F.elu(x, 0.5), {"alpha": 0.5}),
    elementwise("selu", F.selu),
    elementwise("celu", F.celu, {"alpha": 1.0}),
    elementwise("celu", lambda x: F.celu(x, 2.0), {"alpha": 2.0}),
    elementwise("gelu", F.gelu, {"approximate": "none"}),
    elementwise("gelu", lambda x: F.gelu(x, approximate="tanh"), {"approximate": "tanh"}),
    elementwise("silu", F.silu, {"beta": 1.0}),
    elementwise("silu", lambda x: x * torch.sigmoid(1.5 * x), {"beta": 1.5}),
    elementwise("mish", F.mish),
    elementwise("softplus", F.softplus, {"beta": 1.0, "threshold": 20.0}),
    elementwise("softplus", lambda x: F.softplus(x, 2.0, 10.0), {"beta": 2.0, "threshold": 10.0}),
    elementwise("softsign", F.softsign),
    elementwise("hardtanh", F.hardtanh, {"min_val": -1.0, "max_val": 1.0}),
    elementwise("hardtanh", lambda x: F.hardtanh(x, -2.0, 3.0), {"min_val": -2.0, "max_val": 3.0}),
    elementwise("hardsigmoid", F.hardsigmoid),
    elementwise("hardswish", F.hardswish),
    elementwise("logsigmoid", F.logsigmoid),
    elementwise("tanhshrink", F.tanhshrink),
]

# Softmax / log-softmax: gradient of sum(f(x) * w), since sum(softmax) is constant.
sm_x = torch.randn(5, 7) * 3.0
sm_x[0] = torch.tensor([1e4, 1e4 - 1, -1e4, 0.0, 3.0, -3.0, 100.0])
sm_x[1] = torch.tensor([-1e4] * 7)
sm_w = torch.randn(5, 7)
for fname, fn in [("softmax", F.softmax), ("log_softmax", F.log_softmax)]:
    for dim in (0, 1):
        x = sm_x.clone().requires_grad_(True)
        y = fn(x, dim=dim)
        (y * sm_w).sum().backward()
        cases.append({"name": fname, "params": {"dim": dim}, "shape": list(sm_x.shape), "x": enc(sm_x),
                      "upstream": enc(sm_w), "y": enc(y), "grad": enc(x.grad)})

# PReLU with one slope per channel (dim 1), random slopes, on [N, C, H, W] and [N, C].
for shape in ([3, 4, 2, 3], [6, 4]):
    x = torch.randn(*shape).requires_grad_(True)
    weight = (torch.rand(4) * 0.5).requires_grad_(True)
    w = torch.randn(*shape)
    y = F.prelu(x, weight)
    (y * w).sum().backward()
    cases.append({"name": "prelu_channels", "shape": shape, "x": enc(x), "weight": enc(weight),
                  "upstream": enc(w), "y": enc(y), "grad": enc(x.grad), "grad_weight": enc(weight.grad)})


class APReLU(nn.Module):
    """Zhao et al.'s adaptively parametric ReLU, the reference for crates/activations/src/aprelu.rs."""

    def __init__(self, channels, reduction=1):
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.fc1 = nn.Linear(2 * channels, hidden)
        self.bn1 = nn.BatchNorm1d(hidden, momentum=0.1)
        self.fc2 = nn.Linear(hidden, channels)
        self.bn2 = nn.BatchNorm1d(channels, momentum=0.1)

    def forward(self, x):
        pos = F.relu(x)
        neg = torch.clamp(x, max=0.0)
        if x.dim() > 2:
            spatial = tuple(range(2, x.dim()))
            summary = torch.cat([pos.mean(dim=spatial), neg.mean(dim=spatial)], dim=1)
        else:
            summary = torch.cat([pos, neg], dim=1)
        h = F.relu(self.bn1(self.fc1(summary)))
        alpha = torch.sigmoid(self.bn2(self.fc2(h)))
        alpha = alpha.reshape(alpha.shape + (1,) * (x.dim() - 2))
        return pos + alpha * neg


def module_params(m):
    return {
        "fc1_weight": enc(m.fc1.weight), "fc1_bias": enc(m.fc1.bias),
        "bn1_gamma": enc(m.bn1.weight), "bn1_beta": enc(m.bn1.bias),
        "bn1_running_mean": enc(m.bn1.running_mean), "bn1_running_var": enc(m.bn1.running_var),
        "fc2_weight": enc(m.fc2.weight), "fc2_bias": enc(m.fc2.bias),
        "bn2_gamma": enc(m.bn2.weight), "bn2_beta": enc(m.bn2.bias),
        "bn2_running_mean": enc(m.bn2.running_mean), "bn2_running_var": enc(m.bn2.running_var),
    }


for shape, reduction in (([5, 4], 1), ([3, 4, 3, 2], 1), ([3, 4, 3, 2], 2)):
    for mode in ("train", "eval"):
        m = APReLU(shape[1], reduction)
        with torch.no_grad():
            for p in m.parameters():
                p.copy_(torch.randn_like(p) * 0.5)
            for bn in (m.bn1, m.bn2):
                bn.running_mean.copy_(torch.randn_like(bn.running_mean) * 0.3)
                bn.running_var.copy_(torch.rand_like(bn.running_var) + 0.5)
        before = module_params(m)
        m.train(mode == "train")
        x = torch.randn(*shape).requires_grad_(True)
        w = torch.randn(*shape)
        y = m(x)
        (y * w).sum().backward()
        after = module_params(m)
        grads = {k: enc(v.grad) for k, v in {
            "fc1_weight": m.fc1.weight, "fc1_bias": m.fc1.bias, "bn1_gamma": m.bn1.weight,
            "bn1_beta": m.bn1.bias, "fc2_weight": m.fc2.weight, "fc2_bias": m.fc2.bias,
            "bn2_gamma": m.bn2.weight, "bn2_beta": m.bn2.bias}.items()}
        cases.append({"name": "aprelu", "mode": mode, "reduction": reduction, "shape": shape,
                      "params": before, "x": enc(x), "upstream": enc(w), "y": enc(y), "grad": enc(x.grad),
                      "grad_params": grads,
                      "running_after": {k: after[k] for k in after if "running" in k}})

doc = {"generator": "scripts/golden.py", "torch": torch.__version__, "grid": enc(GRID), "cases": cases}
with open(OUT, "w") as f:
    json.dump(doc, f, separators=(",", ":"))
print(f"wrote {len(cases)} cases to {os.path.normpath(OUT)}")
