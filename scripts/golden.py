#!/usr/bin/env python3
"""Writes the PyTorch reference values the `activations` crate is tested against.

    python3 scripts/golden.py            # rewrites crates/activations/tests/fixtures/golden.json

Every element-wise activation is evaluated on one fixed grid (edge values, +-inf, NaN and
random normals); `grad` is d(sum(f(x)))/dx, i.e. f'(x) as PyTorch's autograd computes it,
including its subgradient choice at kinks. PReLU (per channel), softmax/log_softmax and
APReLU (fixed weights, [N,C] and [N,C,H,W], train and eval) and ACON-C (random parameters per
channel) also record parameter gradients.
Non-finite floats are written as the strings "nan", "inf", "-inf" (JSON has no literal for them).
The modules come from scripts/torch_activations.py, which scripts/torch_model.py uses too.
"""
import json
import math
import os

import torch
import torch.nn.functional as F

from torch_activations import MODULES, AconC, AprRelu, DyReluB, FRelu, MetaAconC, Pau, activation

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


def elementwise(name, params=None):
    """One kind on the grid, through the same module scripts/torch_model.py uses (RReLU in its
    deterministic evaluation form)."""
    params = params or {}
    module = activation({"kind": name, **params}).eval()
    x = GRID.clone().requires_grad_(True)
    y = module(x)
    y.sum().backward()
    return {"name": name, "params": params, "y": enc(y), "grad": enc(x.grad)}


cases = [
    elementwise("identity"),
    elementwise("sigmoid"),
    elementwise("tanh"),
    elementwise("relu"),
    elementwise("relu6"),
    elementwise("leaky_relu", {"negative_slope": 0.01}),
    elementwise("leaky_relu", {"negative_slope": 0.2}),
    elementwise("prelu", {"init": 0.25}),
    elementwise("rrelu", {"lower": 1 / 8, "upper": 1 / 3}),
    elementwise("elu", {"alpha": 1.0}),
    elementwise("elu", {"alpha": 0.5}),
    elementwise("selu"),
    elementwise("celu", {"alpha": 1.0}),
    elementwise("celu", {"alpha": 2.0}),
    elementwise("gelu", {"approximate": "none"}),
    elementwise("gelu", {"approximate": "tanh"}),
    elementwise("silu", {"beta": 1.0}),
    elementwise("silu", {"beta": 1.5}),
    elementwise("mish"),
    elementwise("softplus", {"beta": 1.0, "threshold": 20.0}),
    elementwise("softplus", {"beta": 2.0, "threshold": 10.0}),
    elementwise("softsign"),
    elementwise("hardtanh", {"min_val": -1.0, "max_val": 1.0}),
    elementwise("hardtanh", {"min_val": -2.0, "max_val": 3.0}),
    elementwise("hardsigmoid"),
    elementwise("hardswish"),
    elementwise("logsigmoid"),
    elementwise("tanhshrink"),
]
# Every other element-wise kind of scripts/torch_activations.py with its default parameters, so
# a new activation needs only its MODULES entry (add a case above for other parameters).
NOT_ELEMENTWISE = {"softmax", "log_softmax", "aprelu", "acon_c", "meta_acon", "dyrelu", "frelu", "pau"}
covered = {case["name"] for case in cases}
cases += [elementwise(kind) for kind in MODULES if kind not in covered | NOT_ELEMENTWISE]

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
        m = AprRelu(shape[1], reduction)
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

# ACON-C with random parameters per channel (one channel with p1 = p2, where it is linear), on
# [N, C, H, W] holding every edge value of the grid (+-1e4, +-inf, NaN) and on [N, C]. Appended
# last, so that the cases above keep their random draws.
for shape in ([3, 4, 5, 5], [6, 4]):
    m = AconC(4)
    with torch.no_grad():
        m.p1.copy_(torch.randn(4))
        m.p2.copy_(torch.randn(4))
        m.p2[3] = m.p1[3]
        m.beta.copy_(torch.rand(4) * 3.0)
    before = {k: enc(getattr(m, k)) for k in ("p1", "p2", "beta")}
    count = math.prod(shape)
    values = (EDGES + torch.randn(count).mul(3.0).tolist())[:count] if len(shape) == 4 \
        else torch.randn(count).mul(3.0).tolist()
    x = torch.tensor(values, dtype=torch.float32).reshape(shape).requires_grad_(True)
    w = torch.randn(*shape)
    y = m(x)
    (y * w).sum().backward()
    cases.append({"name": "acon_c", "shape": shape, "params": before, "x": enc(x), "upstream": enc(w),
                  "y": enc(y), "grad": enc(x.grad),
                  "grad_params": {k: enc(getattr(m, k).grad) for k in ("p1", "p2", "beta")}})

