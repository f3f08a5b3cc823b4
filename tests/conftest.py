"""Shared helpers for the Python tests."""

from __future__ import annotations

import builtins
import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from xnor_edge.builder import GraphBuilder


def pm1(a: np.ndarray) -> np.ndarray:
    """sign with sign(0) = +1, as docs/bitpacking.md."""
    return np.where(np.asarray(a) < 0, -1.0, 1.0)


def naive_conv(x: np.ndarray, w: np.ndarray, stride=(1, 1), pad=(0, 0), pad_value=0.0) -> np.ndarray:
    """Direct loops over a PyTorch-layout weight [OC, IC, KH, KW]; x is (H, W, C)."""
    h, wd, _ = x.shape
    oc, ic, kh, kw = w.shape
    oh = (h + 2 * pad[0] - kh) // stride[0] + 1
    ow = (wd + 2 * pad[1] - kw) // stride[1] + 1
    y = np.zeros((oh, ow, oc))
    for i in range(oh):
        for j in range(ow):
            for u in range(kh):
                for v in range(kw):
                    r, c = i * stride[0] - pad[0] + u, j * stride[1] - pad[1] + v
                    if 0 <= r < h and 0 <= c < wd:
                        px = x[r, c]
                    else:
                        px = np.full(ic, pad_value)
                    y[i, j] += w[:, :, u, v] @ px
    return y


def tiny_classifier(
    n_classes: int = 4, shape=(12, 12, 3), seed: int = 0, use_k: bool = True, **meta
) -> bytes:
    """A small XNOR classifier: float conv -> bn -> bconv(K) -> pool -> bconv bits -> dense."""
    rng = np.random.default_rng(seed)
    labels = [f"label{i}" for i in range(n_classes)]
    g = GraphBuilder(shape, {"name": "tiny", "labels": labels, **meta})
    c = shape[2]
    x = g.conv2d(g.input, rng.normal(size=(8, c, 3, 3)), rng.normal(size=8) * 0.1, padding=1, relu=True)
    x = g.batchnorm(x, rng.uniform(0.5, 1.5, 8), rng.normal(size=8))
    x = g.bconv2d(
        x,
        rng.normal(size=(16, 8, 3, 3)),
        rng.uniform(0.1, 1, 16),
        rng.normal(size=16),
        padding=1,
        use_k=use_k,
        relu=True,
    )
    x = g.maxpool(x, 2)
    x = g.bconv2d(x, rng.normal(size=(16, 16, 3, 3)), rng.uniform(0.1, 1, 16), padding=1, pad_mode="one")
    x = g.global_avgpool(x)
    g.dense(x, rng.normal(size=(n_classes, 16)), rng.normal(size=n_classes))
    return g.to_bytes()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def tiny_model_path(tmp_path):
    p = tmp_path / "tiny.xnor"
    p.write_bytes(tiny_classifier())
    return p


@pytest.fixture
def block_import(monkeypatch):
    """``block_import("onnx", ...)``: importing those packages (or their modules) raises
    ImportError for the rest of the test, as when they are not installed."""
    real = builtins.__import__

    def block(*packages: str) -> None:
        def fake(name, *a, **k):
            if any(name == p or name.startswith(p + ".") for p in packages):
                raise ImportError(f"No module named {name!r}")
            return real(name, *a, **k)

        monkeypatch.setattr(builtins, "__import__", fake)

    return block


def write_idx(path: Path, arr: np.ndarray) -> None:
    """A gzipped IDX file (MNIST's format) of uint8 `arr`."""
    header = struct.pack(">HBB", 0, 8, arr.ndim) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def fake_mnist(root: Path, n_train: int = 256, n_test: int = 64) -> None:
    """Ten classes, each a bright bar at a class-specific row: learnable in one epoch."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        y = rng.integers(0, 10, n)
        x = rng.integers(0, 40, (n, 28, 28))
        for i, c in enumerate(y):
            x[i, 2 + 2 * c : 4 + 2 * c, 4:24] = 255
        write_idx(root / f"{prefix}-images-idx3-ubyte.gz", x)
        write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", y)
