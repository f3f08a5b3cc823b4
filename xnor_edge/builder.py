"""Build xnor-edge model files from NumPy arrays (docs/format.md, docs/builder.md).

Pure NumPy: importing this module does not load the C library, so converters
(the PyTorch exporter in tools/) can use it on any machine.

    g = GraphBuilder(input_shape=(32, 32, 3), metadata={"name": "net"})
    x = g.conv2d(g.input, w0, b0, padding=1, relu=True)
    x = g.bconv2d(x, w1, alpha1, bias1, padding=1, use_k=True)
    y = g.dense(g.global_avgpool(x), w2, b2)
    g.save("net.xnor")

Weights use PyTorch's layout ([OC, IC, KH, KW] for convolutions, [OUT, IN]
for dense layers); the builder converts them to the file's HWC layouts.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence, Tuple, Union

import numpy as np

FORMAT_VERSION = 1
PACKING_VERSION = 1
MAGIC = b"XNOREDGE"
END_MAGIC = b"XEND"
HEADER_SIZE = 128
NODE_SIZE = 64
PARAM_SIZE = 32
NO_INPUT = 0xFFFFFFFF

OP_CONV2D = 1
OP_BWN_CONV2D = 2
OP_BCONV2D = 3
OP_BATCHNORM = 4
OP_RELU = 5
OP_MAXPOOL = 6
OP_AVGPOOL = 7
OP_GLOBAL_AVGPOOL = 8
OP_DENSE = 9
OP_ADD = 10
OP_SOFTMAX = 11
OP_SIGN = 12
OP_PRELU = 13
OP_CLIP = 14
OP_SIGN_SHIFT = 15
OP_CONCAT = 16
OP_FLATTEN = 17
OP_DWCONV2D = 18
OP_PAD = 19
OP_AVGPOOL_EXCL_PAD = 20
OP_GCONV2D = 21
OP_BCONV2D_MST = 32  # ids 32+: compressed forms of binary ops

# Header flag bit 0: the model also takes uint8 input through a table (docs/format.md).
FLAG_U8_INPUT = 1

FLAG_RELU = 1
FLAG_PAD_ONE = 2
FLAG_USE_K = 4
FLAG_OUT_BITS = 8

DTYPE_F32 = 0
DTYPE_BITS = 1

F32 = "float32"
BITS = "bits"

MAX_DIM = 65535
MAX_ELEMENTS = 1 << 28
MAX_KERNEL = 64
MAX_STRIDE = 64
MAX_NODES = 65536

IntPair = Union[int, Tuple[int, int], Sequence[int]]
_Window = Tuple[Tuple[int, int], Tuple[int, int], Tuple[int, int]]  # kernel, stride, pad

__all__ = [
    "GraphBuilder",
    "Value",
    "fold_batchnorm",
    "pack_signs",
    "uint8_table",
    "with_uint8_input",
]


@dataclass(frozen=True)
class Value:
    """A tensor of the graph: the model input (id 0) or the output of node id-1."""

    id: int
    shape: tuple[int, int, int]
    dtype: str  # "float32" or "bits"
    owner: int  # id() of the GraphBuilder that made it

    def __repr__(self) -> str:
        return f"Value(id={self.id}, shape={self.shape}, dtype={self.dtype!r})"


@dataclass
class _Node:
    op: int
    flags: int
    input0: int
    input1: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    pad: tuple[int, int]
    out_shape: tuple[int, int, int]
    params: list[tuple[int, np.ndarray]]  # (DTYPE_*, 1-D float32 or uint32 array)


def pack_signs(array: Any, axis: int = -1) -> np.ndarray:
    """Packs the signs of ``array`` along ``axis`` into uint32 words.

    docs/bitpacking.md: x < 0 -> bit 1, else bit 0 (so 0 and NaN are +1);
    element c goes to word c // 32, bit c % 32; unused high bits are 0. The
    packed axis stays where it was and has length ceil(n / 32).
    """
    a = np.asarray(array)
    if a.ndim == 0:
        raise ValueError("pack_signs needs an array with at least one axis")
    a = np.moveaxis(a, axis, -1)
    n = a.shape[-1]
    words = (n + 31) // 32
    bits = np.zeros(a.shape[:-1] + (words * 32,), dtype=np.uint64)
    bits[..., :n] = a < 0
    bits = bits.reshape(a.shape[:-1] + (words, 32))
    shifts = np.arange(32, dtype=np.uint64)
    packed = (bits << shifts).sum(axis=-1, dtype=np.uint64).astype(np.uint32)
    return np.moveaxis(packed, -1, axis)


def fold_batchnorm(gamma: Any, beta: Any, mean: Any, var: Any, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """Inference batch-norm as ``y = x * scale + shift`` (float32 arrays)."""
    gamma, beta, mean, var = (np.asarray(v, dtype=np.float64).reshape(-1) for v in (gamma, beta, mean, var))
    if not (gamma.shape == beta.shape == mean.shape == var.shape):
        raise ValueError(
            "fold_batchnorm: gamma, beta, mean and var must have the same length, got "
            f"{gamma.size}, {beta.size}, {mean.size}, {var.size}"
        )
    if eps < 0 or np.any(var + eps <= 0):
        raise ValueError("fold_batchnorm: var + eps must be positive")
    scale = gamma / np.sqrt(var + eps)
    shift = beta - mean * scale
    return scale.astype(np.float32), shift.astype(np.float32)


def _pair(name: str, v: IntPair) -> tuple[int, int]:
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return int(v), int(v)
    try:
        items = tuple(v)  # type: ignore[arg-type]
    except TypeError:
        raise ValueError(f"{name} must be an int or an (h, w) pair, got {v!r}") from None
    if len(items) != 2 or not all(
        isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in items
    ):
        raise ValueError(f"{name} must be an int or an (h, w) pair, got {v!r}")
    return int(items[0]), int(items[1])


class GraphBuilder:
    """Collects nodes and parameters and serialises them to a model file."""

    def __init__(self, input_shape: Sequence[int], metadata: dict | None = None) -> None:
        shape = tuple(int(s) for s in input_shape)
        if len(shape) != 3:
            raise ValueError(f"input_shape must be (h, w, c), got {tuple(input_shape)!r}")
        self._check_shape("input", shape)
        if metadata is not None and not isinstance(metadata, dict):
            raise ValueError(f"metadata must be a dict or None, got {type(metadata).__name__}")
        self.metadata: dict = dict(metadata or {})
        self._nodes: list[_Node] = []
        self._values: list[Value] = [Value(0, shape, F32, id(self))]
        self._u8_table: np.ndarray | None = None  # [C][256], see uint8_input

    # ----------------------------------------------------------------- values

    @property
    def input(self) -> Value:
        """The model input (value id 0, float32, shape (h, w, c))."""
        return self._values[0]

    @property
    def output(self) -> Value:
        """The model output: the value of the last node added."""
        if not self._nodes:
            raise ValueError("the graph has no nodes yet")
        return self._values[-1]

    @property
    def num_nodes(self) -> int:
        return len(self._nodes)

    # -------------------------------------------------------------------- ops

    def conv2d(
        self,
        x: Value,
        weight: Any,
        bias: Any = None,
        stride: IntPair = 1,
        padding: IntPair = 0,
        relu: bool = False,
        groups: int = 1,
        dilation: IntPair = 1,
    ) -> Value:
        """Float convolution; ``weight`` is [OC, IC / groups, KH, KW] (PyTorch's layout).

        With ``groups`` > 1 or a ``dilation`` other than 1 it is a gconv2d node (op 21);
        padding is then in input pixels, as PyTorch's, and must stay below the dilated
        extent (KH - 1) * dilation + 1."""
        if groups != 1 or _pair("conv2d dilation", dilation) != (1, 1):
            return self._gconv2d(x, weight, bias, stride, padding, relu, groups, dilation)
        op = "conv2d"
        self._need(op, x, F32)
        w = self._conv_weight(op, x, weight)
        oc, _, kh, kw = w.shape
        out, win = self._window(op, x, (kh, kw), stride, padding, oc)
        params = [
            (DTYPE_F32, self._floats(op, "weight", w.transpose(0, 2, 3, 1))),
            (DTYPE_F32, self._vector(op, "bias", bias, oc)),
        ]
        return self._add(OP_CONV2D, FLAG_RELU if relu else 0, x, None, win, out, params)

    def _gconv2d(
        self,
        x: Value,
        weight: Any,
        bias: Any,
        stride: IntPair,
        padding: IntPair,
        relu: bool,
        groups: Any,
        dilation: IntPair,
    ) -> Value:
        op = "gconv2d"
        self._need(op, x, F32)
        d = _pair(f"{op} dilation", dilation)
        ic = x.shape[2]
        if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or not 1 <= groups <= ic:
            raise ValueError(f"{op}: groups {groups!r} must divide value {x.id}'s {ic} channels")
        if ic % groups:
            raise ValueError(f"{op}: groups {groups!r} must divide value {x.id}'s {ic} channels")
        if min(d) < 1:
            raise ValueError(f"{op}: dilation {d} must be >= 1")
        try:
            w = np.asarray(weight, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{op}: weight is not a numeric array ({e})") from None
        if w.ndim != 4 or w.shape[1] * groups != ic or w.shape[0] < 1 or w.shape[0] % groups:
            raise ValueError(
                f"{op}: weight must be [OC, {ic // groups}, KH, KW] with OC a multiple of {groups} "
                f"(groups), got shape {w.shape}"
            )
        oc, _, kh, kw = w.shape
        if not np.all(np.isfinite(w)):
            raise ValueError(f"{op}: weight contains NaN or infinity")
        extent = ((kh - 1) * d[0] + 1, (kw - 1) * d[1] + 1)
        out, win = self._window(op, x, extent, stride, padding, oc)
        params = [
            (DTYPE_BITS, np.array([groups, d[0], d[1], 0], dtype=np.uint32)),
            (DTYPE_F32, self._floats(op, "weight", w.transpose(0, 2, 3, 1))),
            (DTYPE_F32, self._vector(op, "bias", bias, oc)),
        ]
        return self._add(OP_GCONV2D, FLAG_RELU if relu else 0, x, None, win, out, params)

    def dwconv2d(
        self,
        x: Value,
        weight: Any,
        bias: Any = None,
        stride: IntPair = 1,
        padding: IntPair = 0,
        relu: bool = False,
    ) -> Value:
        """Depthwise convolution (PyTorch groups = IC); ``weight`` is [OC, 1, KH, KW], OC = M * IC."""
        op = "dwconv2d"
        self._need(op, x, F32)
        try:
            w = np.asarray(weight, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{op}: weight is not a numeric array ({e})") from None
        ic = x.shape[2]
        if w.ndim != 4 or w.shape[1] != 1 or w.shape[0] < 1 or w.shape[0] % ic:
            raise ValueError(
                f"{op}: weight must be [OC, 1, KH, KW] with OC a multiple of {ic} (value {x.id}'s "
                f"channels), got shape {w.shape}"
            )
        oc, _, kh, kw = w.shape
        out, win = self._window(op, x, (kh, kw), stride, padding, oc)
        params = [
            (DTYPE_F32, self._floats(op, "weight", w[:, 0].transpose(1, 2, 0))),
            (DTYPE_F32, self._vector(op, "bias", bias, oc)),
        ]
        return self._add(OP_DWCONV2D, FLAG_RELU if relu else 0, x, None, win, out, params)

    def bwn_conv2d(
        self,
        x: Value,
        weight: Any,
        scale: Any,
        bias: Any = None,
        stride: IntPair = 1,
        padding: IntPair = 0,
        relu: bool = False,
    ) -> Value:
        """Float input, binary weights (sign of ``weight``), per-filter ``scale``."""
        op = "bwn_conv2d"
        self._need(op, x, F32)
        w = self._conv_weight(op, x, weight)
        oc, _, kh, kw = w.shape
        out, win = self._window(op, x, (kh, kw), stride, padding, oc)
        params = [
            (DTYPE_BITS, pack_signs(w.transpose(0, 2, 3, 1), axis=-1).reshape(-1)),
            (DTYPE_F32, self._vector(op, "scale", scale, oc, required=True)),
            (DTYPE_F32, self._vector(op, "bias", bias, oc)),
        ]
        return self._add(OP_BWN_CONV2D, FLAG_RELU if relu else 0, x, None, win, out, params)

    def bconv2d(
        self,
        x: Value,
        weight: Any,
        scale: Any,
        bias: Any = None,
        stride: IntPair = 1,
        padding: IntPair = 0,
        pad_mode: str = "zero",
        use_k: bool = False,
        relu: bool = False,
        out_bits: bool = False,
    ) -> Value:
        """XNOR convolution of sign(x) with sign(weight); see docs/format.md."""
        op = "bconv2d"
        self._check_value(op, x)
        if pad_mode not in ("zero", "one"):
            raise ValueError(f"{op}: pad_mode must be 'zero' or 'one', got {pad_mode!r}")
        if use_k and x.dtype == BITS:
            raise ValueError(
                f"{op}: use_k needs a float32 input (K is computed from |x|), but value {x.id} is bits"
            )
        if out_bits and (use_k or relu):
            raise ValueError(f"{op}: out_bits excludes use_k and relu")
        w = self._conv_weight(op, x, weight)
        oc, _, kh, kw = w.shape
        out, win = self._window(op, x, (kh, kw), stride, padding, oc)
        flags = (
            (FLAG_RELU if relu else 0)
            | (FLAG_PAD_ONE if pad_mode == "one" else 0)
            | (FLAG_USE_K if use_k else 0)
            | (FLAG_OUT_BITS if out_bits else 0)
        )
        params = [
            (DTYPE_BITS, pack_signs(w.transpose(0, 2, 3, 1), axis=-1).reshape(-1)),
            (DTYPE_F32, self._vector(op, "scale", scale, oc, required=True)),
            (DTYPE_F32, self._vector(op, "bias", bias, oc)),
        ]
        return self._add(OP_BCONV2D, flags, x, None, win, out, params, out_bits)

    def bconv2d_mst(
        self,
        x: Value,
        weight: Any,
        scale: Any,
        bias: Any = None,
        stride: IntPair = 1,
        padding: IntPair = 0,
        pad_mode: str = "zero",
        use_k: bool = False,
        relu: bool = False,
        out_bits: bool = False,
        chunk: int | None = 64,
        max_depth: int | None = None,
        encoding: str = "auto",
        forest: bool = True,
    ) -> Value:
        """bconv2d with its weights MST-coded (op 32, docs/format.md; xnor_edge.mst.choose_code)."""
        from . import mst

        v = self.bconv2d(x, weight, scale, bias, stride, padding, pad_mode, use_k, relu, out_bits)
        n = self._nodes[-1]
        oc, (kh, kw), ic = n.out_shape[2], n.kernel, x.shape[2]
        code = mst.choose_code(
            mst.filter_rows(n.params[0][1], oc, kh, kw, ic), kh, kw, ic, chunk, max_depth, forest, encoding
        )
        n.op = OP_BCONV2D_MST
        n.params = [(DTYPE_BITS, a) for a in mst.to_params(code)] + n.params[1:]
        return v

    def batchnorm(self, x: Value, scale: Any, shift: Any, relu: bool = False) -> Value:
        """Per-channel ``y = x * scale + shift`` (see fold_batchnorm)."""
        op = "batchnorm"
        self._need(op, x, F32)
        c = x.shape[2]
        params = [
            (DTYPE_F32, self._vector(op, "scale", scale, c, required=True)),
            (DTYPE_F32, self._vector(op, "shift", shift, c, required=True)),
        ]
        return self._add(OP_BATCHNORM, FLAG_RELU if relu else 0, x, None, None, x.shape, params)

    def relu(self, x: Value) -> Value:
        self._need("relu", x, F32)
        return self._add(OP_RELU, 0, x, None, None, x.shape, [])

    def maxpool(
        self, x: Value, kernel: IntPair, stride: IntPair | None = None, padding: IntPair = 0
    ) -> Value:
        """Max pool over float32 or bits (binary max = AND of the bits)."""
        self._check_value("maxpool", x)
        k = _pair("maxpool kernel", kernel)
        out, win = self._window("maxpool", x, k, k if stride is None else stride, padding, x.shape[2])
        return self._add(OP_MAXPOOL, 0, x, None, win, out, [], x.dtype == BITS)

    def avgpool(
        self, x: Value, kernel: IntPair, stride: IntPair | None = None, padding: IntPair = 0
    ) -> Value:
        """Average pool, zero padding, divisor kh*kw."""
        self._need("avgpool", x, F32)
        k = _pair("avgpool kernel", kernel)
        out, win = self._window("avgpool", x, k, k if stride is None else stride, padding, x.shape[2])
        return self._add(OP_AVGPOOL, 0, x, None, win, out, [])

    def avgpool_excl_pad(
        self, x: Value, kernel: IntPair, stride: IntPair | None = None, padding: Any = 0
    ) -> Value:
        """Average over the valid taps only (TFLite's SAME pool, ONNX count_include_pad=0).

        ``padding``: an int or (h, w) pair (symmetric), (top, bottom, left, right), or
        ``"same"`` (TFLite: the odd pixel after the input). The file records top/left
        and the output size, from which bottom/right follow (docs/format.md, op 20).
        """
        op = "avgpool_excl_pad"
        self._need(op, x, F32)
        k = _pair(f"{op} kernel", kernel)
        s = _pair(f"{op} stride", k if stride is None else stride)
        pads = _pads4(op, x.shape, k, s, padding)
        out_hw = []
        for i, axis in enumerate("hw"):
            before, after = pads[2 * i], pads[2 * i + 1]
            if not 1 <= k[i] <= MAX_KERNEL or not 1 <= s[i] <= MAX_STRIDE:
                raise ValueError(f"{op}: kernel_{axis} {k[i]} or stride_{axis} {s[i]} out of range 1..64")
            if not (0 <= before < k[i] and 0 <= after < k[i]):
                raise ValueError(f"{op}: padding {pads} on {axis}: each side must be in 0..kernel_{axis}-1")
            if x.shape[i] + 2 * before < k[i] or x.shape[i] + before + after < k[i]:
                raise ValueError(
                    f"{op}: kernel_{axis} = {k[i]} is larger than the padded input ({x.shape[i]} with "
                    f"{before} before, {after} after; the format also needs size + 2*before >= kernel)"
                )
            out_hw.append((x.shape[i] + before + after - k[i]) // s[i] + 1)
        out = (out_hw[0], out_hw[1], x.shape[2])
        self._check_shape(op, out)
        return self._add(OP_AVGPOOL_EXCL_PAD, 0, x, None, (k, s, (pads[0], pads[2])), out, [])

    def global_avgpool(self, x: Value) -> Value:
        self._need("global_avgpool", x, F32)
        return self._add(OP_GLOBAL_AVGPOOL, 0, x, None, None, (1, 1, x.shape[2]), [])

    def softmax(self, x: Value) -> Value:
        self._need("softmax", x, F32)
        return self._add(OP_SOFTMAX, 0, x, None, None, x.shape, [])

    def sign(self, x: Value) -> Value:
        """float32 -> bits (x < 0 -> -1, else +1)."""
        self._need("sign", x, F32)
        return self._add(OP_SIGN, 0, x, None, None, x.shape, [], True)

    def sign_shift(self, x: Value, shift: Any) -> Value:
        """float32 -> bits with a per-channel threshold: bit = (x + shift[c] < 0)."""
        op = "sign_shift"
        self._need(op, x, F32)
        params = [(DTYPE_F32, self._vector(op, "shift", shift, x.shape[2], required=True))]
        return self._add(OP_SIGN_SHIFT, 0, x, None, None, x.shape, params, True)

    def prelu(self, x: Value, slope: Any) -> Value:
        """``y = x if x >= 0 else slope[c] * x``; a scalar slope is leaky ReLU."""
        op = "prelu"
        self._need(op, x, F32)
        params = [(DTYPE_F32, self._vector(op, "slope", slope, x.shape[2], required=True))]
        return self._add(OP_PRELU, 0, x, None, None, x.shape, params)

    def clip(self, x: Value, lo: float, hi: float) -> Value:
        """``y = min(max(x, lo), hi)`` (hard-tanh: lo=-1, hi=1)."""
        op = "clip"
        self._need(op, x, F32)
        bounds = self._floats(op, "bounds", [lo, hi])
        if not bounds[0] <= bounds[1]:
            raise ValueError(f"{op}: min {lo} is greater than max {hi}")
        return self._add(OP_CLIP, 0, x, None, None, x.shape, [(DTYPE_F32, bounds)])

    def concat(self, a: Value, b: Value) -> Value:
        """Channels of ``a`` then channels of ``b`` (same height and width)."""
        op = "concat"
        self._need(op, a, F32)
        self._need(op, b, F32)
        if a.shape[:2] != b.shape[:2]:
            raise ValueError(
                f"{op}: value {a.id} is {a.shape} and value {b.id} is {b.shape}; height and width must match"
            )
        out = (a.shape[0], a.shape[1], a.shape[2] + b.shape[2])
        self._check_shape(op, out)
        return self._add(OP_CONCAT, 0, a, b, None, out, [])

    def flatten(self, x: Value) -> Value:
        """(h, w, c) -> (1, 1, h*w*c), same (h, w, c) order; a binary dense after it packs densely."""
        self._need("flatten", x, F32)
        out = (1, 1, x.shape[0] * x.shape[1] * x.shape[2])
        self._check_shape("flatten", out)
        return self._add(OP_FLATTEN, 0, x, None, None, out, [])

    def pad(self, x: Value, top: int, bottom: int, left: int, right: int, value: float = 0.0) -> Value:
        """Constant padding, possibly asymmetric (TFLite's SAME); on bits ``value`` is +1 or -1.

        Written as a window (docs/format.md, op 19): pad (top, left), kernel
        (1 + top + bottom, 1 + left + right), stride 1.
        """
        op = "pad"
        self._check_value(op, x)
        amounts = (top, bottom, left, right)
        if any(isinstance(a, bool) or not isinstance(a, (int, np.integer)) or a < 0 for a in amounts):
            raise ValueError(f"{op}: amounts must be non-negative integers, got {amounts}")
        kh, kw = 1 + top + bottom, 1 + left + right
        if kh > MAX_KERNEL or kw > MAX_KERNEL:
            raise ValueError(f"{op}: top + bottom and left + right must be at most {MAX_KERNEL - 1}")
        if x.shape[0] + top < 1 + bottom or x.shape[1] + left < 1 + right:
            raise ValueError(
                f"{op}: {amounts} on value {x.id} {x.shape}: bottom/right must be < size + top/left"
            )
        v = self._floats(op, "value", [value])
        if x.dtype == BITS and float(v[0]) not in (1.0, -1.0):
            raise ValueError(f"{op}: value {value} on bits: must be +1 or -1")
        out = (x.shape[0] + top + bottom, x.shape[1] + left + right, x.shape[2])
        self._check_shape(op, out)
        win = ((kh, kw), (1, 1), (int(top), int(left)))
        return self._add(OP_PAD, 0, x, None, win, out, [(DTYPE_F32, v)], x.dtype == BITS)

    def add(self, a: Value, b: Value, relu: bool = False) -> Value:
        self._need("add", a, F32)
        self._need("add", b, F32)
        if a.shape != b.shape:
            raise ValueError(f"add: shapes differ: value {a.id} is {a.shape}, value {b.id} is {b.shape}")
        return self._add(OP_ADD, FLAG_RELU if relu else 0, a, b, None, a.shape, [])

    def dense(
        self, x: Value, weight: Any, bias: Any = None, relu: bool = False, input_order: str = "hwc"
    ) -> Value:
        """Fully connected layer over the flattened input; ``weight`` is [OUT, IN].

        ``input_order="chw"`` means IN follows PyTorch's flatten of an NCHW
        tensor; the builder permutes the columns to the runtime's HWC order.
        """
        op = "dense"
        self._need(op, x, F32)
        w = self._dense_weight(op, x, weight, input_order)
        out_n = w.shape[0]
        self._check_shape(op, (1, 1, out_n))
        params = [
            (DTYPE_F32, self._floats(op, "weight", w)),
            (DTYPE_F32, self._vector(op, "bias", bias, out_n)),
        ]
        return self._add(OP_DENSE, FLAG_RELU if relu else 0, x, None, None, (1, 1, out_n), params)

    def binary_dense(
        self,
        x: Value,
        weight: Any,
        scale: Any,
        bias: Any = None,
        use_k: bool = False,
        relu: bool = False,
        input_order: str = "hwc",
        out_bits: bool = False,
    ) -> Value:
        """Binary fully connected layer: a bconv2d whose window is the whole input.

        ``out_bits``: the output is the packed signs of ``dot * scale + bias`` (OUT_BITS:
        the runtime compares each dot with an integer threshold), ready for the next binary
        layer without a float round trip; excludes ``use_k`` and ``relu``."""
        op = "binary_dense"
        self._check_value(op, x)
        h, wd, c = x.shape
        w = self._dense_weight(op, x, weight, input_order)  # [OUT, IN] in HWC order
        w4 = w.reshape(w.shape[0], h, wd, c).transpose(0, 3, 1, 2)
        if h > MAX_KERNEL or wd > MAX_KERNEL:
            raise ValueError(
                f"{op}: input {x.shape} is larger than the largest window "
                f"({MAX_KERNEL}x{MAX_KERNEL}); pool it first"
            )
        return self.bconv2d(
            x, w4, scale, bias, stride=1, padding=0, use_k=use_k, relu=relu, out_bits=out_bits
        )

    # ------------------------------------------------------------ serialising

    def to_bytes(self) -> bytes:
        """The model file (docs/format.md) as bytes."""
        if not self._nodes:
            raise ValueError("the graph has no nodes; add at least one op")
        if self._values[-1].dtype != F32:
            raise ValueError(
                "the model output (the last node's value) must be float32, but it is bits; "
                "end with a float op"
            )
        params: list[tuple[int, np.ndarray]] = []
        node_recs = []
        for n in self._nodes:
            first = len(params)
            params.extend(n.params)
            node_recs.append(
                struct.pack(
                    "<16I",
                    n.op,
                    n.flags,
                    n.input0,
                    n.input1,
                    n.kernel[0],
                    n.kernel[1],
                    n.stride[0],
                    n.stride[1],
                    n.pad[0],
                    n.pad[1],
                    n.out_shape[2],
                    n.out_shape[0],
                    n.out_shape[1],
                    first if n.params else 0,
                    len(n.params),
                    0,
                )
            )
        return _serialise(self._values[0].shape, self.metadata, node_recs, params, self._u8_table)

    def uint8_input(
        self, mean: Any = None, std: Any = None, *, scale: Any = None, offset: Any = None
    ) -> None:
        """Declares that the model also takes uint8 pixels (docs/format.md, "uint8 input"),
        normalised in C by lookup: either ``(u / 255 - mean[c]) / std[c]`` (mean and std
        on 0..1 values, as the metadata keys) or ``u * scale[c] + offset[c]``; each a
        scalar or one value per channel. The float input keeps its meaning (the
        normalised tensor). Sets the metadata's ``mean`` and ``std`` to match."""
        c = self._values[0].shape[2]
        self._u8_table, stats = uint8_table(c, mean, std, scale=scale, offset=offset)
        self.metadata.update(stats)

    def save(self, path: str | Path) -> None:
        """Writes the model file to ``path``."""
        Path(path).write_bytes(self.to_bytes())

    # ---------------------------------------------------------------- helpers

    def _check_value(self, op: str, x: Any) -> None:
        if not isinstance(x, Value):
            raise ValueError(f"{op}: expected a Value from this builder, got {type(x).__name__}")
        if x.owner != id(self) or x.id >= len(self._values) or self._values[x.id] is not x:
            raise ValueError(f"{op}: value {x.id} belongs to another GraphBuilder")

    def _need(self, op: str, x: Any, dtype: str) -> None:
        self._check_value(op, x)
        if x.dtype != dtype:
            raise ValueError(f"{op}: needs a {dtype} input, but value {x.id} is {x.dtype}")

    @staticmethod
    def _check_shape(op: str, shape: tuple[int, int, int]) -> None:
        for d in shape:
            if not 1 <= d <= MAX_DIM:
                raise ValueError(f"{op}: shape {shape} has a dimension outside 1..{MAX_DIM}")
        if shape[0] * shape[1] * shape[2] > MAX_ELEMENTS:
            raise ValueError(f"{op}: shape {shape} has more than 2^28 elements")

    @staticmethod
    def _floats(op: str, name: str, a: Any) -> np.ndarray:
        try:
            arr = np.asarray(a, dtype=np.float32)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{op}: {name} is not a numeric array ({e})") from None
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{op}: {name} contains NaN or infinity")
        return np.ascontiguousarray(arr).reshape(-1)

    def _vector(self, op: str, name: str, v: Any, n: int, required: bool = False) -> np.ndarray:
        if v is None:
            if required:
                raise ValueError(f"{op}: {name} is required")
            return np.zeros(n, dtype=np.float32)
        arr = self._floats(op, name, v)
        if np.ndim(v) == 0:
            arr = np.full(n, arr[0], dtype=np.float32)
        if arr.size != n:
            raise ValueError(f"{op}: {name} has {arr.size} values, expected {n}")
        return arr

    def _conv_weight(self, op: str, x: Value, weight: Any) -> np.ndarray:
        try:
            w = np.asarray(weight, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{op}: weight is not a numeric array ({e})") from None
        if w.ndim != 4:
            raise ValueError(f"{op}: weight must be [OC, IC, KH, KW], got shape {w.shape}")
        oc, ic, kh, kw = w.shape
        if ic != x.shape[2]:
            raise ValueError(
                f"{op}: weight expects {ic} input channels (shape {w.shape}), "
                f"but value {x.id} has {x.shape[2]} (shape {x.shape})"
            )
        if oc < 1 or oc > MAX_DIM:
            raise ValueError(f"{op}: {oc} output channels, expected 1..{MAX_DIM}")
        if not np.all(np.isfinite(w)):
            raise ValueError(f"{op}: weight contains NaN or infinity")
        return w

    def _dense_weight(self, op: str, x: Value, weight: Any, input_order: str) -> np.ndarray:
        if input_order not in ("hwc", "chw"):
            raise ValueError(f"{op}: input_order must be 'hwc' or 'chw', got {input_order!r}")
        try:
            w = np.asarray(weight, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{op}: weight is not a numeric array ({e})") from None
        h, wd, c = x.shape
        n_in = h * wd * c
        if w.ndim != 2 or w.shape[1] != n_in:
            raise ValueError(f"{op}: weight must be [OUT, {n_in}] for input {x.shape}, got shape {w.shape}")
        if w.shape[0] < 1:
            raise ValueError(f"{op}: weight has no output rows")
        if input_order == "chw":
            w = w.reshape(w.shape[0], c, h, wd).transpose(0, 2, 3, 1).reshape(w.shape[0], n_in)
        return w

    def _window(
        self, op: str, x: Value, kernel: tuple[int, int], stride: IntPair, padding: IntPair, out_c: int
    ) -> tuple[tuple[int, int, int], _Window]:
        s = _pair(f"{op} stride", stride)
        p = _pair(f"{op} padding", padding)
        k = kernel
        for i, axis in enumerate("hw"):
            if not 1 <= k[i] <= MAX_KERNEL:
                raise ValueError(f"{op}: kernel_{axis} = {k[i]} outside 1..{MAX_KERNEL}")
            if not 1 <= s[i] <= MAX_STRIDE:
                raise ValueError(f"{op}: stride_{axis} = {s[i]} outside 1..{MAX_STRIDE}")
            if not 0 <= p[i] < k[i]:
                raise ValueError(f"{op}: pad_{axis} = {p[i]} must be >= 0 and < kernel_{axis} = {k[i]}")
        out_hw = []
        for i, axis in enumerate("hw"):
            span = x.shape[i] + 2 * p[i] - k[i]
            if span < 0:
                raise ValueError(
                    f"{op}: kernel_{axis} = {k[i]} is larger than the padded input "
                    f"({x.shape[i]} + 2*{p[i]}) of value {x.id}"
                )
            out_hw.append(span // s[i] + 1)
        shape = (out_hw[0], out_hw[1], out_c)
        self._check_shape(op, shape)
        return shape, (k, s, p)

    def _add(
        self,
        op: int,
        flags: int,
        a: Value,
        b: Value | None,
        win: _Window | None,
        out_shape: tuple[int, int, int],
        params: list[tuple[int, np.ndarray]],
        out_is_bits: bool = False,
    ) -> Value:
        if len(self._nodes) >= MAX_NODES:
            raise ValueError(f"the graph already has the maximum of {MAX_NODES} nodes")
        kernel, stride, pad = win if win is not None else ((0, 0), (0, 0), (0, 0))
        self._nodes.append(
            _Node(op, flags, a.id, NO_INPUT if b is None else b.id, kernel, stride, pad, out_shape, params)
        )
        v = Value(len(self._values), tuple(out_shape), BITS if out_is_bits else F32, id(self))  # type: ignore[arg-type]
        self._values.append(v)
        return v


def uint8_table(
    channels: int, mean: Any = None, std: Any = None, *, scale: Any = None, offset: Any = None
) -> tuple[np.ndarray, dict]:
    """The [C][256] float32 table of a model's uint8 input (docs/format.md) and the
    metadata ``mean``/``std`` it stands for: entry [c][u] is ``(u / 255 - mean[c]) /
    std[c]`` or ``u * scale[c] + offset[c]``, computed in float64 and rounded once."""
    op = "uint8_input"
    if (mean is not None or std is not None) == (scale is not None or offset is not None):
        raise ValueError(f"{op}: give mean and std, or scale and offset (one pair)")

    def per_channel(name: str, v: Any, default: float) -> np.ndarray:
        try:
            a = np.asarray(default if v is None else v, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{op}: {name} is not numeric ({e})") from None
        if a.size == 1:
            a = np.full(channels, a[0])
        if a.size != channels:
            raise ValueError(f"{op}: {name} has {a.size} values, the input has {channels} channels")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{op}: {name} contains NaN or infinity")
        return a

    u = np.arange(256, dtype=np.float64)[None, :]
    if scale is None and offset is None:
        m, sd = per_channel("mean", mean, 0.0), per_channel("std", std, 1.0)
        if np.any(sd == 0):
            raise ValueError(f"{op}: std contains 0")
        table = (u / 255.0 - m[:, None]) / sd[:, None]
    else:
        sc, of = per_channel("scale", scale, 1.0), per_channel("offset", offset, 0.0)
        table = u * sc[:, None] + of[:, None]
        with np.errstate(divide="ignore"):
            sd = 1.0 / (255.0 * sc)
        m = -of * sd
    with np.errstate(over="ignore"):
        t32 = table.astype(np.float32)
    if not np.all(np.isfinite(t32)):
        raise ValueError(f"{op}: the table overflows float32")
    stats = {"mean": m.tolist(), "std": sd.tolist()} if np.all(np.isfinite(sd)) else {}
    return t32, stats


def with_uint8_input(
    model: bytes | str | Path,
    mean: Any = None,
    std: Any = None,
    *,
    scale: Any = None,
    offset: Any = None,
) -> bytes:
    """An existing float-input model file (bytes or path) made to take uint8 pixels as
    well (``GraphBuilder.uint8_input``): the same graph and params plus the table."""
    d = Path(model).read_bytes() if isinstance(model, (str, Path)) else bytes(model)
    if len(d) < HEADER_SIZE + 8 or d[:8] != MAGIC or d[-4:] != END_MAGIC:
        raise ValueError("with_uint8_input: not an xnor-edge model file")
    if zlib.crc32(d[:-8]) & 0xFFFFFFFF != struct.unpack_from("<I", d, len(d) - 8)[0]:
        raise ValueError("with_uint8_input: checksum mismatch")
    fmt, pack, _, _, flags, h, w, c, nn, np_, _, moff, msize, noff, poff = struct.unpack_from(
        "<IIQIIIIIIIIQQQQ", d, 8
    )
    if (fmt, pack) != (FORMAT_VERSION, PACKING_VERSION):
        raise ValueError(f"with_uint8_input: format {fmt} / packing {pack} not supported")
    if flags & FLAG_U8_INPUT:
        raise ValueError("with_uint8_input: the model already takes uint8 input")
    meta = json.loads(d[moff : moff + msize].decode("utf-8"))
    recs = [d[noff + NODE_SIZE * i : noff + NODE_SIZE * (i + 1)] for i in range(nn)]
    params = []
    for i in range(np_):
        dtype, _, off, count, _ = struct.unpack_from("<IIQQQ", d, poff + PARAM_SIZE * i)
        arr = np.frombuffer(d, dtype="<u4" if dtype == DTYPE_BITS else "<f4", count=count, offset=off)
        params.append((dtype, arr))
    table, stats = uint8_table(c, mean, std, scale=scale, offset=offset)
    meta.update(stats)
    return _serialise((h, w, c), meta, recs, params, table)


def _serialise(
    shape: tuple[int, int, int],
    metadata: dict,
    node_recs: list[bytes],
    params: list[tuple[int, np.ndarray]],
    table: np.ndarray | None,
) -> bytes:
    """The file: header, metadata, node records, param table (the uint8 input table, when
    given, last), blobs at multiples of 64, trailer."""
    h, w, c = shape
    meta = json.dumps(metadata, ensure_ascii=False, allow_nan=False).encode("utf-8")
    flags = FLAG_U8_INPUT if table is not None else 0
    if table is not None:
        params = params + [(DTYPE_F32, np.ascontiguousarray(table, dtype=np.float32).reshape(-1))]
    meta_offset = HEADER_SIZE
    nodes_offset = _align(meta_offset + len(meta) + 1, 8)
    params_offset = _align(nodes_offset + NODE_SIZE * len(node_recs), 8)
    pos = params_offset + PARAM_SIZE * len(params)
    entries = []
    blobs = []
    for dtype, arr in params:
        pos = _align(pos, 64)
        data = arr.astype("<u4" if dtype == DTYPE_BITS else "<f4").tobytes()
        entries.append(struct.pack("<IIQQQ", dtype, 0, pos, arr.size, 0))
        blobs.append((pos, data))
        pos += len(data)
    file_size = pos + 8
    buf = bytearray(file_size)
    header = struct.pack(
        "<8sIIQIIIIIIIIQQQQ",
        MAGIC,
        FORMAT_VERSION,
        PACKING_VERSION,
        file_size,
        HEADER_SIZE,
        flags,
        h,
        w,
        c,
        len(node_recs),
        len(params),
        len(params) - 1 if flags else 0,
        meta_offset,
        len(meta),
        nodes_offset,
        params_offset,
    )
    buf[: len(header)] = header
    buf[meta_offset : meta_offset + len(meta)] = meta
    buf[nodes_offset : nodes_offset + NODE_SIZE * len(node_recs)] = b"".join(node_recs)
    buf[params_offset : params_offset + PARAM_SIZE * len(entries)] = b"".join(entries)
    for off, data in blobs:
        buf[off : off + len(data)] = data
    crc = zlib.crc32(bytes(buf[: file_size - 8])) & 0xFFFFFFFF
    buf[file_size - 8 :] = struct.pack("<I4s", crc, END_MAGIC)
    return bytes(buf)


def _pads4(op: str, shape: tuple[int, ...], k: tuple[int, int], s: tuple[int, int], padding: Any) -> tuple:
    """(top, bottom, left, right) from an int, an (h, w) pair, four ints or "same" (TFLite)."""
    bad = ValueError(f"{op}: padding {padding!r}: use 'same', an int, (h, w) or (top, bottom, left, right)")
    if isinstance(padding, str):
        if padding.lower() != "same":
            raise bad
        pads: list[int] = []
        for size, kk, ss in zip(shape[:2], k, s):
            total = max(((size + ss - 1) // ss - 1) * ss + kk - size, 0)
            pads += [total // 2, total - total // 2]
        return tuple(pads)
    if isinstance(padding, (int, np.integer)) and not isinstance(padding, bool):
        return (int(padding),) * 4
    try:
        items = tuple(padding)
    except TypeError:
        raise bad from None
    if len(items) not in (2, 4) or not all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in items
    ):
        raise bad
    if len(items) == 2:
        return (int(items[0]), int(items[0]), int(items[1]), int(items[1]))
    return tuple(int(v) for v in items)


def _align(n: int, a: int) -> int:
    return (n + a - 1) // a * a
