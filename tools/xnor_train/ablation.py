"""Short ablation runs in the spirit of the paper's Table 3, printed as a Markdown table.

    python -m xnor_train.ablation --data fashion-mnist --data-path /usr/share/datasets/fashion-mnist \
        --epochs 3 --width 32 --out RUN

Every row is one ``xnor_train.train`` run with the same seed, data, epochs and
optimiser; only the named setting changes.  The figure is PyTorch test top-1 of
the last epoch on the full test set.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import train

ROWS = [
    ("float (full precision)", ["--variant", "float"]),
    ("BWN (binary weights)", ["--variant", "bwn"]),
    ("XNOR, K, B-A-C-P, alpha eq.6 (default)", ["--variant", "xnor"]),
    ("XNOR without K", ["--variant", "xnor-nok"]),
    ("XNOR, C-B-A-P order", ["--variant", "xnor", "--order", "cbap"]),
    ("XNOR, alpha learned", ["--variant", "xnor", "--alpha-mode", "learned"]),
    ("XNOR, +1 padding", ["--variant", "xnor", "--pad-mode", "one"]),
    ("BWN, alpha learned", ["--variant", "bwn", "--alpha-mode", "learned"]),
]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m xnor_train.ablation", description=__doc__.split("\n")[0])
    p.add_argument("--data", default="fashion-mnist", choices=("mnist", "fashion-mnist"))
    p.add_argument("--data-path", default=None)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--only", default=None, help="comma-separated row numbers (0-based)")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    out = Path(args.out).expanduser()
    rows = list(enumerate(ROWS))
    if args.only:
        keep = {int(i) for i in args.only.split(",")}
        rows = [r for r in rows if r[0] in keep]
    results = []
    for i, (label, extra) in rows:
        run = out / f"row{i}"
        base = [
            "--data",
            args.data,
            "--arch",
            "digits",
            "--width",
            str(args.width),
            "--epochs",
            str(args.epochs),
            "--batch-size",
            "128",
            "--optimizer",
            "adam",
            "--lr",
            "1e-3",
            "--schedule",
            "cosine",
            "--seed",
            "0",
            "--threads",
            str(args.threads),
            "--device",
            "cpu",
            "--out",
            str(run),
        ]
        if args.data_path:
            base += ["--data-path", args.data_path]
        if not (run / "last.pt").exists():
            rc = train.main(base + extra)
            if rc:
                return rc
        hist = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        results.append((label, " ".join(extra), hist[-1]["test_acc"], hist[-1]["wall_s"]))
    lines = [
        f"| setting | flags | top-1 ({args.data}, {args.epochs} epochs, width {args.width}) | wall s |",
        "|---|---|---|---|",
    ]
    lines += [f"| {lab} | `{fl}` | {acc * 100:.2f}% | {w:.0f} |" for lab, fl, acc, w in results]
    table = "\n".join(lines)
    (out / "ablation.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
