#!/usr/bin/env python3
"""ESTIMATED single-thread latency of a model on a Raspberry Pi 4 / Pi 5, from
instruments this repository has without a Pi (docs/arm.md, "Estimated Pi
latency"). It is a model, not a measurement: no Pi was used.

Per layer of the model (xnor_edge's layer table), on the aarch64 build
(neon-a64 kernels):

* bconv2d, binary GEMM: our micro-kernel's inner loop under llvm-mca
  (tools/neon_mca.py: cycles per 4-row x 8-column x 128-bit step) for every
  step of every 4 x 8 tile (k rounded up to 4 words, rows to 4, columns to
  8), plus each tile's instructions outside the loop (tile set-up, k tail
  loads, widening, stores, driver), counted under qemu
  (tools/qemu_icount.sh: bgemm instructions of bench_layers' layer with the
  same input channels minus its loop instructions, per tile), run at the
  loop's IPC.
* bconv2d, the rest of the layer (sign-pack, K map, im2col of the packed
  words, the float epilogue): instructions per output from qemu (bench_layers'
  whole layer minus its bgemm, same input channels) at an assumed IPC
  (--glue-ipc: 1.5 on the 3-wide A72, 2.0 on the 4-wide A76).
* conv2d and dense (float): the float GEMM's inner loop under llvm-mca
  (sgemm_4x16_a64, cycles per float MAC) times MACs, plus im2col at
  --im2col-cycles per float copied (1.0).
* everything else (batchnorm, add, relu, pools, ...): --elem-cycles per
  output element (1.0; global pooling per input element).

Not modelled: caches and DRAM (llvm-mca assumes L1 hits; the largest packed
binary weights, 288 KiB, fit the Pi 4's 1 MiB L2 and the Pi 5's 512 KiB L2),
frequency throttling, the OS, Python. Clocks: Pi 4 at 1.5 GHz (boards before
2021) and 1.8 GHz (later firmware and the Pi 400), Pi 5 at 2.4 GHz. The Pi 5's
Cortex-A76 is modelled by llvm-mca's neoverse-n1 (see tools/neon_mca.py).

usage: tools/pi_estimate.py [--sizes 96 224] [--build build-k-a64] [--json]
  Needs what tools/qemu_icount.sh and tools/neon_mca.py need (aarch64 cross
  gcc, qemu-user, llvm-19) and the Python package (xnor_edge; the 224 px
  variant is built with random weights by xnor_train, as tools/bench_peers.py
  does, so torch).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import neon_mca  # tools/ is this script's directory, first on sys.path

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "models" / "imagenette-resnet18-xnor.xnor"
CPUS = {  # llvm-mca CPU -> boards and clocks (GHz)
    "cortex-a72": [("Pi 4 @ 1.5 GHz", 1.5), ("Pi 4 @ 1.8 GHz", 1.8)],
    "neoverse-n1": [("Pi 5 @ 2.4 GHz", 2.4)],
}
GLUE_IPC = {"cortex-a72": 1.5, "neoverse-n1": 2.0}
MR, NR, KR = 4, 8, 4  # the neon-a64 bgemm tile (kernels__neon_a64.c)
BENCH_SHAPES = {64: (56, 56, 64), 128: (28, 28, 128), 256: (14, 14, 256), 512: (7, 7, 512)}


def qemu_counts(n: int) -> dict:
    """{(part, in_channels): instructions per rep} from tools/qemu_icount.sh a64."""
    out = subprocess.run(
        [str(ROOT / "tools" / "qemu_icount.sh"), "a64", str(n)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    counts = {}
    for line in out.splitlines():
        m = re.match(r"neon-a64\s+(layer|bgemm)\s+(\d+)x(\d+)x(\d+)->(\d+)\s+insns/rep=\s*(\d+)", line)
        if m:
            counts[(m.group(1), int(m.group(4)))] = float(m.group(6))
    if len(counts) != 8:
        sys.exit(f"pi_estimate: unexpected qemu_icount.sh output:\n{out}")
    return counts


def bench_geometry(c: int) -> tuple[int, int, int]:
    """(rows M, columns N, k words) of bench_layers' layer with c channels (3x3, pad 1)."""
    h, w, ch = BENCH_SHAPES[c]
    return h * w, ch, 9 * math.ceil(ch / 32)


def tiles_steps(m: int, n: int, kw: int) -> tuple[int, int]:
    return math.ceil(m / MR) * math.ceil(n / NR), math.ceil(kw / KR)


def kernel_figures(build: Path) -> dict:
    obj = build / "runtime_c/CMakeFiles/xnor_edge_kernels.dir/src/kernels/kernels__neon_a64.c.o"
    if not obj.exists():
        sys.exit(f"pi_estimate: {obj} missing (tools/qemu_icount.sh a64 builds it)")
    cpus = list(CPUS)
    b = neon_mca.analyse(str(obj), "bgemm_4x8_a64", cpus)
    s = neon_mca.analyse(str(obj), "sgemm_4x16_a64", cpus, ops_kind="fmla")
    steps_per_iter = b["macs_per_iter"] / (MR * NR * 128)
    return {
        "bgemm_loop_instr_per_step": b["instructions_per_iter"] / steps_per_iter,
        "bgemm_cycles_per_step": {c: r["cycles_per_iter"] / steps_per_iter for c, r in b["cpus"].items()},
        "bgemm_loop_ipc": {c: r["ipc"] for c, r in b["cpus"].items()},
        "sgemm_cycles_per_mac": {c: r["cycles_per_mac"] for c, r in s["cpus"].items()},
    }


