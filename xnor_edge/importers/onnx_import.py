"""ONNX -> xnor-edge model file (``xnor-edge import MODEL.onnx -o OUT.xnor``).

Reads the ONNX that ``torch.onnx.export`` writes for PyTorch binary networks
(batch 1, NCHW) and maps it onto the builder's ops (docs/format.md):

* Binarised activations: ``Sign``, or ``Where(Less(x, 0), -1, +1)`` (what a
  straight-through estimator such as tools/xnor_train's ``SignSTE`` exports
  to; it keeps sign(0) = +1, the runtime's rule). ONNX ``Sign`` maps 0 to 0,
  the runtime to +1: the import says so, and the self-check measures it.
* ``Conv``/``Gemm``/``MatMul`` whose weight is a constant (after folding every
  node whose inputs are all constants, e.g. ``alpha * sign(W)``) that is
  exactly +-alpha per filter: ``bconv2d`` (binarised input) or ``bwn_conv2d``
  (float input) with scale alpha; any other weight stays a float ``conv2d`` /
  ``dense``, and a weight that looks binary (every |w| within 1% of its
  filter's largest) but is not exactly +-alpha is reported by name. A binary
  input with a non-binary weight is an error (no op computes it). A float
  depthwise ``Conv`` (group = input channels) is ``dwconv2d``; another group
  count is a ``conv2d`` with zero blocks (reported: group x the MACs). A
  binary dense layer over a map whose channels waste packing bits is written
  as ``flatten`` + 1x1 ``bconv2d``; a per-channel constant added in front of
  a binariser (ReActNet's RSign) is one ``sign_shift``.
* ``Pad`` of a binarised value: value 0 is zero padding, +1 is the PAD_ONE
  flag, anything else (-1 included) is an error.
* ``BatchNormalization`` and per-channel ``Add``/``Mul``/``Sub`` of constants
  fold into the preceding convolution's scale and bias (or become a
  ``batchnorm``), ``Relu`` into its RELU flag; ``PRelu``/``LeakyRelu`` ->
  prelu, ``Clip`` -> clip, ``MaxPool``/``AveragePool``/``GlobalAveragePool``
  (and ``ReduceMean`` over H, W), ``Add``, ``Concat`` (channels),
  ``Flatten``/``Reshape`` to [1, N] (a following dense reads PyTorch's CHW
  order), ``Softmax``; ``Identity``/``Dropout`` pass through.

Anything else is an error that names the node, its op type and what is
supported. :func:`convert` writes the file only after a self-check: the
written model runs in xnor-edge on random inputs and is compared with the
source model run by onnxruntime when it is installed, else by the ``onnx``
package's reference evaluator.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..builder import MAX_DIM, MAX_KERNEL, GraphBuilder, Value, fold_batchnorm
from . import _common
from ._common import EXTRA_HINT, Affine, ImportReport, Tensor, write_affine

__all__ = ["OnnxImportError", "import_onnx", "convert", "add_arguments", "run_cli"]


class OnnxImportError(ValueError):
    """The ONNX model uses something xnor-edge cannot represent exactly."""


def _onnx():
    try:
        import onnx
    except ImportError:
        raise ImportError(
            f"xnor-edge import needs the 'onnx' package, which the [import] extra installs: {EXTRA_HINT}"
        ) from None
    return onnx


# ------------------------------------------------------------- graph values


_T = Tensor  # rank 4: NCHW of value v; rank 2: [1, N], v flattened in CHW order
_Affine = Affine


@dataclass(frozen=True)
class _Sign:
    """sign(src) (+1 at 0), possibly padded (pad_one: +1, else 0) for the next conv."""

    src: Value  # float32, or bits already
    rank: int
    pad: tuple[int, int] = (0, 0)
    pad_one: bool = False
    node: str = ""


@dataclass(frozen=True, eq=False)
class _Opaque:
    """The output of a node the importer cannot map: an error only if something reads it
    (the branches that straight-through estimators export around a sign are dead)."""

    error: OnnxImportError


@dataclass(frozen=True)
class _SteSub:
    """sign(x) - p: with + p after it, the value is sign(x) (a straight-through estimator)."""

    sign: _Sign
    other: str


@dataclass(frozen=True)
class _KPart:
    """XNOR-Net's K map of float value v in the making: Abs (stage 0), mean over
    channels (1), box over the window (2: kernel, stride, pad; rank 2 when the
    mean ran over a flattened [1, N] value, which is K of a dense layer)."""

    v: Value
    stage: int
    rank: int = 4
    window: tuple = ()


@dataclass(frozen=True)
class _Less:
    """Less(x, 0): half of the Where pattern (x is the input's name)."""

    x: str
    node: str


@dataclass(frozen=True)
class _Pending:
    """A conv or dense layer not yet written, so that what follows can fold into it:
    y = raw * scale + bias, then ReLU."""

    kind: str  # "conv2d", "dwconv2d", "bwn_conv2d", "bconv2d", "dense", "binary_dense"
    x: Value
    weight: np.ndarray  # OIHW (conv) or [OUT, IN] (dense, IN in CHW order), +-1 for binary kinds
    scale: np.ndarray
    bias: np.ndarray
    stride: tuple[int, int] = (1, 1)
    pad: tuple[int, int] = (0, 0)
    pad_one: bool = False
    relu: bool = False
    rank: int = 4
    use_k: bool = False
    k_src: Any = None  # the value a K map must be computed from, when not x (flatten)
    groups: int = 1  # conv2d: grouped / dilated (gconv2d) when not 1 / (1, 1)
    dilation: tuple[int, int] = (1, 1)
    out_bits: bool = False  # bconv2d, binary_dense: write the signs (OUT_BITS)


SUPPORTED = (
    "Abs (XNOR-Net's K map), Add, AveragePool, BatchNormalization, Clip, Concat, Constant, Conv, Dropout, "
    "Flatten, Gemm, GlobalAveragePool, Identity, LeakyRelu, Less, MatMul, MaxPool, Mul, Pad, PRelu, "
    "ReduceMean, Relu, Reshape, Shape, Sign, Softmax, Sub, Where "
    "(and any node whose inputs are all constants)"
)


class _Importer:
    def __init__(self, model: Any, report: ImportReport) -> None:
        self.onnx = _onnx()
        self.model = model
        self.graph = model.graph
        self.report = report
        self.consts: dict[str, np.ndarray] = {}
        self.env: dict[str, Any] = {}
        # How many nodes (and graph outputs) read each value: a binary layer read by its
        # sign alone may write bits.
        self.readers = Counter(i for n in self.graph.node for i in n.input if i)
        self.readers.update(o.name for o in self.graph.output)
        from onnx import numpy_helper

        for t in self.graph.initializer:
            self.consts[t.name] = numpy_helper.to_array(t)
        self.opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=13)

    # ------------------------------------------------------------ helpers

    def fail(self, node: Any, msg: str) -> OnnxImportError:
        return OnnxImportError(f"node {node.name or '(unnamed)'!r} ({node.op_type}): {msg}")

    def attrs(self, node: Any) -> dict[str, Any]:
        from onnx import helper

        return {a.name: helper.get_attribute_value(a) for a in node.attribute}

    def const(self, name: str) -> np.ndarray | None:
        return self.consts.get(name)

    def per_channel(self, node: Any, a: np.ndarray, c: int, rank: int) -> np.ndarray | None:
        """A constant that broadcasts per channel over NCHW (or over N of [1, N]), as [C]."""
        a = np.asarray(a, dtype=np.float64)
        if a.size == 1:
            return np.full(c, float(a.reshape(-1)[0]))
        # A [C] constant broadcasts over W of an NCHW tensor, not over C.
        ok = ((c, 1, 1), (1, c, 1, 1)) if rank == 4 else ((c,), (1, c))
        return a.reshape(c) if a.shape in ok else None

    def value(self, name: str, node: Any) -> Value:
        """The float Value of input `name`, writing pending layers."""
        t = self.env.get(name)
        if t is None:
            raise self.fail(node, f"input {name!r} is not produced by a node this importer understood")
        if isinstance(t, _Pending):
            t = self.emit(t)
            self.env[name] = t
        if isinstance(t, _Affine):
            t = write_affine(self.g, self.report, t)
            self.env[name] = t
        if isinstance(t, _Opaque):
            raise t.error
        if isinstance(t, _T):
            return t.v
        if isinstance(t, (_Sign, _Less)):
            raise self.fail(
                node,
                f"input {name!r} is a binarised value (from node {getattr(t, 'node', '')!r}); only Conv, "
                "Gemm, MatMul, MaxPool and Pad may read one",
            )
        raise self.fail(node, f"input {name!r} has no float value")

    def tensor(self, name: str, node: Any) -> _T:
        v = self.value(name, node)
        return self.env[name] if isinstance(self.env[name], _T) else _T(v)

    def emit(self, p: _Pending) -> _T:
        g = self.g
        scale = p.scale.astype(np.float64)
        bias = p.bias.astype(np.float64)
        gconv = p.kind == "conv2d" and (p.groups != 1 or p.dilation != (1, 1))
        self.report.count("gconv2d" if gconv else p.kind)
        if p.kind == "conv2d":
            w = p.weight * scale[:, None, None, None]
            v = g.conv2d(p.x, w, bias, p.stride, p.pad, relu=p.relu, groups=p.groups, dilation=p.dilation)
        elif p.kind == "dwconv2d":
            w = p.weight * scale[:, None, None, None]
            v = g.dwconv2d(p.x, w, bias, p.stride, p.pad, relu=p.relu)
        elif p.kind == "bwn_conv2d":
            v = g.bwn_conv2d(p.x, p.weight, scale, bias, p.stride, p.pad, relu=p.relu)
        elif p.kind == "bconv2d":
            mode = "one" if p.pad_one else "zero"
            v = g.bconv2d(
                p.x, p.weight, scale, bias, p.stride, p.pad, mode, p.use_k, p.relu, out_bits=p.out_bits
            )
        elif p.kind == "dense":
            v = g.dense(p.x, p.weight * scale[:, None], bias, relu=p.relu, input_order="chw")
        else:
            v = g.binary_dense(
                p.x, p.weight, scale, bias, p.use_k, p.relu, input_order="chw", out_bits=p.out_bits
            )
        return _T(v, p.rank)

    # ------------------------------------------------------------ driving

    def run(self, metadata: dict) -> GraphBuilder:
        from onnx import numpy_helper

        inputs = [i for i in self.graph.input if i.name not in self.consts]
        if len(inputs) != 1:
            raise OnnxImportError(
                f"the model has {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); xnor-edge "
                "models take one image tensor"
            )
        inp = inputs[0]
        dims = [d.dim_value if d.HasField("dim_value") else None for d in inp.type.tensor_type.shape.dim]
        if len(dims) != 4 or any(d is None for d in dims[1:]) or dims[0] not in (None, 1):
            raise OnnxImportError(
                f"input {inp.name!r} has shape {dims}; expected [1, C, H, W] (batch 1 or symbolic)"
            )
        c, h, w = dims[1], dims[2], dims[3]
        meta = {"input_size": [h, w], **metadata}
        self.g = GraphBuilder((h, w, c), meta)
        self.env[inp.name] = _T(self.g.input)
        for node in self.graph.node:
            if node.op_type == "Constant":
                a = self.attrs(node)
                if "value" not in a:
                    raise self.fail(node, "only Constant with a tensor 'value' is supported")
                self.consts[node.output[0]] = numpy_helper.to_array(a["value"])
                continue
            if node.domain not in ("", "ai.onnx"):
                raise self.fail(
                    node, f"custom domain {node.domain!r} is not supported; supported: {SUPPORTED}"
                )
            ins = [i for i in node.input if i]
            if ins and all(i in self.consts for i in ins):
                self.fold(node)
                continue
            handler = getattr(self, "op_" + node.op_type, None)
            try:
                if handler is None:
                    raise self.fail(node, f"op type {node.op_type} is not supported; supported: {SUPPORTED}")
                handler(node)
                continue
            except OnnxImportError as e:
                err = e
            except ValueError as e:  # the builder's checks
                err = self.fail(node, str(e))
            for o in node.output:  # an error when (and only if) a live value reads it
                if o:
                    self.env[o] = _Opaque(err)
        outs = [o.name for o in self.graph.output]
        if len(outs) != 1:
            raise OnnxImportError(f"the model has {len(outs)} outputs; xnor-edge models have one")
        if outs[0] in self.consts:
            raise OnnxImportError(f"output {outs[0]!r} is a constant")
        out = self.value(outs[0], self.graph.node[-1])
        if out.id != self.g.output.id:
            raise OnnxImportError(
                f"output {outs[0]!r} is not the last value computed (unused branches after it?)"
            )
        return self.g

    def fold(self, node: Any) -> None:
        from onnx.reference import ReferenceEvaluator

        try:
            res = ReferenceEvaluator(node).run(None, {i: self.consts[i] for i in node.input if i})
        except Exception as e:  # the evaluator raises many types
            raise self.fail(node, f"cannot evaluate this constant expression ({e})") from None
        for name, val in zip(node.output, res):
            self.consts[name] = np.asarray(val)

    def alias(self, node: Any) -> None:
        self.env[node.output[0]] = self.env_of(node.input[0], node)

    def env_of(self, name: str, node: Any) -> Any:
        if name not in self.env:
            raise self.fail(node, f"input {name!r} is not produced by a node this importer understood")
        if isinstance(self.env[name], _Opaque):
            raise self.env[name].error
        return self.env[name]

    op_Identity = alias

    def op_Dropout(self, node: Any) -> None:
        self.alias(node)

    # -------------------------------------------------------- binarisation

    def op_Sign(self, node: Any) -> None:
        self.report.notes.append(
            f"node {node.name!r} (Sign): ONNX Sign(0) = 0, xnor-edge binarises 0 to +1; "
            "outputs differ only where this input is exactly 0"
        )
        self.env[node.output[0]] = self.binarise(node.input[0], node)

    def binarise(self, name: str, node: Any) -> _Sign:
        src = self.env_of(name, node)
        if isinstance(src, _Affine) and np.all(src.scale == 1):  # a learnable threshold (RSign)
            self.report.count("sign_shift")
            return _Sign(self.g.sign_shift(src.v, src.shift), src.rank, node=node.name)
        if (
            isinstance(src, _Pending)
            and src.kind in ("bconv2d", "binary_dense")
            and not (src.relu or src.use_k)
            and self.readers.get(name, 0) == 1
        ):
            # A binary layer read only by this sign: its output as bits (OUT_BITS, integer
            # thresholds; the same bits as sign(dot * scale + bias)), no float round trip.
            self.report.count("out_bits")
            t = self.emit(replace(src, out_bits=True))
            return _Sign(t.v, t.rank, node=node.name)
        x = self.tensor(name, node)
        return _Sign(x.v, x.rank, node=node.name)

    def op_Less(self, node: Any) -> None:
        b = self.const(node.input[1])
        if b is None or np.any(b != 0) or node.input[0] in self.consts:
            raise self.fail(node, "only Less(x, 0) feeding Where(..., -1, +1) (a binariser) is supported")
        self.env_of(node.input[0], node)
        self.env[node.output[0]] = _Less(node.input[0], node.name)

    def op_Where(self, node: Any) -> None:
        cond = self.env.get(node.input[0])
        a, b = self.const(node.input[1]), self.const(node.input[2])
        if not isinstance(cond, _Less) or a is None or b is None or np.any(a != -1) or np.any(b != 1):
            raise self.fail(
                node, "only Where(Less(x, 0), -1, +1) (a binariser: sign with sign(0) = +1) is supported"
            )
        self.env[node.output[0]] = self.binarise(cond.x, node)

    def op_Pad(self, node: Any) -> None:
        a = self.attrs(node)
        src = self.env_of(node.input[0], node)
        mode = a.get("mode", b"constant")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        if self.opset >= 11:
            pads = self.const(node.input[1]) if len(node.input) > 1 else None
            val = self.const(node.input[2]) if len(node.input) > 2 and node.input[2] else np.zeros(1)
            if pads is None or val is None:
                raise self.fail(node, "pads and constant_value must be constants")
            if len(node.input) > 3 and node.input[3]:
                raise self.fail(node, "the axes input of Pad is not supported")
        else:
            pads, val = np.asarray(a.get("pads", [])), np.asarray([a.get("value", 0.0)])
        pads = [int(p) for p in np.asarray(pads).reshape(-1)]
        value = float(np.asarray(val).reshape(-1)[0])
        if mode != "constant":
            raise self.fail(node, f"mode {mode!r} is not supported (only constant padding)")
        if len(pads) != 8 or pads[0] or pads[1] or pads[4] or pads[5]:
            raise self.fail(node, f"pads {pads}: only padding of H and W is supported")
        top, left, bottom, right = pads[2], pads[3], pads[6], pads[7]
        if top != bottom or left != right:
            raise self.fail(node, f"pads {pads}: top/bottom and left/right must be equal (symmetric padding)")
        if not isinstance(src, _Sign):
            raise self.fail(
                node, "Pad is supported in front of a binary convolution (after a binariser) only"
            )
        if src.pad != (0, 0):
            raise self.fail(node, "two Pads in a row are not supported")
        if value == 0.0:
            pad_one = False
        elif value == 1.0:
            pad_one = True
        else:
            raise self.fail(
                node,
                f"padding value {value:g} is not supported: a binary convolution pads with 0 "
                "(zero padding) or +1 (PAD_ONE); -1 padding has no exact equivalent",
            )
        self.env[node.output[0]] = replace(src, pad=(top, left), pad_one=pad_one, node=node.name)

    # --------------------------------------------------------- linear layers

    def weight_kind(self, node: Any, wname: str, w: np.ndarray) -> np.ndarray | None:
        """alpha per filter when w is exactly +-alpha (alpha > 0) per filter, else None."""
        a = np.abs(w.reshape(w.shape[0], -1).astype(np.float64))
        alpha = a.max(axis=1)
        if np.all(a == alpha[:, None]) and np.all(alpha > 0):
            return alpha
        if np.all(alpha > 0) and np.all(a >= 0.99 * alpha[:, None]):
            bad = int(np.argmax((a != alpha[:, None]).any(axis=1)))
            self.report.notes.append(
                f"node {node.name!r} ({node.op_type}): weight {wname!r} looks binary but is not exactly "
                f"+-alpha per filter (filter {bad} has |w| from {a[bad].min():.9g} to {alpha[bad]:.9g}); "
                "kept in float"
            )
        return None

    def op_Conv(self, node: Any) -> None:
        a = self.attrs(node)
        wname = node.input[1]
        w = self.const(wname)
        if w is None or w.ndim != 4:
            raise self.fail(node, f"weight {wname!r} must be a constant [OC, IC, KH, KW] tensor")
        bias = self.const(node.input[2]) if len(node.input) > 2 and node.input[2] else np.zeros(w.shape[0])
        if bias is None:
            raise self.fail(node, "the bias must be a constant")
        group = int(a.get("group", 1))
        dilation = tuple(int(d) for d in a.get("dilations", [1, 1]))
        ap = a.get("auto_pad", b"NOTSET")
        if (ap.decode() if isinstance(ap, bytes) else ap) not in ("NOTSET", "VALID"):
            raise self.fail(node, f"auto_pad {ap!r} is not supported; export with explicit pads")
        pads = list(a.get("pads", [0, 0, 0, 0]))
        if pads[0] != pads[2] or pads[1] != pads[3]:
            raise self.fail(node, f"pads {pads}: only symmetric padding is supported")
        stride = tuple(a.get("strides", [1, 1]))
        pad = (pads[0], pads[1])
        oc = w.shape[0]
        src = self.env_of(node.input[0], node)
        if group != 1 or dilation != (1, 1):
            self.grouped(node, src, w, bias, group, stride, pad, dilation)
            return
        alpha = self.weight_kind(node, wname, w)
        if isinstance(src, _Sign):
            if alpha is None:
                raise self.fail(
                    node,
                    f"its input is binarised (node {src.node!r}) but weight {wname!r} is not exactly +-alpha "
                    "per filter; xnor-edge has no op for a binary input with float weights",
                )
            if src.pad != (0, 0) and pad != (0, 0):
                raise self.fail(node, "both a Pad node and the Conv's own pads: not supported")
            p = _Pending(
                "bconv2d",
                src.src,
                np.sign(w),
                alpha,
                np.asarray(bias, np.float64),
                stride,
                src.pad if src.pad != (0, 0) else pad,
                src.pad_one,
            )
        else:
            x = self.value(node.input[0], node)
            kind = "bwn_conv2d" if alpha is not None else "conv2d"
            wt = np.sign(w) if alpha is not None else w.astype(np.float64)
            sc = alpha if alpha is not None else np.ones(oc)
            p = _Pending(kind, x, wt, sc, np.asarray(bias, np.float64), stride, pad)
        self.env[node.output[0]] = p

    def grouped(
        self, node: Any, src: Any, w: np.ndarray, bias: Any, group: int, stride, pad, dilation
    ) -> None:
        """A float Conv with group != 1 or dilations: dwconv2d when depthwise and undilated,
        else a grouped / dilated conv2d (gconv2d, op 21)."""
        if isinstance(src, _Sign):
            raise self.fail(
                node,
                f"group = {group}, dilations {list(dilation)} on a binarised input: no binary grouped, "
                "depthwise or dilated op",
            )
        x = self.value(node.input[0], node)
        ic, oc = x.shape[2], w.shape[0]
        if group < 1 or ic % group or oc % group or w.shape[1] * group != ic:
            raise self.fail(node, f"group = {group} does not divide {ic} input and {oc} output channels")
        if min(dilation) < 1:
            raise self.fail(node, f"dilations {list(dilation)} must be >= 1")
        b = np.asarray(bias, np.float64)
        kind = "dwconv2d" if group == ic and dilation == (1, 1) else "conv2d"
        self.env[node.output[0]] = _Pending(
            kind, x, w.astype(np.float64), np.ones(oc), b, stride, pad, groups=group, dilation=dilation
        )

    def dense(self, node: Any, src: Any, wname: str, w: np.ndarray, bias: np.ndarray) -> None:
        """w is [OUT, IN]."""
        if src is None:
            raise self.fail(node, f"input {node.input[0]!r} is unknown")
        alpha = self.weight_kind(node, wname, w)
        if isinstance(src, _Sign):
            if src.rank != 2:
                raise self.fail(node, "the input must be flattened to [1, N]")
            if alpha is None:
                raise self.fail(
                    node,
                    f"its input is binarised (node {src.node!r}) but weight {wname!r} is not exactly +-alpha "
                    "per output",
                )
            h, wd, c = src.src.shape
            if src.src.dtype == "float32" and h * wd > 1 and c % 32 and h * wd * c <= MAX_DIM:
                # Packed per position, c % 32 channels waste bits: flatten first, then a
                # 1x1 bconv2d over H*W*C channels (weight columns from CHW to HWC order).
                self.report.count("flatten")
                x = self.g.flatten(src.src)
                w_hwc = w.reshape(w.shape[0], c, h, wd).transpose(0, 2, 3, 1).reshape(w.shape[0], -1)
                self.env[node.output[0]] = _Pending(
                    "binary_dense", x, np.sign(w_hwc), alpha, bias, rank=2, k_src=src.src
                )
                return
            if h > MAX_KERNEL or wd > MAX_KERNEL:
                raise self.fail(
                    node, f"a binary dense layer over a {h}x{wd} map is larger than a 64x64 window"
                )
            p = _Pending("binary_dense", src.src, np.sign(w), alpha, bias, rank=2)
        else:
            t = self.tensor(node.input[0], node)
            if t.rank != 2 and t.v.shape[:2] != (1, 1):
                raise self.fail(node, "the input must be flattened to [1, N] (Flatten or Reshape)")
            p = _Pending("dense", t.v, w.astype(np.float64), np.ones(w.shape[0]), bias, rank=2)
        self.env[node.output[0]] = p

    def op_Gemm(self, node: Any) -> None:
        a = self.attrs(node)
        w = self.const(node.input[1])
        if w is None or w.ndim != 2 or a.get("transA", 0):
            raise self.fail(node, "B must be a constant matrix and transA 0")
        w = w if a.get("transB", 0) else w.T
        w = w.astype(np.float64) * float(a.get("alpha", 1.0))
        c = self.const(node.input[2]) if len(node.input) > 2 and node.input[2] else np.zeros(w.shape[0])
        if c is None or c.size not in (1, w.shape[0]):
            raise self.fail(node, "C must be a constant vector of the output size")
        bias = np.broadcast_to(np.asarray(c, np.float64).reshape(-1), (w.shape[0],)) * float(
            a.get("beta", 1.0)
        )
        self.dense(node, self.env.get(node.input[0]), node.input[1], w, np.array(bias))

    def op_MatMul(self, node: Any) -> None:
        w = self.const(node.input[1])
        if w is None or w.ndim != 2:
            raise self.fail(node, "only x @ W with a constant 2-D W is supported")
        self.dense(
            node, self.env.get(node.input[0]), node.input[1], w.T.astype(np.float64), np.zeros(w.shape[1])
        )

    # ------------------------------------------------------ per-channel maths

    def affine(self, node: Any, name: str, scale: np.ndarray, shift: np.ndarray) -> None:
        src = self.env_of(name, node)
        if isinstance(src, _Pending) and not src.relu:
            self.env[node.output[0]] = replace(src, scale=src.scale * scale, bias=src.bias * scale + shift)
            return
        if isinstance(src, _Affine):
            self.env[node.output[0]] = _Affine(src.v, src.scale * scale, src.shift * scale + shift, src.rank)
            return
        if isinstance(src, _T):
            self.env[node.output[0]] = _Affine(src.v, scale, shift, src.rank)
            return
        t = self.tensor(name, node)
        self.report.count("batchnorm")
        self.env[node.output[0]] = _T(self.g.batchnorm(t.v, scale, shift), t.rank)

    def op_BatchNormalization(self, node: Any) -> None:
        a = self.attrs(node)
        if a.get("training_mode", 0):
            raise self.fail(node, "training_mode = 1 is not supported; export the model in eval() mode")
        p = [self.const(n) for n in node.input[1:5]]
        if any(v is None for v in p):
            raise self.fail(node, "scale, bias, mean and var must be constants")
        scale, shift = fold_batchnorm(*p, eps=float(a.get("epsilon", 1e-5)))
        self.affine(node, node.input[0], scale.astype(np.float64), shift.astype(np.float64))

    def binary_const(self, node: Any, sub: bool = False, mul: bool = False) -> bool:
        """Add/Sub/Mul with one constant per-channel operand; returns whether handled."""
        i0, i1 = node.input[0], node.input[1]
        if (i0 in self.consts) == (i1 in self.consts):
            return False
        if i0 in self.consts and sub:
            raise self.fail(node, "constant - x is not supported")
        xname, cname = (i1, i0) if i0 in self.consts else (i0, i1)
        src = self.env_of(xname, node)
        rank = getattr(src, "rank", 4)
        c = self.out_channels(src)
        vec = self.per_channel(node, self.consts[cname], c, rank)
        if vec is None:
            raise self.fail(
                node, f"constant {cname!r} {self.consts[cname].shape} is not per-channel over {c} channels"
            )
        if mul:
            self.affine(node, xname, vec, np.zeros(c))
        else:
            self.affine(node, xname, np.ones(c), -vec if sub else vec)
        return True

    def apply_k(self, node: Any, p: Any, k: _KPart) -> None:
        """conv(sign(x), W) * K(x): the bconv2d's USE_K flag (before any bias or BN)."""
        if not isinstance(p, _Pending) or p.kind not in ("bconv2d", "binary_dense") or k.stage != 2:
            raise self.fail(
                node, "a K map (mean |x| over channels, box over the window) must scale a binary conv"
            )
        if p.kind == "binary_dense":  # K of a dense layer: mean |x| over the flattened input
            same_window = k.rank == 2
        else:
            same_window = k.rank == 4 and k.window == (p.weight.shape[2:], p.stride, p.pad)
        if (
            (p.k_src or p.x) is not k.v
            or not same_window
            or p.use_k
            or p.relu
            or np.any(p.bias != 0)
            or p.x.dtype != "float32"
        ):
            raise self.fail(
                node,
                "this K map does not match the binary conv it scales (same input, window, stride and "
                "padding, before its bias) so it has no USE_K equivalent",
            )
        self.env[node.output[0]] = replace(p, use_k=True)

    def out_channels(self, src: Any) -> int:
        if isinstance(src, _Pending):
            return src.weight.shape[0]
        if isinstance(src, (_T, _Affine)):
            return src.v.shape[2]
        raise OnnxImportError("a per-channel constant applied to a binarised value is not supported")

    def op_Add(self, node: Any) -> None:
        a, b = (self.env.get(i) for i in node.input[:2])
        for ste, other in ((a, node.input[1]), (b, node.input[0])):
            if isinstance(ste, _SteSub) and ste.other == other:  # (sign(x) - p) + p
                self.env[node.output[0]] = ste.sign
                return
        if self.binary_const(node):
            return
        a, b = self.tensor(node.input[0], node), self.tensor(node.input[1], node)
        if a.v.shape != b.v.shape or a.rank != b.rank:
            raise self.fail(
                node, f"shapes {a.v.shape} and {b.v.shape} differ (broadcasting is not supported)"
            )
        self.report.count("add")
        self.env[node.output[0]] = _T(self.g.add(a.v, b.v), a.rank)

    def op_Sub(self, node: Any) -> None:
        a = self.env.get(node.input[0])
        if isinstance(a, _Sign) and node.input[1] not in self.consts:
            self.env[node.output[0]] = _SteSub(a, node.input[1])
            return
        if not self.binary_const(node, sub=True):
            raise self.fail(node, "only x - (per-channel constant) is supported")

    def op_Abs(self, node: Any) -> None:
        t = self.tensor(node.input[0], node)
        self.env[node.output[0]] = _KPart(t.v, 0, t.rank)

    def op_Mul(self, node: Any) -> None:
        a, b = (self.env.get(i) for i in node.input[:2])
        if isinstance(a, _KPart) or isinstance(b, _KPart):
            self.apply_k(node, *((a, b) if isinstance(b, _KPart) else (b, a)))
            return
        if not self.binary_const(node, mul=True):
            raise self.fail(node, "only x * (per-channel constant) is supported")

    # ------------------------------------------------------------ activations

    def op_Relu(self, node: Any) -> None:
        src = self.env_of(node.input[0], node)
        if isinstance(src, _Pending):
            self.env[node.output[0]] = replace(src, relu=True)
            return
        t = self.tensor(node.input[0], node)
        self.report.count("relu")
        self.env[node.output[0]] = _T(self.g.relu(t.v), t.rank)

    def op_PRelu(self, node: Any) -> None:
        t = self.tensor(node.input[0], node)
        slope = self.const(node.input[1])
        vec = None if slope is None else self.per_channel(node, slope, t.v.shape[2], t.rank)
        if vec is None:
            raise self.fail(node, "the slope must be a constant scalar or one value per channel")
        self.report.count("prelu")
        self.env[node.output[0]] = _T(self.g.prelu(t.v, vec), t.rank)

    def op_LeakyRelu(self, node: Any) -> None:
        t = self.tensor(node.input[0], node)
        self.report.count("prelu")
        self.env[node.output[0]] = _T(self.g.prelu(t.v, float(self.attrs(node).get("alpha", 0.01))), t.rank)

    def op_Clip(self, node: Any) -> None:
        t = self.tensor(node.input[0], node)
        a = self.attrs(node)
        bounds = [a.get("min", -3.4e38), a.get("max", 3.4e38)]
        for i in (1, 2):
            if len(node.input) > i and node.input[i]:
                v = self.const(node.input[i])
                if v is None:
                    raise self.fail(node, "min and max must be constants")
                bounds[i - 1] = float(v)
        lo, hi = bounds
        self.report.count("clip")
        self.env[node.output[0]] = _T(self.g.clip(t.v, max(lo, -3.4e38), min(hi, 3.4e38)), t.rank)

    def op_Softmax(self, node: Any) -> None:
        t = self.tensor(node.input[0], node)
        axis = self.attrs(node).get("axis", -1 if self.opset >= 13 else 1)
        one_position = t.v.shape[:2] == (1, 1)
        # Before opset 13, Softmax(axis=1) of NCHW runs over C*H*W at once, not per position.
        per_position = t.rank == 4 and axis in (1, -3) and (self.opset >= 13 or one_position)
        over_c = (t.rank == 2 and axis in (1, -1) and one_position) or per_position
        if not over_c:
            raise self.fail(node, f"softmax over axis {axis} of a rank-{t.rank} tensor: only over channels")
        self.report.count("softmax")
        self.env[node.output[0]] = _T(self.g.softmax(t.v), t.rank)

    # ------------------------------------------------------------------ pools

    def window(
        self, node: Any, pads: list[int] | None = None
    ) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
        a = self.attrs(node)
        k = tuple(a["kernel_shape"])
        s = tuple(a.get("strides", [1, 1]))
        if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            raise self.fail(node, f"auto_pad {a['auto_pad']!r} is not supported (export explicit pads)")
        pads = list(a.get("pads", [0, 0, 0, 0])) if pads is None else pads
        if pads[0] != pads[2] or pads[1] != pads[3]:
            raise self.fail(node, f"pads {pads}: only symmetric padding is supported")
        if a.get("ceil_mode", 0):
            raise self.fail(node, "ceil_mode = 1 is not supported")
        if any(d != 1 for d in a.get("dilations", [1, 1])):
            raise self.fail(node, "dilations are not supported")
        return k, s, (pads[0], pads[1])

    def op_MaxPool(self, node: Any) -> None:
        if len(node.output) > 1 and node.output[1]:
            raise self.fail(node, "the Indices output is not supported")
        k, s, p = self.window(node)
        src = self.env_of(node.input[0], node)
        if isinstance(src, _Sign):
            if src.pad != (0, 0):
                raise self.fail(node, "max pool of a padded binary value is not supported")
            bits = src.src if src.src.dtype == "bits" else self.g.sign(src.src)
            self.report.count("maxpool(bits)")
            self.env[node.output[0]] = _Sign(self.g.maxpool(bits, k, s, p), 4, node=node.name)
            return
        t = self.tensor(node.input[0], node)
        self.report.count("maxpool")
        self.env[node.output[0]] = _T(self.g.maxpool(t.v, k, s, p))

    def op_AveragePool(self, node: Any) -> None:
        src = self.env.get(node.input[0])
        if isinstance(src, _KPart):
            k, s, p = self.window(node)
            if src.stage != 1 or (p != (0, 0) and not self.attrs(node).get("count_include_pad", 0)):
                raise self.fail(node, "a K map's box must follow the channel mean and count the padding")
            self.env[node.output[0]] = replace(src, stage=2, window=(k, s, p))
            return
        top, left, bottom, right = (int(v) for v in self.attrs(node).get("pads", [0, 0, 0, 0]))
        k, s, _ = self.window(node, pads=[top, left, top, left])  # the other checks; pads may differ
        t = self.tensor(node.input[0], node)
        self.env[node.output[0]] = _T(self.average_pool(node, t.v, k, s, (top, bottom, left, right)))

    def average_pool(self, node: Any, x: Value, k: tuple[int, int], s: tuple[int, int], pads: tuple) -> Value:
        """pads (top, bottom, left, right). count_include_pad = 0 with padding:
        ``avgpool_excl_pad``; = 1: ``avgpool``, after a zero ``pad`` when asymmetric."""
        top, bottom, left, right = pads
        if not any(pads):
            self.report.count("avgpool")
            return self.g.avgpool(x, k, s, 0)
        if not self.attrs(node).get("count_include_pad", 0):
            self.report.count("avgpool_excl_pad")
            return self.g.avgpool_excl_pad(x, k, s, pads)
        self.report.count("avgpool")
        if (top, left) == (bottom, right):
            return self.g.avgpool(x, k, s, (top, left))
        self.report.count("pad")
        return self.g.avgpool(self.g.pad(x, top, bottom, left, right, 0.0), k, s, 0)

    def op_GlobalAveragePool(self, node: Any) -> None:
        t = self.tensor(node.input[0], node)
        self.report.count("global_avgpool")
        self.env[node.output[0]] = _T(self.g.global_avgpool(t.v))

    def op_ReduceMean(self, node: Any) -> None:
        a = self.attrs(node)
        axes = a.get("axes")
        if axes is None and len(node.input) > 1:
            axes = self.const(node.input[1])
        src = self.env.get(node.input[0])
        if (
            isinstance(src, _KPart)
            and src.stage == 0
            and axes is not None
            and list(np.asarray(axes).reshape(-1)) == [1]
        ):
            if not a.get("keepdims", 1) and src.rank == 4:
                raise self.fail(node, "the channel mean of a K map must keep its dims")
            self.env[node.output[0]] = replace(src, stage=1 if src.rank == 4 else 2)
            return
        t = self.tensor(node.input[0], node)
        if axes is None or sorted(int(x) % 4 for x in np.asarray(axes).reshape(-1)) != [2, 3] or t.rank != 4:
            raise self.fail(node, "only the mean over H and W (axes 2, 3) is supported")
        self.report.count("global_avgpool")
        v = self.g.global_avgpool(t.v)
        self.env[node.output[0]] = _T(v, 4 if a.get("keepdims", 1) else 2)

    # ---------------------------------------------------------------- shapes

    def op_Shape(self, node: Any) -> None:
        """The shape of a value is known here: a constant (so full_like & co. fold)."""
        src = self.env_of(node.input[0], node)
        v = src.src if isinstance(src, _Sign) else self.value(node.input[0], node)
        h, w, c = v.shape
        rank = getattr(src, "rank", 4)
        shape = np.array([1, c, h, w] if rank == 4 else [1, h * w * c], dtype=np.int64)
        a = self.attrs(node)
        self.consts[node.output[0]] = shape[a.get("start", 0) : a.get("end", len(shape))]

    def flatten_to(self, node: Any, name: str) -> None:
        src = self.env_of(name, node)
        if isinstance(src, _Sign):
            if src.pad != (0, 0):
                raise self.fail(node, "flattening a padded binary value is not supported")
            self.env[node.output[0]] = replace(src, rank=2)
            return
        if isinstance(src, _Pending):
            self.env[node.output[0]] = _T(self.value(name, node), 2)
            return
        t = self.tensor(name, node)
        self.env[node.output[0]] = _T(t.v, 2)

    def op_Flatten(self, node: Any) -> None:
        if self.attrs(node).get("axis", 1) != 1:
            raise self.fail(node, "only Flatten with axis 1 is supported")
        self.flatten_to(node, node.input[0])

    def op_Reshape(self, node: Any) -> None:
        shape = self.const(node.input[1])
        src = self.env_of(node.input[0], node)
        v = src.src if isinstance(src, _Sign) else self.value(node.input[0], node)
        n = int(np.prod(v.shape))
        if shape is None or [int(s) for s in shape.reshape(-1)] not in ([1, -1], [-1, n], [1, n], [0, -1]):
            raise self.fail(node, f"only a reshape to [1, N] (a flatten) is supported, got {shape}")
        self.flatten_to(node, node.input[0])

    def op_Concat(self, node: Any) -> None:
        ts = [self.tensor(i, node) for i in node.input]
        axis = self.attrs(node).get("axis", 1)
        if any(t.rank != 4 for t in ts) or axis not in (1, -3):
            raise self.fail(node, "only concatenation of NCHW tensors along channels (axis 1) is supported")
        v = ts[0].v
        for t in ts[1:]:
            self.report.count("concat")
            v = self.g.concat(v, t.v)
        self.env[node.output[0]] = _T(v)


