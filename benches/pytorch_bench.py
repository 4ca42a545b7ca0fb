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

    cargo run --release -p actlab-train --bin fmnist -- bench activations --json > burn.json
    python benches/pytorch_bench.py activations --against burn.json

Alternating, which is how every ratio in docs/performance.md is meant to be taken (a CPU's
speed drifts over minutes, so two runs taken one after the other measure the drift too):
`--burn BINARY` runs `BINARY bench ... --json` itself, `--rounds` times (default 5), in turns
with its own measurement (Burn first in odd rounds, PyTorch first in even ones), and prints each
side's median and the median ratio with its range over the rounds:

    cargo build --release -p actlab-train
    python benches/pytorch_bench.py activations --burn target/release/fmnist --rounds 5
    python benches/pytorch_bench.py train --model cnn --activation relu --burn target/release/fmnist

Threads: PyTorch's default (one per core), like Burn's rayon pool. Run both on an idle machine.
"""
import argparse
import json
import resource
import subprocess
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


EVAL_BATCH_SIZE = 1000  # crates/train/src/bench.rs
EVAL_BATCHES = 10


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

    # Inference of the trained model, as `fmnist bench train` measures it (EVAL_BATCH_SIZE).
    model.eval()
    images = torch.rand(EVAL_BATCH_SIZE, 1, 28, 28)
    with torch.no_grad():
        for _ in range(2):
            model(images).argmax(1)
        start = time.perf_counter()
        for _ in range(EVAL_BATCHES):
            model(images).argmax(1)
        eval_seconds = time.perf_counter() - start
    return {
        "model": kind,
        "activation": activation,
        "backend": "pytorch-cpu",
        "batch_size": batch_size,
        "train_images_per_second": steps * batch_size / seconds,
        "eval_images_per_second": EVAL_BATCHES * EVAL_BATCH_SIZE / eval_seconds,
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
            for key, label in [("train_images_per_second", "train"),
                               ("eval_images_per_second", "eval")]:
                if b.get(key) is None:
                    continue
                ratio = b[key] / t[key]
                print(f"{t['activation']:<16} {label:<5} burn {b[key]:>7.0f} img/s, "
                      f"torch {t[key]:>7.0f} img/s, ratio {ratio:.2f}")


def burn_rows(binary, what, args, names):
    """One `fmnist bench` run with the same settings, as rows keyed by activation."""
    command = [binary, "bench", what, "--json"]
    if what == "activations":
        command += ["--repeats", str(args.repeats)]
    else:
        command += ["--model", args.model, "--batch-size", str(args.batch_size),
                    "--warmup", str(args.warmup), "--steps", str(args.steps)]
    for name in names:
        # Burn's label for GELU's tanh form is a TOML table.
        command += ["--activation", '{ kind = "gelu", approximate = "tanh" }'
                    if name == "gelu(approximate=tanh)" else name]
    result = subprocess.run(command, check=True, capture_output=True, text=True)
    return {row["activation"]: row for row in json.loads(result.stdout)}


def alternate(what, args, names, measure):
    """`--rounds` turns of both sides; per activation, each side's median and the ratios."""
    rounds = []
    for round_index in range(args.rounds):
        if round_index % 2 == 0:
            burn = burn_rows(args.burn, what, args, names)
            torch_rows = {r["activation"]: r for r in measure()}
        else:
            torch_rows = {r["activation"]: r for r in measure()}
            burn = burn_rows(args.burn, what, args, names)
        rounds.append((burn, torch_rows))
        print(f"round {round_index + 1}/{args.rounds} done", file=sys.stderr)
    keys = (["forward_ms", "forward_backward_ms"] if what == "activations"
            else ["train_images_per_second", "eval_images_per_second"])
    summary = []
    for name in names:
        pairs = [(b[name], t[name]) for b, t in rounds if name in b and name in t]
        # Rows from a binary that predates a key leave that key out.
        keys_here = [k for k in keys if all(b.get(k) is not None for b, _ in pairs)]
        if not pairs:
            continue
        row = {"activation": name, "rounds": len(pairs)}
        for key in keys_here:
            burn_values = [b[key] for b, _ in pairs]
            torch_values = [t[key] for _, t in pairs]
            # Above 1: Burn faster (PyTorch's time over Burn's, or Burn's rate over PyTorch's).
            ratios = [(t / b if key.endswith("_ms") else b / t)
                      for b, t in zip(burn_values, torch_values)]
            row[key] = {"burn": statistics.median(burn_values),
                        "torch": statistics.median(torch_values),
                        "ratio": statistics.median(ratios),
                        "ratio_min": min(ratios), "ratio_max": max(ratios)}
        summary.append(row)
    return summary


