"""Initialise an xnor_train model from a shipped .xnor file (``train --init-xnor``).

The run directories behind the shipped models are gone; this rebuilds a trainable
PyTorch model whose eval-mode forward computes what the file computes, so a run can
fine-tune from the shipped weights (issue 13's MST sweep does).

The file is walked in the exporter's order (export._Emitter: one node per module
group), so node i of the file is the node the exporter would have written for the
module group it is matched with; a node of another op is a named ``XnorInitError``.

* ``conv2d`` [+BN] [+ReLU]: conv weight and bias from the file; a following
  BatchNorm2d becomes the identity (its folded scale and shift are already in the
  conv's weight and bias).
* ``bconv2d`` [+BN] [+ReLU]: latent weights = sign * |scale| per filter, so that
  alpha = mean |W| = |scale| (eq. 6) and every latent weight sits at the same
  distance from zero (with alpha_mode "learned": alpha = |scale| and optionally
  latent weights sign * a small constant, ``latent``); the bias goes to the conv,
  or, with a following BN (scale folded with alpha at export), the BN takes
  sign(scale) and the bias.
* ``batchnorm``: the folded per-channel scale s and shift t.
* ``dense`` (the float classifier after Flatten): weight columns back from the
  runtime's HWC order to PyTorch's CHW flatten.

Folded batch norms have lost their statistics, and a training-mode forward
normalises with the batch's statistics: a BN set to ``s * x + t`` with made-up
statistics would train on a different function than the one evaluated. So every BN
is then re-expressed with the statistics of its real input (``calibrate``, one
eval-mode pass over some training images): running mean mu and variance v are
measured and gamma = s * sqrt(v + eps), beta = t + mu * s, which leaves the eval
function unchanged (up to float32 rounding) and makes the training-mode forward
start close to it.

BinLinear (binary_dense) and models other than XnorNet are not supported.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from .layers import BinActiv, BinConv2d, BinLinear, Flatten, GlobalAvgPool, Residual
from .models import XnorNet


class XnorInitError(ValueError):
    """The .xnor file does not fit the model (op, shape or setting differs)."""


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float32).copy())


def _set_bn(bn: nn.BatchNorm2d, s: np.ndarray, t: np.ndarray) -> None:
    """BN with placeholder statistics (mean 0, var 1 - eps) computing s * x + t in eval."""
    with torch.no_grad():
        bn.running_mean.zero_()
        bn.running_var.fill_(1.0 - bn.eps)
        bn.weight.copy_(_t(s))
        bn.bias.copy_(_t(t))


class _Walker:
    def __init__(self, ref, latent: float | None = None):
        self.ref = ref
        self.i = 0
        self.latent = latent

    def take(self, op: str, what: str):
        if self.i >= len(self.ref.nodes):
            raise XnorInitError(f"the file has {len(self.ref.nodes)} nodes; {what} has no node")
        n = self.ref.nodes[self.i]
        if n.name != op:
            raise XnorInitError(f"node {self.i} is {n.name}, expected {op} for {what}")
        self.i += 1
        return n

    def run(self, mods: list[nn.Module], where: str = "features") -> None:
        i = 0
        while i < len(mods):
            m = mods[i]
            nxt = mods[i + 1] if i + 1 < len(mods) else None
            used = 1
            what = f"{where}.{i} ({type(m).__name__})"
            if isinstance(m, (nn.Conv2d, BinConv2d)):
                bn = nxt if isinstance(nxt, nn.BatchNorm2d) else None
                used += bn is not None
                after = mods[i + used] if i + used < len(mods) else None
                used += isinstance(after, nn.ReLU)
                self.conv(m, bn, what)
            elif isinstance(m, nn.BatchNorm2d):
                used += isinstance(nxt, nn.ReLU)
                s, t = self.take("batchnorm", what).params
                _set_bn(m, s, t)
            elif isinstance(m, nn.ReLU):
                self.take("relu", what)
            elif isinstance(m, BinActiv):
                self.take("sign", what)
            elif isinstance(m, nn.MaxPool2d):
                self.take("maxpool", what)
            elif isinstance(m, nn.AvgPool2d):
                self.take("avgpool", what)
            elif isinstance(m, GlobalAvgPool):
                self.take("global_avgpool", what)
            elif isinstance(m, nn.Linear):
                used += isinstance(nxt, nn.ReLU)
                self.linear(m, self.take("dense", what))
            elif isinstance(m, Residual):
                self.run(list(m.body), f"{where}.{i}.body")
                if not isinstance(m.shortcut, nn.Identity):
                    self.run(list(m.shortcut), f"{where}.{i}.shortcut")
                self.take("add", what)
            elif isinstance(m, nn.Sequential):
                self.run(list(m), f"{where}.{i}")
            elif isinstance(m, (Flatten, nn.Identity, nn.Dropout)):
                pass
            elif isinstance(m, BinLinear):
                raise XnorInitError(f"{what}: BinLinear (binary_dense) is not supported by --init-xnor")
            else:
                raise XnorInitError(f"{what}: no runtime node for this module")
            i += used

    def conv(self, m, bn, what: str) -> None:
        oc, ic, kh, kw = m.weight.shape
        op = "conv2d" if isinstance(m, nn.Conv2d) else ("bconv2d" if m.mode == "xnor" else "bwn_conv2d")
        n = self.take(op, what)
        if n.kernel != (kh, kw) or n.out_shape[2] != oc or n.in_shape[2] != ic:
            raise XnorInitError(
                f"node {n.index} ({op}): kernel {n.kernel}, {n.in_shape[2]}->{n.out_shape[2]} channels; "
                f"{what} has {(kh, kw)}, {ic}->{oc}"
            )
        with torch.no_grad():
            if op == "conv2d":
                w, b = n.params
                m.weight.copy_(_t(np.asarray(w).reshape(oc, kh, kw, ic).transpose(0, 3, 1, 2)))
                if m.bias is not None:
                    m.bias.copy_(_t(b))
                    b = np.zeros(oc)
                if bn is not None:
                    _set_bn(bn, np.ones(oc), b)
                elif m.bias is None:
                    raise XnorInitError(f"{what}: a conv without bias or BN cannot take the file's bias")
                return
            if op == "bwn_conv2d":
                raise XnorInitError(f"{what}: bwn_conv2d layers are not supported by --init-xnor")
            from xnor_edge.reference import unpack_signs

            bits, scale, bias = n.params
            cw = (ic + 31) // 32
            signs = unpack_signs(np.asarray(bits).reshape(oc, kh, kw, cw), ic).transpose(0, 3, 1, 2)
            scale = np.asarray(scale, dtype=np.float64)
            mag = np.abs(scale)
            if np.any(mag == 0):
                raise XnorInitError(f"node {n.index}: a zero scale cannot be an alpha = mean |W|")
            if bn is None and np.any(scale < 0):
                raise XnorInitError(f"node {n.index}: a negative scale needs a following BatchNorm2d")
            lat = mag
            if m.alpha_mode == "learned":
                m.alpha.copy_(_t(mag))
                if self.latent is not None:
                    lat = np.full_like(mag, self.latent)
            elif self.latent is not None:
                raise XnorInitError("a latent magnitude other than alpha needs --alpha-mode learned")
            m.weight.copy_(_t(signs * lat[:, None, None, None]))
            if bn is None:
                if m.bias is None:
                    raise XnorInitError(f"{what}: a conv without bias or BN cannot take the file's bias")
                m.bias.copy_(_t(bias))
            else:
                if m.bias is not None:
                    m.bias.zero_()
                _set_bn(bn, np.sign(scale), bias)

    def linear(self, m: nn.Linear, n) -> None:
        w, b = n.params
        out_n = m.weight.shape[0]
        h, wd, c = n.in_shape
        if out_n * h * wd * c != np.asarray(w).size or m.weight.shape[1] != h * wd * c:
            raise XnorInitError(f"node {n.index} (dense): {np.asarray(w).size} weights do not fit {m}")
        w = np.asarray(w).reshape(out_n, h, wd, c).transpose(0, 3, 1, 2).reshape(out_n, -1)
        with torch.no_grad():
            m.weight.copy_(_t(w))
            m.bias.copy_(_t(b))


@torch.no_grad()
def calibrate(model: nn.Module, x: torch.Tensor, batch: int = 250) -> int:
    """Re-expresses every BatchNorm2d with its input's measured statistics, keeping its
    eval-mode function s * x + t (module docstring). Returns the number of BNs."""
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    sums = {id(b): [0.0, 0.0, 0] for b in bns}

    def hook(mod, inp, _out):
        v = inp[0].double()
        acc = sums[id(mod)]
        acc[0] = acc[0] + v.sum(dim=(0, 2, 3))
        acc[1] = acc[1] + (v * v).sum(dim=(0, 2, 3))
        acc[2] += v.shape[0] * v.shape[2] * v.shape[3]

    handles = [b.register_forward_hook(hook) for b in bns]
    was = model.training
    model.eval()
    try:
        for i in range(0, len(x), batch):
            model(x[i : i + batch])
    finally:
        for h in handles:
            h.remove()
        model.train(was)
    for b in bns:
        s1, s2, n = sums[id(b)]
        if not n:
            continue
        mu = s1 / n
        var = (s2 / n - mu * mu).clamp_min(1e-12)
        s = b.weight.double() / (b.running_var.double() + b.eps).sqrt()
        t = b.bias.double() - b.running_mean.double() * s
        b.running_mean.copy_(mu.float())
        b.running_var.copy_(var.float())
        b.weight.copy_((s * (var + b.eps).sqrt()).float())
        b.bias.copy_((t + mu * s).float())
    return len(bns)


def init_from_xnor(
    model: nn.Module, path: str | Path, calib: torch.Tensor | None = None, latent: float | None = None
) -> dict:
    """Loads the .xnor file's weights into ``model`` (an XnorNet of the same shape) and,
    given normalised NCHW calibration images, re-expresses the BNs (``calibrate``).
    ``latent``: with alpha_mode "learned", the latent weights are sign * latent (alpha
    is the learned parameter, set to the file's scale), so signs can move in few steps;
    default (and the only choice with alpha "mean", where alpha = mean |W|): sign * alpha.
    Returns what the checkpoint and card record of the file."""
    from xnor_edge.reference import ReferenceError, ReferenceModel

    src = Path(path).expanduser()
    if not src.is_file():
        raise XnorInitError(f"--init-xnor {path}: no such file")
    try:
        ref = ReferenceModel.from_file(src)
    except ReferenceError as e:
        raise XnorInitError(f"--init-xnor {path}: {e}") from None
    if not isinstance(model, XnorNet):
        raise XnorInitError("--init-xnor needs an xnor_train XnorNet model")
    ih, iw, ic = ref.input_shape
    cfg = model.config
    if (ih, iw, ic) != (cfg["input_size"], cfg["input_size"], cfg["in_ch"]):
        raise XnorInitError(
            f"--init-xnor {path}: input {ref.input_shape}, the model takes "
            f"{(cfg['input_size'], cfg['input_size'], cfg['in_ch'])}"
        )
    if latent is not None and not latent > 0:
        raise XnorInitError(f"the latent magnitude must be positive, not {latent}")
    w = _Walker(ref, latent)
    w.run(list(model.features))
    if w.i != len(ref.nodes):
        raise XnorInitError(f"--init-xnor {path}: {len(ref.nodes) - w.i} file nodes left over")
    n_bn = calibrate(model, calib) if calib is not None else 0
    meta = ref.metadata
    return dict(
        path=str(path),
        kind="xnor",
        name=meta.get("name"),
        variant=meta.get("variant"),
        commands=[(meta.get("training") or {}).get("command")],
        epochs=(meta.get("training") or {}).get("epochs"),
        wall_s=(meta.get("training") or {}).get("wall_s", 0.0),
        test_acc=((meta.get("training") or {}).get("accuracy") or {}).get("test_top1_torch"),
        calibrated_bns=n_bn,
        init=None,
        calibration_images=0 if calib is None else int(len(calib)),
        latent=latent,
    )
