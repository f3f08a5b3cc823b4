"""A float64 NumPy interpreter of xnor-edge model files.

It parses the file itself (independently of the C loader and of the builder),
checks its structure, and computes every op exactly as docs/format.md states
it: +-1 products for binary convolutions, the K map, zero or +1 padding,
pools whose padding never wins. Tests compare the C runtime with it, and the
trainer's parity tests compare PyTorch with it. It is slow by design.

    ref = ReferenceModel.from_file("net.xnor")
    y = ref.run(x)                 # x: (H, W, C) float array
    values = ref.run(x, all_values=True)  # every intermediate value
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import mst

__all__ = ["ReferenceModel", "ReferenceError", "unpack_signs"]

_OPS = {
    1: ("conv2d", 2, 1),  # name, param count, allowed flags
    2: ("bwn_conv2d", 3, 1),
    3: ("bconv2d", 3, 1 | 2 | 4 | 8),
    4: ("batchnorm", 2, 1),
    5: ("relu", 0, 0),
    6: ("maxpool", 0, 0),
    7: ("avgpool", 0, 0),
    8: ("global_avgpool", 0, 0),
    9: ("dense", 2, 1),
    10: ("add", 0, 1),
    11: ("softmax", 0, 0),
    12: ("sign", 0, 0),
    13: ("prelu", 1, 0),
    14: ("clip", 1, 0),
    15: ("sign_shift", 1, 0),
    16: ("concat", 0, 0),
    17: ("flatten", 0, 0),
    18: ("dwconv2d", 2, 1),
    19: ("pad", 1, 0),
    20: ("avgpool_excl_pad", 0, 0),
    21: ("gconv2d", 3, 1),
    32: ("bconv2d_mst", 7, 1 | 2 | 4 | 8),  # ids 32+: compressed forms of binary ops
}
_TWO_INPUTS = {10, 16}
_WINDOWED = {1, 2, 3, 6, 7, 18, 19, 20, 21, 32}
_RELU, _PAD_ONE, _USE_K, _OUT_BITS = 1, 2, 4, 8


class ReferenceError(ValueError):
    """The model file breaks docs/format.md."""


def unpack_signs(words: np.ndarray, n: int, axis: int = -1) -> np.ndarray:
    """Inverse of builder.pack_signs: +-1 float64 values (bit 1 -> -1)."""
    w = np.moveaxis(np.asarray(words, dtype=np.uint32), axis, -1)
    bits = (w[..., :, None] >> np.arange(32, dtype=np.uint32)) & 1
    bits = bits.reshape(w.shape[:-1] + (w.shape[-1] * 32,))[..., :n]
    return np.moveaxis(1.0 - 2.0 * bits.astype(np.float64), -1, axis)


@dataclass
class RefNode:
    index: int
    op: int
    name: str
    flags: int
    input0: int
    input1: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    pad: tuple[int, int]
    out_shape: tuple[int, int, int]
    out_bits: bool
    in_shape: tuple[int, int, int]
    params: list[np.ndarray]


class ReferenceModel:
    """A parsed, checked model file that can be evaluated in float64."""

    def __init__(self, data: bytes) -> None:
        self.data = bytes(data)
        self._parse()

    @classmethod
    def from_file(cls, path: str | Path) -> ReferenceModel:
        return cls(Path(path).read_bytes())

    # ---------------------------------------------------------------- parsing

    def _parse(self) -> None:
        d = self.data
        size = len(d)
        if size < 136:
            raise ReferenceError(f"truncated: {size} bytes is less than header and trailer")
        if d[:8] != b"XNOREDGE":
            raise ReferenceError("bad magic: not an xnor-edge model file")
        (
            fmt,
            pack,
            file_size,
            header_size,
            flags,
            ih,
            iw,
            ic,
            n_nodes,
            n_params,
            res0,
            meta_off,
            meta_size,
            nodes_off,
            params_off,
        ) = struct.unpack_from("<IIQIIIIIIIIQQQQ", d, 8)
        if fmt != 1 or pack != 1:
            raise ReferenceError(f"unsupported version: format {fmt}, packing {pack}")
        if file_size != size:
            raise ReferenceError(f"truncated: file is {size} bytes, header says {file_size}")
        if header_size != 128 or flags & ~1 or (not flags and res0) or any(d[88:128]):
            raise ReferenceError("header: bad header_size, unknown flags or non-zero reserved field")
        if d[size - 4 :] != b"XEND":
            raise ReferenceError("trailer: missing XEND")
        crc = struct.unpack_from("<I", d, size - 8)[0]
        if zlib.crc32(d[: size - 8]) & 0xFFFFFFFF != crc:
            raise ReferenceError("checksum mismatch")
        for v in (ih, iw, ic):
            if not 1 <= v <= 65535:
                raise ReferenceError(f"input shape ({ih}, {iw}, {ic}) out of range")
        if not 1 <= n_nodes <= 65536 or n_params > 1048576:
            raise ReferenceError(f"bad counts: {n_nodes} nodes, {n_params} params")
        end = size - 8
        if meta_off < 128 or meta_off + meta_size + 1 > end or d[meta_off + meta_size] != 0:
            raise ReferenceError("metadata section out of range or not NUL-terminated")
        if nodes_off % 8 or nodes_off < meta_off + meta_size + 1 or nodes_off + 64 * n_nodes > end:
            raise ReferenceError("node table out of range or misaligned")
        if params_off % 8 or params_off < nodes_off + 64 * n_nodes or params_off + 32 * n_params > end:
            raise ReferenceError("param table out of range or misaligned")
        try:
            self.metadata: dict = json.loads(d[meta_off : meta_off + meta_size].decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ReferenceError(f"metadata is not UTF-8 JSON: {e}") from None
        if not isinstance(self.metadata, dict):
            raise ReferenceError("metadata is not a JSON object")

        params = []
        for i in range(n_params):
            dt, r1, off, count, r2 = struct.unpack_from("<IIQQQ", d, params_off + 32 * i)
            if dt not in (0, 1) or r1 or r2:
                raise ReferenceError(f"param {i}: bad dtype or reserved field")
            if off % 64 or off + 4 * count > end:
                raise ReferenceError(f"param {i}: data out of range or misaligned")
            arr = np.frombuffer(d, dtype="<f4" if dt == 0 else "<u4", count=count, offset=off)
            if dt == 0 and not np.all(np.isfinite(arr)):
                raise ReferenceError(f"param {i}: NaN or infinity")
            params.append((dt, arr))
        used = [False] * n_params
        # uint8 input: flag bit 0, res0 the index of the [C][256] f32 table.
        self.input_table: np.ndarray | None = None
        if flags & 1:
            if res0 >= n_params or params[res0][0] != 0 or params[res0][1].size != 256 * ic:
                raise ReferenceError(f"header: input_table {res0} is not an f32 param of 256 x {ic}")
            used[res0] = True
            self.input_table = params[res0][1].reshape(ic, 256)

        self.input_shape = (ih, iw, ic)
        shapes: list[tuple[tuple[int, int, int], bool]] = [((ih, iw, ic), False)]
        self.nodes: list[RefNode] = []
        for i in range(n_nodes):
            f = struct.unpack_from("<16I", d, nodes_off + 64 * i)
            op, nflags, in0, in1, kh, kw, sh, sw, ph, pw, oc, oh, ow, pfirst, pcount, res = f
            where = f"node {i}"
            if op not in _OPS:
                raise ReferenceError(f"{where}: unknown op {op}")
            name, n_p, allowed = _OPS[op]
            where = f"node {i} ({name})"
            if nflags & ~allowed or res:
                raise ReferenceError(f"{where}: bad flags {nflags} or reserved field")
            two = op in _TWO_INPUTS
            if in0 > i or (two and in1 > i) or (not two and in1 != 0xFFFFFFFF):
                raise ReferenceError(f"{where}: bad input ids {in0}, {in1}")
            if pcount != n_p or (n_p and pfirst + pcount > n_params):
                raise ReferenceError(f"{where}: param_count {pcount}, expected {n_p}")
            (h, w, c), bits = shapes[in0]
            if op in _WINDOWED:
                for k, s, p in ((kh, sh, ph), (kw, sw, pw)):
                    if not (1 <= k <= 64 and 1 <= s <= 64 and p < k):
                        raise ReferenceError(f"{where}: bad window {kh}x{kw}/{sh}x{sw}/{ph}x{pw}")
                if h + 2 * ph < kh or w + 2 * pw < kw:
                    raise ReferenceError(f"{where}: window larger than padded input")
                eh, ew = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
            elif kh or kw or sh or sw or ph or pw:
                raise ReferenceError(f"{where}: window fields must be 0")
            else:
                eh, ew = h, w
            out_bits = False
            xnor = op in (3, 32)
            if op in (1, 2, 3, 21, 32):
                ec = oc
                out_bits = xnor and bool(nflags & _OUT_BITS)
                if bits and not xnor:
                    raise ReferenceError(f"{where}: input must be float32")
                if xnor and nflags & _USE_K and (bits or nflags & (_OUT_BITS)):
                    raise ReferenceError(f"{where}: USE_K needs a float input and excludes OUT_BITS")
                if out_bits and nflags & _RELU:
                    raise ReferenceError(f"{where}: OUT_BITS excludes RELU")
            elif op == 6:
                ec, out_bits = c, bits
            elif op == 8:
                eh, ew, ec = 1, 1, c
            elif op == 19:  # pad: (top, left) = pad, bottom/right = kernel - 1 - pad, stride 1
                if sh != 1 or sw != 1:
                    raise ReferenceError(f"{where}: stride {sh}x{sw}, must be 1x1")
                eh, ew, ec, out_bits = h + kh - 1, w + kw - 1, c, bits
            elif op == 20:  # the recorded size gives bottom/right: b = (o-1)*s + k - size - top
                for o, size, k, s, p in ((oh, h, kh, sh, ph), (ow, w, kw, sw, pw)):
                    b = (o - 1) * s + k - size - p
                    if o < 1 or not -s < b < k:
                        raise ReferenceError(f"{where}: output {oh}x{ow} needs padding after of {b}")
                eh, ew, ec = oh, ow, c
            elif op == 9:
                eh, ew, ec = 1, 1, oc
            elif op in (12, 15):
                ec, out_bits = c, True
            elif op == 17:
                eh, ew, ec = 1, 1, h * w * c
            elif op == 18:
                if oc < 1 or oc % c:
                    raise ReferenceError(f"{where}: out_c {oc} is not a multiple of {c}")
                ec = oc
            elif op == 16:
                (h1, w1, c1), bits1 = shapes[in1]
                if bits1 or (h1, w1) != (h, w):
                    raise ReferenceError(f"{where}: input1 must be float32 of height {h} and width {w}")
                ec = c + c1
            else:
                ec = c
            if bits and op not in (3, 6, 19, 32):
                raise ReferenceError(f"{where}: input must be float32")
            if op == 10:
                if shapes[in1] != shapes[in0]:
                    raise ReferenceError(f"{where}: inputs differ in shape or type")
            if (oh, ow, oc) != (eh, ew, ec):
                raise ReferenceError(f"{where}: output shape ({oh}, {ow}, {oc}), expected ({eh}, {ew}, {ec})")
            cw = (c + 31) // 32
            want = {
                1: [(0, oc * kh * kw * c), (0, oc)],
                2: [(1, oc * kh * kw * cw), (0, oc), (0, oc)],
                3: [(1, oc * kh * kw * cw), (0, oc), (0, oc)],
                4: [(0, c), (0, c)],
                9: [(0, oc * h * w * c), (0, oc)],
                13: [(0, c)],
                14: [(0, 2)],
                15: [(0, c)],
                18: [(0, kh * kw * oc), (0, oc)],
                21: [(1, 4), (0, None), (0, oc)],  # weight count: from the config, below
                19: [(0, 1)],
                32: [(1, None)] * 5 + [(0, oc), (0, oc)],  # MST counts: from the tree
            }.get(op, [])
            ps = []
            for j, (wdt, wcount) in enumerate(want):
                k = pfirst + j
                dt, arr = params[k]
                if used[k]:
                    raise ReferenceError(f"{where}: param {k} used twice")
                used[k] = True
                if dt != wdt or (wcount is not None and arr.size != wcount):
                    raise ReferenceError(
                        f"{where}: param {j} has dtype {dt} count {arr.size}, expected {wdt} {wcount}"
                    )
                ps.append(arr)
            if op == 19 and bits and float(ps[0][0]) not in (1.0, -1.0):
                raise ReferenceError(f"{where}: value {ps[0][0]} on a bits input: must be +1 or -1")
            if op == 14 and not ps[0][0] <= ps[0][1]:
                raise ReferenceError(f"{where}: clip bounds {list(ps[0])}: min > max")
            if op == 21:
                ps[0] = self._gconv_config(where, ps, (kh, kw), c, oc)
            if op == 32:  # decode (every rule of the format) to bconv2d's weights
                try:
                    fw = mst.validate(mst.from_params(ps[:5], oc, kh, kw, c))
                except mst.MstFormatError as e:
                    raise ReferenceError(f"{where}: {e}") from None
                ps = [fw.reshape(-1), ps[5], ps[6]]
            self.nodes.append(
                RefNode(
                    i,
                    op,
                    name,
                    nflags,
                    in0,
                    in1,
                    (kh, kw),
                    (sh, sw),
                    (ph, pw),
                    (oh, ow, oc),
                    out_bits,
                    (h, w, c),
                    ps,
                )
            )
            shapes.append(((oh, ow, oc), out_bits))
        if not all(used):
            raise ReferenceError("a param is not referenced by any node")
        if shapes[-1][1]:
            raise ReferenceError("the model output is bits; it must be float32")
        self.output_shape = shapes[-1][0]

    @staticmethod
    def _gconv_config(where: str, ps: list, extent: tuple[int, int], c: int, oc: int) -> tuple:
        """gconv2d's (groups, taps h, taps w, dilation h, dilation w), checked."""
        g, dh, dw, reserved = (int(v) for v in ps[0])
        if reserved or g < 1 or c % g or oc % g:
            raise ReferenceError(f"{where}: config {list(ps[0])}: groups must divide {c} and {oc}")
        if dh < 1 or dw < 1 or (extent[0] - 1) % dh or (extent[1] - 1) % dw:
            raise ReferenceError(f"{where}: dilation {dh}x{dw} does not divide the extent {extent} - 1")
        kh, kw = (extent[0] - 1) // dh + 1, (extent[1] - 1) // dw + 1
        if ps[1].size != oc * kh * kw * (c // g):
            raise ReferenceError(f"{where}: {ps[1].size} weights, expected {oc * kh * kw * (c // g)}")
        return (g, kh, kw, dh, dw)

    # ------------------------------------------------------------- evaluation

    def run(self, x: Any, all_values: bool = False) -> Any:
        """Evaluates the model on one (H, W, C) input in float64.

        A uint8 input of a model with a uint8 input table is looked up in it.
        Bits values are returned as +-1 float arrays. With ``all_values`` the
        list of every value (input first) is returned instead of the output.
        """
        if self.input_table is not None and np.asarray(x).dtype == np.uint8:
            x = np.asarray(x)
            if x.shape != self.input_shape:
                raise ValueError(f"input shape {x.shape}, expected {self.input_shape}")
            x = self.input_table[np.arange(x.shape[2]), x]  # byte u of channel c -> table[c][u]
        x = np.asarray(x, dtype=np.float64)
        if x.shape != self.input_shape:
            raise ValueError(f"input shape {x.shape}, expected {self.input_shape}")
        values: list[np.ndarray] = [x]
        for n in self.nodes:
            values.append(self._eval(n, values))
        return values if all_values else values[-1]

    def _eval(self, n: RefNode, values: list[np.ndarray]) -> np.ndarray:
        x = values[n.input0]
        relu = bool(n.flags & _RELU)
        h, w, c = n.in_shape
        oc = n.out_shape[2]
        if n.op == 1:
            wt = n.params[0].astype(np.float64).reshape(oc, *n.kernel, c)
            y = _conv(x, wt, n.stride, n.pad, 0.0) + n.params[1]
        elif n.op == 2:
            b = _weights_pm1(n.params[0], oc, n.kernel, c)
            y = n.params[1] * _conv(x, b, n.stride, n.pad, 0.0) + n.params[2]
        elif n.op in (3, 32):
            b = _weights_pm1(n.params[0], oc, n.kernel, c)
            s = np.where(x < 0, -1.0, 1.0)  # bits values are already +-1
            pad_value = 1.0 if n.flags & _PAD_ONE else 0.0
            dot = _conv(s, b, n.stride, n.pad, pad_value)
            scale = n.params[1].astype(np.float64)
            bias = n.params[2].astype(np.float64)
            if n.flags & _OUT_BITS:
                return np.where(dot * scale + bias < 0, -1.0, 1.0)
            if n.flags & _USE_K:
                a = np.mean(np.abs(x), axis=2, keepdims=True)
                box = np.full((1, *n.kernel, 1), 1.0 / (n.kernel[0] * n.kernel[1]))
                k = _conv(a, box, n.stride, n.pad, 0.0)
                y = dot * scale * k + bias
            else:
                y = dot * scale + bias
        elif n.op == 4:
            y = x * n.params[0] + n.params[1]
        elif n.op == 5:
            y = np.maximum(x, 0.0)
        elif n.op == 6:
            win = _windows(x, n.kernel, n.stride, n.pad, -np.inf)
            return win.max(axis=(3, 4))
        elif n.op == 7:
            win = _windows(x, n.kernel, n.stride, n.pad, 0.0)
            return win.sum(axis=(3, 4)) / (n.kernel[0] * n.kernel[1])
        elif n.op == 21:  # each group a conv over its channels, on the dilated filter
            g, kh, kw, dh, dw = n.params[0]
            wt = n.params[1].astype(np.float64).reshape(oc, kh, kw, c // g)
            full = np.zeros((oc, *n.kernel, c // g))
            full[:, ::dh, ::dw] = wt  # the extent with zeros between the taps
            icg, ocg = c // g, oc // g
            parts = [
                _conv(x[:, :, k * icg : (k + 1) * icg], full[k * ocg : (k + 1) * ocg], n.stride, n.pad, 0.0)
                for k in range(g)
            ]
            y = np.concatenate(parts, axis=2) + n.params[2]
        elif n.op == 20:
            return _mean_of_valid_taps(x, n.out_shape, n.kernel, n.stride, n.pad)
        elif n.op == 8:
            return x.mean(axis=(0, 1), keepdims=True)
        elif n.op == 9:
            wt = n.params[0].astype(np.float64).reshape(oc, -1)
            y = (wt @ x.reshape(-1) + n.params[1]).reshape(1, 1, oc)
        elif n.op == 10:
            y = x + values[n.input1]
        elif n.op == 11:
            e = np.exp(x - x.max(axis=2, keepdims=True))
            return e / e.sum(axis=2, keepdims=True)
        elif n.op == 12:
            return np.where(x < 0, -1.0, 1.0)
        elif n.op == 13:
            return np.where(x < 0, x * n.params[0], x)
        elif n.op == 14:
            return np.minimum(np.maximum(x, float(n.params[0][0])), float(n.params[0][1]))
        elif n.op == 15:
            return np.where(x + n.params[0] < 0, -1.0, 1.0)
        elif n.op == 18:
            wt = n.params[0].astype(np.float64).reshape(*n.kernel, oc)
            xs = np.repeat(x, oc // c, axis=2)  # output channel o reads input channel o // M
            win = _windows(xs, n.kernel, n.stride, n.pad, 0.0)  # (OH, OW, OC, KH, KW)
            y = np.einsum("hwoij,ijo->hwo", win, wt) + n.params[1]
        elif n.op == 17:
            return x.reshape(1, 1, -1)
        elif n.op == 19:
            (kh, kw), (top, left) = n.kernel, n.pad
            widths = ((top, kh - 1 - top), (left, kw - 1 - left), (0, 0))
            return np.pad(x, widths, constant_values=float(n.params[0][0]))
        elif n.op == 16:
            return np.concatenate([x, values[n.input1]], axis=2)
        else:  # pragma: no cover - _parse rejects unknown ops
            raise ReferenceError(f"unknown op {n.op}")
        return np.maximum(y, 0.0) if relu else y


def _weights_pm1(words: np.ndarray, oc: int, kernel: tuple[int, int], c: int) -> np.ndarray:
    cw = (c + 31) // 32
    return unpack_signs(words.reshape(oc, kernel[0], kernel[1], cw), c)


def _windows(
    x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], pad: tuple[int, int], value: float
) -> np.ndarray:
    """(OH, OW, C, KH, KW) view of the padded input's windows."""
    xp = np.pad(x, ((pad[0], pad[0]), (pad[1], pad[1]), (0, 0)), constant_values=value)
    win = np.lib.stride_tricks.sliding_window_view(xp, kernel, axis=(0, 1))
    return win[:: stride[0], :: stride[1]]


def _mean_of_valid_taps(
    x: np.ndarray,
    out: tuple[int, int, int],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    pad: tuple[int, int],
) -> np.ndarray:
    """avgpool_excl_pad: sums of each window's taps inside x over their counts; the output
    size gives the padding after the input (none where it is negative)."""
    (oh, ow, _), (kh, kw), (sh, sw), (top, left) = out, kernel, stride, pad
    h, w = x.shape[:2]
    bottom, right = max((oh - 1) * sh + kh - h - top, 0), max((ow - 1) * sw + kw - w - left, 0)
    widths = ((top, bottom), (left, right), (0, 0))

    def window_sums(a: np.ndarray) -> np.ndarray:
        v = np.lib.stride_tricks.sliding_window_view(np.pad(a, widths), kernel, axis=(0, 1))
        return v[::sh, ::sw][:oh, :ow].sum(axis=(3, 4))

    return window_sums(x) / window_sums(np.ones((h, w, 1)))


def _conv(
    x: np.ndarray, w: np.ndarray, stride: tuple[int, int], pad: tuple[int, int], pad_value: float
) -> np.ndarray:
    """x (H, W, C) with w [OC][KH][KW][C] -> (OH, OW, OC), padding holding pad_value."""
    win = _windows(x, w.shape[1:3], stride, pad, pad_value)
    return np.einsum("hwcij,oijc->hwo", win, w, optimize=True)