# SiLU with a learned beta per channel (random), on [N, C, H, W] and [N, C].
for shape in ([3, 4, 2, 3], [6, 4]):
    m = activation({"kind": "silu", "learnable": True, "per_channel": True}, 4)
    with torch.no_grad():
        m.learnable_beta.copy_(torch.rand(4) * 2.0 - 0.5)
    beta = enc(m.learnable_beta)
    x = (torch.randn(*shape) * 3.0).requires_grad_(True)
    w = torch.randn(*shape)
    y = m(x)
    (y * w).sum().backward()
    cases.append({"name": "silu_channels", "shape": shape, "x": enc(x), "beta": beta, "upstream": enc(w),
                  "y": enc(y), "grad": enc(x.grad), "grad_beta": enc(m.learnable_beta.grad)})

# Meta-ACON with random weights (r = 4: hidden max(4, 8/4) = 4) on [N, C, H, W] and [N, C], in
# training and evaluation mode: every parameter's gradient and the running statistics.
def meta_params(m):
    out = {"p1": enc(m.p1), "p2": enc(m.p2)}
    for name in ("fc1", "fc2"):
        out[f"{name}_weight"] = enc(getattr(m, name).weight)
        out[f"{name}_bias"] = enc(getattr(m, name).bias)
    for name in ("bn1", "bn2"):
        bn = getattr(m, name)
        out[f"{name}_gamma"], out[f"{name}_beta"] = enc(bn.weight), enc(bn.bias)
        out[f"{name}_running_mean"], out[f"{name}_running_var"] = enc(bn.running_mean), enc(bn.running_var)
    return out


for shape in ([4, 8, 3, 3], [6, 8]):
    for mode in ("train", "eval"):
        m = MetaAconC(8, r=4)
        with torch.no_grad():
            for p in m.parameters():
                p.copy_(torch.randn_like(p) * 0.5)
            for bn in (m.bn1, m.bn2):
                bn.running_mean.copy_(torch.randn_like(bn.running_mean) * 0.3)
                bn.running_var.copy_(torch.rand_like(bn.running_var) + 0.5)
        before = meta_params(m)
        m.train(mode == "train")
        x = (torch.randn(*shape) * 2.0).requires_grad_(True)
        w = torch.randn(*shape)
        y = m(x)
        (y * w).sum().backward()
        after = meta_params(m)
        grads = {"p1": enc(m.p1.grad), "p2": enc(m.p2.grad)}
        for name in ("fc1", "fc2"):
            grads[f"{name}_weight"] = enc(getattr(m, name).weight.grad)
            grads[f"{name}_bias"] = enc(getattr(m, name).bias.grad)
        for name in ("bn1", "bn2"):
            grads[f"{name}_gamma"] = enc(getattr(m, name).weight.grad)
            grads[f"{name}_beta"] = enc(getattr(m, name).bias.grad)
        cases.append({"name": "meta_acon", "mode": mode, "reduction": 4, "shape": shape,
                      "params": before, "x": enc(x), "upstream": enc(w), "y": enc(y),
                      "grad": enc(x.grad), "grad_params": grads,
                      "running_after": {k: after[k] for k in after if "running" in k}})

