"""Python overhead of xnor-edge: Model.run vs the summed C node times, and the
per-frame cost of the camera pipeline (capture, preprocess, run, postprocess).

    python tools/bench_python_overhead.py [--model M] [--repeats 200] [--video V]

Without --model it uses the shipped default model, or builds a small XNOR
classifier with the builder (input 32x32x3) when none is installed.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import xnor_edge
from xnor_edge.camera import open_stream


def _fallback_model() -> bytes:
    rng = np.random.default_rng(0)
    g = xnor_edge.GraphBuilder((32, 32, 3), {"name": "bench-xnor", "labels": [str(i) for i in range(10)]})
    x = g.conv2d(g.input, rng.normal(size=(32, 3, 3, 3)), padding=1, relu=True)
    x = g.bconv2d(x, rng.normal(size=(64, 32, 3, 3)), np.ones(64), padding=1, use_k=True, relu=True)
    x = g.maxpool(x, 2)
    x = g.bconv2d(x, rng.normal(size=(128, 64, 3, 3)), np.ones(128), padding=1, relu=True)
    x = g.maxpool(x, 2)
    x = g.bconv2d(x, rng.normal(size=(128, 128, 3, 3)), np.ones(128), padding=1)
    g.dense(g.global_avgpool(x), rng.normal(size=(10, 128)))
    return g.to_bytes()


def _stats(us: list[float]) -> str:
    a = np.asarray(us)
    return (
        f"{a.mean():9.1f} {np.percentile(a, 50):9.1f} {np.percentile(a, 90):9.1f} {np.percentile(a, 99):9.1f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--video", default=None, help="default: the shipped sample video")
    args = ap.parse_args()

    src = args.model or xnor_edge.default_model_path() or _fallback_model()
    with xnor_edge.load(src) as m:
        label = args.model or (str(src) if not isinstance(src, bytes) else "builder-made 32x32 XNOR net")
        print(f"model: {m.name} ({label}), input {m.input_shape}, kernels {xnor_edge.kernel_isa()}")
        x = np.random.default_rng(1).standard_normal(m.input_shape).astype(np.float32)
        for _ in range(10):
            m.run(x)
        call, c_time = [], []
        for _ in range(args.repeats):
            m.run(x)
            t = m.last_timing()
            call.append(t.call_ns / 1e3)
            c_time.append(t.c_ns / 1e3)
        over = [a - b for a, b in zip(call, c_time)]
        print(f"\n{'per call (us)':<28} {'mean':>9} {'p50':>9} {'p90':>9} {'p99':>9}")
        print(f"{'Model.run (Python call)':<28} {_stats(call)}")
        print(f"{'sum of C node times':<28} {_stats(c_time)}")
        print(f"{'Python overhead':<28} {_stats(over)}")

        video = args.video or str(xnor_edge.sample_path("cat.avi"))
        stages: dict[str, list[float]] = {"capture": [], "preprocess": [], "run": [], "postprocess": []}
        with open_stream(video) as stream:
            it = iter(stream)
            while True:
                t0 = time.perf_counter_ns()
                frame = next(it, None)
                t1 = time.perf_counter_ns()
                if frame is None:
                    break
                inp = m.preprocess(frame.image)
                t2 = time.perf_counter_ns()
                out = m.run(inp)
                t3 = time.perf_counter_ns()
                m.postprocess(out, top_k=5)
                t4 = time.perf_counter_ns()
                for k, a, b in (
                    ("capture", t0, t1),
                    ("preprocess", t1, t2),
                    ("run", t2, t3),
                    ("postprocess", t3, t4),
                ):
                    stages[k].append((b - a) / 1e3)
        n = len(stages["run"])
        head = f"{'per camera frame (us)':<28} {'mean':>9} {'p50':>9} {'p90':>9} {'p99':>9}"
        print(f"\n{head}   ({n} frames of {video})")
        for k, v in stages.items():
            print(f"{k:<28} {_stats(v)}")
        total = [sum(v[i] for v in stages.values()) for i in range(n)]
        print(f"{'total':<28} {_stats(total)}   -> {1e6 / np.mean(total):.0f} FPS possible")


if __name__ == "__main__":
    main()