# ------------------------------------------------------------------- API


def import_onnx(
    path: str | Path,
    labels: Sequence[str] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    color_order: str | None = None,
    name: str | None = None,
    uint8_input: bool = False,
) -> tuple[GraphBuilder, ImportReport]:
    """Builds the xnor-edge graph of an ONNX file (nothing is written). With
    ``uint8_input`` the model also takes uint8 pixels, normalised in C as
    ``(u / 255 - mean) / std`` (docs/format.md, "uint8 input")."""
    onnx = _onnx()
    try:
        model = onnx.load(str(path))
    except Exception as e:  # protobuf decode errors have no common base
        raise OnnxImportError(f"{path}: not a readable ONNX file ({e})") from None
    meta = _common.metadata(path, labels, mean, std, color_order, name)
    meta["source"] = {"format": "onnx", "file": Path(path).name, "producer": model.producer_name}
    report = ImportReport()
    g = _Importer(model, report).run(meta)
    _common.check_metadata(g, meta, labels, OnnxImportError)
    if uint8_input:
        _common.add_uint8_input(g, meta, OnnxImportError)
    return g, report


def source_runner(path: str | Path) -> tuple[str, Callable[[np.ndarray], np.ndarray]]:
    """Runs the ONNX model itself: onnxruntime when installed, else onnx's reference evaluator."""
    try:
        import onnxruntime as ort

        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        return "onnxruntime", lambda x: sess.run(None, {name: x})[0]
    except ImportError:
        from onnx.reference import ReferenceEvaluator

        ev = ReferenceEvaluator(str(path))
        name = ev.input_names[0]
        return "onnx.reference", lambda x: np.asarray(ev.run(None, {name: x})[0])


