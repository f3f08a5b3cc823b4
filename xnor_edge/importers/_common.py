"""What the ONNX and TFLite importers share: the report, the float values they
track, the model metadata, the self-check against the source runtime, the
atomic write and the ``xnor-edge import`` command line.

Nothing here imports a source format's package (``onnx``, ``tflite``): each
importer imports its own, and only when an import runs.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..builder import GraphBuilder, Value, with_uint8_input

EXTRA_HINT = "pip install 'xnor-edge[import]'"


@dataclass
class ImportReport:
    notes: list[str] = field(default_factory=list)
    layers: dict[str, int] = field(default_factory=dict)

    def count(self, kind: str) -> None:
        self.layers[kind] = self.layers.get(kind, 0) + 1


# ------------------------------------------------------------- graph values


@dataclass(frozen=True)
class Tensor:
    """A float tensor: rank 4 is a feature map (the source's NCHW or NHWC) of value v;
    rank 2 is [1, N], v flattened in the order the source flattens (ONNX: CHW, TFLite: HWC)."""

    v: Value
    rank: int = 4


@dataclass(frozen=True, eq=False)
class Affine:
    """v * scale[c] + shift[c], written (as one batchnorm) only when a float consumer reads
    it; ONNX's binariser reading it with scale 1 becomes sign_shift (RSign)."""

    v: Value
    scale: np.ndarray
    shift: np.ndarray
    rank: int


def write_affine(g: GraphBuilder, report: ImportReport, a: Affine) -> Tensor:
    """The batchnorm node a pending Affine becomes when a float consumer reads it."""
    report.count("batchnorm")
    return Tensor(g.batchnorm(a.v, a.scale, a.shift), a.rank)


# ------------------------------------------------------------------ metadata


def metadata(
    path: str | Path,
    labels: Sequence[str] | None,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    color_order: str | None,
    name: str | None,
) -> dict[str, Any]:
    """The model file's metadata from the import's options (the caller adds "source")."""
    meta: dict[str, Any] = {"name": name or Path(path).stem, "task": "classification"}
    if labels is not None:
        meta["labels"] = list(labels)
    if mean is not None:
        meta["mean"] = [float(m) for m in mean]
    if std is not None:
        meta["std"] = [float(s) for s in std]
    if color_order is not None:
        meta["color_order"] = color_order
    return meta


def check_metadata(
    g: GraphBuilder, meta: dict[str, Any], labels: Sequence[str] | None, error: type[Exception]
) -> None:
    """Raises `error` when the labels or the per-channel mean/std do not fit the graph."""
    if labels is not None and g.output.shape[2] != len(labels):
        raise error(f"{len(labels)} labels for {g.output.shape[2]} outputs")
    for key in ("mean", "std"):
        if key in meta and len(meta[key]) not in (1, g.input.shape[2]):
            raise error(f"--{key} has {len(meta[key])} values for {g.input.shape[2]} input channels")


# ---------------------------------------------------------------- self-check


def encode(g: GraphBuilder, report: ImportReport, log: Callable[[str], None]) -> bytes:
    """The model file's bytes; logs the import's notes."""
    data = g.to_bytes()
    for note in report.notes:
        log(f"note: {note}")
    return data


def random_inputs(samples: int, shape: tuple[int, int, int]) -> np.ndarray:
    """The self-check's inputs: `samples` normal draws of the source's input `shape` (seed 0)."""
    rng = np.random.default_rng(0)
    return rng.normal(size=(samples, *shape)).astype(np.float32)


def compare_outputs(
    xnor_bytes: bytes,
    inputs: np.ndarray,
    run_src: Callable[[np.ndarray], np.ndarray],
    to_runtime: Callable[[np.ndarray], np.ndarray] = lambda x: x,
) -> list[dict[str, float]]:
    """Per input (the source's layout): max |difference| between the source runtime and
    xnor-edge, relative difference and top-1 agreement. `run_src` takes a batch of one and
    returns the output in the runtime's order; `to_runtime` maps one input to HWC."""
    import xnor_edge

    rows = []
    with xnor_edge.load(xnor_bytes) as m:
        for x in inputs:
            want = np.asarray(run_src(x[None].astype(np.float32)), dtype=np.float64).reshape(-1)
            got = m.run(np.ascontiguousarray(to_runtime(x))[None].astype(np.float32))
            got = np.asarray(got, dtype=np.float64).reshape(-1)
            diff = float(np.abs(got - want).max())
            rows.append(
                {
                    "max_abs_diff": diff,
                    "rel_diff": diff / max(1.0, float(np.abs(want).max())),
                    "top1_agree": float(np.argmax(got) == np.argmax(want)),
                }
            )
    return rows


def self_check(
    rows: list[dict[str, float]],
    who: str,
    tolerance: float,
    samples: int,
    log: Callable[[str], None],
    error: type[Exception],
) -> None:
    """Raises `error` when the random inputs' worst relative difference passes `tolerance`."""
    worst = max(r["rel_diff"] for r in rows)
    if worst > tolerance:
        raise error(
            f"self-check failed: on random inputs xnor-edge differs from {who} by up to {worst:.3g} "
            f"(relative to max(1, |output|); tolerance {tolerance:g}); nothing written"
        )
    log(f"self-check against {who}: max relative difference {worst:.3g} on {samples} random inputs")


def check_inputs(
    check: np.ndarray, shape: tuple[int, int, int], error: type[Exception], layout: str = ""
) -> np.ndarray:
    """``--check``'s input(s) as a batch of the source's input `shape` (one input or N)."""
    x = np.asarray(check, dtype=np.float32)
    x = x[None] if x.ndim == 3 else x
    if x.ndim != 4 or x.shape[1:] != shape:
        dims = ", ".join(str(d) for d in shape)
        raise error(f"--check input has shape {x.shape}; expected (N, {dims}) or ({dims}){layout}")
    return x


def log_check_rows(rows: list[dict[str, float]], log: Callable[[str], None]) -> None:
    for i, r in enumerate(rows):
        agree = bool(r["top1_agree"])
        log(f"check input {i}: output max |difference| {r['max_abs_diff']:.6g} (top-1 agrees: {agree})")


# --------------------------------------------------------------------- write


def write_model(out: str | Path, data: bytes, report: ImportReport, log: Callable[[str], None]) -> None:
    """Writes the model file atomically (a temporary file renamed over `out`) and logs its layers."""
    out = Path(out)
    fd, tmp = tempfile.mkstemp(prefix=out.name + ".", suffix=".tmp", dir=str(out.parent or "."))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    layers = ", ".join(f"{k} x{v}" for k, v in sorted(report.layers.items()))
    log(f"wrote {out} ({len(data)} bytes): {layers}")


# ----------------------------------------------------------------------- CLI


def _floats(s: str | None) -> list[float] | None:
    return None if s is None else [float(v) for v in s.split(",")]


def add_uint8_input(g: GraphBuilder, meta: dict[str, Any], error: type[Exception]) -> None:
    """Makes the graph also take uint8 pixels, normalised by its metadata's mean and std."""
    try:
        g.uint8_input(meta.get("mean", 0.0), meta.get("std", 1.0))
    except ValueError as e:
        raise error(str(e)) from None


def run_cli(args: Any, convert: Callable[..., ImportReport]) -> int:
    """``xnor-edge import``'s options (onnx_import.add_arguments) passed to an importer's convert."""
    labels = None
    if args.labels:
        labels = [
            ln.strip() for ln in Path(args.labels).read_text(encoding="utf-8").splitlines() if ln.strip()
        ]
    check = np.load(args.check) if args.check else None
    mean, std = _floats(args.mean), _floats(args.std)
    convert(
        args.model,
        args.output,
        check=check,
        tolerance=args.tolerance,
        labels=labels,
        mean=mean,
        std=std,
        color_order=args.color_order,
        name=args.name,
    )
    if getattr(args, "uint8_input", False):  # every importer: the checked file, plus the table
        out = Path(args.output)
        data = with_uint8_input(out.read_bytes(), 0.0 if mean is None else mean, 1.0 if std is None else std)
        write_model(out, data, ImportReport(), lambda s: print(f"{s}; takes uint8 input"))
    return 0
