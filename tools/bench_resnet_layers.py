#!/usr/bin/env python3
"""Whole binary layers in the runtime versus float32 im2col + BLAS sgemm, in one run.

For each ResNet-18 binary layer shape (3x3, stride 1, pad 1) this builds a
one-layer model with the public builder: a bconv2d with K (XNOR-Net) that takes
the float input, so the timed work is the whole layer as a network runs it:
sign-packing, the K map, im2col of packed words, popcount GEMM and the float
epilogue. It is timed through the C runtime's own per-node clock (no Python
overhead) for each thread count, and compared with the same convolution in
float32: NumPy im2col + sgemm (OpenBLAS), with the BLAS thread count set in a
child process per thread count, measured in the same invocation.

    python tools/bench_resnet_layers.py                 # threads 1 and 2, best of 30
    python tools/bench_resnet_layers.py --threads 1,2,4 --repeats 50 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

LAYERS = [  # (name, H=W, C_in = C_out)
    ("conv2_x 56x56x64", 56, 64),
    ("conv3_x 28x28x128", 28, 128),
    ("conv4_x 14x14x256", 14, 256),
    ("conv5_x 7x7x512", 7, 512),
]


def _im2col(x, k=3, pad=1):
    import numpy as np

    h, w, c = x.shape
    xp = np.pad(x, ((pad, pad), (pad, pad), (0, 0)))
    cols = np.empty((h, w, k, k, c), dtype=x.dtype)
    for dy in range(k):
        for dx in range(k):
            cols[:, :, dy, dx, :] = xp[dy : dy + h, dx : dx + w, :]
    return cols.reshape(h * w, k * k * c)


def float_times(repeats: int) -> dict:
    """Best wall time (s) of im2col + sgemm and of sgemm alone per layer (runs in a child)."""
    import numpy as np

    rng = np.random.default_rng(0)
    out = {}
    for name, hw, c in LAYERS:
        x = rng.standard_normal((hw, hw, c), dtype=np.float32)
        wt = rng.standard_normal((9 * c, c), dtype=np.float32)
        best_all = best_gemm = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            cols = _im2col(x)
            t1 = time.perf_counter()
            np.matmul(cols, wt)
            t2 = time.perf_counter()
            best_all = min(best_all, t2 - t0)
            best_gemm = min(best_gemm, t2 - t1)
        out[name] = {"im2col_sgemm_s": best_all, "sgemm_s": best_gemm}
    return out


def binary_times(threads: list[int], repeats: int) -> dict:
    import numpy as np

    import xnor_edge
    from xnor_edge.builder import GraphBuilder

    rng = np.random.default_rng(0)
    out = {}
    for name, hw, c in LAYERS:
        g = GraphBuilder(input_shape=(hw, hw, c))
        w = rng.standard_normal((c, c, 3, 3)).astype(np.float32)
        scale = np.abs(w).mean(axis=(1, 2, 3)).astype(np.float32)
        g.bconv2d(g.input, w, scale, np.zeros(c, np.float32), stride=1, padding=1, use_k=True)
        model = xnor_edge.load(g.to_bytes())
        x = rng.standard_normal((hw, hw, c), dtype=np.float32)
        out[name] = {}
        for t in threads:
            with model.session(t) as s:
                s.run(x)  # warm-up: page in weights and buffers
                best = min(_timed(s, x) for _ in range(repeats))
            out[name][t] = best
        model.close()
    return out


def _timed(session, x) -> float:
    session.run(x)
    return sum(session.node_times_ns()) * 1e-9


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    ap.add_argument("--repeats", type=int, default=30, help="best of N runs (default 30)")
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--float-child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.float_child:
        json.dump(float_times(args.float_child), sys.stdout)
        return 0

    threads = [int(t) for t in args.threads.split(",")]
    floats = {}
    for t in threads:
        env = dict(os.environ, OPENBLAS_NUM_THREADS=str(t), OMP_NUM_THREADS=str(t), MKL_NUM_THREADS=str(t))
        res = subprocess.run(
            [sys.executable, __file__, "--float-child", str(args.repeats)],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        floats[t] = json.loads(res.stdout)
    binary = binary_times(threads, args.repeats)

    import xnor_edge

    print(f"kernels: {xnor_edge.kernel_isa()}   best of {args.repeats}   cpu cores: {os.cpu_count()}")
    hdr = (
        f"{'layer':<20} {'thr':>3} {'binary ms':>10} {'bin GMAC/s':>11} {'im2col+sgemm ms':>16} "
        f"{'sgemm ms':>9} {'speed-up':>9} {'vs sgemm only':>14}"
    )
    print(hdr)
    print("-" * len(hdr))
    rows = []
    for name, hw, c in LAYERS:
        macs = hw * hw * c * 9 * c
        for t in threads:
            b = binary[name][t]
            f = floats[t][name]
            row = {
                "layer": name,
                "threads": t,
                "binary_ms": b * 1e3,
                "binary_gmacs": macs / b / 1e9,
                "float_ms": f["im2col_sgemm_s"] * 1e3,
                "sgemm_ms": f["sgemm_s"] * 1e3,
                "speedup": f["im2col_sgemm_s"] / b,
                "speedup_vs_sgemm_only": f["sgemm_s"] / b,
            }
            rows.append(row)
            print(
                f"{name:<20} {t:>3} {row['binary_ms']:>10.3f} {row['binary_gmacs']:>11.1f} "
                f"{row['float_ms']:>16.3f} {row['sgemm_ms']:>9.3f} {row['speedup']:>8.1f}x "
                f"{row['speedup_vs_sgemm_only']:>13.1f}x"
            )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"kernels": xnor_edge.kernel_isa(), "rows": rows}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