def print_alternating(what, summary):
    if what == "activations":
        print(f"{'activation':<24} {'fwd burn':>9} {'torch':>7} {'ratio [range]':>19}   "
              f"{'fwd+bwd burn':>12} {'torch':>7} {'ratio [range]':>19}")
        for row in summary:
            f, fb = row["forward_ms"], row["forward_backward_ms"]
            print(f"{row['activation']:<24} {f['burn']:>9.2f} {f['torch']:>7.2f} "
                  f"{f['ratio']:>5.2f} [{f['ratio_min']:.2f}–{f['ratio_max']:.2f}]   "
                  f"{fb['burn']:>12.2f} {fb['torch']:>7.2f} "
                  f"{fb['ratio']:>5.2f} [{fb['ratio_min']:.2f}–{fb['ratio_max']:.2f}]")
        print(f"\nms, medians over {summary[0]['rounds'] if summary else 0} alternating rounds; "
              "ratio = PyTorch time / Burn time (>= 1: Burn at least as fast), median [range]")
    else:
        for row in summary:
            for key, label in [("train_images_per_second", "train"),
                               ("eval_images_per_second", "eval")]:
                if key not in row:
                    continue
                r = row[key]
                print(f"{row['activation']:<16} {label:<5} burn {r['burn']:>7.0f} img/s, "
                      f"torch {r['torch']:>7.0f} img/s, "
                      f"ratio {r['ratio']:.2f} [{r['ratio_min']:.2f}–{r['ratio_max']:.2f}]")
        print(f"\nmedians over {summary[0]['rounds'] if summary else 0} alternating rounds; "
              "ratio = Burn img/s / PyTorch img/s, median [range]")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    acts = sub.add_parser("activations")
    acts.add_argument("--activation", action="append", choices=sorted(ACTIVATIONS))
    acts.add_argument("--repeats", type=int, default=10)
    acts.add_argument("--json", action="store_true")
    acts.add_argument("--against", metavar="FILE", help="fmnist bench activations --json output")
    acts.add_argument("--burn", metavar="BINARY", help="the fmnist binary, to alternate with it")
    acts.add_argument("--rounds", type=int, default=5, help="alternating rounds with --burn")
    train = sub.add_parser("train")
    train.add_argument("--model", choices=["cnn", "mlp", "resnet"], default="cnn")
    train.add_argument("--activation", action="append",
                       help="a registry name (default: relu and gelu)")
    train.add_argument("--batch-size", type=int, default=128)
    train.add_argument("--warmup", type=int, default=5)
    train.add_argument("--steps", type=int, default=40)
    train.add_argument("--json", action="store_true")
    train.add_argument("--against", metavar="FILE", help="fmnist bench train --json output")
    train.add_argument("--burn", metavar="BINARY", help="the fmnist binary, to alternate with it")
    train.add_argument("--rounds", type=int, default=5, help="alternating rounds with --burn")
    args = parser.parse_args()

    if args.what == "activations":
        names = args.activation or [n for n in ACTIVATIONS if n != "relu"]
        measure = lambda: bench_activations(names, args.repeats)  # noqa: E731
    else:
        names = args.activation or ["relu", "gelu"]
        measure = lambda: [  # noqa: E731
            bench_train(args.model, n, args.batch_size, args.warmup, args.steps) for n in names]
    if args.burn:
        summary = alternate(args.what, args, names, measure)
        if args.json:
            json.dump(summary, sys.stdout, indent=2)
            print()
        else:
            print_alternating(args.what, summary)
            print(f"\nPyTorch {torch.__version__}, {torch.get_num_threads()} threads, "
                  f"{torch.backends.cpu.get_cpu_capability()}")
        return
    rows = measure()
    if not args.json and not args.against:
        if args.what == "activations":
            print(f"{'activation':<24} {'fwd ms':>10} {'fwd+bwd ms':>12}")
            for r in rows:
                print(f"{r['activation']:<24} {r['forward_ms']:>10.2f} {r['forward_backward_ms']:>12.2f}")
        else:
            for r in rows:
                print(
                    f"{r['activation']:<16} batch {r['batch_size']:>4}: "
                    f"{r['train_images_per_second']:>8.0f} training images/s, "
                    f"{r['eval_images_per_second']:>8.0f} evaluation images/s, "
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
