"""Top-1 of an exported model file on a test set, run by the xnor-edge C runtime.

    python -m xnor_train.evaluate models/mnist-digits-xnor.xnor --data mnist --data-path DATA/mnist

--backend c (default: ``xnor_edge.load(path).run``) or reference (the NumPy float64
interpreter ``xnor_edge.reference``, slow).  Preprocessing comes from the model's own
metadata (mean/std, input size, colour order), so this also checks the metadata.

--from-files (image-file data sets: cifar10, imagenette, folder) reads each original test
image file through the package's own pipeline instead, ``Model.preprocess(path)``
(decode, resize with OpenCV, crop, normalise), as an application or the camera command
would: the accuracy a user gets, rather than that of the training pipeline's PIL resize.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from .data import (
    DATASETS,
    DataError,
    centre_crop,
    load_dataset,
    preprocess_numpy,
    split_files,
    subset_indices,
)


def read_metadata(path: str | Path) -> dict:
    from xnor_edge.reference import ReferenceModel

    return ReferenceModel.from_file(path).metadata


class Runner:
    """Runs a model file on NHWC float32 batches with the chosen backend."""

    def __init__(self, path: str | Path, backend: str = "c", threads: int | None = None):
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"model file not found: {self.path}")
        self.backend = backend
        if backend == "c":
            import xnor_edge

            self.model = xnor_edge.load(str(self.path), num_threads=threads or 1)
        elif backend == "reference":
            from xnor_edge.reference import ReferenceModel

            self.model = ReferenceModel.from_file(self.path)
        else:
            raise ValueError(f"unknown backend {backend!r}; choose c or reference")

    def run(self, x: np.ndarray) -> np.ndarray:
        """x: (N, H, W, C) float32 -> (N, classes) float32 logits."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        # One image per call: per-image latency is what the product cares about.
        y = np.stack([np.asarray(self.model.run(xi)) for xi in x])
        return y.reshape(len(x), -1).astype(np.float32)


def model_inputs(meta: dict, ds) -> np.ndarray:
    """The test set preprocessed as the model's metadata says (float32 NHWC)."""
    size = tuple(meta.get("input_size", ds.input_size))
    x = centre_crop(ds.x_test, size)
    if x.shape[1:3] != size:
        raise ValueError(f"test images {x.shape[1:3]} do not match the model input size {size}")
    return preprocess_numpy(x, meta.get("mean", [0.0]), meta.get("std", [1.0]))


def run_all(runner: Runner, x: np.ndarray, batch: int = 256) -> tuple[np.ndarray, float]:
    outs, t0 = [], time.perf_counter()
    for i in range(0, len(x), batch):
        outs.append(runner.run(x[i : i + batch]))
    return np.concatenate(outs), time.perf_counter() - t0


def load_model_data(model_path: str, data: str, data_path: str | None):
    """The model's metadata and the data set decoded at the model's input size."""
    meta = read_metadata(model_path)
    return meta, load_dataset(data, data_path, (meta.get("input_size") or [None])[0])


def load_test_inputs(model_path: str, data: str, data_path: str | None, limit: int | None):
    """The model's metadata and its preprocessed test inputs and labels (a seeded subset of
    ``limit`` images when given). Raises DataError / FileNotFoundError / ValueError."""
    meta, ds = load_model_data(model_path, data, data_path)
    x, y = model_inputs(meta, ds), ds.y_test
    if limit:
        idx = subset_indices(len(y), limit)
        x, y = x[idx], y[idx]
    return meta, ds, x, y


def run_files(model_path: str, ds, limit: int | None, threads: int | None):
    """Logits and labels of the original test image files, each through
    ``xnor_edge.Model.preprocess`` (the package's decode + resize + crop + normalise)."""
    import xnor_edge

    if ds.test_files is None:
        raise DataError(f"--from-files needs a data set of image files; {ds.name} is not one")
    files, y, _ = split_files(*ds.test_files)
    if len(y) != len(ds.y_test) or not np.array_equal(y, ds.y_test):
        raise DataError(f"{ds.test_files[0]}: the test files do not match the decoded test set")
    if limit:
        idx = subset_indices(len(y), limit)
        files, y = [files[i] for i in idx], y[idx]
    t0 = time.perf_counter()
    with xnor_edge.load(model_path, num_threads=threads or 1) as m:
        logits = np.stack([np.asarray(m.run(m.preprocess(str(f)))).reshape(-1) for f in files])
    return logits, y, time.perf_counter() - t0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m xnor_train.evaluate", description=__doc__.split("\n")[0])
    p.add_argument("model", help="model file (.xnor)")
    p.add_argument("--data", required=True, choices=DATASETS)
    p.add_argument("--data-path", default=None)
    p.add_argument("--backend", choices=("c", "reference"), default="c")
    p.add_argument("--limit", type=int, default=None, help="a seeded random subset of N test images")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument(
        "--from-files",
        action="store_true",
        help="read the original test image files through the package's Model.preprocess (backend c)",
    )
    args = p.parse_args(argv)
    try:
        if args.from_files and args.backend != "c":
            raise ValueError("--from-files runs the package's pipeline: use --backend c")
        if args.from_files:  # the files are the inputs: no preprocessed copy of the test set
            _, ds = load_model_data(args.model, args.data, args.data_path)
            logits, y, secs = run_files(args.model, ds, args.limit, args.threads)
        else:
            _, ds, x, y = load_test_inputs(args.model, args.data, args.data_path, args.limit)
            logits, secs = run_all(Runner(args.model, args.backend, args.threads), x)
    except (DataError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    acc = float((logits.argmax(1) == y).mean())
    print(
        json.dumps(
            {
                "model": args.model,
                "data": ds.name,
                "n": int(len(y)),
                "backend": args.backend,
                "inputs": "files via Model.preprocess" if args.from_files else "decoded test set",
                "top1": round(acc, 4),
                "seconds": round(secs, 2),
                "ms_per_image": round(1000 * secs / len(y), 3),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
