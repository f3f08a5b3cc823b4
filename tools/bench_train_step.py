"""Training-step time of a binary net, plain PyTorch vs torch.compile, in one run.

    PYTHONPATH=tools:. python tools/bench_train_step.py --arch vgg-small --width 32 \
        --variant xnor --threads 1

Times forward + backward + Adam step on a random batch (the data pipeline is not
included), alternating plain and compiled rounds so machine noise hits both, and
prints the median step time of each and their ratio. This is what
``train --compile`` buys; compile time itself is excluded (warm-up steps).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn as nn
from xnor_train.models import ARCHS, VARIANTS, build_model


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arch", choices=ARCHS, default="vgg-small")
    p.add_argument("--variant", choices=VARIANTS, default="xnor")
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--input-size", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=5, help="steps per round")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    in_ch = 1 if args.arch == "digits" else 3
    size = 28 if args.arch == "digits" else args.input_size
    cfg = dict(
        arch=args.arch, variant=args.variant, width=args.width, order="bacp", alpha_mode="mean",
        pad_mode="zero", in_ch=in_ch, num_classes=10, input_size=size,
    )  # fmt: skip
    x = torch.randn(args.batch_size, in_ch, size, size)
    y = torch.randint(0, 10, (args.batch_size,))
    crit = nn.CrossEntropyLoss()
    runs = {}
    for name in ("plain", "compiled"):
        model = build_model(cfg).train()
        opt = torch.optim.Adam(model.parameters(), 1e-4)
        fwd = torch.compile(model) if name == "compiled" else model
        runs[name] = (fwd, opt)

    def step(fwd, opt):
        opt.zero_grad(set_to_none=True)
        crit(fwd(x), y).backward()
        opt.step()

    for fwd, opt in runs.values():  # warm-up (and compilation)
        for _ in range(3):
            step(fwd, opt)
    times = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, (fwd, opt) in runs.items():
            t = time.perf_counter()
            for _ in range(args.steps):
                step(fwd, opt)
            times[name].append((time.perf_counter() - t) / args.steps)
    med = {name: statistics.median(v) for name, v in times.items()}
    print(
        f"{args.arch} width {args.width} {args.variant}, batch {args.batch_size}, "
        f"{args.threads} thread(s), median of {args.rounds} rounds x {args.steps} steps"
    )
    for name, t in med.items():
        print(f"  {name:8s} {t * 1000:8.1f} ms/step  {args.batch_size / t:7.0f} img/s")
    print(f"  compiled speed-up: {med['plain'] / med['compiled']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
