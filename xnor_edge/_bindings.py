"""Thin checked wrappers over the C API.

Checks dtype, shape and contiguity, passes NumPy buffers without copying
(``ffi.from_buffer``), turns ``xe_status`` codes into exceptions and ties the
native handles' lifetimes to Python objects. Everything above this module
(model.py, the CLI, camera code) goes through it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._native import ffi, lib
from .errors import ModelError, RuntimeFailure

_ERR_CAP = 512
XE_OK = 0
NO_INPUT = 0xFFFFFFFF


def status_string(status: int) -> str:
    return ffi.string(lib.xe_status_string(status)).decode("utf-8", "replace")


def _check(status: int, what: str) -> None:
    if status == XE_OK:
        return
    msg = f"{what}: {status_string(status)}"
    if status == lib.XE_ERR_INVALID_ARGUMENT:
        raise ValueError(msg)
    if status == lib.XE_ERR_OUT_OF_MEMORY:
        raise MemoryError(msg)
    raise RuntimeFailure(msg, status_string(status))


# ------------------------------------------------------------------ library


def version_string() -> str:
    return ffi.string(lib.xe_version_string()).decode()


def kernel_isa() -> str:
    return ffi.string(lib.xe_kernel_isa()).decode()


def available_isas() -> list[str]:
    n = int(lib.xe_available_isas(ffi.NULL, 0))
    names = ffi.new("const char *[]", max(n, 1))
    n = int(lib.xe_available_isas(names, n))
    return [ffi.string(names[i]).decode() for i in range(n)]


def set_kernel_isa(name: str) -> None:
    status = lib.xe_set_kernel_isa(name.encode())
    if status != XE_OK:
        raise ValueError(
            f"cannot use kernel set {name!r} ({status_string(status)}); "
            f"this CPU offers: {', '.join(available_isas())}, auto"
        )


KNOWN_ISAS = ("ref", "popcnt", "ssse3", "avx2", "avx512", "neon-a64", "neon-a32")


def check_kernels_env() -> None:
    """The C library ignores an XE_KERNELS it cannot use (it picks the best set): say so
    instead, since someone who sets it wants those kernels or is debugging with them."""
    want = os.environ.get("XE_KERNELS", "")
    if not want or want == "auto" or want in available_isas():
        return
    why = "is not available on this CPU" if want in KNOWN_ISAS else "is not a kernel set"
    raise ImportError(
        f"xnor_edge: XE_KERNELS={want!r} {why} (this CPU offers: {', '.join(available_isas())}, "
        "auto): unset it or pick one of those"
    )


def op_name(op: int) -> str:
    return ffi.string(lib.xe_op_name(op)).decode()


# The header's XE_FLAG_* constants, lowest bit first: XE_FLAG_USE_K -> "use_k".
_FLAGS = sorted((getattr(lib, n), n[len("XE_FLAG_") :].lower()) for n in dir(lib) if n.startswith("XE_FLAG_"))


def flag_names(flags: int) -> list[str]:
    """The names of the XE_FLAG_* bits set in ``flags``."""
    return [name for bit, name in _FLAGS if flags & bit]


# ------------------------------------------------------------------- models


@dataclass(frozen=True)
class NodeInfo:
    index: int
    op: int
    op_name: str
    flags: int
    input0: int
    input1: int | None
    kernel: tuple[int, int]
    stride: tuple[int, int]
    pad: tuple[int, int]
    in_shape: tuple[int, int, int]
    in_bits: bool
    out_shape: tuple[int, int, int]
    out_bits: bool
    binary_params: int
    float_params: int
    param_bytes: int
    macs: int


class NativeModel:
    """An ``xe_model`` handle; destroyed by ``close()`` or garbage collection."""

    def __init__(self, source: str | Path | bytes | bytearray | memoryview, mmap: bool = False) -> None:
        """Model bytes are copied. A path is read into memory (nothing refers to the file
        afterwards), or with ``mmap=True`` mapped and used in place: the file must then
        stay unchanged until the model is closed (replacing or truncating it can kill the
        process with SIGBUS; rewriting it changes the weights)."""
        out = ffi.new("xe_model **")
        err = ffi.new("char[]", _ERR_CAP)
        if isinstance(source, (bytes, bytearray, memoryview)):
            if mmap:
                raise ValueError("mmap=True needs a model file path, not bytes")
            where = "model bytes"
            data = source
        else:
            path = Path(source)
            where = str(path)
            if not path.exists():
                raise ModelError(f"{path}: no such file", "io error")
            if path.is_dir():
                raise ModelError(f"{path}: is a directory, not a model file", "io error")
            if not mmap:
                try:
                    data = path.read_bytes()
                except OSError as e:
                    raise ModelError(f"{path}: {e.strerror or e}", "io error") from None
        if mmap:
            status = lib.xe_model_load_file(where.encode(), out, err, _ERR_CAP)
        else:
            buf = ffi.from_buffer(data)
            status = lib.xe_model_load_memory(buf, len(buf), 1, out, err, _ERR_CAP)
            del buf, data
        if status != XE_OK:
            reason = ffi.string(err).decode("utf-8", "replace")
            raise ModelError(f"{where}: {reason or status_string(status)}", status_string(status))
        self._ptr = ffi.gc(out[0], lib.xe_model_destroy)
        h, w, c = ffi.new("uint32_t *"), ffi.new("uint32_t *"), ffi.new("uint32_t *")
        lib.xe_model_input_shape(self._ptr, h, w, c)
        self.input_shape = (int(h[0]), int(w[0]), int(c[0]))
        lib.xe_model_output_shape(self._ptr, h, w, c)
        self.output_shape = (int(h[0]), int(w[0]), int(c[0]))
        size = ffi.new("size_t *")
        text = lib.xe_model_metadata(self._ptr, size)
        raw = ffi.unpack(text, int(size[0])) if text != ffi.NULL else b""
        try:
            meta = json.loads(raw.decode("utf-8")) if raw.strip() else {}
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            self.close()
            raise ModelError(f"{where}: metadata is not UTF-8 JSON ({e})", "bad model") from None
        except RecursionError:
            self.close()
            raise ModelError(f"{where}: metadata JSON is nested too deeply", "bad model") from None
        if not isinstance(meta, dict):
            self.close()
            raise ModelError(f"{where}: metadata is not a JSON object", "bad model")
        self.metadata: dict = meta
        self.nodes = [self._node_info(i) for i in range(int(lib.xe_model_num_nodes(self._ptr)))]
        # uint8 input (docs/format.md): channel c's byte u is input_u8_table[c, u].
        table = lib.xe_model_input_u8_table(self._ptr)
        self.input_u8_table: np.ndarray | None = None
        if table != ffi.NULL:
            n = 256 * self.input_shape[2]
            flat = np.frombuffer(ffi.buffer(table, 4 * n), dtype=np.float32).copy()
            self.input_u8_table = flat.reshape(self.input_shape[2], 256)

    @property
    def ptr(self) -> Any:
        if self._ptr is None:
            raise RuntimeError("model is closed")
        return self._ptr

    def _node_info(self, i: int) -> NodeInfo:
        info = ffi.new("xe_node_info *")
        _check(lib.xe_model_node_info(self._ptr, i, info), f"node {i} info")
        n = info[0]
        return NodeInfo(
            index=i,
            op=int(n.op),
            op_name=op_name(n.op),
            flags=int(n.flags),
            input0=int(n.input0),
            input1=None if n.input1 == NO_INPUT else int(n.input1),
            kernel=(int(n.kernel_h), int(n.kernel_w)),
            stride=(int(n.stride_h), int(n.stride_w)),
            pad=(int(n.pad_h), int(n.pad_w)),
            in_shape=(int(n.in_h), int(n.in_w), int(n.in_c)),
            in_bits=n.in_dtype == lib.XE_DTYPE_BITS,
            out_shape=(int(n.out_h), int(n.out_w), int(n.out_c)),
            out_bits=n.out_dtype == lib.XE_DTYPE_BITS,
            binary_params=int(n.binary_params),
            float_params=int(n.float_params),
            param_bytes=int(n.param_bytes),
            macs=int(n.macs),
        )

    def close(self) -> None:
        """Drops this handle; the native model is destroyed once no session uses it (at
        once when none does)."""
        self._ptr = None


class NativeSession:
    """An ``xe_session`` handle. Used by one thread at a time."""

    def __init__(self, model: NativeModel, num_threads: int = 1, kernel_isa: str | None = None) -> None:
        if not isinstance(num_threads, int) or isinstance(num_threads, bool) or num_threads < 1:
            raise ValueError(f"num_threads must be an int >= 1, got {num_threads!r}")
        opts = ffi.new("xe_session_options *")
        opts.num_threads = num_threads
        if kernel_isa is not None:
            names = available_isas()
            if kernel_isa not in names:
                raise ValueError(
                    f"kernel set {kernel_isa!r} is not available on this CPU (available: {', '.join(names)})"
                )
            opts.kernel_isa = names.index(kernel_isa) + 1  # 1-based; 0 is the process-wide choice
        out = ffi.new("xe_session **")
        _check(lib.xe_session_create(model.ptr, opts, out), "creating a session")
        # The destructor holds the model's handle: the native model outlives the native
        # session even when both go at once (a thread ending while its model closes).
        model_ptr = model.ptr
        self._ptr = ffi.gc(out[0], lambda p: (lib.xe_session_destroy(p), model_ptr))
        self.num_threads = int(lib.xe_session_num_threads(self._ptr))
        self.kernel_isa = ffi.string(lib.xe_session_kernel_isa(self._ptr)).decode()
        self.in_count = int(np.prod(model.input_shape))
        self.out_count = int(np.prod(model.output_shape))
        self.num_nodes = len(model.nodes)
        self.takes_uint8 = model.input_u8_table is not None

    def run(self, x: np.ndarray, out: np.ndarray) -> None:
        """x: C-contiguous float32 with n*in_count values, or uint8 for a model with a
        uint8 input table; out: float32 likewise (writable)."""
        if self._ptr is None:
            raise RuntimeError("session is closed")
        if x.dtype not in (np.float32, np.uint8) or not x.flags.c_contiguous:
            raise ValueError("input must be C-contiguous float32 or uint8")
        if out.dtype != np.float32 or not out.flags.c_contiguous or not out.flags.writeable:
            raise ValueError("output must be writable C-contiguous float32")
        n, rem = divmod(x.size, self.in_count)
        if rem or n < 1 or out.size != n * self.out_count:
            raise ValueError(f"buffer sizes {x.size}/{out.size} do not fit {self.in_count}/{self.out_count}")
        u8 = x.dtype == np.uint8
        if u8 and not self.takes_uint8:
            raise ValueError("this model has no uint8 input table: pass float32")
        xin = ffi.from_buffer("uint8_t[]" if u8 else "float[]", x)
        xout = ffi.from_buffer("float[]", out, require_writable=True)
        # counts are totals over the batch
        if u8:
            status = lib.xe_session_run_batch_u8(self._ptr, n, xin, x.size, xout, out.size)
        elif n == 1:
            status = lib.xe_session_run(self._ptr, xin, self.in_count, xout, self.out_count)
        else:
            status = lib.xe_session_run_batch(self._ptr, n, xin, x.size, xout, out.size)
        _check(status, "running the model")

    def node_times_ns(self) -> list[int]:
        if self._ptr is None:
            raise RuntimeError("session is closed")
        ns = ffi.new("uint64_t *")
        times = []
        for i in range(self.num_nodes):
            _check(lib.xe_session_node_time_ns(self._ptr, i, ns), f"node {i} time")
            times.append(int(ns[0]))
        return times

    def close(self) -> None:
        if self._ptr is not None:
            ptr, self._ptr = self._ptr, None
            ffi.release(ptr)


check_kernels_env()
