#!/usr/bin/env python3
"""Kernel sets side by side through the runtime, in one run: whole networks and whole layers.

Each (case, kernel set, thread count) is a session of its own, made with
``model.session(threads, kernel_isa=set)`` in this one process (a pool's workers park
between inferences, so idle sessions cost nothing). Rounds visit every such triple in a
new shuffled order, so slow phases of a shared machine fall on every set alike; each
visit runs a fixed number of inferences (calibrated to about --visit-s in the warm-up).
The report gives, per triple, the median over all inferences of the runtime's own clock
(sum of the per-node times, no Python overhead) and of the wall time, and the ratio of
each set to the first one listed, and the 10th percentile of the runtime clock. On a shared
machine preemption lifts the medians of both clocks (a longer inference is preempted more
often); at one thread the report also gives the median CPU time of the calling thread, which
runs the whole inference and is not charged while preempted (the ratio then uses it).
Outputs are compared bit for bit across sets.

Cases: ``resnet18-96`` (the shipped ResNet-18 XNOR, 96 px), ``resnet18-224`` (the same
layout at 224 px, random weights, needs the [train] extra), ``layers`` (one whole binary
layer, 3x3 s1 p1 with K, on the four ResNet-18 shapes: sign-pack, K map, im2col, popcount
GEMM, epilogue).

    python tools/bench_kernel_sets.py --isas avx2,avx512 --threads 1,2 --rounds 15
    python tools/bench_kernel_sets.py --cases layers --threads 1 --json out.json
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

import xnor_edge

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "models" / "imagenette-resnet18-xnor.xnor"
LAYERS = [(56, 64), (28, 128), (14, 256), (7, 512)]  # (H = W, C_in = C_out)


def cpu_line() -> str:
    model, flags = platform.processor() or platform.machine(), []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, val = line.partition(":")
            if key.strip() == "model name":
                model = val.strip()
            elif key.strip() == "flags":
                flags = sorted(f for f in val.split() if f == "avx2" or f.startswith("avx512"))
                break
        load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        load = "?"
    return f"{model}; {len(flags)} AVX flags: {' '.join(flags)}; load average {load}"


def build_cases(names: list[str], workdir: Path) -> dict[str, Path]:
    cases: dict[str, Path] = {}
    for name in names:
        if name == "resnet18-96":
            cases[name] = SHIPPED
        elif name == "resnet18-224":
            import torch
            from xnor_train.export import export_model
            from xnor_train.models import build_model

            with xnor_edge.load(SHIPPED) as m:
                cfg = dict(m.metadata["training"]["arch"], input_size=224)
            torch.manual_seed(0)
            xm = build_model(dict(cfg, variant="xnor")).eval()
            cases[name] = workdir / "resnet18-224.xnor"
            export_model(xm, (224, 224, cfg["in_ch"])).save(cases[name])
        elif name == "layers":
            from xnor_edge.builder import GraphBuilder

            for hw, c in LAYERS:
                rng = np.random.default_rng(0)
                g = GraphBuilder(input_shape=(hw, hw, c))
                w = rng.standard_normal((c, c, 3, 3)).astype(np.float32)
                scale = np.abs(w).mean(axis=(1, 2, 3)).astype(np.float32)
                g.bconv2d(g.input, w, scale, np.zeros(c, np.float32), stride=1, padding=1, use_k=True)
                path = workdir / f"layer-{hw}x{hw}x{c}.xnor"
                g.save(path)
                cases[f"layer {hw}x{hw}x{c}"] = path
        else:
            raise SystemExit(f"unknown case {name!r}: choose from resnet18-96, resnet18-224, layers")
    return cases


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--isas", default="avx2,avx512", help="comma list; ratios are to the first")
    ap.add_argument("--threads", default="1,2", help="comma list of thread counts")
    ap.add_argument("--cases", default="layers,resnet18-96,resnet18-224", help="comma list")
    ap.add_argument("--rounds", type=int, default=15, help="shuffled rounds (default 15)")
    ap.add_argument("--visit-s", type=float, default=0.1, help="seconds per visit (default 0.1)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the shuffled order")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args(argv)
    isas, threads = args.isas.split(","), [int(t) for t in args.threads.split(",")]
    missing = [i for i in isas if i not in xnor_edge.available_isas()]
    if missing:
        raise SystemExit(f"this CPU lacks {missing}; it offers {xnor_edge.available_isas()}")
    print(f"# CPU: {cpu_line()}")
    print(f"# xnor-edge {xnor_edge.library_version()}, sets {isas}, threads {threads}, rounds {args.rounds}")
    with tempfile.TemporaryDirectory() as tmp:
        cases = build_cases(args.cases.split(","), Path(tmp))
        models = {c: xnor_edge.load(p) for c, p in cases.items()}
        keys, sess, reps, outs = [], {}, {}, {}
        for c, m in models.items():
            x = np.random.default_rng(1).standard_normal(m.input_shape).astype(np.float32)
            for isa in isas:
                for t in threads:
                    s = m.session(t, kernel_isa=isa)
                    out = np.empty(m.output_shape, np.float32)
                    t0 = time.perf_counter()
                    s.run(x, out=out)
                    n = 1
                    while time.perf_counter() - t0 < 0.2 or n < 3:  # warm-up and calibration
                        s.run(x, out=out)
                        n += 1
                    per = (time.perf_counter() - t0) / n
                    keys.append((c, isa, t))
                    sess[keys[-1]] = (s, x, out)
                    reps[keys[-1]] = max(1, int(args.visit_s / per))
                    outs.setdefault(c, out.copy())
                    if not np.array_equal(out.view(np.uint32), outs[c].view(np.uint32)):
                        raise SystemExit(f"{c}: {isa} at {t} threads differs from {isas[0]}")
        clock = {k: [] for k in keys}
        wall = {k: [] for k in keys}
        cpu = {k: [] for k in keys}
        order = list(keys)
        rng = random.Random(args.seed)
        for _ in range(args.rounds):
            rng.shuffle(order)
            for k in order:
                s, x, out = sess[k]
                for _ in range(reps[k]):
                    c0, t0 = time.thread_time_ns(), time.perf_counter_ns()
                    s.run(x, out=out)
                    wall[k].append(time.perf_counter_ns() - t0)
                    cpu[k].append(time.thread_time_ns() - c0)
                    clock[k].append(sum(s.node_times_ns()))
        for m in models.values():
            m.close()
    print(f"# load average after: {Path('/proc/loadavg').read_text().split()[:3]}")
    rows = []
    head = " ".join(f"{i + ' ms':>11} {'cpu':>8} {'wall':>8} {'p10':>8}" for i in isas)
    print(f"{'case':<20} {'thr':>3} {head}  ratios (runtime clock medians; cpu; p10)")
    for c in cases:
        for t in threads:
            med = {i: statistics.median(clock[(c, i, t)]) / 1e6 for i in isas}
            medw = {i: statistics.median(wall[(c, i, t)]) / 1e6 for i in isas}
            p10 = {i: float(np.percentile(clock[(c, i, t)], 10)) / 1e6 for i in isas}
            # At one thread the calling thread does all the work: its CPU time excludes preemption.
            cpum = {i: statistics.median(cpu[(c, i, t)]) / 1e6 if t == 1 else None for i in isas}
            a = isas[0]
            ratios = []
            for i in isas[1:]:
                r = f"{a}/{i} {med[a] / med[i]:.2f}x"
                if t == 1:
                    r += f"; {cpum[a] / cpum[i]:.2f}x"
                ratios.append(r + f"; {p10[a] / p10[i]:.2f}x")
            cells = " ".join(
                f"{med[i]:>11.3f} {cpum[i] if t == 1 else float('nan'):>8.3f} {medw[i]:>8.3f} {p10[i]:>8.3f}"
                for i in isas
            )
            print(f"{c:<20} {t:>3} {cells}  {' '.join(ratios)}")
            rows.append(
                {
                    "case": c,
                    "threads": t,
                    "median_ms": med,
                    "median_thread_cpu_ms": cpum,
                    "median_wall_ms": medw,
                    "p10_ms": p10,
                    "samples": {i: len(clock[(c, i, t)]) for i in isas},
                }
            )
    if args.json:
        Path(args.json).write_text(json.dumps({"cpu": cpu_line(), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
