#!/usr/bin/env python3
"""Binary layer speed versus float32 im2col + OpenBLAS sgemm, single thread.

Runs the C kernel benchmark (runtime_c/bench/bench_layers, whole layer and
bgemm alone) and, in this same process, times NumPy float32 im2col + np.matmul
for the same ResNet-18 layers (3x3, stride 1, pad 1), then prints one table:
the ratio is binary speed / float speed (how many times faster the binary
layer is), from the best repetition of each (least disturbed by other load;
medians are shown too). OPENBLAS_NUM_THREADS=1 is set before NumPy is imported.

usage: tools/bench_vs_sgemm.py [--bench build-k/runtime_c/bench/bench_layers]
                               [--isa avx2,popcnt] [--min-time 0.3]
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

LAYERS = [(56, 56, 64, 64), (28, 28, 128, 128), (14, 14, 256, 256), (7, 7, 512, 512)]


def run_c_bench(path: str, isa: str | None, layer: int, bgemm_only: bool) -> dict:
    """Returns {(isa, layer): {key: value}} parsed from bench_layers' key=value lines."""
    cmd = [path, "--layer", str(layer)]
    if isa:
        cmd += ["--isa", isa]
    if bgemm_only:
        cmd.append("--bgemm-only")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    rows = {}
    for line in out.splitlines():
        if not line.startswith("isa="):
            continue
        kv = dict(tok.split("=", 1) for tok in line.split())
        rows[(kv["isa"], kv["layer"])] = kv
    if not rows:
        sys.exit(f"bench_vs_sgemm: no results parsed from {' '.join(cmd)}:\n{out}")
    return rows


def best_and_median(fn, min_time: float) -> tuple[float, float]:
    fn()  # warm-up
    times = []
    start = time.perf_counter()
    while len(times) < 5 or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.min(times)), float(np.median(times))


def float_layer(h: int, w: int, c: int, oc: int, min_time: float) -> tuple[tuple[float, float], ...]:
    """(best, median) seconds of (im2col + sgemm) and of sgemm alone for one float layer."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((h, w, c), dtype=np.float32)
    wt = rng.standard_normal((9 * c, oc), dtype=np.float32)
    xp = np.zeros((h + 2, w + 2, c), np.float32)
    cols = np.empty((h, w, 9, c), np.float32)
    out = np.empty((h * w, oc), np.float32)

    def im2col_sgemm():
        xp[1 : h + 1, 1 : w + 1] = x
        for t in range(9):
            dy, dx = divmod(t, 3)
            cols[:, :, t, :] = xp[dy : dy + h, dx : dx + w]
        np.matmul(cols.reshape(h * w, 9 * c), wt, out=out)

    flat = cols.reshape(h * w, 9 * c)

    def sgemm():
        np.matmul(flat, wt, out=out)

    return best_and_median(im2col_sgemm, min_time), best_and_median(sgemm, min_time)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bench", default="build-k/runtime_c/bench/bench_layers", help="bench_layers executable")
    ap.add_argument("--isa", default=None, help="comma-separated kernel tables (default: all available)")
    ap.add_argument("--min-time", type=float, default=0.3, help="seconds per float measurement")
    args = ap.parse_args()

    print(f"numpy {np.__version__}, OPENBLAS_NUM_THREADS=1; binary = {args.bench}")
    print(
        "times: best of the repetitions (median in brackets); "
        "ratio = float time / binary time, from the bests"
    )
    head = (
        f"{'layer':<16} {'isa':<7} {'float im2col+sgemm':>19} {'binary layer':>17} {'ratio':>6}"
        f" {'float sgemm':>17} {'bgemm':>17} {'ratio':>6} {'GMAC/s':>7}"
    )
    print(head)
    print("-" * len(head))
    # Per layer, binary then float back to back, so both see the same machine load.
    for index, (h, w, c, oc) in enumerate(LAYERS):
        name = f"{h}x{w}x{c}->{oc}"
        layer_rows = run_c_bench(args.bench, args.isa, index, False)
        bgemm_rows = run_c_bench(args.bench, args.isa, index, True)
        isas = list(dict.fromkeys(isa for isa, _ in layer_rows))
        (fl_best, fl_med), (fg_best, fg_med) = float_layer(h, w, c, oc, args.min_time)
        for isa in isas:
            lr, br = layer_rows.get((isa, name)), bgemm_rows.get((isa, name))
            if lr is None or br is None:
                continue
            bl_best, bl_med = float(lr["min_ms"]) * 1e-3, float(lr["ms"]) * 1e-3
            bg_best, bg_med = float(br["min_ms"]) * 1e-3, float(br["ms"]) * 1e-3
            macs = float(lr["macs"])

            def ms(best: float, med: float) -> str:
                return f"{best * 1e3:7.3f} ({med * 1e3:6.3f})"

            print(
                f"{name:<16} {isa:<7} {ms(fl_best, fl_med):>19} {ms(bl_best, bl_med):>17}"
                f" {fl_best / bl_best:5.1f}x"
                f" {ms(fg_best, fg_med):>17} {ms(bg_best, bg_med):>17} {fg_best / bg_best:5.1f}x"
                f" {macs / bl_best * 1e-9:7.1f}"
            )


if __name__ == "__main__":
    main()
