#!/usr/bin/env python3
"""Load a model exported by `fmnist export` into PyTorch, and check it on the test set.

    fmnist export --model runs/relu          # writes runs/relu/model.safetensors
    python scripts/torch_model.py runs/relu  # builds the same net in PyTorch, loads it
                                             # with strict=True, prints test accuracy

The other way, train in PyTorch and bring the weights to Burn:

    python scripts/torch_model.py --train torch.safetensors --config configs/default.toml
    fmnist import --from torch.safetensors --out runs/from-torch
    fmnist eval --model runs/from-torch      # the accuracy PyTorch printed

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


def write_safetensors(path, tensors, metadata):
    """Writes name -> tensor (f32 or i64) as safetensors with string metadata."""
    header, chunks, offset = {"__metadata__": metadata}, [], 0
    for name, tensor in sorted(tensors.items()):
        array = tensor.detach().cpu().contiguous().numpy()
        dtype = {np.dtype(np.float32): "F32", np.dtype(np.int64): "I64"}[array.dtype]
        data = array.astype(array.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dtype, "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    pathlib.Path(path).write_bytes(struct.pack("<Q", len(encoded)) + encoded + b"".join(chunks))


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
    """The fmnist CNN (`kind = "cnn"`) or MLP (`kind = "mlp"`) from a `[model]` table
    (`kind = "resnet"`: `ResNet` below)."""

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


class ResidualBlock(nn.Module):
    """crates/models/src/resnet.rs's pre-activation block:
    y = conv2(act2(BN2(conv1(act1(BN1(x)))))) + shortcut, the shortcut a 1×1 conv of
    act1(BN1(x)) when the block changes the channels or the size, else x."""

    def __init__(self, c_in, c_out, stride, spec):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(c_in)
        self.activation1 = activation(spec, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.norm2 = nn.BatchNorm2d(c_out)
        self.activation2 = activation(spec, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        projects = stride != 1 or c_in != c_out
        self.shortcut = nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False) if projects else None

    def forward(self, x):
        activated = self.activation1(self.norm1(x))
        shortcut = x if self.shortcut is None else self.shortcut(activated)
        hidden = self.activation2(self.norm2(self.conv1(activated)))
        return self.conv2(hidden) + shortcut


class ResNet(nn.Module):
    """The fmnist ResNet (`kind = "resnet"`): stem conv, stages of residual blocks (the first
    block of each stage after the first with stride 2), BN → activation → global average
    pooling → linear."""

    def __init__(self, model):
        super().__init__()
        stem = model.get("stem", 16)
        stages = model.get("stages", [16, 32, 64])
        per_stage = model.get("blocks_per_stage", 2)
        default = model.get("activation", "relu")
        stage_acts = model.get("stage_activations") or [default] * len(stages)
        self.stem = nn.Conv2d(1, stem, 3, padding=1, bias=False)
        blocks, c_in = [], stem
        for stage, (c_out, spec) in enumerate(zip(stages, stage_acts)):
            for block in range(per_stage):
                stride = 2 if stage > 0 and block == 0 else 1
                blocks.append(ResidualBlock(c_in, c_out, stride, spec))
                c_in = c_out
        self.blocks = nn.ModuleList(blocks)
        self.head_norm = nn.BatchNorm2d(c_in)
        self.head_activation = activation(stage_acts[-1], c_in)
        self.output = nn.Linear(c_in, 10)

    def forward(self, images):
        x = self.stem(images.reshape(-1, 1, 28, 28))
        for block in self.blocks:
            x = block(x)
        x = self.head_activation(self.head_norm(x))
        return self.output(x.mean(dim=(2, 3)))


def build_model(config):
    """A torch model for a run's resolved config (the dict of its `config.toml`)."""
    model = config.get("model", {})
    return ResNet(model) if model.get("kind") == "resnet" else Net(model)


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


def test_set(data_dir):
    images = read_idx(find(data_dir, "t10k-images-idx3-ubyte"))
    labels = read_idx(find(data_dir, "t10k-labels-idx1-ubyte"))
    return normalise(images), torch.from_numpy(labels.astype(np.int64))


def normalise(images):
    return (torch.from_numpy(images.astype(np.float32) / 255.0) - MEAN) / STD


def evaluate(model, data_dir):
    """(accuracy, mean loss, correct) on the 10,000 test images."""
    x, y = test_set(data_dir)
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(x[i : i + 1000]) for i in range(0, len(x), 1000)])
    correct = int((logits.argmax(1) == y).sum())
    return correct / len(y), F.cross_entropy(logits, y).item(), correct


def train(args):
    """Trains the config's network in PyTorch (Adam, batch 128) and writes its weights."""
    text = args.config.read_text()
    config = tomllib.loads(text)
    torch.manual_seed(args.seed)
    model = build_model(config)
    images = normalise(read_idx(find(args.data_dir, "train-images-idx3-ubyte")))
    labels = torch.from_numpy(read_idx(find(args.data_dir, "train-labels-idx1-ubyte")).astype(np.int64))
    lr = config.get("train", {}).get("lr", 1e-3)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(labels))
        for start in range(0, len(order), 128):
            batch = order[start : start + 128]
            if len(batch) < 2:  # BatchNorm needs two samples
                continue
            optimiser.zero_grad()
            F.cross_entropy(model(images[batch]), labels[batch]).backward()
            optimiser.step()
    accuracy, loss, correct = evaluate(model, args.data_dir)
    write_safetensors(args.train, model.state_dict(), {"format": "pt", "config": text})
    result = {"test_accuracy": accuracy, "test_loss": loss, "correct": correct,
              "epochs": args.epochs, "seed": args.seed, "torch": torch.__version__}
    pathlib.Path(str(args.train) + ".json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"PyTorch test accuracy {100 * accuracy:.2f}% (loss {loss:.4f}); wrote {args.train}; "
          f"`fmnist import --from {args.train} --out RUN` brings it to Burn")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=pathlib.Path, nargs="?",
                        help="a run directory after `fmnist export`")
    parser.add_argument("--weights", type=pathlib.Path, help="default: RUN_DIR/model.safetensors")
    parser.add_argument("--data-dir", type=pathlib.Path,
                        default=pathlib.Path("/usr/share/datasets/fashion-mnist"))
    parser.add_argument("--train", type=pathlib.Path, metavar="OUT",
                        help="train --config's network in PyTorch and write its weights to OUT")
    parser.add_argument("--config", type=pathlib.Path, help="with --train: a run config")
    parser.add_argument("--epochs", type=int, default=1, help="with --train (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="with --train (default 0)")
    args = parser.parse_args()
    if args.train:
        if not args.config:
            parser.error("--train needs --config")
        return train(args)
    if not args.run_dir:
        parser.error("give a run directory (or --train OUT --config CONFIG)")

    weights_path = args.weights or args.run_dir / "model.safetensors"
    weights, metadata = read_safetensors(weights_path)
    config = tomllib.loads(metadata.get("config") or (args.run_dir / "config.toml").read_text())
    model = build_model(config)
    model.load_state_dict(weights, strict=True)
    params = sum(p.numel() for p in model.parameters())
    print(f"loaded {weights_path} into PyTorch with strict=True ({params} parameters)")
    accuracy, loss, correct = evaluate(model, args.data_dir)
    print(f"PyTorch test accuracy {100 * accuracy:.2f}% (loss {loss:.4f}) on 10000 images; "
          f"`fmnist eval --model {args.run_dir}` should print the same")


if __name__ == "__main__":
    main()
