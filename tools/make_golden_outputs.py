"""Writes tests/data/golden_outputs.json: the logits of every shipped model on fixed inputs.

The stored outputs pin the runtime's arithmetic: tests/test_golden_outputs.py checks that every
kernel set at 1-4 threads reproduces them bit for bit, so a refactor or a new kernel that changes
a single bit of any shipped model's output fails. Regenerate only when a change of the numbers is
intended (and say so in the commit):

    python tools/make_golden_outputs.py            # with the library under test importable
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np

import xnor_edge

ROOT = Path(__file__).resolve().parent.parent
SEEDS = (0, 1, 2)


def golden_inputs(shape: tuple[int, int, int]) -> list[np.ndarray]:
    """Fixed inputs: standard normal, a scaled copy, and uniform non-negative (post-ReLU-like)."""
    out = []
    for s in SEEDS:
        rng = np.random.default_rng(1000 + s)
        if s == 2:
            out.append(rng.uniform(0.0, 2.0, size=shape).astype(np.float32))
        else:
            out.append((rng.standard_normal(shape) * (1.0 + 2.0 * s)).astype(np.float32))
    return out


def digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a, dtype=np.float32).tobytes()).hexdigest()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--out", default=str(ROOT / "tests" / "data" / "golden_outputs.json"))
    args = ap.parse_args()
    models = sorted(p for p in (ROOT / "models").glob("*.xnor") if p.name != "default.xnor")
    record: dict = {"library": xnor_edge.library_version(), "models": {}}
    for path in models:
        entries = []
        for x in golden_inputs(xnor_edge.load(str(path)).input_shape):
            outs = {}
            for isa in xnor_edge.available_isas():
                xnor_edge.set_kernel_isa(isa)
                for threads in (1, 2, 3, 4):
                    m = xnor_edge.load(str(path), num_threads=threads)
                    outs[(isa, threads)] = m.run(x)
                    m.close()
            xnor_edge.set_kernel_isa("auto")
            first = next(iter(outs.values()))
            for key, y in outs.items():
                if not np.array_equal(y.view(np.uint32), first.view(np.uint32)):
                    raise SystemExit(f"{path.name}: {key} differs from the first kernel set")
            entries.append({"input_sha256": digest(x), "output": [float(v).hex() for v in first.ravel()]})
        record["models"][path.name] = entries
        print(f"{path.name}: {len(entries)} inputs, {len(outs)} kernel-set/thread combinations agree")
    Path(args.out).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
