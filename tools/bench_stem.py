#!/usr/bin/env python3
"""The ResNet-18 stem alone (7x7 stride-2 conv, 3 -> 64 channels, pad 3, ReLU) in xnor-edge and
in onnxruntime's Conv of the same shape, in one run.

Each round starts a fresh process per (engine, input size, threads), in shuffled order; a
process builds its one-layer model, warms up, times --iters runs and prints their median; the
report gives the median over rounds and the ratio to onnxruntime. --base-lib adds a second
xnor-edge build (XE_LIBRARY) as "xnor-edge-base", for before/after comparisons.

    python3 tools/bench_stem.py --sizes 96,224 --threads 1,2 --rounds 7
    python3 tools/bench_stem.py --base-lib /tmp/old/build/runtime_c/libxnor_edge.so
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys

CHILD = r"""
import sys, time, json, numpy as np
engine, size, threads, iters = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = np.random.default_rng(0)
w = (rng.standard_normal((64, 3, 7, 7)) * 0.1).astype(np.float32)
b = (rng.standard_normal(64) * 0.1).astype(np.float32)
if engine.startswith("xnor-edge"):
    import xnor_edge
    from xnor_edge.builder import GraphBuilder
    g = GraphBuilder(input_shape=(size, size, 3))
    g.conv2d(g.input, w, b, stride=2, padding=3, relu=True)
    s = xnor_edge.load(g.to_bytes()).session(threads)
    x = rng.standard_normal((size, size, 3)).astype(np.float32)
    out = np.empty((size // 2, size // 2, 64), np.float32)
    run = lambda: s.run(x, out=out)
    info = xnor_edge.kernel_isa()
else:
    import onnx, onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["c"], strides=[2, 2], pads=[3, 3, 3, 3]),
         helper.make_node("Relu", ["c"], ["y"])], "stem",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    feed = {"x": rng.standard_normal((1, 3, size, size)).astype(np.float32)}
    run = lambda: sess.run(None, feed)
    info = "onnxruntime " + ort.__version__
for _ in range(5):
    run()
ts, cs = [], []
for _ in range(iters):
    c0 = time.thread_time_ns(); t0 = time.perf_counter_ns(); run()
    ts.append(time.perf_counter_ns() - t0); cs.append(time.thread_time_ns() - c0)
print(json.dumps({"median_us": float(np.median(ts)) / 1e3, "cpu_us": float(np.median(cs)) / 1e3,
                  "info": info}))
"""


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            lines = f.read().splitlines()

        def get(key: str) -> str:
            return next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith(key)), "?")

        return f"{get('model name')} (family {get('cpu family')}, model {get('model')})"
    except OSError:
        return platform.processor() or "?"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="96,224")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--base-lib", help="a second libxnor_edge.so, timed as xnor-edge-base")
    args = ap.parse_args()
    engines = ["xnor-edge", "onnxruntime"] + (["xnor-edge-base"] if args.base_lib else [])
    cases = [
        (e, int(s), int(t)) for e in engines for s in args.sizes.split(",") for t in args.threads.split(",")
    ]
    res: dict = {c: [] for c in cases}
    cpu: dict = {c: [] for c in cases}
    infos = {}
    for _ in range(args.rounds):
        random.shuffle(cases)
        for c in cases:
            env = dict(os.environ)
            if c[0] == "xnor-edge-base":
                env["XE_LIBRARY"] = args.base_lib
            cmd = [sys.executable, "-c", CHILD, c[0], str(c[1]), str(c[2]), str(args.iters)]
            out = json.loads(subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout)
            res[c].append(out["median_us"])
            cpu[c].append(out["cpu_us"])
            infos[c[0]] = out["info"]
    print(f"CPU: {cpu_model()}; {infos}; {args.rounds} rounds x {args.iters} iterations, medians (us)")
    print("wall: Session.run wall time; cpu (1 thread only): the calling thread's CPU time")
    head = ("engine", "size", "threads", "wall_us", "vs ort", "cpu_us", "vs ort")
    print("{:<16} {:>5} {:>7} {:>9} {:>7} {:>9} {:>7}".format(*head))
    for e, s, t in sorted(res):
        med = statistics.median(res[(e, s, t)])
        ort = statistics.median(res[("onnxruntime", s, t)])
        line = f"{e:<16} {s:>5} {t:>7} {med:>9.1f} {med / ort:>6.2f}x"
        if t == 1:
            c, oc = statistics.median(cpu[(e, s, t)]), statistics.median(cpu[("onnxruntime", s, t)])
            line += f" {c:>9.1f} {c / oc:>6.2f}x"
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
