"""Export a trained checkpoint to an xnor-edge model file through the public builder.

    python -m xnor_train.export RUN/best.pt OUT.xnor [--name NAME]     # or xnor-edge-export
    python -m xnor_train.export RUN/best.pt OUT.onnx --onnx

Mapping (one module -> one runtime op, docs/format.md):
  Conv2d [+BatchNorm2d] [+ReLU]       -> conv2d (BN folded into weights and bias)
  BinConv2d bwn [+BN] [+ReLU]         -> bwn_conv2d, scale = alpha (*BN scale)
  BinConv2d xnor [+BN] [+ReLU]        -> bconv2d (pad_mode, use_k), scale = alpha (*BN scale)
  BatchNorm2d [+ReLU] (B-A-C-P)       -> batchnorm (cannot fold through sign)
  MaxPool2d / AvgPool2d / GlobalAvgPool / ReLU / BinActiv -> maxpool / avgpool / ... / sign
  Flatten + Linear [+ReLU]            -> dense (input_order "chw")
  BinLinear xnor / bwn                -> binary_dense / bwn_conv2d over the whole map
  Residual                            -> body, shortcut, add
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from .layers import BinActiv, BinConv2d, BinLinear, Flatten, GlobalAvgPool, Residual
from .models import XnorNet, build_model


class ExportError(ValueError):
    """The model holds a module or setting the runtime cannot express."""


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().double().numpy()


def _bn_affine(bn: nn.BatchNorm2d) -> tuple[np.ndarray, np.ndarray]:
    from xnor_edge.builder import fold_batchnorm

    c = bn.num_features
    gamma = _np(bn.weight) if bn.affine else np.ones(c)
    beta = _np(bn.bias) if bn.affine else np.zeros(c)
    if bn.running_mean is None:
        raise ExportError("BatchNorm2d without running statistics cannot be exported")
    s, t = fold_batchnorm(gamma, beta, _np(bn.running_mean), _np(bn.running_var), bn.eps)
    return s.astype(np.float64), t.astype(np.float64)


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


class _Emitter:
    def __init__(self, g):
        self.g = g

    def run(self, mods: list[nn.Module], v, flat: bool = False):
        i = 0
        while i < len(mods):
            m = mods[i]
            nxt = mods[i + 1] if i + 1 < len(mods) else None
            used = 1
            if isinstance(m, (nn.Conv2d, BinConv2d)):
                bn = nxt if isinstance(nxt, nn.BatchNorm2d) else None
                used += bn is not None
                after = mods[i + used] if i + used < len(mods) else None
                relu = isinstance(after, nn.ReLU)
                used += relu
                v = self.conv(m, bn, relu, v)
            elif isinstance(m, nn.BatchNorm2d):
                s, t = _bn_affine(m)
                relu = isinstance(nxt, nn.ReLU)
                used += relu
                v = self.g.batchnorm(v, s, t, relu=relu)
            elif isinstance(m, nn.ReLU):
                v = self.g.relu(v)
            elif isinstance(m, BinActiv):
                v = self.g.sign(v)
            elif isinstance(m, nn.MaxPool2d):
                if _pair(m.dilation) != (1, 1) or m.ceil_mode:
                    raise ExportError("MaxPool2d with dilation or ceil_mode is not supported")
                v = self.g.maxpool(v, _pair(m.kernel_size), _pair(m.stride), _pair(m.padding))
            elif isinstance(m, nn.AvgPool2d):
                if m.ceil_mode or not m.count_include_pad or m.divisor_override:
                    raise ExportError("AvgPool2d must use count_include_pad=True, no ceil_mode/divisor")
                v = self.g.avgpool(v, _pair(m.kernel_size), _pair(m.stride), _pair(m.padding))
            elif isinstance(m, GlobalAvgPool):
                v = self.g.global_avgpool(v)
            elif isinstance(m, Flatten):
                flat = True
            elif isinstance(m, (nn.Linear, BinLinear)):
                relu = isinstance(nxt, nn.ReLU)
                used += relu
                v = self.linear(m, relu, v, "chw" if flat else "hwc")
            elif isinstance(m, Residual):
                a = self.run(list(m.body), v)
                b = v if isinstance(m.shortcut, nn.Identity) else self.run(list(m.shortcut), v)
                v = self.g.add(a, b, relu=m.relu)
            elif isinstance(m, nn.Sequential):
                v = self.run(list(m), v, flat)
            elif isinstance(m, (nn.Identity, nn.Dropout)):
                pass
            else:
                raise ExportError(f"cannot export module {type(m).__name__}: no runtime op for it")
            i += used
        return v

    def conv(self, m, bn, relu, v):
        w = _np(m.weight)
        oc = w.shape[0]
        bias = _np(m.bias) if m.bias is not None else np.zeros(oc)
        stride = _pair(m.stride)
        if isinstance(m, nn.Conv2d):
            if _pair(m.dilation) != (1, 1) or m.groups != 1 or m.padding_mode != "zeros":
                raise ExportError("Conv2d with dilation, groups or non-zero padding mode is not supported")
            if isinstance(m.padding, str):
                raise ExportError("Conv2d padding must be numeric")
            pad = _pair(m.padding)
            if bn is not None:
                s, t = _bn_affine(bn)
                w = w * s[:, None, None, None]
                bias = bias * s + t
            return self.g.conv2d(v, w, bias, stride=stride, padding=pad, relu=relu)
        scale = _np(m.export_scale())
        if bn is not None:
            s, t = _bn_affine(bn)
            scale = scale * s
            bias = bias * s + t
        pad = (m.padding, m.padding)
        if m.mode == "bwn":
            return self.g.bwn_conv2d(v, w, scale, bias, stride=stride, padding=pad, relu=relu)
        return self.g.bconv2d(
            v, w, scale, bias, stride=stride, padding=pad, pad_mode=m.pad_mode, use_k=m.use_k, relu=relu
        )

    def linear(self, m, relu, v, order):
        w = _np(m.weight)
        bias = _np(m.bias) if m.bias is not None else np.zeros(w.shape[0])
        if isinstance(m, nn.Linear):
            return self.g.dense(v, w, bias, relu=relu, input_order=order)
        scale = _np(m.export_scale())
        if m.mode == "xnor":
            return self.g.binary_dense(v, w, scale, bias, use_k=m.use_k, relu=relu, input_order=order)
        h, wd, c = v.shape
        if order == "chw":
            w4 = w.reshape(w.shape[0], c, h, wd)
        else:
            w4 = w.reshape(w.shape[0], h, wd, c).transpose(0, 3, 1, 2)
        return self.g.bwn_conv2d(v, w4, scale, bias, stride=1, padding=0, relu=relu)


def export_model(model: nn.Module, input_shape: tuple[int, int, int], metadata: dict | None = None):
    """Return a GraphBuilder holding ``model`` (eval mode) for input (H, W, C)."""
    from xnor_edge.builder import GraphBuilder

    model = model.eval()
    g = GraphBuilder(input_shape=tuple(input_shape), metadata=metadata)
    mods = list(model.features) if isinstance(model, XnorNet) else list(model.children()) or [model]
    _Emitter(g).run(mods, g.input)
    return g


def load_checkpoint(path: str | Path):
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    ck = torch.load(path, map_location="cpu", weights_only=False)
    for key in ("model", "config", "data"):
        if key not in ck:
            raise ValueError(f"{path}: not an xnor_train checkpoint (missing {key!r})")
    model = build_model(ck["config"])
    model.load_state_dict(ck["model"])
    return model.eval(), ck


def metadata_for(ck: dict, name: str | None = None) -> dict:
    d, cfg = ck["data"], ck["config"]
    meta = {
        "name": name or f"{d['name']}-{cfg['arch']}-{cfg['variant']}",
        "labels": d["labels"],
        "input_size": d["input_size"],
        "color_order": d["color_order"],
        "mean": d["mean"],
        "std": d["std"],
        "task": "classification",
        "variant": cfg["variant"],
        "training": {
            "data": d["source"],
            "command": ck.get("command"),
            "epochs": ck.get("epoch"),
            "accuracy": {"test_top1_torch": ck.get("test_acc"), "n_test": d.get("n_test")},
            "date": ck.get("date"),
            "wall_s": round(float(ck.get("wall_s", 0.0)), 1),
            "device": ck.get("device"),
            "framework": f"torch {ck.get('torch_version')}",
            "arch": cfg,
        },
    }
    if d.get("resize"):
        meta["resize"] = d["resize"]
    return meta


def size_report(model: nn.Module) -> dict:
    """Bytes of the binary layers as float32 vs packed (weights + scale + bias), and of
    the whole network's parameters as float32."""
    float_b = packed_b = 0
    for m in model.modules():
        if isinstance(m, (BinConv2d, BinLinear)):
            w = m.weight
            oc = w.shape[0]
            ic = w.shape[1]
            k = int(np.prod(w.shape[2:])) if w.dim() == 4 else 1
            float_b += 4 * (w.numel() + oc)
            packed_b += 4 * (oc * k * ((ic + 31) // 32) + 2 * oc)
    total_float = 4 * sum(p.numel() for p in model.parameters())
    return {
        "binary_layers_float32_bytes": float_b,
        "binary_layers_packed_bytes": packed_b,
        "binary_layers_ratio": round(float_b / packed_b, 2) if packed_b else None,
        "all_params_float32_bytes": total_float,
    }


def export_onnx(model: XnorNet, ck: dict, out: Path) -> str:
    """ONNX of the float counterpart (same architecture, variant float, the checkpoint's
    float and latent weights).  Returns a message; skips when onnx is unavailable."""
    try:
        import onnx
    except ImportError:
        return "skipped: the 'onnx' package is not installed (pip install onnx)"
    cfg = dict(ck["config"], variant="float")
    fm = build_model(cfg).eval()
    src = model.state_dict()
    fm.load_state_dict(
        {k: v for k, v in src.items() if k in fm.state_dict() and fm.state_dict()[k].shape == v.shape},
        strict=False,
    )
    h, w = ck["data"]["input_size"]
    x = torch.zeros(1, cfg["in_ch"], h, w)
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                fm,
                (x,),
                str(out),
                input_names=["input"],
                output_names=["logits"],
                opset_version=17,
                dynamo=False,
            )
    except Exception as e:  # the exporter's failure modes vary by torch version
        return f"skipped: torch.onnx.export failed: {e}"
    onnx.checker.check_model(str(out))
    return f"wrote {out} (float counterpart, NCHW input, checked)"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m xnor_train.export", description=__doc__.split("\n")[0])
    p.add_argument("checkpoint")
    p.add_argument("out", help="output .xnor (or .onnx with --onnx)")
    p.add_argument("--name", default=None, help="model name in the metadata")
    p.add_argument("--onnx", action="store_true", help="write ONNX of the float counterpart instead")
    args = p.parse_args(argv)
    try:
        model, ck = load_checkpoint(args.checkpoint)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    if args.onnx:
        print(export_onnx(model, ck, out))
        return 0
    h, w = ck["data"]["input_size"]
    meta = metadata_for(ck, args.name)
    meta["training"]["size"] = size_report(model)
    g = export_model(model, (h, w, ck["config"]["in_ch"]), meta)
    g.save(out)
    print(json.dumps({"wrote": str(out), "bytes": out.stat().st_size, **meta["training"]["size"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
