"""Training-step time of a binary net in several modes (plain float32, torch.compile,
bfloat16 autocast, both), measured in one run.

    python tools/bench_train_step.py --arch vgg-small --width 32 \
        --variant xnor --threads 1 --modes plain,compiled,bf16

Times forward + backward + Adam step on a random batch (the data pipeline is not
included), alternating the modes' rounds so machine noise hits all of them, and
prints the median step time of each and its speed-up over the first mode. This is
what ``train --compile`` and ``train --amp bf16`` buy; compile time itself is
excluded (warm-up steps).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn as nn
from xnor_train.models import ARCHS, VARIANTS, build_model

MODES = ("plain", "compiled", "bf16", "compiled+bf16")


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
    p.add_argument(
        "--modes",
        default="plain,compiled",
        help=f"comma-separated, from {', '.join(MODES)}; speed-ups are against the first",
    )
    args = p.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        p.error(f"--modes: unknown {bad or modes}; choose from {', '.join(MODES)}")
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
    for name in modes:
        model = build_model(cfg).train()
        opt = torch.optim.Adam(model.parameters(), 1e-4)
        fwd = torch.compile(model) if "compiled" in name else model
        runs[name] = (fwd, opt, "bf16" in name)

    def step(fwd, opt, bf16):  # what train.py does per step
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = fwd(x)
        crit(out.float(), y).backward()
        opt.step()

    for run in runs.values():  # warm-up (and compilation)
        for _ in range(3):
            step(*run)
    times = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, run in runs.items():
            t = time.perf_counter()
            for _ in range(args.steps):
                step(*run)
            times[name].append((time.perf_counter() - t) / args.steps)
    med = {name: statistics.median(v) for name, v in times.items()}
    print(
        f"{args.arch} width {args.width} {args.variant}, batch {args.batch_size}, "
        f"{args.threads} thread(s), median of {args.rounds} rounds x {args.steps} steps"
    )
    base = med[modes[0]]
    for name, t in med.items():
        print(
            f"  {name:14s} {t * 1000:8.1f} ms/step  {args.batch_size / t:7.0f} img/s  "
            f"{base / t:5.2f}x vs {modes[0]}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
