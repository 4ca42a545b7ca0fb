#!/usr/bin/env python3
"""PyTorch's side of `fmnist bench`: the same two measurements, the same JSON keys.

    python benches/pytorch_bench.py activations [--json] [--repeats 10]
    python benches/pytorch_bench.py train [--model cnn|mlp|resnet] [--activation relu --activation aprelu] [--batch-size 128] [--json]

`activations`: forward and forward+backward milliseconds of each activation on one
[128, 32, 32, 32] float32 tensor (4,194,304 elements), median of --repeats after two warm-up
calls. forward+backward is `y = f(x); y.backward(torch.ones_like(y))`, which is what Burn's
`y.backward()` on a non-scalar does (it seeds with ones). PyTorch's own kernels are fused
already, so `builtin_*` repeats its numbers (the keys stay those of `fmnist bench activations`).

`train`: images/s of the reference CNN of ../shared/REFERENCE.md (conv32-conv64-fc128; `--model
mlp`: the compare MLP, 784-256-256-256-10; `--model resnet`: configs/resnet.toml's network), Adam 1e-3, eps 1e-8, cross-entropy, on random
in-memory batches, after warm-up; peak RSS in MiB. The networks and their activations (any
registry name, APReLU and per-channel PReLU included) are scripts/torch_model.py's, the twins
that load `fmnist export` weights.

Side by side with Burn: `--against FILE` reads `fmnist bench ... --json` output and prints both
with the ratio PyTorch time / Burn time (above 1: Burn is faster), e.g.

    cargo run --release -p train --bin fmnist -- bench activations --json > burn.json
    python benches/pytorch_bench.py activations --against burn.json

Threads: PyTorch's default (one per core), like Burn's rayon pool. Run both on an idle machine.
"""
import argparse
import json
import resource
import statistics
import sys
import time

import pathlib

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "scripts"))
from torch_model import build_model  # noqa: E402  (the fmnist networks' PyTorch twins)
from torch_activations import activation  # noqa: E402  (the registry's PyTorch modules)

SHAPE = (128, 32, 32, 32)

ACTIVATIONS = {
    "sigmoid": lambda: nn.Sigmoid(),
    "tanh": lambda: nn.Tanh(),
    "leaky_relu": lambda: nn.LeakyReLU(0.01),
    "prelu": lambda: nn.PReLU(),  # one shared slope, as `prelu` in the registry
    "rrelu": lambda: nn.RReLU(1 / 8, 1 / 3).eval(),
    "elu": lambda: nn.ELU(),
    "selu": lambda: nn.SELU(),
    "celu": lambda: nn.CELU(),
    "gelu": lambda: nn.GELU(),
    "gelu(approximate=tanh)": lambda: nn.GELU(approximate="tanh"),
    "silu": lambda: nn.SiLU(),
    "mish": lambda: nn.Mish(),
    "softplus": lambda: nn.Softplus(),
    "softsign": lambda: nn.Softsign(),
    "hardsigmoid": lambda: nn.Hardsigmoid(),
    "hardswish": lambda: nn.Hardswish(),
    "logsigmoid": lambda: nn.LogSigmoid(),
    "relu": lambda: nn.ReLU(),
    # Evaluation mode (running statistics), as `fmnist bench activations` runs it.
    "aprelu": lambda: activation("aprelu", SHAPE[1]).eval(),
}


def median_ms(fn, repeats, warmup=2):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def bench_activations(names, repeats):
    torch.manual_seed(7)
    x = torch.randn(SHAPE) * 2.0
    rows = []
    for name in names:
        module = ACTIVATIONS[name]()

        def forward():
            with torch.no_grad():
                module(x)

        def forward_backward():
            xg = x.detach().requires_grad_(True)
            y = module(xg)
            y.backward(torch.ones_like(y))

        fwd = median_ms(forward, repeats)
        fwd_bwd = median_ms(forward_backward, repeats)
        rows.append(
            {
                "activation": name,
                "backend": "pytorch-cpu",
                "forward_ms": fwd,
                "forward_backward_ms": fwd_bwd,
                "builtin_forward_ms": fwd,
                "builtin_forward_backward_ms": fwd_bwd,
            }
        )
    return rows