# DyReLU-B with random weights (reduction 2) on [N, C, H, W] and [N, C]: value, input gradient
# and the four weight and bias gradients.
for shape in ([4, 6, 3, 3], [5, 6]):
    m = DyReluB(6, reduction=2)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    before = {f"{n}_{k}": enc(getattr(getattr(m, n), k)) for n in ("fc1", "fc2") for k in ("weight", "bias")}
    x = (torch.randn(*shape) * 2.0).requires_grad_(True)
    w = torch.randn(*shape)
    y = m(x)
    (y * w).sum().backward()
    grads = {f"{n}_{k}": enc(getattr(getattr(m, n), k).grad) for n in ("fc1", "fc2") for k in ("weight", "bias")}
    cases.append({"name": "dyrelu", "reduction": 2, "shape": shape, "params": before, "x": enc(x),
                  "upstream": enc(w), "y": enc(y), "grad": enc(x.grad), "grad_params": grads})

# FReLU with random weights on [N, C, H, W], in training and evaluation mode (ties and their
# half-and-half gradient are checked by the unit tests of frelu.rs).
for mode in ("train", "eval"):
    m = FRelu(3)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
        m.bn_frelu.running_mean.copy_(torch.randn(3) * 0.3)
        m.bn_frelu.running_var.copy_(torch.rand(3) + 0.5)
    before = {"conv_weight": enc(m.conv_frelu.weight), "conv_bias": enc(m.conv_frelu.bias),
              "bn_gamma": enc(m.bn_frelu.weight), "bn_beta": enc(m.bn_frelu.bias),
              "bn_running_mean": enc(m.bn_frelu.running_mean), "bn_running_var": enc(m.bn_frelu.running_var)}
    m.train(mode == "train")
    x = torch.randn(4, 3, 5, 6).requires_grad_(True)
    w = torch.randn(4, 3, 5, 6)
    y = m(x)
    (y * w).sum().backward()
    grads = {"conv_weight": enc(m.conv_frelu.weight.grad), "conv_bias": enc(m.conv_frelu.bias.grad),
             "bn_gamma": enc(m.bn_frelu.weight.grad), "bn_beta": enc(m.bn_frelu.bias.grad)}
    cases.append({"name": "frelu", "mode": mode, "shape": [4, 3, 5, 6], "params": before, "x": enc(x),
                  "upstream": enc(w), "y": enc(y), "grad": enc(x.grad), "grad_params": grads,
                  "running_after": {"bn_running_mean": enc(m.bn_frelu.running_mean),
                                    "bn_running_var": enc(m.bn_frelu.running_var)}})

# PAU with random coefficients: (5, 4) per layer on [N, C, H, W] holding the grid's finite edge
# values (|x| up to 1e4), (5, 4) version B per channel, (8, 8) per channel on [N, C] with
# inputs up to 1e4 (the highest degree: x^8 ~ 1e32), and (3, 2) version B per layer. Value,
# input gradient and every coefficient's gradient.
FINITE_EDGES = [v for v in EDGES if math.isfinite(v)]
for shape, degrees, version, per_channel in (([3, 4, 5, 5], (5, 4), "a", False),
                                             ([3, 4, 2, 3], (5, 4), "b", True),
                                             ([8, 3], (8, 8), "a", True),
                                             ([8, 3], (8, 8), "b", False),
                                             ([6, 4], (3, 2), "b", False)):
    m = Pau(shape[1], degrees, version, per_channel)
    with torch.no_grad():
        m.numerator.copy_(torch.randn_like(m.numerator) * 0.5)
        m.denominator.copy_(torch.randn_like(m.denominator) * 0.5)
    count = math.prod(shape)
    values = (FINITE_EDGES + torch.randn(count).mul(3.0).tolist())[:count]
    x = torch.tensor(values, dtype=torch.float32).reshape(shape).requires_grad_(True)
    w = torch.randn(*shape)
    y = m(x)
    (y * w).sum().backward()
    cases.append({"name": "pau", "shape": shape, "degrees": list(degrees), "version": version,
                  "params": {"numerator": enc(m.numerator), "denominator": enc(m.denominator)},
                  "x": enc(x), "upstream": enc(w), "y": enc(y), "grad": enc(x.grad),
                  "grad_params": {"numerator": enc(m.numerator.grad),
                                  "denominator": enc(m.denominator.grad)}})

doc = {"generator": "scripts/golden.py", "torch": torch.__version__, "grid": enc(GRID), "cases": cases}
with open(OUT, "w") as f:
    json.dump(doc, f, separators=(",", ":"))
print(f"wrote {len(cases)} cases to {os.path.normpath(OUT)}")