def _nchw_to_hwc(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64)
    return y.transpose(0, 2, 3, 1) if y.ndim == 4 else y


def compare(
    onnx_path: str | Path, xnor_bytes: bytes, inputs: np.ndarray
) -> tuple[str, list[dict[str, float]]]:
    """Per input (NCHW): max |difference| between the source runtime and xnor-edge, and top-1 agreement."""
    who, run_src = source_runner(onnx_path)
    rows = _common.compare_outputs(
        xnor_bytes, inputs, lambda x: _nchw_to_hwc(run_src(x)), lambda x: x.transpose(1, 2, 0)
    )
    return who, rows


def convert(
    src: str | Path,
    out: str | Path,
    check: np.ndarray | None = None,
    tolerance: float = 1e-4,
    samples: int = 4,
    log: Callable[[str], None] = print,
    **meta: Any,
) -> ImportReport:
    """Imports ``src`` and writes ``out`` after the self-check (see the module doc)."""
    g, report = import_onnx(src, **meta)
    data = _common.encode(g, report, log)
    h, w, c = g.input.shape
    who, rows = compare(src, data, _common.random_inputs(samples, (c, h, w)))
    _common.self_check(rows, who, tolerance, samples, log, OnnxImportError)
    if check is not None:
        x = _common.check_inputs(check, (c, h, w), OnnxImportError)
        _, crows = compare(src, data, x)
        _common.log_check_rows(crows, log)
    _common.write_model(out, data, report, log)
    return report


