"""Builds PyTorch binary networks, exports them to ONNX and checks `xnor-edge import`.

    python tools/make_import_fixtures.py                 # writes tests/data/import/
    python tools/make_import_fixtures.py --report 200    # + per-architecture table and speed

Needs torch, onnx and onnxruntime (the [train] extra and onnxruntime). For each
architecture: random weights and batch-norm statistics (seeded), eval mode,
``torch.onnx.export`` (the TorchScript exporter, as most published binary
networks are exported), then the importer; the reference outputs come from
onnxruntime on the same inputs. The small ones are written as committed
fixtures (``NAME.onnx``, ``NAME.inputs.npy`` NCHW, ``NAME.outputs.npy``) that
tests/test_onnx_import.py replays without torch or onnxruntime.

Architectures: tools/xnor_train's ``digits`` (MNIST) XNOR net with and
without XNOR-Net's K map (Abs -> ReduceMean -> AveragePool -> Mul becomes
USE_K), ``vgg-small`` (CIFAR) without K (their straight-through estimator
exports to Where(Less(x, 0), -1, 1)), and a Bi-Real-style net: real-valued shortcuts
around every binary 3x3 conv, PReLU, an average-pool + 1x1 conv downsampling
shortcut, a +1-padded block (Pad value 1), ONNX Sign, Bi-Real's
approximate-sign STE (its polynomial branch cancels out), a hard-tanh (Clip)
and a channel concatenation. ``resnet18`` (width 8) runs in --report only: its
file is too large to commit.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from xnor_train.layers import ScaledSignWeight, binary_sign
from xnor_train.models import digits_net, resnet18, vgg_small

ROOT = Path(__file__).resolve().parents[1]

from xnor_edge.importers.onnx_import import compare, import_onnx  # noqa: E402

OUT = ROOT / "tests" / "data" / "import"


def bireal_sign(x):
    """Bi-Real Net's approximate-sign STE: forward sign(x), backward a piecewise polynomial.
    Exports as Sign, the polynomial's nodes, Sub and Add."""
    m1, m2, m3 = (x < -1).float(), (x < 0).float(), (x < 1).float()
    out1 = -1 * m1 + (x * x + 2 * x) * (1 - m1)
    out2 = out1 * m2 + (-x * x + 2 * x) * (1 - m2)
    out3 = out2 * m3 + 1 * (1 - m3)
    return torch.sign(x).detach() - out3.detach() + out3


class BinConv(nn.Module):
    """3x3 conv of sign(x) with alpha * sign(W); binariser: STE ('ste'), ONNX Sign ('sign'),
    Bi-Real's approximate sign ('bireal')."""

    def __init__(self, cin: int, cout: int, stride: int = 1, binariser: str = "ste", pad_one: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, 3, 3) * 0.1)
        self.stride, self.binariser, self.pad_one = stride, binariser, pad_one

    def forward(self, x):
        if self.binariser == "bireal":
            s = bireal_sign(x)
        else:
            s = torch.sign(x) if self.binariser == "sign" else binary_sign(x)
        w = ScaledSignWeight.apply(self.weight)
        if self.pad_one:
            return F.conv2d(F.pad(s, (1, 1, 1, 1), value=1.0), w, None, self.stride, 0)
        return F.conv2d(s, w, None, self.stride, 1)


class BiRealBlock(nn.Module):
    """y = prelu(bn(binconv(x)) + shortcut(x)); downsampling shortcut: avgpool 2 + 1x1 conv + bn."""

    def __init__(self, cin: int, cout: int, stride: int = 1, **kw):
        super().__init__()
        self.conv = BinConv(cin, cout, stride, **kw)
        self.bn = nn.BatchNorm2d(cout)
        self.act = nn.PReLU(cout)
        self.short = None
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(
                nn.AvgPool2d(stride), nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x):
        s = x if self.short is None else self.short(x)
        return self.act(self.bn(self.conv(x)) + s)


