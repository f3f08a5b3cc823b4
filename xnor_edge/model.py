"""The friendly API: load a model, run it, classify images and frames.

    import xnor_edge
    with xnor_edge.load("net.xnor", num_threads=2) as m:
        y = m.run(x)                      # float32 (H, W, C) or (N, H, W, C)
        top = m.classify("cat.jpg", top_k=3)   # [(label, probability), ...]

Threads: a loaded model is immutable; each thread that calls ``run`` gets its
own native session (on first use, with the model's ``num_threads``), so many
threads can run one model in parallel without locking. When the thread ends,
its session goes back to the model: a later thread reuses it, and at most
``IDLE_SESSIONS`` idle ones are kept (the others are freed), so a server that
starts a thread per request does not accumulate sessions. For explicit control, ``m.session(num_threads)``
returns a ``Session`` to use from one thread at a time. ``close()`` of a
session or a model waits for calls in progress in other threads; calls after
it raise ``ClosedError``.

Files: ``load(path)`` reads the file into memory, so the file may be replaced
or deleted afterwards. ``load(path, mmap=True)`` maps it and uses the weights
in place (no copy, pages shared between processes); the file must then stay
unchanged while the model lives: replacing or truncating it can kill the
process with SIGBUS, rewriting it changes the weights.
"""

from __future__ import annotations

import threading
import time
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Union

import numpy as np

from . import _bindings as nb
from .errors import ClosedError, ModelError, RuntimeFailure
from .resources import model_path, shipped_models

MAX_RESIZE_FACTOR = 4

ModelSource = Union[str, Path, bytes, bytearray, memoryview]

# Idle per-thread sessions a model keeps for reuse after their threads end.
IDLE_SESSIONS = 4

__all__ = [
    "Model",
    "Session",
    "load",
    "kernel_isa",
    "available_isas",
    "set_kernel_isa",
    "library_version",
]


def kernel_isa() -> str:
    """The kernel set in use ("avx512", "avx2", "ssse3", "popcnt", "neon-a64", "neon-a32" or "ref")."""
    return nb.kernel_isa()


def available_isas() -> list[str]:
    """Kernel sets this CPU can run."""
    return nb.available_isas()


def set_kernel_isa(name: str) -> None:
    """Sets the process-wide kernel set ("auto" re-detects) for sessions created after
    this call; sessions that exist keep theirs. Not concurrently with session creation."""
    nb.set_kernel_isa(name)


def library_version() -> str:
    """Version string of the loaded C library."""
    return nb.version_string()


def load(source: ModelSource, num_threads: int = 1, *, mmap: bool = False) -> Model:
    """Loads a model file (path), a shipped model by name ("mnist-digits-xnor", see
    ``shipped_models()``) or model bytes. Raises ModelError with the reason.

    A file is read into memory; ``mmap=True`` maps it instead, and then the file must
    not change while the model lives (see the module docstring)."""
    if isinstance(source, str) and not Path(source).exists() and source in shipped_models():
        source = model_path(source)
    return Model(source, num_threads=num_threads, mmap=mmap)


def _as_input(x: Any, shape: tuple[int, int, int], takes_uint8: bool = False) -> tuple[np.ndarray, bool]:
    """Checks and converts an input to C-contiguous float32 (or uint8); returns (array, batched).

    Rule: float32 C-contiguous arrays pass through without a copy. For a model
    with uint8 input (``Model.takes_uint8``), uint8 arrays are pixels and pass
    as uint8 (the C library normalises them through the model's table); any
    other non-float dtype raises TypeError, since its meaning (pixels or
    normalised values) is ambiguous. For other models any real numeric dtype
    (ints, bool, float16/64) is cast to float32 values as they are (uint8
    images are *not* scaled: use classify/preprocess for pixels). Other
    layouts are copied to C order. Complex, object and string arrays raise
    TypeError; a wrong shape raises ValueError.
    """
    if not isinstance(x, np.ndarray):
        try:
            x = np.asarray(x)
        except (TypeError, ValueError) as e:
            raise TypeError(f"input must be a numeric array, got {type(x).__name__} ({e})") from None
    if x.dtype.kind not in "fiub":
        raise TypeError(f"input dtype must be real numeric (float32 preferred), got {x.dtype}")
    if takes_uint8 and x.dtype != np.uint8 and x.dtype.kind != "f":
        raise TypeError(
            f"this model takes uint8 pixels or float32 normalised input, got {x.dtype}: cast pixels to uint8"
        )
    if x.ndim == 3 and x.shape == shape:
        batched = False
    elif x.ndim == 4 and x.shape[1:] == shape and x.shape[0] >= 1:
        batched = True
    else:
        raise ValueError(
            f"input shape {x.shape} does not match the model: expected {shape} (H, W, C) "
            f"or (N, {shape[0]}, {shape[1]}, {shape[2]})"
        )
    want = np.uint8 if takes_uint8 and x.dtype == np.uint8 else np.float32
    if x.dtype != want or not x.flags.c_contiguous:
        x = np.ascontiguousarray(x, dtype=want)
    return x, batched