# -------------------------------------------------------------------- CLI


def add_arguments(p: Any) -> None:
    p.add_argument(
        "model",
        metavar="MODEL",
        help="ONNX file exported from PyTorch (batch 1, NCHW), or .tflite from Larq Compute Engine (NHWC)",
    )
    p.add_argument("-o", "--output", required=True, metavar="OUT.xnor", help="model file to write")
    p.add_argument("--labels", metavar="FILE", help="class names, one per line")
    p.add_argument("--mean", help="per-channel mean on 0..1 pixels, comma-separated")
    p.add_argument("--std", help="per-channel std on 0..1 pixels, comma-separated")
    p.add_argument("--color-order", choices=["RGB", "BGR", "GRAY"], dest="color_order")
    p.add_argument("--name", help="model name (default: the file name)")
    p.add_argument(
        "--uint8-input",
        action="store_true",
        dest="uint8_input",
        help="the model also takes uint8 pixels, normalised in C with --mean/--std",
    )
    p.add_argument(
        "--lce-kernel",
        choices=["reference", "optimized"],
        default="reference",
        dest="lce_kernel",
        help="TFLite only: reproduce the floats of LCE's reference binary-conv kernel (default: zero "
        "padding as the file states it) or of its optimised default kernels (their border "
        "correction, bit for bit with LCE's default interpreter; slower; docs/import.md)",
    )
    p.add_argument(
        "--check",
        metavar="INPUT.npy",
        help="input(s) (ONNX: NCHW, TFLite: NHWC): print max |difference| per output",
    )
    p.add_argument("--tolerance", type=float, default=1e-4, help="self-check limit (relative)")


def run_cli(args: Any) -> int:
    return _common.run_cli(args, convert)