def bench_train(kind, activation, batch_size, warmup, steps):
    torch.manual_seed(1)
    model = build_model({"model": {"kind": kind, "activation": activation}})
    optim = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-8)
    batches = [
        (torch.rand(batch_size, 1, 28, 28), torch.randint(0, 10, (batch_size,)))
        for _ in range(4)
    ]

    def run(count):
        for step in range(count):
            images, labels = batches[step % len(batches)]
            loss = F.cross_entropy(model(images), labels)
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()

    run(warmup)
    start = time.perf_counter()
    run(steps)
    seconds = time.perf_counter() - start
    return {
        "model": kind,
        "activation": activation,
        "backend": "pytorch-cpu",
        "batch_size": batch_size,
        "train_images_per_second": steps * batch_size / seconds,
        "peak_memory_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def side_by_side(what, torch_rows, path):
    with open(path) as f:
        burn_rows = {row["activation"]: row for row in json.load(f)}
    if what == "activations":
        print(f"{'activation':<24} {'fwd burn':>9} {'torch':>7} {'ratio':>6}   "
              f"{'fwd+bwd burn':>12} {'torch':>7} {'ratio':>6}")
        for t in torch_rows:
            b = burn_rows.get(t["activation"])
            if b is None:
                continue
            print(f"{t['activation']:<24} {b['forward_ms']:>9.2f} {t['forward_ms']:>7.2f} "
                  f"{t['forward_ms'] / b['forward_ms']:>6.2f}   {b['forward_backward_ms']:>12.2f} "
                  f"{t['forward_backward_ms']:>7.2f} "
                  f"{t['forward_backward_ms'] / b['forward_backward_ms']:>6.2f}")
        print("\nms; ratio = PyTorch time / Burn time (>= 1: Burn at least as fast)")
    else:
        for t in torch_rows:
            b = burn_rows.get(t["activation"])
            if b is None:
                continue
            ratio = b["train_images_per_second"] / t["train_images_per_second"]
            print(f"{t['activation']:<16} burn {b['train_images_per_second']:>7.0f} img/s, "
                  f"torch {t['train_images_per_second']:>7.0f} img/s, ratio {ratio:.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    acts = sub.add_parser("activations")
    acts.add_argument("--activation", action="append", choices=sorted(ACTIVATIONS))
    acts.add_argument("--repeats", type=int, default=10)
    acts.add_argument("--json", action="store_true")
    acts.add_argument("--against", metavar="FILE", help="fmnist bench activations --json output")
    train = sub.add_parser("train")
    train.add_argument("--model", choices=["cnn", "mlp", "resnet"], default="cnn")
    train.add_argument("--activation", action="append",
                       help="a registry name (default: relu and gelu)")
    train.add_argument("--batch-size", type=int, default=128)
    train.add_argument("--warmup", type=int, default=5)
    train.add_argument("--steps", type=int, default=40)
    train.add_argument("--json", action="store_true")
    train.add_argument("--against", metavar="FILE", help="fmnist bench train --json output")
    args = parser.parse_args()

    if args.what == "activations":
        names = args.activation or [n for n in ACTIVATIONS if n != "relu"]
        rows = bench_activations(names, args.repeats)
        if not args.json and not args.against:
            print(f"{'activation':<24} {'fwd ms':>10} {'fwd+bwd ms':>12}")
            for r in rows:
                print(f"{r['activation']:<24} {r['forward_ms']:>10.2f} {r['forward_backward_ms']:>12.2f}")
    else:
        names = args.activation or ["relu", "gelu"]
        rows = [bench_train(args.model, n, args.batch_size, args.warmup, args.steps) for n in names]
        if not args.json and not args.against:
            for r in rows:
                print(
                    f"{r['activation']:<16} batch {r['batch_size']:>4}: "
                    f"{r['train_images_per_second']:>8.0f} training images/s, "
                    f"peak memory {r['peak_memory_mib']:.0f} MiB"
                )
    if args.against:
        side_by_side(args.what, rows, args.against)
    elif args.json:
        json.dump(rows, sys.stdout, indent=2)
        print()
    if not args.json:
        print(f"\nPyTorch {torch.__version__}, {torch.get_num_threads()} threads, "
              f"{torch.backends.cpu.get_cpu_capability()}")


if __name__ == "__main__":
    main()
