"""TFLite (Larq Compute Engine) -> xnor-edge model file (``xnor-edge import MODEL.tflite -o OUT.xnor``).

Reads the flatbuffer that Larq Compute Engine's converter
(``larq_compute_engine.convert_keras_model``) writes for a Larq / Keras model
(batch 1, NHWC, float input and output) through the ``tflite`` package's
generated schema classes, and maps it onto the builder's ops (docs/format.md).
TFLite is NHWC like the runtime, so no layout changes: a ``RESHAPE`` to
[1, N] flattens in (h, w, c) order, the order a dense layer reads.

LCE custom ops (their maths: LCE's ``core/bconv2d``):

* ``LceQuantize`` (float -> bit-packed signs, x < 0 -> bit 1): the binarised
  input of the next ``LceBconv2d`` (which binarises a float input itself,
  sign(0) = +1 as in LCE) or ``LceBMaxPool2d`` (a ``sign`` node).
* ``LceBconv2d``: ``dot = K - 2 * popcount(x XOR w)`` over the window (with
  SAME padding and ``pad_values`` 0 corrected to zero padding, 1 = +1
  padding: PAD_ONE), then ``clamp(dot)`` by the fused activation, then
  ``* post_activation_multiplier + post_activation_bias``, in LCE's own float
  operations (bit for bit): ``float(clamp(2 * popcount)) * -mul + bias'`` with
  ``bias' = bias + K * mul`` rounded once (``_lce_bias``), i.e. ``bconv2d``
  (scale 1, bias -K, or the RELU flag / a clip and a ``batchnorm`` (1, -K))
  + ``batchnorm`` (mul, bias'); zero padding as the file states it (and LCE's
  reference kernel computes it), or with ``lce_kernel="optimized"`` as LCE's
  default kernels do, +1 padding and a float border correction
  (``lce_corrected_bconv``). Bit-packed output (int32) with
  ``output_threshold`` t: bit = ``popcount > t`` = ``dot < K - 2t``, a
  ``bconv2d`` with OUT_BITS, scale 1, bias ``2t - K`` (integers, exact).
* ``LceBMaxPool2d``: ``maxpool`` of bits (AND of the valid positions' bits).
* ``LceDequantize``: read by a ``CONV_2D`` whose filters are exactly +-alpha
  per filter (XNOR-Net's ``alpha * sign(W)``, which LCE leaves unfolded for
  large layers): ``bconv2d`` with scale alpha; read by anything else, an error.
  Operators whose inputs are all constants (such a weight quantiser) are
  evaluated at import.

TFLite builtins: ``CONV_2D`` (``conv2d``), ``DEPTHWISE_CONV_2D``
(``dwconv2d``; dilated or grouped: ``gconv2d``), ``FULLY_CONNECTED`` (``dense``), ``ADD`` of two tensors
(``add``), ``MUL``/``ADD``/``SUB`` of a per-channel constant (folded into one
``batchnorm``), ``MAX_POOL_2D``, ``AVERAGE_POOL_2D`` (SAME with padding:
``avgpool_excl_pad``), ``MEAN`` over H and W (``global_avgpool``), ``RESHAPE`` to [1, N],
``SOFTMAX`` (beta 1, over channels), ``CONCATENATION`` (channels), ``PAD``
(zeros, symmetric, in front of a conv or pool), ``RELU``, ``RELU6``,
``RELU_N1_TO_1``, ``PRELU``, ``LEAKY_RELU``, ``HARD_TANH``-style clips as
fused activations; ``DEQUANTIZE`` of a float16 constant folds.

TFLite's SAME padding puts the odd pixel at the bottom/right (stride 2 over
an even size); xnor-edge's windows pad symmetrically, so such a window is a
``pad`` node (op 19) + a VALID window, and a zero-padded ``LceBconv2d`` two
binary convolutions (+1 and -1 padding, halved and added: the padded taps
cancel). SAME average pooling with padding divides by the valid count:
``avgpool_excl_pad`` (op 20). Anything else is an error that names the node
(operator index and output tensor), its op type and what is supported;
:func:`convert` writes the file only after a self-check against LCE's
interpreter when ``larq-compute-engine`` is installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..builder import GraphBuilder, Value
from . import _common
from ._common import EXTRA_HINT, Affine, ImportReport, Tensor, write_affine

__all__ = ["TfliteImportError", "import_tflite", "convert", "is_tflite", "run_cli"]


class TfliteImportError(ValueError):
    """The TFLite model uses something xnor-edge cannot represent exactly."""


def _tflite():
    try:
        import tflite
    except ImportError:
        raise ImportError(
            "xnor-edge import of .tflite files needs the 'tflite' package (the flatbuffers schema), "
            f"which the [import] extra installs: {EXTRA_HINT}"
        ) from None
    return tflite


def is_tflite(path: str | Path) -> bool:
    """True when the file starts like a TFLite flatbuffer (file identifier "TFL3")."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return False
    return len(head) == 8 and head[4:8] == b"TFL3"


# TensorType values of the TFLite schema
_F32, _F16, _I32, _U8, _I64, _I8 = 0, 1, 2, 3, 4, 9
_NP = {_F32: np.float32, _F16: np.float16, _I32: np.int32, _U8: np.uint8, _I64: np.int64, _I8: np.int8}
# ActivationFunctionType: the clamp bounds of each fused activation
_ACT = {0: None, 1: (0.0, None), 2: (-1.0, 1.0), 3: (0.0, 6.0)}
_ACT_NAMES = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}
_SAME, _VALID = 0, 1

SUPPORTED = (
    "LceQuantize, LceBconv2d, LceBMaxPool2d, LceDequantize (into a CONV_2D with +-alpha filters), "
    "ADD, AVERAGE_POOL_2D, CONCATENATION, CONV_2D, "
    "DEPTHWISE_CONV_2D, DEQUANTIZE (of a constant), FULLY_CONNECTED, LEAKY_RELU, MAX_POOL_2D, MEAN, MUL, "
    "PAD, PRELU, RELU, RELU6, RELU_N1_TO_1, RESHAPE, SOFTMAX, SUB (and constant expressions of ABS, ADD, "
    "MEAN, MUL, RELU, RELU_N1_TO_1, RESHAPE, SUB, TRANSPOSE, LceQuantize, LceDequantize)"
)


# ------------------------------------------------------------- graph values


_T = Tensor  # rank 4: NHWC of value v; rank 2: [1, N], v flattened in HWC order
_Affine = Affine  # written as one batchnorm when something reads it


@dataclass(frozen=True)
class _Bits:
    """Bit-packed signs of src (float32: binarised by the reader, sign(0) = +1; or bits)."""

    src: Value
    node: str


@dataclass(frozen=True)
class _Dequantized:
    """LceDequantize's +-1 floats of a bit-packed value, for a CONV_2D with +-alpha filters."""

    bits: _Bits
    node: str


@dataclass(frozen=True)
class _Padded:
    """A PAD node's output not yet written: zero padding (top, left) for the next window op."""

    src: Any  # _T
    pad: tuple[int, int]
    node: str


def _same_pad(size: int, k: int, s: int) -> tuple[int, int, int]:
    """TFLite's SAME padding of one axis: (output size, pad before, pad after)."""
    out = (size + s - 1) // s
    total = max((out - 1) * s + k - size, 0)
    return out, total // 2, total - total // 2


