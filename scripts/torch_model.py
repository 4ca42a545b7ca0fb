#!/usr/bin/env python3
"""Load a model exported by `fmnist export` into PyTorch, and check it on the test set.

    fmnist export --model runs/relu          # writes runs/relu/model.safetensors
    python scripts/torch_model.py runs/relu  # builds the same net in PyTorch, loads it
                                             # with strict=True, prints test accuracy

`build_model(config)` builds, from a run's `config.toml`, a torch.nn.Module whose attribute
names are the safetensors names (`blocks.0.conv.weight`, `dense.0.linear.weight`,
`output.weight`, ...), so `model.load_state_dict(weights, strict=True)` works. Import it from
your own code to fine-tune a Burn-trained model in PyTorch.

Needs torch and numpy; reads the safetensors file itself (no `safetensors` package needed).
"""
import argparse
import gzip
import json
import pathlib
import struct
import sys
import tomllib

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from torch_activations import activation

MEAN, STD = 0.2860, 0.3530


def read_safetensors(path):
    """name -> tensor, and the metadata dict."""
    raw = pathlib.Path(path).read_bytes()
    (header_len,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + header_len])
    metadata = header.pop("__metadata__", {})
    data = raw[8 + header_len :]
    dtypes = {"F32": np.float32, "I64": np.int64}
    tensors = {}
    for name, info in header.items():
        start, end = info["data_offsets"]
        array = np.frombuffer(data[start:end], dtype=dtypes[info["dtype"]])
        tensors[name] = torch.from_numpy(array.copy().reshape(info["shape"]))
    return tensors, metadata


def uses_selu(spec):
    return spec == "selu" or (isinstance(spec, dict) and spec.get("kind") == "selu")


class DenseBlock(nn.Module):
    def __init__(self, d_in, d_out, spec, dropout):
        super().__init__()
        self.linear = nn.Linear(d_in, d_out)
        self.activation = activation(spec, d_out)
        self.drop = (nn.AlphaDropout(dropout) if uses_selu(spec) else nn.Dropout(dropout))

    def forward(self, x):
        return self.drop(self.activation(self.linear(x)))


class ConvBlock(nn.Module):
    def __init__(self, c_in, c_out, spec, batch_norm):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)
        if batch_norm:
            self.norm = nn.BatchNorm2d(c_out)
        self.activation = activation(spec, c_out)

    def forward(self, x):
        x = self.conv(x)
        if hasattr(self, "norm"):
            x = self.norm(x)
        return F.max_pool2d(self.activation(x), 2)


class Net(nn.Module):
    """The fmnist CNN (`kind = "cnn"`) or MLP (`kind = "mlp"`) from a `[model]` table."""

    def __init__(self, model):
        super().__init__()
        kind = model.get("kind", "cnn")
        default = model.get("activation", "relu")
        hidden = model.get("hidden", [128] if kind == "cnn" else [256, 256, 256])
        hidden_acts = model.get("hidden_activations") or [default] * len(hidden)
        dropout = model.get("dropout", 0.0)
        if kind == "cnn":
            channels = model.get("channels", [32, 64])
            conv_acts = model.get("conv_activations") or [default] * len(channels)
            blocks, c_in, size = [], 1, 28
            for c_out, spec in zip(channels, conv_acts):
                blocks.append(ConvBlock(c_in, c_out, spec, model.get("batch_norm", False)))
                c_in, size = c_out, size // 2
            self.blocks = nn.ModuleList(blocks)
            width = c_in * size * size
        else:
            self.blocks = nn.ModuleList()
            width = 28 * 28
        dense = []
        for units, spec in zip(hidden, hidden_acts):
            dense.append(DenseBlock(width, units, spec, dropout))
            width = units
        self.dense = nn.ModuleList(dense)
        self.output = nn.Linear(width, 10)

    def forward(self, images):
        x = images.reshape(-1, 1, 28, 28)
        for block in self.blocks:
            x = block(x)
        x = x.flatten(1)
        for block in self.dense:
            x = block(x)
        return self.output(x)


def build_model(config):
    """A torch model for a run's resolved config (the dict of its `config.toml`)."""
    return Net(config.get("model", {}))


def read_idx(path):
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    dims = raw[3]
    shape = struct.unpack(">" + "I" * dims, raw[4 : 4 + 4 * dims])
    return np.frombuffer(raw[4 + 4 * dims :], dtype=np.uint8).reshape(shape)


def find(data_dir, stem):
    for name in (stem + ".gz", stem):
        if (data_dir / name).exists():
            return data_dir / name
    sys.exit(f"error: {stem}(.gz) not in {data_dir}; pass --data-dir")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=pathlib.Path, help="a run directory after `fmnist export`")
    parser.add_argument("--weights", type=pathlib.Path, help="default: RUN_DIR/model.safetensors")
    parser.add_argument("--data-dir", type=pathlib.Path,
                        default=pathlib.Path("/usr/share/datasets/fashion-mnist"))
    args = parser.parse_args()

    weights_path = args.weights or args.run_dir / "model.safetensors"
    weights, metadata = read_safetensors(weights_path)
    config = tomllib.loads(metadata.get("config") or (args.run_dir / "config.toml").read_text())
    model = build_model(config)
    model.load_state_dict(weights, strict=True)
    model.eval()
    params = sum(p.numel() for p in model.parameters())
    print(f"loaded {weights_path} into PyTorch with strict=True ({params} parameters)")

    images = read_idx(find(args.data_dir, "t10k-images-idx3-ubyte"))
    labels = read_idx(find(args.data_dir, "t10k-labels-idx1-ubyte"))
    x = (torch.from_numpy(images.astype(np.float32) / 255.0) - MEAN) / STD
    with torch.no_grad():
        logits = torch.cat([model(x[i : i + 1000]) for i in range(0, len(x), 1000)])
    loss = F.cross_entropy(logits, torch.from_numpy(labels.astype(np.int64))).item()
    accuracy = (logits.argmax(1).numpy() == labels).mean()
    print(f"PyTorch test accuracy {100 * accuracy:.2f}% (loss {loss:.4f}) on {len(labels)} images; "
          f"`fmnist eval --model {args.run_dir}` should print the same")


if __name__ == "__main__":
    main()
