"""Parity of an exported model (C runtime) with its PyTorch checkpoint over a whole test set.

    python -m xnor_train.parity RUN/best.pt models/mnist-digits-xnor.xnor --data mnist --data-path DATA/mnist

Reports top-1 agreement (exit status 1 below --floor, default 0.999), both top-1
accuracies, and the max / mean absolute logit difference.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch

from .data import DATASETS, DataError
from .evaluate import Runner, load_test_inputs, run_all
from .export import load_checkpoint


@torch.no_grad()
def torch_logits(model, x_nhwc: np.ndarray, batch: int = 500, dtype=torch.float32) -> np.ndarray:
    model = model.to(dtype)
    outs = []
    for i in range(0, len(x_nhwc), batch):
        xb = torch.from_numpy(x_nhwc[i : i + batch]).permute(0, 3, 1, 2).contiguous().to(dtype)
        outs.append(model(xb).double().numpy())
    model.float()
    return np.concatenate(outs)


def compare(a: np.ndarray, b: np.ndarray, y: np.ndarray | None = None) -> dict:
    d = np.abs(a.astype(np.float64) - b.astype(np.float64))
    res = {
        "n": int(len(a)),
        "top1_agreement": float((a.argmax(1) == b.argmax(1)).mean()),
        "max_abs_logit_diff": float(d.max()),
        "mean_abs_logit_diff": float(d.mean()),
        "logit_range": float(np.abs(b).max()),
    }
    if y is not None:
        res["top1_runtime"] = float((a.argmax(1) == y).mean())
        res["top1_torch"] = float((b.argmax(1) == y).mean())
    return res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m xnor_train.parity", description=__doc__.split("\n")[0])
    p.add_argument("checkpoint")
    p.add_argument("model", help="the .xnor exported from the checkpoint")
    p.add_argument("--data", required=True, choices=DATASETS)
    p.add_argument("--data-path", default=None)
    p.add_argument("--backend", choices=("c", "reference"), default="c")
    p.add_argument("--limit", type=int, default=None, help="a seeded random subset of N test images")
    p.add_argument("--floor", type=float, default=0.999)
    p.add_argument(
        "--torch-dtype",
        choices=("float32", "float64"),
        default="float32",
        help="float64 separates the runtime's error from PyTorch's own float32 rounding",
    )
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        _, _, x, y = load_test_inputs(args.model, args.data, args.data_path, args.limit)
        model, _ = load_checkpoint(args.checkpoint)
        runner = Runner(args.model, args.backend, args.threads)
    except (DataError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    rt, secs = run_all(runner, x)
    res = compare(rt, torch_logits(model, x, dtype=getattr(torch, args.torch_dtype)), y)
    res.update(
        backend=args.backend,
        torch_dtype=args.torch_dtype,
        runtime_seconds=round(secs, 2),
        floor=args.floor,
        ok=res["top1_agreement"] >= args.floor,
    )
    print(json.dumps(res))
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