class _Op:
    """One operator of the subgraph, with what an error message needs."""

    def __init__(self, index: int, kind: str, op: Any, tensors: Any) -> None:
        self.index = index
        self.kind = kind
        self.op = op
        self.inputs = [int(i) for i in (op.InputsAsNumpy() if op.InputsLength() else [])]
        self.outputs = [int(i) for i in (op.OutputsAsNumpy() if op.OutputsLength() else [])]
        out = tensors(self.outputs[0]) if self.outputs else None
        self.name = out.Name().decode("utf-8", "replace") if out is not None and out.Name() else ""


class _Importer:
    def __init__(self, model: Any, data: bytes, report: ImportReport, lce_kernel: str = "reference") -> None:
        if lce_kernel not in ("optimized", "reference"):
            raise ValueError(f"lce_kernel must be 'optimized' or 'reference', got {lce_kernel!r}")
        self.lce_kernel = lce_kernel
        self.tfl = _tflite()
        self.model = model
        self.data = data
        self.report = report
        if model.SubgraphsLength() != 1:
            raise TfliteImportError(
                f"the model has {model.SubgraphsLength()} subgraphs; xnor-edge imports one"
            )
        self.sg = model.Subgraphs(0)
        self.env: dict[int, Any] = {}
        self.ones: dict[tuple[int, int, int], Value] = {}  # (H, W, C) -> a map of ones
        self.small_maps: list[str] = []  # zero-padded LceBconv2d that LCE's optimised kernels get wrong
        self.consts: dict[int, np.ndarray] = {}
        self.names = {v: k for k, v in vars(self.tfl.BuiltinOperator).items() if not k.startswith("_")}

    # ------------------------------------------------------------ helpers

    def fail(self, op: _Op, msg: str) -> TfliteImportError:
        return TfliteImportError(f"operator {op.index} ({op.kind}, output {op.name!r}): {msg}")

    def tensor(self, i: int) -> Any:
        return self.sg.Tensors(i)

    def shape(self, i: int) -> list[int]:
        t = self.tensor(i)
        return [int(s) for s in t.ShapeAsNumpy()] if t.ShapeLength() else []

    def const(self, i: int) -> np.ndarray | None:
        """The constant data of tensor i, or None when it is computed."""
        if i < 0:
            return None
        if i in self.consts:
            return self.consts[i]
        t = self.tensor(i)
        buf = self.model.Buffers(t.Buffer())
        raw: Any = None
        if buf is not None and buf.DataLength():
            raw = buf.DataAsNumpy().tobytes()
        elif buf is not None and hasattr(buf, "Offset") and buf.Offset() > 1:
            raw = self.data[buf.Offset() : buf.Offset() + buf.Size()]
        if raw is None:
            return None
        dt = _NP.get(t.Type())
        if dt is None:
            raise TfliteImportError(
                f"tensor {(t.Name() or b'').decode('utf-8', 'replace')!r} has TensorType {t.Type()}, "
                "which is not supported"
            )
        a = np.frombuffer(raw, dtype=dt).reshape(self.shape(i))
        self.consts[i] = a
        return a

    def need_const(self, op: _Op, i: int, what: str) -> np.ndarray:
        a = self.const(i)
        if a is None:
            raise self.fail(op, f"the {what} must be a constant tensor")
        return a

    def float_const(self, op: _Op, i: int, what: str) -> np.ndarray:
        """A float32 constant as float64 (quantised int8 weights are not supported)."""
        a = self.need_const(op, i, what)
        if a.dtype != np.float32:
            raise self.fail(
                op, f"the {what} is {a.dtype}; only float32 (or float16 through DEQUANTIZE) is supported"
            )
        return a.astype(np.float64)

    def bias_const(self, op: _Op, n: int) -> np.ndarray:
        if len(op.inputs) < 3 or op.inputs[2] < 0:
            return np.zeros(n)
        return self.float_const(op, op.inputs[2], "bias")

    def builtin_options(self, op: _Op, cls_name: str) -> Any:
        cls = getattr(self.tfl, cls_name)
        table = op.op.BuiltinOptions()
        o = cls()
        if table is None:
            return None
        o.Init(table.Bytes, table.Pos)
        return o

    def custom_options(self, op: _Op) -> dict:
        from flatbuffers import flexbuffers

        raw = op.op.CustomOptionsAsNumpy() if op.op.CustomOptionsLength() else None
        if raw is None:
            raise self.fail(op, "the operator has no custom options")
        opts = flexbuffers.Loads(bytes(raw))
        if not isinstance(opts, dict):
            raise self.fail(op, "custom options are not a flexbuffer map")
        return opts

    def env_of(self, op: _Op, i: int) -> Any:
        if i not in self.env:
            if self.const(i) is not None:
                raise self.fail(op, f"input tensor {i} is a constant where a computed value is expected")
            raise self.fail(op, f"input tensor {i} is not produced by an operator this importer understood")
        return self.env[i]

    def value(self, op: _Op, i: int) -> Value:
        """The float Value of tensor i, writing a pending batchnorm."""
        t = self.env_of(op, i)
        if isinstance(t, _Affine):
            t = write_affine(self.g, self.report, t)
            self.env[i] = t
        if isinstance(t, _T):
            return t.v
        if isinstance(t, _Bits):
            raise self.fail(
                op,
                f"input tensor {i} is bit-packed (from {t.node!r}); only LceBconv2d and LceBMaxPool2d "
                "may read one",
            )
        raise self.fail(
            op, f"input tensor {i} is a PAD's output; only CONV_2D, DEPTHWISE_CONV_2D and pools may read one"
        )

    def rank(self, op: _Op, i: int) -> int:
        t = self.env_of(op, i)
        return getattr(t, "rank", 4)

    def activation(self, op: _Op, act: int, v: Value) -> Value:
        """A fused activation after v (clamp)."""
        if act not in _ACT:
            raise self.fail(
                op,
                f"fused activation {_ACT_NAMES.get(act, act)} is not supported "
                "(NONE, RELU, RELU6, RELU_N1_TO_1)",
            )
        b = _ACT[act]
        if b is None:
            return v
        if b[1] is None:
            self.report.count("relu")
            return self.g.relu(v)
        self.report.count("clip")
        return self.g.clip(v, b[0], b[1])

    def same_pads(self, op: _Op, x: Value, k, s, padding: int) -> list[tuple[int, int]] | None:
        """TFLite's (before, after) padding of H and W, None for VALID."""
        if padding == _VALID:
            return None
        if padding != _SAME:
            raise self.fail(op, f"padding {padding} is not SAME or VALID")
        return [_same_pad(size, kk, ss)[1:] for size, kk, ss in zip(x.shape[:2], k, s)]

    def window_pad(
        self,
        op: _Op,
        x: Value,
        k: tuple[int, int],
        s: tuple[int, int],
        padding: int,
        extra: tuple[int, int] = (0, 0),
        fill: float | None = 0.0,
    ) -> tuple[Value, tuple[int, int]]:
        """The window's input and symmetric (top, left) padding. TFLite's SAME padding puts an odd
        pixel after the input; then a ``pad`` node (value ``fill``) precedes a VALID window."""
        pads = self.same_pads(op, x, k, s, padding)
        if pads is None:
            return x, extra
        if extra != (0, 0):
            raise self.fail(op, "a PAD node in front of a SAME window is not supported")
        if all(b == a for b, a in pads):
            return x, (pads[0][0], pads[1][0])
        if fill is None:
            raise self.fail(op, f"SAME padding {pads} (before, after) is asymmetric and not supported here")
        self.report.count("pad")
        return self.g.pad(x, pads[0][0], pads[0][1], pads[1][0], pads[1][1], fill), (0, 0)

    def padded_input(self, op: _Op, i: int) -> tuple[Value, tuple[int, int]]:
        t = self.env_of(op, i)
        if isinstance(t, _Padded):
            return t.src.v, t.pad
        return self.value(op, i), (0, 0)

    # ------------------------------------------------------------ driving

    def run(self, metadata: dict) -> GraphBuilder:
        sg = self.sg
        ins = [int(i) for i in sg.InputsAsNumpy()]
        outs = [int(i) for i in sg.OutputsAsNumpy()]
        if len(ins) != 1:
            raise TfliteImportError(
                f"the model has {len(ins)} inputs; xnor-edge models take one image tensor"
            )
        if len(outs) != 1:
            raise TfliteImportError(f"the model has {len(outs)} outputs; xnor-edge models have one")
        t = self.tensor(ins[0])
        shape = self.shape(ins[0])
        name = (t.Name() or b"").decode("utf-8", "replace")
        if t.Type() != _F32:
            raise TfliteImportError(
                f"input {name!r} has TensorType {t.Type()}; only float32 inputs are supported "
                "(convert with inference_input_type=tf.float32, the default)"
            )
        if len(shape) != 4 or shape[0] != 1:
            raise TfliteImportError(f"input {name!r} has shape {shape}; expected [1, H, W, C]")
        h, w, c = shape[1:]
        self.g = GraphBuilder((h, w, c), {"input_size": [h, w], **metadata})
        self.env[ins[0]] = _T(self.g.input)
        for idx in range(sg.OperatorsLength()):
            raw = sg.Operators(idx)
            code = self.model.OperatorCodes(raw.OpcodeIndex())
            builtin = max(int(code.BuiltinCode()), int(code.DeprecatedBuiltinCode()))
            kind = self.names.get(builtin, str(builtin))
            custom = kind == "CUSTOM"
            if custom:
                kind = (code.CustomCode() or b"").decode("utf-8", "replace")
            op = _Op(idx, kind, raw, self.tensor)
            # custom ops are LCE's (op_Lce*); builtin names are upper case
            handler = getattr(self, "op_" + kind, None) if custom == kind.startswith("Lce") else None
            if self.fold(op):
                continue
            if handler is None:
                raise self.fail(op, f"op type {kind} is not supported; supported: {SUPPORTED}")
            try:
                handler(op)
            except ValueError as e:
                if isinstance(e, TfliteImportError):
                    raise
                raise self.fail(op, str(e)) from None  # the builder's checks
        out_t = self.tensor(outs[0])
        out_name = (out_t.Name() or b"").decode("utf-8", "replace")
        if out_t.Type() != _F32:
            raise TfliteImportError(f"output {out_name!r} has TensorType {out_t.Type()}; only float32")
        last = _Op(sg.OperatorsLength() - 1, "output", sg.Operators(sg.OperatorsLength() - 1), self.tensor)
        v = self.value(last, outs[0])
        if v.id != self.g.output.id:
            raise TfliteImportError(
                f"output {out_name!r} is not the last value computed (unused branches after it?)"
            )
        return self.g

    def fold(self, op: _Op) -> bool:
        """Evaluates an operator whose inputs are all constants (a weight quantiser the converter
        left in the graph, e.g. XNOR-Net's alpha * sign(W)); False when it is not one of these."""
        ins = [i for i in op.inputs if i >= 0]
        fn = _FOLD.get(op.kind)
        if fn is None or not ins or any(self.const(i) is None for i in ins):
            return False
        if op.kind in ("ADD", "MUL", "SUB") and self.fused(op, op.kind.title() + "Options"):
            return False  # a fused activation: not a plain constant expression
        args = [np.asarray(self.const(i)) for i in ins]
        if any(a.dtype not in (np.float32, np.int32, np.int64) for a in args[:1]):
            return False
        try:
            out = fn(self, op, *args)
        except (ValueError, TypeError, IndexError) as e:
            raise self.fail(op, f"cannot evaluate this constant expression ({e})") from None
        self.consts[op.outputs[0]] = np.asarray(out, dtype=np.float32)
        return True

    # -------------------------------------------------------- LCE custom ops

    def op_LceQuantize(self, op: _Op) -> None:
        src = self.env_of(op, op.inputs[0])
        if isinstance(src, _Bits):
            self.env[op.outputs[0]] = src
            return
        self.env[op.outputs[0]] = _Bits(self.value(op, op.inputs[0]), op.name)

    def op_LceDequantize(self, op: _Op) -> None:
        """+-1 floats of a bit-packed value: only a CONV_2D with +-alpha filters may read them
        (a binary convolution with scale alpha)."""
        src = self.env_of(op, op.inputs[0])
        if not isinstance(src, _Bits):
            raise self.fail(op, "its input is not a bit-packed value")
        self.env[op.outputs[0]] = _Dequantized(src, op.name)

    def op_LceBMaxPool2d(self, op: _Op) -> None:
        o = self.custom_options(op)
        src = self.env_of(op, op.inputs[0])
        if not isinstance(src, _Bits):
            raise self.fail(op, "its input is not a bit-packed value")
        bits = src.src if src.src.dtype == "bits" else self.g.sign(src.src)
        if src.src.dtype != "bits":
            self.report.count("sign")
        k = (int(o["filter_height"]), int(o["filter_width"]))
        s = (int(o["stride_height"]), int(o["stride_width"]))
        bits, p = self.window_pad(op, bits, k, s, int(o["padding"]), fill=-1.0)
        self.report.count("maxpool(bits)")
        self.env[op.outputs[0]] = _Bits(self.g.maxpool(bits, k, s, p), op.name)

    def op_LceBconv2d(self, op: _Op) -> None:
        o = self.custom_options(op)
        src = self.env_of(op, op.inputs[0])
        if not isinstance(src, _Bits):
            raise self.fail(op, "its input is not a bit-packed value (LceQuantize)")
        x = src.src
        cin = int(o["channels_in"])
        if cin != x.shape[2]:
            raise self.fail(op, f"channels_in {cin} but the input has {x.shape[2]} channels")
        if int(o.get("dilation_height_factor", 1)) != 1 or int(o.get("dilation_width_factor", 1)) != 1:
            raise self.fail(op, "dilated binary convolutions are not supported (only dilation 1)")
        fw = self.need_const(op, op.inputs[1], "filter")
        if fw.ndim != 4:
            raise self.fail(op, f"filter has shape {list(fw.shape)}; expected [OC, KH, KW, words]")
        oc, kh, kw, words = fw.shape
        if words != (cin + 31) // 32:
            raise self.fail(
                op,
                f"filter has {words} words per tap for {cin} channels: grouped binary convolutions "
                "are not supported",
            )
        if fw.dtype == np.float32:  # unpacked +-1 filters (older converters)
            w = np.where(fw < 0, -1.0, 1.0)
        else:
            bits = np.unpackbits(
                np.ascontiguousarray(fw.astype("<i4")).view(np.uint8).reshape(oc, kh, kw, words * 4),
                axis=-1,
                bitorder="little",
            )[..., :cin]
            w = 1.0 - 2.0 * bits.astype(np.float64)  # bit 1 = -1
        w = w.transpose(0, 3, 1, 2)  # OIHW
        k = (kh, kw)
        s = (int(o["stride_height"]), int(o["stride_width"]))
        pad_values = int(o.get("pad_values", 0))
        if pad_values not in (0, 1):
            raise self.fail(op, f"pad_values {pad_values}: only 0 and 1")
        act = int(o.get("fused_activation_function", 0))
        out_t = self.tensor(op.outputs[0])
        g = self.g
        pads = self.same_pads(op, x, k, s, int(o["padding"]))
        p = (pads[0][0], pads[1][0]) if pads is not None else (0, 0)
        padded = pads is not None and any(n for pair in pads for n in pair)
        lce_opt = self.lce_kernel == "optimized"
        if pad_values == 0 and padded and out_t.Type() == _F32 and act == 0 and lce_opt:
            self.lce_corrected_bconv(op, x, w, s, pads)
            return
        if pads is not None and any(b != a for b, a in pads):  # SAME, one more pixel after
            if pad_values == 0:
                self.zero_padded_bconv(op, x, w, s, pads, act, out_t)
                return
            self.report.count("pad")  # +1 padding: pad the bits, then a VALID window
            bits = x if x.dtype == "bits" else g.sign(x)
            x, p = g.pad(bits, pads[0][0], pads[0][1], pads[1][0], pads[1][1], 1.0), (0, 0)
        mode = "one" if pad_values == 1 and p != (0, 0) else "zero"
        self.report.count("bconv2d")
        if out_t.Type() == _I32:  # bit-packed output through thresholds
            thr = self.need_const(op, op.inputs[4], "output_threshold").astype(np.int64).reshape(-1)
            if thr.size != oc:
                raise self.fail(op, f"{thr.size} thresholds for {oc} output channels")
            kk = kh * kw * cin
            bias = 2.0 * np.clip(thr, -1, kk) - kk  # popcount in 0..K: clipping keeps every bit
            v = g.bconv2d(x, w, np.ones(oc), bias, s, p, mode, out_bits=True)
            self.env[op.outputs[0]] = _Bits(v, op.name)
            return
        if out_t.Type() != _F32:
            raise self.fail(op, f"output TensorType {out_t.Type()} (int8?) is not supported; only float32")
        mul = self.need_const(op, op.inputs[2], "post_activation_multiplier").astype(np.float64).reshape(-1)
        bias = self.need_const(op, op.inputs[3], "post_activation_bias").astype(np.float64).reshape(-1)
        if mul.size != oc or bias.size != oc:
            raise self.fail(
                op, f"post-activation multiplier/bias have {mul.size}/{bias.size} values for {oc}"
            )
        kk = kh * kw * cin
        one, zero = np.ones(oc), np.zeros(oc)
        if act == 0:  # dot - K (integers, exact)
            v = g.bconv2d(x, w, one, np.full(oc, -kk), s, p, mode)
        else:  # clamp(dot) - K
            v = g.bconv2d(x, w, one, zero, s, p, mode, relu=act == 1)
            if act != 1:
                v = self.activation(op, act, v)
            self.report.count("batchnorm")
            v = g.batchnorm(v, one, np.full(oc, -kk))
        self.report.count("batchnorm")
        self.env[op.outputs[0]] = _T(g.batchnorm(v, mul, _lce_bias(mul, bias, kk)))

    def lce_corrected_bconv(self, op: _Op, x: Value, w, s, pads) -> None:
        """A zero-padded (pad_values 0, SAME) float-output LceBconv2d as LCE's optimised kernels, its
        interpreter's default, compute it (core/bconv2d/optimized_bgemm.h, zero_padding_correction.h):
        the +1-padded dot (padding bits 0), output-transformed, plus per border pixel the float
        ``(-mul) * corr`` with corr the sum of the weights over the padded taps. The rounding of that
        extra add is LCE's, and reproduced here: ``corr`` comes from a depthwise convolution of a map of
        ones (integers, exact), scaled by -mul in a batchnorm and added after the binary convolution
        (fused into its epilogue). Its cost is a one-filter bconv2d, a depthwise convolution with one
        input channel and a batchnorm. ``lce_kernel="reference"`` computes the zero-padded dot directly
        instead (the default), as LCE's reference kernel (``use_reference_bconv``) does.

        One departure: where a map is too small for the kernel (1 x 1 or 2 x 2 under 3 x 3, 3 x 3 or
        4 x 4 under 5 x 5: see ``_lce_skips_correction``), LCE 0.16's optimised kernels apply no
        correction at all, a defect (docs/import.md); the correction here is the sum over every
        padded tap, zero padding as the file states it."""
        g = self.g
        oc, ic, kh, kw = w.shape
        kk = kh * kw * ic
        mul = self.need_const(op, op.inputs[2], "post_activation_multiplier").astype(np.float64).reshape(-1)
        bias = self.need_const(op, op.inputs[3], "post_activation_bias").astype(np.float64).reshape(-1)
        if mul.size != oc or bias.size != oc:
            raise self.fail(
                op, f"post-activation multiplier/bias have {mul.size}/{bias.size} values for {oc}"
            )
        (t, b), (lf, r) = pads
        sym = t == b and lf == r
        h, wd = x.shape[:2]
        if _lce_skips_correction(h, wd, kh, kw, s, (t, lf)):
            self.small_maps.append(f"operator {op.index} ({op.name!r}, {h} x {wd} map, {kh} x {kw} kernel)")
        # a map of ones (H, W, OC), one per shape: a 1 x 1 binary convolution, scale 0, bias 1
        ones = self.ones.get((h, wd, oc))
        if ones is None:
            ones = g.bconv2d(x, np.ones((oc, ic, 1, 1)), np.zeros(oc), np.ones(oc))
            self.ones[(h, wd, oc)] = ones
            self.report.count("bconv2d")
        wsum = w.sum(axis=1)  # [OC, KH, KW]: each tap's sum over the input channels
        neg, total = -wsum[:, None], wsum.sum(axis=(1, 2))
        if sym:  # total - (sum over the taps inside the input) = sum over the padded taps
            corr = g.dwconv2d(ones, neg, total, s, (t, lf))
        else:
            corr = g.dwconv2d(g.pad(ones, t, b, lf, r, 0.0), neg, total, s, 0)
            self.report.count("pad")
        fix = g.batchnorm(corr, -np.asarray(mul, np.float32), np.zeros(oc))
        if sym:
            y = g.bconv2d(x, w, np.ones(oc), np.full(oc, -kk), s, (t, lf), "one")
        else:
            bits = x if x.dtype == "bits" else g.sign(x)
            if x.dtype != "bits":
                self.report.count("sign")
            y = g.bconv2d(g.pad(bits, t, b, lf, r, 1.0), w, np.ones(oc), np.full(oc, -kk), s, 0)
            self.report.count("pad")
        y = g.batchnorm(y, mul, _lce_bias(mul, bias, kk))
        for kind in ("bconv2d", "dwconv2d", "batchnorm", "batchnorm", "add"):
            self.report.count(kind)
        self.env[op.outputs[0]] = _T(g.add(y, fix))

    def zero_padded_bconv(self, op: _Op, x: Value, w, s, pads, act: int, out_t) -> None:
        """LceBconv2d with pad_values 0 (padded taps add 0) and TFLite's SAME padding one pixel longer
        after the input: dot = (dot with +1 padding + dot with -1 padding) / 2, two binary
        convolutions on the binarised input padded by ``pad`` nodes (VALID windows), whose halves
        add exactly (integers / 2); then the clamp and the multiplier / bias, or the threshold."""
        g = self.g
        oc, kk = w.shape[0], w.shape[1] * w.shape[2] * w.shape[3]
        if out_t.Type() not in (_I32, _F32):
            raise self.fail(op, f"output TensorType {out_t.Type()} (int8?) is not supported; only float32")
        bits = x if x.dtype == "bits" else g.sign(x)
        (t, b), (lf, r) = pads
        half, zero = np.full(oc, 0.5), np.zeros(oc)
        # float output: each half minus K / 2, so that their sum is dot - K (LCE's output transform)
        sub = np.full(oc, -kk / 2.0) if out_t.Type() == _F32 and act == 0 else zero
        dots = [g.bconv2d(g.pad(bits, t, b, lf, r, fill), w, half, sub, s, 0) for fill in (1.0, -1.0)]
        self.report.layers["pad"] = self.report.layers.get("pad", 0) + 2
        self.report.layers["bconv2d"] = self.report.layers.get("bconv2d", 0) + 2
        self.report.count("add")
        dot = g.add(*dots)
        if out_t.Type() == _I32:  # bit = popcount > t = dot < K - 2t
            thr = self.need_const(op, op.inputs[4], "output_threshold").astype(np.int64).reshape(-1)
            self.report.count("sign_shift")
            shift = 2.0 * np.clip(thr, -1, kk) - kk
            self.env[op.outputs[0]] = _Bits(g.sign_shift(dot, shift), op.name)
            return
        mul = self.need_const(op, op.inputs[2], "post_activation_multiplier").astype(np.float64).reshape(-1)
        bias = self.need_const(op, op.inputs[3], "post_activation_bias").astype(np.float64).reshape(-1)
        if act != 0:  # LCE rejects a fused activation with zero padding; clamp(dot) - K all the same
            self.report.count("batchnorm")
            dot = g.batchnorm(self.activation(op, act, dot), np.ones(oc), np.full(oc, -kk))
        self.report.count("batchnorm")
        self.env[op.outputs[0]] = _T(g.batchnorm(dot, mul, _lce_bias(mul, bias, kk)))

    # --------------------------------------------------------- float layers

    def op_CONV_2D(self, op: _Op) -> None:
        o = self.builtin_options(op, "Conv2DOptions")
        if isinstance(self.env.get(op.inputs[0]), _Dequantized):
            self.dequantized_conv(op, o)
            return
        x, extra = self.padded_input(op, op.inputs[0])
        fw = self.float_const(op, op.inputs[1], "filter")
        if fw.ndim != 4:
            raise self.fail(op, f"filter has shape {list(fw.shape)}; expected [OC, KH, KW, IC]")
        if self.grouped_conv(op, o, x, extra, fw):
            return
        oc, kh, kw, ic = fw.shape
        if ic != x.shape[2]:
            raise self.fail(
                op,
                f"filter reads {ic} channels of a {x.shape[2]}-channel input: grouped "
                "convolutions are not supported",
            )
        b = self.bias_const(op, oc)
        s = (o.StrideH(), o.StrideW())
        x, p = self.window_pad(op, x, (kh, kw), s, o.Padding(), extra)
        act = o.FusedActivationFunction()
        self.report.count("conv2d")
        v = self.g.conv2d(x, fw.transpose(0, 3, 1, 2), b, s, p, relu=act == 1)
        self.env[op.outputs[0]] = _T(v if act == 1 else self.activation(op, act, v))

    def grouped_conv(
        self, op: _Op, o: Any, x: Value, extra: tuple, fw: np.ndarray, groups: int | None = None
    ) -> bool:
        """A dilated CONV_2D or DEPTHWISE_CONV_2D, or a CONV_2D whose filter reads a divisor of the
        input's channels (TFLite's grouped convolution): ``gconv2d`` (op 21). ``fw`` is
        [OC, KH, KW, IC/G]; ``groups`` is given for a depthwise filter. Returns whether it mapped."""
        oc, kh, kw, icg = fw.shape
        d = (o.DilationHFactor(), o.DilationWFactor())
        g = groups or (x.shape[2] // icg if icg and x.shape[2] % icg == 0 else 0)
        if d == (1, 1) and (groups or icg == x.shape[2]):
            return False
        if g < 1 or oc % g or icg * g != x.shape[2]:
            return False  # the caller names the mismatch
        if min(d) < 1:
            raise self.fail(op, f"dilation {d[0]}x{d[1]}: must be >= 1")
        b = self.bias_const(op, oc)
        s = (o.StrideH(), o.StrideW())
        x, p = self.window_pad(op, x, ((kh - 1) * d[0] + 1, (kw - 1) * d[1] + 1), s, o.Padding(), extra)
        act = o.FusedActivationFunction()
        self.report.count("gconv2d")
        v = self.g.conv2d(x, fw.transpose(0, 3, 1, 2), b, s, p, act == 1, groups=g, dilation=d)
        self.env[op.outputs[0]] = _T(v if act == 1 else self.activation(op, act, v))
        return True

    def dequantized_conv(self, op: _Op, o: Any) -> None:
        """CONV_2D of LceDequantize's +-1 values with filters exactly +-alpha per filter: bconv2d with
        scale alpha (zero padding: a padded 0 adds 0, as in bconv2d's default)."""
        src = self.env[op.inputs[0]].bits.src
        fw = self.float_const(op, op.inputs[1], "filter")
        if fw.ndim != 4 or fw.shape[3] != src.shape[2]:
            raise self.fail(op, f"filter has shape {list(fw.shape)}; expected [OC, KH, KW, {src.shape[2]}]")
        if o.DilationHFactor() != 1 or o.DilationWFactor() != 1:
            raise self.fail(op, "dilation is not supported (only 1)")
        oc, kh, kw, _ = fw.shape
        a = np.abs(fw.reshape(oc, -1))
        alpha = a.max(axis=1)
        if not (np.all(a == alpha[:, None]) and np.all(alpha > 0)):
            raise self.fail(
                op,
                "its input is binary (LceDequantize) but its filters are not exactly +-alpha per filter; "
                "no xnor-edge op computes a binary input with float weights",
            )
        b = self.bias_const(op, oc)
        s = (o.StrideH(), o.StrideW())
        pads = self.same_pads(op, src, (kh, kw), s, o.Padding())
        if pads is not None and any(bb != aa for bb, aa in pads):
            raise self.fail(
                op, f"SAME padding {pads} (before, after) of a binary input is not supported here"
            )
        p = (pads[0][0], pads[1][0]) if pads is not None else (0, 0)
        act = o.FusedActivationFunction()
        self.report.count("bconv2d")
        v = self.g.bconv2d(src, np.sign(fw).transpose(0, 3, 1, 2), alpha, b, s, p, relu=act == 1)
        self.env[op.outputs[0]] = _T(v if act == 1 else self.activation(op, act, v))

    def op_DEPTHWISE_CONV_2D(self, op: _Op) -> None:
        o = self.builtin_options(op, "DepthwiseConv2DOptions")
        x, extra = self.padded_input(op, op.inputs[0])
        fw = self.float_const(op, op.inputs[1], "filter")
        if fw.ndim != 4 or fw.shape[0] != 1:
            raise self.fail(op, f"filter has shape {list(fw.shape)}; expected [1, KH, KW, OC]")
        if self.grouped_conv(op, o, x, extra, fw[0].transpose(2, 0, 1)[..., None], x.shape[2]):
            return
        _, kh, kw, oc = fw.shape
        b = self.bias_const(op, oc)
        s = (o.StrideH(), o.StrideW())
        x, p = self.window_pad(op, x, (kh, kw), s, o.Padding(), extra)
        act = o.FusedActivationFunction()
        self.report.count("dwconv2d")
        v = self.g.dwconv2d(x, fw[0].transpose(2, 0, 1)[:, None], b, s, p, relu=act == 1)
        self.env[op.outputs[0]] = _T(v if act == 1 else self.activation(op, act, v))

    def op_FULLY_CONNECTED(self, op: _Op) -> None:
        o = self.builtin_options(op, "FullyConnectedOptions")
        x = self.value(op, op.inputs[0])
        w = self.float_const(op, op.inputs[1], "weight")
        n = int(np.prod(x.shape))
        if w.ndim != 2 or w.shape[1] != n:
            raise self.fail(op, f"weight has shape {list(w.shape)}; expected [OUT, {n}]")
        b = self.bias_const(op, w.shape[0])
        act = o.FusedActivationFunction() if o is not None else 0
        self.report.count("dense")
        v = self.g.dense(x, w, b, relu=act == 1, input_order="hwc")
        self.env[op.outputs[0]] = _T(v if act == 1 else self.activation(op, act, v), 2)

    # ------------------------------------------------- element-wise layers

    def per_channel(self, op: _Op, a: np.ndarray, c: int) -> np.ndarray | None:
        a = np.asarray(a, dtype=np.float64)
        if a.size == 1:
            return np.full(c, float(a.reshape(-1)[0]))
        if a.size == c and all(d == 1 for d in a.shape[:-1]) and a.shape[-1] == c:
            return a.reshape(c)
        return None

    def affine(self, op: _Op, scale: np.ndarray | None, shift: np.ndarray | None) -> None:
        """x * scale + shift (one of them) on the non-constant input, merged into a pending one."""
        i = op.inputs[0] if self.const(op.inputs[0]) is None else op.inputs[1]
        src = self.env_of(op, i)
        if isinstance(src, _Affine):
            base, s0, b0, rank = src.v, src.scale, src.shift, src.rank
        else:
            base, s0, b0, rank = self.value(op, i), None, None, self.rank(op, i)
            s0, b0 = np.ones(base.shape[2]), np.zeros(base.shape[2])
        if scale is not None:
            s0, b0 = s0 * scale, b0 * scale
        if shift is not None:
            b0 = b0 + shift
        self.env[op.outputs[0]] = _Affine(base, s0, b0, rank)

    def const_operand(self, op: _Op) -> tuple[np.ndarray | None, int]:
        a, b = self.const(op.inputs[0]), self.const(op.inputs[1])
        if a is not None and b is not None:
            raise self.fail(op, "both operands are constants")
        c = b if a is None else a
        x = op.inputs[0] if a is None else op.inputs[1]
        return c, x

    def fused(self, op: _Op, cls: str) -> int:
        o = self.builtin_options(op, cls)
        return o.FusedActivationFunction() if o is not None else 0

    def op_ADD(self, op: _Op) -> None:
        act = self.fused(op, "AddOptions")
        c, xi = self.const_operand(op)
        if c is None:
            a, b = self.value(op, op.inputs[0]), self.value(op, op.inputs[1])
            self.report.count("add")
            self.env[op.outputs[0]] = _T(
                self.g.add(a, b, relu=act == 1) if act == 1 else self.activation(op, act, self.g.add(a, b))
            )
            return
        x = self.env_of(op, xi)
        ch = x.v.shape[2] if isinstance(x, (_T, _Affine)) else 0
        vec = self.per_channel(op, c, ch)
        if vec is None:
            raise self.fail(op, f"constant of shape {list(c.shape)}: only a scalar or one value per channel")
        self.affine(op, None, vec)
        self.finish_act(op, act)

    def op_SUB(self, op: _Op) -> None:
        act = self.fused(op, "SubOptions")
        a, b = self.const(op.inputs[0]), self.const(op.inputs[1])
        if a is not None or b is None:
            raise self.fail(op, "only x - constant is supported")
        x = self.env_of(op, op.inputs[0])
        vec = self.per_channel(op, b, getattr(x, "v", self.g.input).shape[2])
        if vec is None:
            raise self.fail(op, f"constant of shape {list(b.shape)}: only a scalar or one value per channel")
        self.affine(op, None, -vec)
        self.finish_act(op, act)

    def op_MUL(self, op: _Op) -> None:
        act = self.fused(op, "MulOptions")
        c, xi = self.const_operand(op)
        if c is None:
            raise self.fail(op, "the product of two computed tensors is not supported")
        x = self.env_of(op, xi)
        vec = self.per_channel(op, c, getattr(x, "v", self.g.input).shape[2])
        if vec is None:
            raise self.fail(op, f"constant of shape {list(c.shape)}: only a scalar or one value per channel")
        self.affine(op, vec, None)
        self.finish_act(op, act)

    def finish_act(self, op: _Op, act: int) -> None:
        if act == 0:
            return
        o = op.outputs[0]
        a = self.env[o]
        self.report.count("batchnorm")
        v = self.g.batchnorm(a.v, a.scale, a.shift, relu=act == 1)
        self.env[o] = _T(v if act == 1 else self.activation(op, act, v), a.rank)

    def unary(self, op: _Op, fn: Callable[[Value], Value], kind: str) -> None:
        x = self.value(op, op.inputs[0])
        self.report.count(kind)
        self.env[op.outputs[0]] = _T(fn(x), self.rank(op, op.inputs[0]))

    def op_RELU(self, op: _Op) -> None:
        self.unary(op, self.g.relu, "relu")

    def op_RELU6(self, op: _Op) -> None:
        self.unary(op, lambda x: self.g.clip(x, 0.0, 6.0), "clip")

    def op_RELU_N1_TO_1(self, op: _Op) -> None:
        self.unary(op, lambda x: self.g.clip(x, -1.0, 1.0), "clip")

    def op_LEAKY_RELU(self, op: _Op) -> None:
        o = self.builtin_options(op, "LeakyReluOptions")
        self.unary(op, lambda x: self.g.prelu(x, np.full(x.shape[2], o.Alpha())), "prelu")

    def op_PRELU(self, op: _Op) -> None:
        x = self.value(op, op.inputs[0])
        a = self.need_const(op, op.inputs[1], "alpha")
        vec = self.per_channel(op, a, x.shape[2])
        if vec is None:
            raise self.fail(op, f"alpha of shape {list(a.shape)}: only a scalar or one value per channel")
        self.report.count("prelu")
        self.env[op.outputs[0]] = _T(self.g.prelu(x, vec), self.rank(op, op.inputs[0]))

    def op_DEQUANTIZE(self, op: _Op) -> None:
        c = self.const(op.inputs[0])
        if c is None:
            raise self.fail(op, "only DEQUANTIZE of a constant (float16 weights) is supported")
        if c.dtype != np.float16:
            raise self.fail(
                op, f"DEQUANTIZE of a {c.dtype} constant: only float16 (int8 quantisation is not supported)"
            )
        self.consts[op.outputs[0]] = c.astype(np.float32)

    # ------------------------------------------------------------------ pools

    def pool(self, op: _Op, kind: str) -> None:
        o = self.builtin_options(op, "Pool2DOptions")
        x, extra = self.padded_input(op, op.inputs[0])
        k = (o.FilterHeight(), o.FilterWidth())
        s = (o.StrideH(), o.StrideW())
        if kind == "avgpool" and self.same_avgpool(op, x, k, s, o, extra):
            return
        if kind == "avgpool" and extra != (0, 0):
            raise self.fail(op, "a PAD in front of an average pool is not supported")
        fill = -3.4028234663852886e38 if kind == "maxpool" else None  # padding never wins a max
        x, p = self.window_pad(op, x, k, s, o.Padding(), extra, fill)
        self.report.count(kind)
        fn = self.g.maxpool if kind == "maxpool" else self.g.avgpool
        v = fn(x, k, s, p)
        act = o.FusedActivationFunction()
        self.env[op.outputs[0]] = _T(self.activation(op, act, v))

    def same_avgpool(self, op: _Op, x: Value, k: tuple, s: tuple, o: Any, extra: tuple) -> bool:
        """SAME average pooling that pads: divided by the valid count at the borders, which is
        ``avgpool_excl_pad`` (the odd pixel after the input too). Returns whether it mapped."""
        if o.Padding() != _SAME or extra != (0, 0):
            return False
        if all(_same_pad(size, kk, ss)[1:] == (0, 0) for size, kk, ss in zip(x.shape[:2], k, s)):
            return False
        self.report.count("avgpool_excl_pad")
        v = self.g.avgpool_excl_pad(x, k, s, "same")
        self.env[op.outputs[0]] = _T(self.activation(op, o.FusedActivationFunction(), v))
        return True

    def op_MAX_POOL_2D(self, op: _Op) -> None:
        self.pool(op, "maxpool")

    def op_AVERAGE_POOL_2D(self, op: _Op) -> None:
        self.pool(op, "avgpool")

    def op_MEAN(self, op: _Op) -> None:
        x = self.value(op, op.inputs[0])
        axes = self.need_const(op, op.inputs[1], "axes")
        o = self.builtin_options(op, "ReducerOptions")
        if self.rank(op, op.inputs[0]) != 4 or sorted(int(a) % 4 for a in axes.reshape(-1)) != [1, 2]:
            raise self.fail(op, f"mean over axes {axes.reshape(-1).tolist()}: only over H and W (1, 2)")
        self.report.count("global_avgpool")
        keep = o is not None and o.KeepDims()
        self.env[op.outputs[0]] = _T(self.g.global_avgpool(x), 4 if keep else 2)

    # ---------------------------------------------------------------- shapes

    def op_RESHAPE(self, op: _Op) -> None:
        src = self.env_of(op, op.inputs[0])
        x = self.value(op, op.inputs[0])
        shape = self.shape(op.outputs[0])
        n = int(np.prod(x.shape))
        if shape in ([1, n], [n]):
            self.env[op.outputs[0]] = _T(x, 2)
        elif shape == [1, *x.shape]:
            self.env[op.outputs[0]] = _T(x, 4)
        elif len(shape) == 4 and shape[:3] == [1, 1, 1] and shape[3] == n:
            if x.shape[:2] != (1, 1):  # (h, w, c) -> (1, 1, h*w*c), the same HWC order
                self.report.count("flatten")
                x = self.g.flatten(x)
            self.env[op.outputs[0]] = _T(x, 4)
        else:
            raise self.fail(
                op, f"reshape of {list(x.shape)} to {shape}: only a flatten to [1, N] is supported"
            )
        del src

    def op_SOFTMAX(self, op: _Op) -> None:
        o = self.builtin_options(op, "SoftmaxOptions")
        if o is not None and o.Beta() != 1.0:
            raise self.fail(op, f"beta {o.Beta()} is not supported (only 1)")
        x = self.value(op, op.inputs[0])
        if self.rank(op, op.inputs[0]) == 2 and x.shape[:2] != (1, 1):
            raise self.fail(op, "softmax over a flattened map: only over channels")
        self.report.count("softmax")
        self.env[op.outputs[0]] = _T(self.g.softmax(x), self.rank(op, op.inputs[0]))

    def op_CONCATENATION(self, op: _Op) -> None:
        o = self.builtin_options(op, "ConcatenationOptions")
        vs = [self.value(op, i) for i in op.inputs]
        if any(self.rank(op, i) != 4 for i in op.inputs) or o.Axis() not in (3, -1):
            raise self.fail(op, f"concatenation on axis {o.Axis()}: only on channels (axis 3) of NHWC maps")
        v = vs[0]
        for u in vs[1:]:
            self.report.count("concat")
            v = self.g.concat(v, u)
        self.env[op.outputs[0]] = _T(self.activation(op, o.FusedActivationFunction(), v))

    def op_PAD(self, op: _Op) -> None:
        """Symmetric zero padding merges into the next window; any other constant padding of H and W
        is a ``pad`` node."""
        x = self.value(op, op.inputs[0])
        pads = self.need_const(op, op.inputs[1], "paddings").astype(np.int64)
        value = 0.0
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            val = self.float_const(op, op.inputs[2], "constant value").reshape(-1)
            if val.size != 1:
                raise self.fail(op, "the constant value must be a scalar")
            value = float(val[0])
        if pads.shape != (4, 2) or pads[0].any() or pads[3].any() or np.any(pads < 0):
            raise self.fail(op, f"paddings {pads.tolist()}: only padding of H and W is supported")
        (t, b), (lf, r) = pads[1].tolist(), pads[2].tolist()
        if value == 0.0 and t == b and lf == r:
            self.env[op.outputs[0]] = _Padded(_T(x), (t, lf), op.name)
            return
        self.report.count("pad")
        self.env[op.outputs[0]] = _T(self.g.pad(x, t, b, lf, r, value))

    op_PADV2 = op_PAD


def _lce_skips_correction(
    h: int, w: int, kh: int, kw: int, s: tuple[int, int], before: tuple[int, int]
) -> bool:
    """Whether LCE 0.16's optimised kernels leave a padded output pixel of a zero-padded binary
    convolution uncorrected: ``ApplyCorrection`` (core/bconv2d/zero_padding_correction.h) picks one
    of four cases by the window's overhang on each side and skips a pixel that fits none ("cannot
    happen" under its assumption that the kernel is smaller than the map), e.g. every pixel of a
    2 x 2 map under a 3 x 3 kernel."""
    oh, ow = (h + s[0] - 1) // s[0], (w + s[1] - 1) // s[1]
    for y in range(oh):
        top = before[0] - y * s[0]
        bot = -top - h + kh
        for x in range(ow):
            left = before[1] - x * s[1]
            right = -left - w + kw
            if left <= 0 and right <= 0 and top <= 0 and bot <= 0:
                continue
            if not (
                (right <= 0 and top > 0 and bot < 0)
                or (left < 0 and right > 0 and bot <= 0)
                or (left > 0 and right < 0 and top <= 0)
                or (left <= 0 and top < 0 and bot > 0)
            ):
                return True
    return False


def _lce_bias(mul: np.ndarray, bias: np.ndarray, k: int) -> np.ndarray:
    """LCE's output transform of a float-output LceBconv2d (core/bconv2d/output_transform.h) is
    ``float(clamp(2 * popcount)) * -mul + bias'`` with ``bias' = bias + K * mul`` rounded once to
    float32 when the kernel is prepared (K * mul is exact in float64; measured bit-exact against LCE
    0.16's interpreter). With ``y = clamp(dot) - K = -clamp(2 * popcount)`` (an integer, exact in
    float32) a batchnorm ``y * mul + bias'`` rounds the same product and the same sum, so the import
    gives LCE's floats, not those of ``dot * mul + bias``: the two differ by up to float32 rounding of
    K * |mul|, enough to move a value near 0 across the next binarisation."""
    m = np.asarray(mul, np.float32).astype(np.float64)
    b = np.asarray(bias, np.float32).astype(np.float64)
    return (b + float(k) * m).astype(np.float32).astype(np.float64)


def _fold_mean(imp: _Importer, op: _Op, x: np.ndarray, axes: np.ndarray) -> np.ndarray:
    o = imp.builtin_options(op, "ReducerOptions")
    return x.mean(axis=tuple(int(a) for a in np.asarray(axes).reshape(-1)), keepdims=bool(o and o.KeepDims()))


def _fold_reshape(imp: _Importer, op: _Op, x: np.ndarray, *rest: np.ndarray) -> np.ndarray:
    return x.reshape(imp.shape(op.outputs[0]))


# Operators evaluated when every input is a constant (weight quantisers left in the graph).
# LceQuantize/LceDequantize of a constant fold to its +-1 values (sign(0) = +1).
_FOLD: dict[str, Callable[..., np.ndarray]] = {
    "ABS": lambda imp, op, x: np.abs(x),
    "RELU_N1_TO_1": lambda imp, op, x: np.clip(x, -1, 1),
    "RELU": lambda imp, op, x: np.maximum(x, 0),
    "MUL": lambda imp, op, a, b: a * b,
    "ADD": lambda imp, op, a, b: a + b,
    "SUB": lambda imp, op, a, b: a - b,
    "MEAN": _fold_mean,
    "TRANSPOSE": lambda imp, op, x, perm: np.transpose(x, [int(i) for i in np.asarray(perm).reshape(-1)]),
    "RESHAPE": _fold_reshape,
    "LceQuantize": lambda imp, op, x: np.where(x < 0, -1.0, 1.0),
    "LceDequantize": lambda imp, op, x: x,
}


# ------------------------------------------------------------------- API


def import_tflite(
    path: str | Path,
    labels: Sequence[str] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    color_order: str | None = None,
    name: str | None = None,
    lce_kernel: str = "reference",
) -> tuple[GraphBuilder, ImportReport]:
    """Builds the xnor-edge graph of a TFLite file (nothing is written).

    ``lce_kernel`` picks whose floats a zero-padded binary convolution reproduces: "reference"
    (zero padding, as the file states it and LCE's ``use_reference_bconv=True`` computes it; no
    extra nodes) or "optimized" (LCE's default kernels: the +1-padded convolution plus a float
    border correction, bit for bit, at the cost of a depthwise convolution and a batchnorm per such
    layer, +50% time on Bi-Real Net, XNOR-Net and Binary AlexNet). The two differ in the last bits
    of border pixels only (see ``_Importer.lce_corrected_bconv``)."""
    tfl = _tflite()
    data = Path(path).read_bytes()
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise TfliteImportError(f"{path}: not a TFLite flatbuffer (no 'TFL3' file identifier)")
    try:
        model = tfl.Model.GetRootAsModel(data, 0)
        model.SubgraphsLength()
    except Exception as e:  # flatbuffers raises struct/index errors on damaged files
        raise TfliteImportError(f"{path}: not a readable TFLite file ({e})") from None
    meta = _common.metadata(path, labels, mean, std, color_order, name)
    desc = model.Description()
    meta["source"] = {
        "format": "tflite",
        "file": Path(path).name,
        "producer": desc.decode("utf-8", "replace") if desc else "",
    }
    report = ImportReport()
    try:
        imp = _Importer(model, data, report, lce_kernel)
        g = imp.run(meta)
        if imp.small_maps:
            report.notes.append(
                "zero-padded binary convolutions on maps smaller than their kernel: "
                + "; ".join(imp.small_maps)
                + ". LCE 0.16's optimised kernels (its interpreter's default) skip their zero-padding "
                "correction there (computing +1 padding); xnor-edge computes zero padding, as LCE's "
                "reference kernel (use_reference_bconv=True) and Keras do, and the self-check uses that"
            )
    except (IndexError, AttributeError, TypeError) as e:  # a damaged flatbuffer
        raise TfliteImportError(f"{path}: malformed TFLite file ({type(e).__name__}: {e})") from None
    _common.check_metadata(g, meta, labels, TfliteImportError)
    return g, report


def lce_runner(
    path: str | Path, num_threads: int = 1, lce_kernel: str = "reference"
) -> Callable[[np.ndarray], np.ndarray] | None:
    """Runs the TFLite file in LCE's interpreter (NHWC batch 1), or None when LCE is not installed;
    with its reference LceBconv2d kernel for lce_kernel "reference", its default ones else."""
    try:
        from larq_compute_engine.tflite.python.interpreter import Interpreter
    except ImportError:
        return None
    ref = lce_kernel == "reference"
    it = Interpreter(Path(path).read_bytes(), num_threads=num_threads, use_reference_bconv=ref)
    return lambda x: np.asarray(it.predict(x), dtype=np.float64)


def compare(
    tflite_path: str | Path, xnor_bytes: bytes, inputs: np.ndarray, lce_kernel: str = "reference"
) -> list[dict[str, float]] | None:
    """Per input (NHWC): max |difference| between LCE and xnor-edge and top-1 agreement (None: no LCE)."""
    run_src = lce_runner(tflite_path, lce_kernel=lce_kernel)
    if run_src is None:
        return None
    return _common.compare_outputs(xnor_bytes, inputs, run_src)


def convert(
    src: str | Path,
    out: str | Path,
    check: np.ndarray | None = None,
    tolerance: float = 1e-4,
    samples: int = 4,
    log: Callable[[str], None] = print,
    lce_kernel: str = "reference",
    **meta: Any,
) -> ImportReport:
    """Imports ``src`` and writes ``out`` after the self-check against LCE when installed (its
    interpreter with the LceBconv2d kernel that ``lce_kernel`` names; see import_tflite)."""
    g, report = import_tflite(src, lce_kernel=lce_kernel, **meta)
    data = _common.encode(g, report, log)
    h, w, c = g.input.shape
    if any(n.startswith("zero-padded binary convolutions on maps smaller") for n in report.notes):
        lce_kernel = "reference"  # LCE's optimised kernels are wrong there (see the note)
    rows = compare(src, data, _common.random_inputs(samples, (h, w, c)), lce_kernel)
    if rows is None:
        log(
            "self-check skipped: larq-compute-engine is not installed (pip install larq-compute-engine); "
            "the file was mapped op by op only"
        )
    else:
        _common.self_check(rows, "LCE's interpreter", tolerance, samples, log, TfliteImportError)
    if check is not None:
        x = _common.check_inputs(check, (h, w, c), TfliteImportError, " (NHWC)")
        crows = compare(src, data, x, lce_kernel)
        if crows is None:
            raise ImportError("--check needs LCE's interpreter: pip install larq-compute-engine")
        _common.log_check_rows(crows, log)
    _common.write_model(out, data, report, log)
    return report


def run_cli(args: Any) -> int:
    kernel = getattr(args, "lce_kernel", "reference")
    return _common.run_cli(args, lambda *a, **kw: convert(*a, lce_kernel=kernel, **kw))