class BiRealNet(nn.Module):
    def __init__(self, w: int = 16, classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w))
        self.b1 = BiRealBlock(w, w)
        self.b2 = BiRealBlock(w, w, pad_one=True)
        self.b3 = BiRealBlock(w, 2 * w, 2, binariser="sign")
        self.b4 = BiRealBlock(2 * w, 2 * w, binariser="bireal")
        self.side = nn.Conv2d(2 * w, w, 1)
        self.head = nn.Linear(3 * w, classes)

    def forward(self, x):
        x = self.b2(self.b1(self.stem(x)))
        x = self.b4(self.b3(x))
        x = torch.cat([x, F.hardtanh(self.side(x))], dim=1)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.head(x)


def randomise_bn(model: nn.Module, gen: torch.Generator) -> None:
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=gen) * 0.2)
            m.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(c, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(c, generator=gen) * 0.2)
        if isinstance(m, nn.PReLU):
            m.weight.data.copy_(torch.rand(m.weight.shape, generator=gen) * 0.5)


ARCHS = {
    # name: (builder, input shape CHW, committed)
    "digits_xnor": (lambda: digits_net("xnor-nok", width=8), (1, 28, 28), True),
    "digits_xnor_k": (lambda: digits_net("xnor", width=8), (1, 28, 28), True),
    "vgg_small_xnor": (lambda: vgg_small("xnor-nok", width=4), (3, 32, 32), True),
    "bireal_style": (lambda: BiRealNet(8), (3, 32, 32), True),
    "resnet18_xnor": (lambda: resnet18("xnor-nok", width=8, input_size=64), (3, 64, 64), False),
}


def export(name: str, path: Path, seed: int = 0) -> tuple[int, ...]:
    build, shape, _ = ARCHS[name]
    torch.manual_seed(seed)
    model = build().eval()
    randomise_bn(model, torch.Generator().manual_seed(seed + 1))
    x = torch.randn(1, *shape)
    torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=17, input_names=["input"])
    return shape


def bench(path: Path, data: bytes, shape: tuple[int, ...], repeats: int = 50) -> tuple[float, float]:
    """Median ms per inference at 1 thread: xnor-edge, onnxruntime."""
    import time

    import onnxruntime as ort

    import xnor_edge

    x = np.random.default_rng(3).normal(size=shape).astype(np.float32)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    xh = np.ascontiguousarray(x.transpose(1, 2, 0))[None]
    out = []
    with xnor_edge.load(data, num_threads=1) as m:
        for run in (lambda: m.run(xh), lambda: sess.run(None, {"input": x[None]})):
            for _ in range(5):
                run()
            ts = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                run()
                ts.append(time.perf_counter() - t0)
            out.append(1e3 * float(np.median(ts)))
    return out[0], out[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--report", type=int, default=0, metavar="N", help="also compare on N random inputs")
    ap.add_argument("--inputs", type=int, default=4, help="inputs per committed fixture")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    import onnxruntime as ort

    rows = []
    for name, (_, _, committed) in ARCHS.items():
        path = args.out / f"{name}.onnx" if committed else args.out.parent / f".{name}.onnx"
        shape = export(name, path)
        g, report = import_onnx(path)
        data = g.to_bytes()
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        if committed:
            x = np.random.default_rng(7).normal(size=(args.inputs, *shape)).astype(np.float32)
            y = np.concatenate([sess.run(None, {"input": xi[None]})[0] for xi in x])
            np.save(args.out / f"{name}.inputs.npy", x)
            np.save(args.out / f"{name}.outputs.npy", y)
        if args.report:
            x = np.random.default_rng(11).normal(size=(args.report, *shape)).astype(np.float32)
            who, res = compare(path, data, x)
            rows.append(
                (
                    name,
                    path.stat().st_size,
                    max(r["max_abs_diff"] for r in res),
                    max(r["rel_diff"] for r in res),
                    float(np.mean([r["top1_agree"] for r in res])),
                    report.layers,
                    *bench(path, data, shape),
                )
            )
        if not committed:
            path.unlink()
    for r in rows:
        print(
            f"{r[0]:16s} onnx {r[1]:7d} B  max|diff| {r[2]:.3g}  rel {r[3]:.3g}  top-1 {r[4]:.3f}  "
            f"1 thread: xnor-edge {r[6]:.3f} ms, onnxruntime {r[7]:.3f} ms  {r[5]}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
