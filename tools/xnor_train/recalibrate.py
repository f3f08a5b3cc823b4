"""Re-estimate a trained network's batch-norm statistics with its weights fixed.

    PYTHONPATH=tools:. python -m xnor_train.recalibrate RUN/last.pt RUN/recal.pt --data cifar10

Training keeps each BatchNorm's running mean and variance as an exponential moving
average (momentum 0.1) over the last few dozen augmented batches, taken while the
weights were still moving. In a binary network those statistics decide where every
sign flips, so their noise costs accuracy. This pass sets them to the plain average
over ``--batches`` batches of un-augmented training images (the test images'
framing: no crop offset, no flip) through the final weights. Nothing but the
running statistics changes, and no test image is used. The new checkpoint records
the command and the test top-1 before and after, for the model card.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn

from .data import DataError, Dataset, load_dataset, normalise
from .export import load_checkpoint
from .train import evaluate_torch


@torch.no_grad()
def recalibrate_bn(model: nn.Module, ds: Dataset, batches: int, batch_size: int = 128, seed: int = 0) -> int:
    """Replace every BatchNorm's running statistics by their average over ``batches``
    batches of training images (a seeded random sample, un-augmented). Returns the
    number of images used."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return 0
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over all batches seen
    perm = torch.randperm(len(ds.x_train), generator=torch.Generator().manual_seed(seed))
    n = min(len(perm), batches * batch_size)
    device = next(model.parameters()).device
    model.train()
    try:
        for i in range(0, n, batch_size):
            idx = perm[i : min(n, i + batch_size)]
            xb = _centre(torch.from_numpy(ds.x_train[idx.numpy()]), ds)
            model(normalise(xb.to(device), ds.mean, ds.std))
    finally:
        model.eval()
        for m, mom in zip(bns, momenta):
            m.momentum = mom
    return n


def _centre(xb: torch.Tensor, ds: Dataset) -> torch.Tensor:
    """The test framing of stored training images: the centre crop where they are stored
    larger than the input (Imagenette, photo folders), else as they are."""
    th, tw = ds.input_size
    h, w = xb.shape[1:3]
    oy, ox = (h - th) // 2, (w - tw) // 2
    return xb[:, oy : oy + th, ox : ox + tw]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m xnor_train.recalibrate", description=__doc__.split("\n")[0])
    p.add_argument("checkpoint", help="a training checkpoint (RUN/last.pt)")
    p.add_argument("out", help="the new checkpoint (export and card take it like any other)")
    p.add_argument("--data", required=True, help="the data set the checkpoint was trained on")
    p.add_argument("--data-path", default=None)
    p.add_argument("--batches", type=int, default=200, help="training batches to average over (default 200)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    if args.batches < 1 or args.batch_size < 1:
        p.error("--batches and --batch-size must be at least 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    command = "python -m xnor_train.recalibrate " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    try:
        model, ck = load_checkpoint(args.checkpoint)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if ck["data"]["name"] != args.data:
        print(
            f"error: {args.checkpoint} was trained on {ck['data']['name']!r}, not {args.data!r}",
            file=sys.stderr,
        )
        return 2
    try:
        ds = load_dataset(args.data, args.data_path, ck["data"]["input_size"][0])
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    device = torch.device("cpu")
    t0 = time.time()
    before = evaluate_torch(model, ds, device)
    used = recalibrate_bn(model, ds, args.batches, args.batch_size, args.seed)
    after = evaluate_torch(model, ds, device)
    print(
        f"batch-norm statistics from {used} training images: test top-1 {before * 100:.2f}% -> "
        f"{after * 100:.2f}% ({time.time() - t0:.0f} s)"
    )
    out = dict(ck)
    out["model"] = model.state_dict()
    out["commands"] = list(ck.get("commands", [ck.get("command")])) + [command]
    out["recalibrated"] = dict(images=used, test_acc_before=before, test_acc_after=after, command=command)
    out["test_acc"] = after
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    torch.save(out, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