def layer_table(size: int, workdir: Path) -> tuple[list[dict], dict]:
    import xnor_edge

    path = MODEL
    if size != 96:
        import torch
        from xnor_train.export import export_model
        from xnor_train.models import build_model

        with xnor_edge.load(MODEL) as m:
            cfg = dict(m.metadata["training"]["arch"], input_size=size)
        torch.manual_seed(0)
        xm = build_model(dict(cfg, variant="xnor")).eval()
        path = workdir / f"resnet18-{size}.xnor"
        export_model(xm, (size, size, cfg["in_ch"])).save(path)
    with xnor_edge.load(path) as m:
        info = m.info()
    return info["layers"], {"macs": info["macs"], "binary_macs": info["binary_macs"]}


def estimate(layers: list[dict], kf: dict, counts: dict, args) -> dict:
    """Cycles per CPU model, split into parts."""
    parts = {c: {"binary_gemm": 0.0, "binary_glue": 0.0, "float_gemm": 0.0, "other": 0.0} for c in CPUS}
    i_step = kf["bgemm_loop_instr_per_step"]
    for lay in layers:
        op, (oh, ow, oc) = lay["op"], lay["out_shape"]
        ih, iw, ic = lay["in_shape"]
        kh, kw_ = lay["kernel"]
        if op == "bconv2d":
            c_b = min(BENCH_SHAPES, key=lambda c: abs(c - ic))  # same channels in ResNet-18
            mb, nb, kb = bench_geometry(c_b)
            tb, sb = tiles_steps(mb, nb, kb)
            over_instr = (counts[("bgemm", c_b)] - tb * sb * i_step) / tb
            glue_per_out = (counts[("layer", c_b)] - counts[("bgemm", c_b)]) / (mb * nb)
            t, s = tiles_steps(oh * ow, oc, kh * kw_ * math.ceil(ic / 32))
            for c in CPUS:
                parts[c]["binary_gemm"] += t * (
                    s * kf["bgemm_cycles_per_step"][c] + over_instr / kf["bgemm_loop_ipc"][c]
                )
                parts[c]["binary_glue"] += glue_per_out * oh * ow * oc / GLUE_IPC[c] * args.glue_ipc_scale
        elif op in ("conv2d", "dense"):
            for c in CPUS:
                parts[c]["float_gemm"] += lay["macs"] * kf["sgemm_cycles_per_mac"][c]
                direct = (kh, kw_) == (1, 1) and tuple(lay["stride"]) == (1, 1)
                if op == "conv2d" and not direct:
                    parts[c]["float_gemm"] += oh * ow * kh * kw_ * ic * args.im2col_cycles
        else:
            elems = ih * iw * ic if op.startswith("global") else oh * ow * oc
            for c in CPUS:
                parts[c]["other"] += elems * args.elem_cycles
    return parts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[96, 224])
    ap.add_argument("--build", type=Path, default=ROOT / "build-k-a64")
    ap.add_argument("--reps", type=int, default=2, help="qemu_icount.sh N")
    ap.add_argument("--glue-ipc-scale", type=float, default=1.0, help="multiplies the glue cycles")
    ap.add_argument("--im2col-cycles", type=float, default=1.0, help="cycles per float im2col copies")
    ap.add_argument("--elem-cycles", type=float, default=1.0, help="cycles per element, other ops")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    counts = qemu_counts(args.reps)
    kf = kernel_figures(args.build)
    result = {
        "kernel_figures": kf,
        "qemu_instructions_per_rep": {f"{p} C={c}": v for (p, c), v in counts.items()},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            layers, totals = layer_table(size, Path(tmp))
            parts = estimate(layers, kf, counts, args)
            rows = []
            for cpu, boards in CPUS.items():
                cyc = parts[cpu]
                total = sum(cyc.values())
                for board, ghz in boards:
                    ms = {k: v / (ghz * 1e6) for k, v in cyc.items()}
                    rows.append({"board": board, "llvm_mca_cpu": cpu, "total_ms": total / (ghz * 1e6), **ms})
            result[f"{size}px"] = {"totals": totals, "rows": rows}
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print("ESTIMATE (llvm-mca + qemu instruction counts, no Pi measured), 1 thread, neon-a64:")
    for size in args.sizes:
        r = result[f"{size}px"]
        t = r["totals"]
        print(
            f"\nResNet-18 (imagenette-resnet18-xnor layout) at {size} px: "
            f"{t['binary_macs'] / 1e6:.0f} M binary MACs, "
            f"{(t['macs'] - t['binary_macs']) / 1e6:.1f} M other MACs"
        )
        print(
            f"  {'board':16s} {'total ms':>9s} {'bin GEMM':>9s} {'bin glue':>9s} {'float':>9s} {'other':>9s}"
        )
        for row in r["rows"]:
            print(
                f"  {row['board']:16s} {row['total_ms']:9.2f} {row['binary_gemm']:9.2f} "
                f"{row['binary_glue']:9.2f} {row['float_gemm']:9.2f} {row['other']:9.2f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