class Session:
    """A native session: scratch memory and a thread pool. One thread at a time."""

    def __init__(self, model: Model, num_threads: int = 1, kernel_isa: str | None = None) -> None:
        self._model = model
        self._native = nb.NativeSession(model._native_model(), num_threads, kernel_isa)
        # Held for the length of a run: close() takes it to wait for a run in
        # progress; a second thread's run finds it taken and raises.
        self._busy = threading.Lock()
        self._closing = False

    @property
    def num_threads(self) -> int:
        return self._native.num_threads

    @property
    def kernel_isa(self) -> str:
        """The kernel set this session runs on, fixed when it was created."""
        return self._native.kernel_isa

    def run(self, x: Any, out: np.ndarray | None = None) -> np.ndarray:
        """Runs (H, W, C) or (N, H, W, C) input; returns float32 output of the same rank.

        For a model with uint8 input (``Model.takes_uint8``) a uint8 array is pixels,
        normalised in C through the model's table; float32 is the normalised input."""
        m = self._model
        xin, batched = _as_input(x, m.input_shape, m.takes_uint8)
        oshape = ((xin.shape[0],) if batched else ()) + m.output_shape
        if out is None:
            out = np.empty(oshape, dtype=np.float32)
        elif out.shape != oshape or out.dtype != np.float32 or not out.flags.c_contiguous:
            raise ValueError(f"out must be a C-contiguous float32 array of shape {oshape}")
        # A lock taken without blocking and an inline model count, not context
        # managers: this is every inference's overhead (a one-node model on the
        # Zen 5 VM: Session.run 4.7 -> 3.0 us, of which the native call 1.5 us).
        if not self._busy.acquire(blocking=False):
            if self._closing:
                raise ClosedError("session is closed")
            raise RuntimeError("a Session is used by one thread at a time; use Model.session() per thread")
        try:
            if self._closing or self._native._ptr is None:
                raise ClosedError("session is closed")
            m._enter()
            try:
                self._native.run(xin, out)
            finally:
                m._leave()
        finally:
            self._busy.release()
        return out

    def node_times_ns(self) -> list[int]:
        """Wall time of each node in the most recent run (ns)."""
        if self._closing:
            raise ClosedError("session is closed")
        return self._native.node_times_ns()

    def close(self) -> None:
        """Frees the native session; waits for a run in progress in another thread."""
        self._closing = True
        with self._busy:
            self._native.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _ThreadSession:
    """A thread's own session, held in the model's thread-local storage: when the thread
    ends, the storage goes and this gives the session back to its model."""

    __slots__ = ("session",)

    def __init__(self, session: Session) -> None:
        self.session = session

    def __del__(self) -> None:
        try:
            self.session._model._release(self.session)
        except Exception:  # interpreter shutdown: nothing left to give back to
            pass


@dataclass(frozen=True)
class Timing:
    """Times of the most recent ``Model.run`` in the calling thread."""

    call_ns: int  # Python call, conversion and C run
    node_ns: list[int]  # per-node C time

    @property
    def c_ns(self) -> int:
        return sum(self.node_ns)


