"""Two builds of the library side by side: whole binary layers and shipped models, in one run.

Each round starts a fresh process per build, in shuffled order; each process times the four
ResNet-18 binary layer shapes (a one-layer bconv2d + K model, the C node clock, 1 thread, as
tools/bench_resnet_layers.py builds them) and the shipped ResNet-18, CIFAR and MNIST XNOR
models (wall time of Session.run, 1 and 2 threads); medians over rounds and the ratio.
Used to check a change for speed regressions (docs/contributing.md):

    python3 tools/bench_ab_libraries.py OLD_LIB OLD_PKG NEW_LIB NEW_PKG --rounds 9

where *_LIB is a built libxnor_edge.so and *_PKG the checkout whose xnor_edge package binds it
(e.g. a `git worktree add /tmp/old <commit>` and its build). Run it with a Python that has
numpy, cffi, pyyaml and pillow but no editable xnor-edge install (an editable install
would shadow PYTHONPATH).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
from pathlib import Path

MODELS = str(Path(__file__).resolve().parent.parent / "models")

CHILD = r"""
import json, sys, time, numpy as np, xnor_edge
from xnor_edge.builder import GraphBuilder
res = {}
rng = np.random.default_rng(0)
N = 25
SHAPES = [("56x56x64", 56, 64), ("28x28x128", 28, 128), ("14x14x256", 14, 256), ("7x7x512", 7, 512)]
for name, hw, c in SHAPES:
    g = GraphBuilder(input_shape=(hw, hw, c))
    w = rng.standard_normal((c, c, 3, 3)).astype(np.float32)
    alpha = np.abs(w).mean(axis=(1, 2, 3)).astype(np.float32)
    g.bconv2d(g.input, w, alpha, np.zeros(c, np.float32), stride=1, padding=1, use_k=True)
    m = xnor_edge.load(g.to_bytes()); x = rng.standard_normal((hw, hw, c), dtype=np.float32)
    s = m.session(1); s.run(x)
    ts = []
    for _ in range(N):
        s.run(x); ts.append(sum(s.node_times_ns()))
    res["layer " + name] = float(np.median(ts))
NETS = [("imagenette-resnet18-xnor", "resnet18-96"), ("cifar10-vggsmall-xnor", "cifar-xnor"),
        ("mnist-digits-xnor", "mnist-xnor")]
for file, tag in NETS:
    m = xnor_edge.load(MODELS + "/" + file + ".xnor")
    x = rng.standard_normal(m.input_shape).astype(np.float32)
    for t in (1, 2):
        s = m.session(t)
        for _ in range(5): s.run(x)
        ts = []
        for _ in range(N):
            t0 = time.perf_counter_ns(); s.run(x); ts.append(time.perf_counter_ns() - t0)
        res[f"{tag} {t}thr"] = float(np.median(ts))
print(json.dumps(res))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old_lib")
    ap.add_argument("old_pkg")
    ap.add_argument("new_lib")
    ap.add_argument("new_pkg")
    ap.add_argument("--rounds", type=int, default=9)
    args = ap.parse_args()
    builds = {"old": (args.old_lib, args.old_pkg), "new": (args.new_lib, args.new_pkg)}
    acc: dict = {k: {} for k in builds}
    code = CHILD.replace("MODELS", repr(MODELS))
    for _ in range(args.rounds):
        order = list(builds)
        random.shuffle(order)
        for k in order:
            lib, pkg = builds[k]
            env = {"XE_LIBRARY": lib, "PYTHONPATH": pkg, "PATH": "/usr/bin:/bin"}
            out = subprocess.run(
                [sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd="/"
            )
            if out.returncode:
                print(out.stderr, file=sys.stderr)
                return 1
            for key, v in json.loads(out.stdout).items():
                acc[k].setdefault(key, []).append(v)
    cpu = Path("/proc/cpuinfo").read_text().split("model name")[1].split("\n")[0].strip(": \t")
    print(f"CPU: {cpu}; {args.rounds} rounds; medians")
    print(f"{'case':<22}{'old ms':>9}{'new ms':>9}{'old/new':>9}")
    for key in acc["old"]:
        o, n = statistics.median(acc["old"][key]) / 1e6, statistics.median(acc["new"][key]) / 1e6
        print(f"{key:<22}{o:>9.3f}{n:>9.3f}{o / n:>9.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