class Model:
    """A loaded model. See the module docstring for threading."""

    def __init__(self, source: ModelSource, num_threads: int = 1, *, mmap: bool = False) -> None:
        if not isinstance(num_threads, int) or isinstance(num_threads, bool) or num_threads < 1:
            raise ValueError(f"num_threads must be an int >= 1, got {num_threads!r}")
        self._model: nb.NativeModel | None = nb.NativeModel(source, mmap=mmap)
        self.source = source if isinstance(source, (str, Path)) else "<bytes>"
        self.num_threads = num_threads
        nm = self._model
        self.input_shape: tuple[int, int, int] = nm.input_shape
        self.output_shape: tuple[int, int, int] = nm.output_shape
        self.metadata: dict = nm.metadata
        self._nodes = nm.nodes
        self._lock = threading.Condition()
        self._active = 0
        # Weak: a session lives as long as its user holds it (a thread's own session:
        # its thread, then the idle list); close() closes the ones still alive.
        self._sessions: weakref.WeakSet[Session] = weakref.WeakSet()
        self._idle: list[Session] = []
        self._local = threading.local()
        meta = self.metadata
        self.name: str = str(
            meta.get("name") or (Path(self.source).stem if self.source != "<bytes>" else "model")
        )
        labels = meta.get("labels")
        n_out = self.output_shape[2]
        if isinstance(labels, list) and len(labels) == n_out:
            self.labels: list[str] = [str(s) for s in labels]
        else:
            self.labels = [f"class_{i}" for i in range(n_out)]
        self.color_order: str = str(meta.get("color_order", "RGB" if self.input_shape[2] == 3 else "GRAY"))
        if self.color_order not in ("RGB", "BGR", "GRAY"):
            raise ModelError(
                f"{self.source}: metadata color_order {self.color_order!r} is not RGB, BGR or GRAY"
            )
        c = self.input_shape[2]
        self.mean = self._per_channel("mean", 0.0, c)
        self.std = self._per_channel("std", 1.0, c)
        if np.any(self.std == 0):
            raise ModelError(f"{self.source}: metadata std contains 0")
        self._check_resize()
        # uint8 input (docs/format.md): [C][256] floats, the normalisation by lookup.
        self.input_u8_table: np.ndarray | None = nm.input_u8_table
        self.uses_k: bool = any(n.flags & nb.lib.XE_FLAG_USE_K for n in self._nodes)
        self.ends_with_softmax: bool = self._nodes[-1].op == nb.lib.XE_OP_SOFTMAX

    def _check_resize(self) -> None:
        # Preprocessing resizes the shorter side to this before the centre crop: a
        # huge value is gigabytes per frame, so it is bounded by the input size.
        resize = self.metadata.get("resize")
        limit = MAX_RESIZE_FACTOR * max(self.input_size)
        if resize is not None and (
            not isinstance(resize, int) or isinstance(resize, bool) or not 1 <= resize <= limit
        ):
            raise ModelError(
                f"{self.source}: metadata resize {resize!r} is out of range: must be an int from 1 "
                f"to {limit} ({MAX_RESIZE_FACTOR}x the model's input side)"
            )

    def _per_channel(self, key: str, default: float, c: int) -> np.ndarray:
        v = self.metadata.get(key)
        if v is None:
            return np.full(c, default, dtype=np.float32)
        try:
            a = np.asarray(v, dtype=np.float32).reshape(-1)
        except (TypeError, ValueError):
            raise ModelError(f"{self.source}: metadata {key} is not a list of numbers") from None
        if a.size == 1:
            a = np.full(c, a[0], dtype=np.float32)
        if a.size != c:
            raise ModelError(f"{self.source}: metadata {key} has {a.size} values, the input has {c} channels")
        return a

    # ------------------------------------------------------------- lifetime

    def _native_model(self) -> nb.NativeModel:
        if self._model is None:
            raise ClosedError("model is closed")
        return self._model

    def _enter(self) -> None:
        """Counts a call in progress (close() waits for it); raises once closed."""
        with self._lock:
            if self._model is None:
                raise ClosedError("model is closed")
            self._active += 1

    def _leave(self) -> None:
        with self._lock:
            self._active -= 1
            if self._model is None:  # close() is waiting for the calls in progress
                self._lock.notify_all()

    @contextmanager
    def _in_use(self) -> Iterator[None]:
        self._enter()
        try:
            yield
        finally:
            self._leave()

    @property
    def closed(self) -> bool:
        return self._model is None

    def close(self) -> None:
        """Frees the native model and all its sessions (waits for running calls)."""
        with self._lock:
            if self._model is None:
                return
            model, self._model = self._model, None
            while self._active:
                self._lock.wait()
            sessions = list(self._sessions)
            self._idle.clear()
        for s in sessions:
            s.close()
        model.close()

    def __enter__(self) -> Model:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self.input_shape} -> {self.output_shape}"
        return f"<xnor_edge.Model {self.name!r} {state}>"

    # ------------------------------------------------------------- running

    def session(self, num_threads: int | None = None, kernel_isa: str | None = None) -> Session:
        """A new session for one thread's exclusive use (closed with the model).

        ``kernel_isa`` names the kernel set it runs on (one of ``available_isas()``);
        by default the process-wide choice when the session is created. A session
        keeps its set: ``set_kernel_isa`` affects only sessions created later."""
        with self._in_use():
            n = self.num_threads if num_threads is None else num_threads
            s = Session(self, n, kernel_isa)
            with self._lock:
                self._sessions.add(s)
            return s

    def _thread_session(self) -> Session:
        holder = getattr(self._local, "holder", None)
        if holder is None or holder.session._native._ptr is None:
            with self._lock:
                s = self._idle.pop() if self._idle else None
            holder = _ThreadSession(s or self.session())
            self._local.holder = holder
        return holder.session

    def _release(self, s: Session) -> None:
        """A thread's session whose thread ended: kept for reuse, or closed."""
        with self._lock:
            if self._model is not None and s._native._ptr is not None and len(self._idle) < IDLE_SESSIONS:
                self._idle.append(s)
                return
        s.close()

    def run(self, x: Any) -> np.ndarray:
        """Runs float32 (H, W, C) or (N, H, W, C) input; returns float32 output.

        Thread-safe: each calling thread uses its own session.
        """
        s = self._thread_session()
        t0 = time.perf_counter_ns()
        y = s.run(x)
        self._local.call_ns = time.perf_counter_ns() - t0
        if not np.isfinite(y).all():
            raise RuntimeFailure(
                f"{self.source}: the model's output holds NaN or infinite values (its parameters "
                "overflow float32 on this input): the model file is broken",
                "non-finite output",
            )
        return y

    def last_timing(self) -> Timing:
        """Python call time and per-node C times of this thread's latest ``run``."""
        holder = getattr(self._local, "holder", None)
        if holder is None or not hasattr(self._local, "call_ns"):
            raise RuntimeError("no run yet in this thread")
        return Timing(self._local.call_ns, holder.session.node_times_ns())

    # ------------------------------------------------------ classification

    @property
    def input_size(self) -> tuple[int, int]:
        return self.input_shape[0], self.input_shape[1]

    @property
    def takes_uint8(self) -> bool:
        """Whether the model takes uint8 pixels (its file carries a uint8 input table):
        ``run`` accepts uint8 arrays and ``classify`` feeds frames without float conversion."""
        return self.input_u8_table is not None

    def preprocess(self, frame: Any, color_order: str = "BGR") -> np.ndarray:
        """Image -> float32 (H, W, C) network input, per the model's metadata.

        ``frame``: a uint8 array (OpenCV's BGR by default; ``color_order="RGB"``
        for RGB arrays; 2-D arrays are grey), a PIL image, or a file path. A
        model with uint8 input normalises through its table, as the C library does.
        """
        img = self.preprocess_uint8(frame, color_order)
        if self.input_u8_table is not None:
            return self.input_u8_table[np.arange(img.shape[2]), img]
        x = img.astype(np.float32) * np.float32(1.0 / 255.0)
        x -= self.mean
        x /= self.std
        return x

    def preprocess_uint8(self, frame: Any, color_order: str = "BGR") -> np.ndarray:
        """Image -> uint8 (H, W, C) pixels: resized, cropped and in the model's colour
        order, not normalised (what ``run`` takes for a model with uint8 input)."""
        from . import _image as imageio  # OpenCV and Pillow load only for images

        rgb = imageio.to_rgb(frame, color_order)
        h, w = self.input_size
        imageio.check_size(rgb, (h, w))
        resize = self.metadata.get("resize")
        if resize is not None:
            if not isinstance(resize, int) or resize < 1:
                raise ModelError(f"{self.source}: metadata resize must be a positive int, got {resize!r}")
            rgb = imageio.resize_shorter_and_crop(rgb, resize, (h, w))
        else:
            rgb = imageio.resize_to(rgb, (h, w))
        img = imageio.convert_order(rgb, self.color_order)
        if img.shape[2] != self.input_shape[2]:
            raise ValueError(
                f"the model takes {self.input_shape[2]} channels but colour order "
                f"{self.color_order} gives {img.shape[2]}"
            )
        return np.ascontiguousarray(img, dtype=np.uint8)

    def postprocess(self, output: np.ndarray, top_k: int = 5) -> list[tuple[str, float]]:
        """Output -> top-k (label, probability), softmax unless the model ends with one."""
        if not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"top_k must be an int >= 1, got {top_k!r}")
        logits = np.asarray(output, dtype=np.float64).reshape(-1)
        if self.ends_with_softmax:
            p = logits
        else:
            e = np.exp(logits - logits.max())
            p = e / e.sum()
        k = min(top_k, p.size)
        idx = np.argsort(-p, kind="stable")[:k]
        return [(self.labels[i] if i < len(self.labels) else f"class_{i}", float(p[i])) for i in idx]

    def classify(self, frame: Any, top_k: int = 5, color_order: str = "BGR") -> list[tuple[str, float]]:
        """Classifies one image (see ``preprocess``); returns [(label, probability)].

        A model with uint8 input gets the frame's pixels as they are (the C library
        normalises them); others get ``preprocess``'s float32."""
        if self.output_shape[:2] != (1, 1):
            raise ValueError(f"classify needs a (1, 1, classes) output, the model gives {self.output_shape}")
        if self.takes_uint8:
            x = self.preprocess_uint8(frame, color_order)
        else:
            x = self.preprocess(frame, color_order)
        return self.postprocess(self.run(x), top_k)

    # ----------------------------------------------------------------- info

    def info(self) -> dict:
        """Layers and totals: binary vs float params, bytes, MACs, kernel ISA."""
        self._native_model()
        layers = []
        for n in self._nodes:
            layers.append(
                {
                    "index": n.index,
                    "op": n.op_name,
                    "flags": nb.flag_names(n.flags),
                    "inputs": [n.input0] + ([n.input1] if n.input1 is not None else []),
                    "kernel": n.kernel,
                    "stride": n.stride,
                    "pad": n.pad,
                    "in_shape": n.in_shape,
                    "in_dtype": "bits" if n.in_bits else "float32",
                    "out_shape": n.out_shape,
                    "out_dtype": "bits" if n.out_bits else "float32",
                    "binary_params": n.binary_params,
                    "float_params": n.float_params,
                    "param_bytes": n.param_bytes,
                    "macs": n.macs,
                }
            )
        binary = sum(n.binary_params for n in self._nodes)
        floats = sum(n.float_params for n in self._nodes)
        return {
            "name": self.name,
            "source": str(self.source),
            "input_shape": self.input_shape,
            "output_shape": self.output_shape,
            "labels": len(self.labels),
            "color_order": self.color_order,
            "uses_k": self.uses_k,
            "uint8_input": self.takes_uint8,
            "variant": self.metadata.get("variant"),
            "kernel_isa": kernel_isa(),
            "library_version": library_version(),
            "binary_params": binary,
            "float_params": floats,
            "param_bytes": sum(n.param_bytes for n in self._nodes),
            "float32_equivalent_bytes": 4 * (binary + floats),
            "macs": sum(n.macs for n in self._nodes),
            "binary_macs": sum(n.macs for n in self._nodes if n.op_name in ("bconv2d", "bconv2d_mst")),
            "layers": layers,
        }

    @property
    def kernel_isa(self) -> str:
        return kernel_isa()
