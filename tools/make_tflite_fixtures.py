"""Builds Larq networks, converts them with Larq Compute Engine and checks `xnor-edge import`.

    python tools/make_tflite_fixtures.py                    # writes tests/data/import/tflite/
    python tools/make_tflite_fixtures.py --report 32        # + larq-zoo table and speed

Needs TensorFlow, tf-keras, larq, larq-zoo and larq-compute-engine (a separate
environment: they are heavy and pin their own numpy), plus xnor-edge itself:

    python -m venv venv-lce
    venv-lce/bin/pip install tensorflow-cpu==2.16.2 tf-keras==2.16.0 larq==0.14.0 \\
        larq-zoo==2.4.0 larq-compute-engine==0.16.0 tflite && venv-lce/bin/pip install -e .

Without them it prints what is missing and exits 0. Keras 2 (``tf_keras``) is selected
with ``TF_USE_LEGACY_KERAS=1`` (larq and LCE's converter use ``tf.keras``).

For each network: random weights and random batch-norm statistics (seeded, so that
fused multipliers, biases and thresholds are not trivial), the logits (the final softmax
is left out so the comparison is not squashed by it), ``larq_compute_engine.
convert_keras_model``, the importer, then LCE's interpreter and xnor-edge on the same
random inputs: max |difference|, difference relative to max(1, |logit|), top-1
agreement. ``--report`` adds larq-zoo's QuickNet, QuickNetSmall, Bi-Real Net, XNOR-Net
and Binary AlexNet at small input sizes (chosen so that TFLite's SAME padding is
symmetric; a size that is not is reported as the importer's error) and their speed at
one thread: each engine in its own worker process, interleaved shuffled rounds, medians.

Committed fixtures (``NAME.tflite``, ``NAME.inputs.npy`` NHWC, ``NAME.outputs.npy``
from LCE's interpreter) are replayed by tests/test_import_tflite.py with the ``tflite``
package only.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_peers import cpu_report

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "data" / "import" / "tflite"
# larq and LCE's converter use tf.keras: Keras 2 (tf_keras), set before TensorFlow loads.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _missing() -> str | None:
    for mod, pkg in (
        ("tensorflow", "tensorflow-cpu==2.16.2"),
        ("tf_keras", "tf-keras==2.16.0"),
        ("larq", "larq==0.14.0"),
        ("larq_zoo", "larq-zoo==2.4.0"),
        ("larq_compute_engine", "larq-compute-engine==0.16.0"),
        ("tflite", "tflite"),
        ("xnor_edge", "xnor-edge (pip install -e .)"),
    ):
        try:
            __import__(mod)
        except ImportError as e:
            return f"{mod} is not importable ({e}); pip install {pkg}"
    return None


# --------------------------------------------------------------- networks


def randomise(model, seed: int) -> None:
    """Random batch-norm statistics and PReLU slopes (Keras initialises them to identities)."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            ws = []
            for w in layer.weights:
                n = w.name
                if "gamma" in n:
                    ws.append(rng.uniform(0.5, 1.5, w.shape))
                elif "beta" in n:
                    ws.append(rng.normal(0, 0.2, w.shape))
                elif "moving_mean" in n:
                    ws.append(rng.normal(0, 0.2, w.shape))
                else:
                    ws.append(rng.uniform(0.5, 1.5, w.shape))
            layer.set_weights([np.asarray(a, np.float32) for a in ws])
        elif isinstance(layer, tf.keras.layers.PReLU):
            layer.set_weights([rng.uniform(0, 0.5, w.shape).astype(np.float32) for w in layer.weights])


def logits_model(model):
    """The model without its final softmax activation (if it has one)."""
    import tensorflow as tf

    last = model.layers[-1]
    if isinstance(last, tf.keras.layers.Activation) and last.get_config()["activation"] == "softmax":
        return tf.keras.Model(model.inputs, last.input)
    return model


def mixed_tiny():
    """Every mapping in one small net: float stem, zero- and one-padded binary convs, XNOR-Net's
    per-filter scale, a binary conv read only by a binariser (bit-packed output + thresholds),
    a binary max pool, PReLU, an average-pooled 1x1 shortcut, batch norm after an add (MUL/ADD),
    a depthwise conv with ReLU6, concatenation, global pooling, dense, softmax."""
    import larq as lq
    import tensorflow as tf
    from larq_zoo.literature.xnornet import xnor_weight_scale

    L = tf.keras.layers
    q = dict(input_quantizer="ste_sign", kernel_constraint="weight_clip", use_bias=False)
    inp = L.Input((16, 16, 3))
    x = L.Conv2D(16, 3, padding="same", use_bias=False)(inp)
    x = L.BatchNormalization()(x)
    s = x
    x = lq.layers.QuantConv2D(16, 3, padding="same", kernel_quantizer=xnor_weight_scale, **q)(x)
    x = L.BatchNormalization()(x)
    x = lq.layers.QuantConv2D(16, 3, padding="same", pad_values=1.0, kernel_quantizer="ste_sign", **q)(x)
    x = L.BatchNormalization()(x)
    x = L.MaxPool2D(2)(x)
    x = lq.layers.QuantConv2D(32, 3, padding="same", pad_values=1.0, kernel_quantizer="ste_sign", **q)(x)
    x = L.BatchNormalization()(x)
    x = L.PReLU(shared_axes=[1, 2])(x)
    s = L.AveragePooling2D(2)(s)
    s = L.Conv2D(32, 1, use_bias=False)(s)
    x = L.add([x, s])
    x = L.BatchNormalization()(x)
    y = L.DepthwiseConv2D(3, padding="same")(x)
    y = L.ReLU(6.0)(y)
    x = L.concatenate([x, y])
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dense(10)(x)
    x = L.Activation("softmax")(x)
    return tf.keras.Model(inp, x, name="mixed_tiny")


def strided_tiny():
    """TFLite's SAME padding one pixel longer after the input (stride 2 over even sizes), on
    every window kind: float conv and max pool, a zero-padded binary conv (pad_values 0), a binary
    max pool of bit-packed values and a +1-padded binary conv."""
    import larq as lq
    import tensorflow as tf

    L = tf.keras.layers
    q = dict(input_quantizer="ste_sign", kernel_quantizer="ste_sign", kernel_constraint="weight_clip")
    inp = L.Input((32, 32, 3))
    x = L.Conv2D(16, 3, strides=2, padding="same")(inp)
    x = L.BatchNormalization()(x)
    x = L.MaxPool2D(3, strides=2, padding="same")(x)
    x = lq.layers.QuantConv2D(32, 3, strides=2, padding="same", use_bias=False, **q)(x)
    x = L.BatchNormalization()(x)
    x = lq.layers.QuantConv2D(32, 3, padding="same", pad_values=1.0, use_bias=False, **q)(x)
    x = L.BatchNormalization()(x)
    x = L.MaxPool2D(3, strides=2, padding="same")(x)
    x = lq.layers.QuantConv2D(32, 3, strides=2, padding="same", pad_values=1.0, use_bias=False, **q)(x)
    x = L.BatchNormalization()(x)
    x = L.Flatten()(x)
    x = L.Dense(10)(x)
    return tf.keras.Model(inp, x, name="strided_tiny")


def lce_exact_tiny():
    """Binary convolutions whose float outputs are the model output, compared bit for bit: a
    zero-padded stride-2 one over an even size (TFLite's asymmetric SAME padding), then a +1-padded
    one with a fused ReLU (QuickNet's) and a zero-padded one (border correction), concatenated.
    The batch-norm statistics make LCE's bias + K * mul large against the outputs."""
    import larq as lq
    import tensorflow as tf

    L = tf.keras.layers
    q = dict(input_quantizer="ste_sign", kernel_quantizer="ste_sign", kernel_constraint="weight_clip")
    inp = L.Input((8, 8, 32))
    c = lq.layers.QuantConv2D(32, 3, strides=2, padding="same", use_bias=False, **q)(inp)
    c = L.BatchNormalization()(c)
    a = lq.layers.QuantConv2D(32, 3, padding="same", pad_values=1.0, use_bias=False, **q)(c)
    a = L.ReLU()(a)
    a = L.BatchNormalization()(a)
    b = lq.layers.QuantConv2D(32, 3, padding="same", use_bias=False, **q)(c)
    b = L.BatchNormalization()(b)
    return tf.keras.Model(inp, L.concatenate([c, a, b]), name="lce_exact_tiny")


def lce_small_map_defect() -> int:
    """LCE 0.16's optimised LceBconv2d kernels (its interpreter's default, and use_indirect_bgemm)
    apply no zero-padding correction where the window sticks out on both sides of an axis: a
    zero-padded 3 x 3 SAME binary convolution on a 2 x 2 (or 1 x 1) map computes +1 padding. Its
    reference kernel (use_reference_bconv=True), Keras and xnor-edge agree."""
    import larq as lq
    import larq_compute_engine as lce
    import tensorflow as tf
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    q = dict(input_quantizer="ste_sign", kernel_quantizer="ste_sign", kernel_constraint="weight_clip")
    tf.keras.utils.set_random_seed(0)
    for hw in (1, 2, 3, 4):
        inp = tf.keras.Input((hw, hw, 32))
        model = tf.keras.Model(inp, lq.layers.QuantConv2D(8, 3, padding="same", use_bias=False, **q)(inp))
        fb = lce.convert_keras_model(model)
        x = np.random.default_rng(1).normal(size=(1, hw, hw, 32)).astype(np.float32)
        k = np.asarray(model(x))
        row = []
        for name, opts in (
            ("default", {}),
            ("indirect", {"use_indirect_bgemm": True}),
            ("reference", {"use_reference_bconv": True}),
        ):
            got = np.asarray(Interpreter(fb, num_threads=1, **opts).predict(x))
            row.append(f"{name} {np.abs(got - k).max():g}")
        print(f"{hw} x {hw} x 32, 3 x 3 SAME pad_values 0: max |LCE - Keras| (integers): " + ", ".join(row))
    return 0


def zoo(name: str, size: int):
    def build():
        import larq_zoo as lqz

        fn = getattr(lqz.sota, name, None) or getattr(lqz.literature, name)
        return fn(input_shape=(size, size, 3), weights=None, num_classes=10)

    return build


def quicknet_tiny():
    from larq_zoo.sota.quicknet import QuickNetFactory

    return QuickNetFactory(
        section_blocks=(1, 1, 1, 1),
        section_filters=(16, 32, 32, 64),
        input_shape=(29, 29, 3),
        weights=None,
        num_classes=10,
    ).build()


COMMITTED = {
    "mixed_tiny": mixed_tiny,
    "quicknet_tiny": quicknet_tiny,
    "strided_tiny": strided_tiny,
    "lce_exact_tiny": lce_exact_tiny,
}
# Even sizes exercise the pad op (TFLite's SAME padding one pixel longer after the input).
REPORT = {
    "QuickNet-61": zoo("QuickNet", 61),
    "QuickNet-64": zoo("QuickNet", 64),
    "QuickNetSmall-64": zoo("QuickNetSmall", 64),
    "BiRealNet-64": zoo("BiRealNet", 64),  # 2 x 2 maps under 3 x 3 kernels: LCE's defect
    "BiRealNet-128": zoo("BiRealNet", 128),
    "XNORNet-227": zoo("XNORNet", 227),
    "BinaryAlexNet-227": zoo("BinaryAlexNet", 227),
}


def convert(build, seed: int, path: Path):
    """Writes the LCE flatbuffer of the network's logits; returns (input shape, Keras logits model)."""
    import larq_compute_engine as lce
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    model = build()
    randomise(model, seed + 1)
    logits = logits_model(model)
    path.write_bytes(lce.convert_keras_model(logits))
    return tuple(int(d) for d in model.input_shape[1:]), logits


# ---------------------------------------------------------------- checking


def lce_outputs(path: Path, x: np.ndarray, reference: bool = False) -> np.ndarray:
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    it = Interpreter(path.read_bytes(), num_threads=1, use_reference_bconv=reference)
    return np.concatenate([np.asarray(it.predict(xi[None]), np.float32).reshape(1, -1) for xi in x])


def check(path: Path, shape, n: int, seed: int, keras=None) -> dict:
    import xnor_edge
    from xnor_edge.importers.tflite_import import import_tflite

    g, report = import_tflite(path)  # lce_kernel="reference", the default
    data = g.to_bytes()
    x = np.random.default_rng(seed).normal(size=(n, *shape)).astype(np.float32)
    want = lce_outputs(path, x).astype(np.float64)  # LCE's default (optimised) kernels
    want_ref = lce_outputs(path, x, reference=True).astype(np.float64)  # use_reference_bconv
    g_opt, _ = import_tflite(path, lce_kernel="optimized")
    with xnor_edge.load(data) as m, xnor_edge.load(g_opt.to_bytes()) as mo:
        got = np.concatenate([np.asarray(m.run(xi[None]), np.float64).reshape(1, -1) for xi in x])
        got_opt = np.concatenate([np.asarray(mo.run(xi[None]), np.float64).reshape(1, -1) for xi in x])
    diff = np.abs(got - want).max(axis=1)
    rel = diff / np.maximum(1.0, np.abs(want).max(axis=1))
    rel_ref = np.abs(got - want_ref).max(axis=1) / np.maximum(1.0, np.abs(want_ref).max(axis=1))
    rel_opt = np.abs(got_opt - want).max(axis=1) / np.maximum(1.0, np.abs(want).max(axis=1))
    extra = {}
    if keras is not None:  # the float32 Keras model itself: which engine follows the source model
        k = np.asarray(keras(x), np.float64).reshape(len(x), -1)
        scale = np.maximum(1.0, np.abs(k).max(axis=1))
        extra = {
            "xe_vs_keras": float((np.abs(got - k).max(axis=1) / scale).max()),
            "lce_vs_keras": float((np.abs(want - k).max(axis=1) / scale).max()),
            "top1_xe_keras": float(np.mean(got.argmax(1) == k.argmax(1))),
            "top1_lce_keras": float(np.mean(want.argmax(1) == k.argmax(1))),
        }
    return {
        **extra,
        "max_abs_diff": float(diff.max()),
        "rel_diff": float(rel.max()),
        "rel_diff_ref": float(rel_ref.max()),  # vs LCE with use_reference_bconv
        "top1_agree_ref": float(np.mean(got.argmax(1) == want_ref.argmax(1))),
        "rel_diff_opt": float(rel_opt.max()),  # lce_kernel="optimized" vs LCE's default
        "top1_agree_opt": float(np.mean(got_opt.argmax(1) == want.argmax(1))),
        "outputs_ref": want_ref.astype(np.float32),
        "top1_agree": float(np.mean(got.argmax(1) == want.argmax(1))),
        "layers": report.layers,
        "xnor": data,
        "xnor_opt": g_opt.to_bytes(),
        "inputs": x,
        "outputs": want.astype(np.float32),
    }


# ------------------------------------------------------------------ speed


def worker(engine: str, path: str) -> int:
    """One engine, one model: answers "N" lines with the N per-iteration wall times (ns)."""
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    if engine == "lce":
        from larq_compute_engine.tflite.python.interpreter import Interpreter

        opts = {"use_indirect_bgemm": True, "use_xnnpack": True}  # LCE's fastest x86 settings
        it = Interpreter(Path(path).read_bytes(), num_threads=1, **opts)
        x = np.random.default_rng(0).standard_normal(tuple(it.input_shapes[0])).astype(np.float32)

        def run():
            it.interpreter.predict([x])

    else:
        import xnor_edge

        m = xnor_edge.load(path)
        s = m.session(1)
        x = np.random.default_rng(0).standard_normal(m.input_shape).astype(np.float32)
        out = np.empty(m.output_shape, np.float32)

        def run():
            s.run(x, out=out)

    for _ in range(5):
        run()
    proto.write("ready\n")
    for line in sys.stdin:
        ts = []
        for _ in range(int(line)):
            t0 = time.perf_counter_ns()
            run()
            ts.append(time.perf_counter_ns() - t0)
        proto.write(json.dumps(ts) + "\n")
    return 0


def bench(cases: dict[str, tuple[Path, ...]], rounds: int, iters: int) -> dict:
    """Median ms per inference at 1 thread: {case: {engine: ms}}, interleaved shuffled rounds
    (xnor-edge-opt: the import with lce_kernel="optimized", LCE's border rounding)."""
    procs = {}
    for case, (tfl, xnor, xnor_opt) in cases.items():
        for engine, p in (("lce", tfl), ("xnor-edge", xnor), ("xnor-edge-opt", xnor_opt)):
            w = subprocess.Popen(
                [sys.executable, __file__, "--worker", engine, str(p)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            if w.stdout.readline().strip() != "ready":
                raise RuntimeError(f"{engine} worker for {case} failed")
            procs[(case, engine)] = w
    times: dict = {k: [] for k in procs}
    order = list(procs)
    rng = random.Random(0)
    try:
        for _ in range(rounds):
            rng.shuffle(order)
            for k in order:
                w = procs[k]
                w.stdin.write(f"{iters}\n")
                w.stdin.flush()
                times[k] += json.loads(w.stdout.readline())
    finally:
        for w in procs.values():
            w.stdin.close()
            w.wait()
    res: dict = {}
    for (case, engine), ts in times.items():
        res.setdefault(case, {})[engine] = float(np.median(ts)) * 1e-6
    return res


# -------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--inputs", type=int, default=3, help="inputs per committed fixture")
    ap.add_argument("--report", type=int, default=0, metavar="N", help="also the larq-zoo table on N inputs")
    ap.add_argument("--only", default=None, help="comma list of report networks")
    ap.add_argument("--rounds", type=int, default=15, help="interleaved speed rounds")
    ap.add_argument("--iters", type=int, default=10, help="iterations per round")
    ap.add_argument("--workdir", help="keep the report's .tflite and .xnor files here (default: a temp dir)")
    ap.add_argument("--only-fixtures", help="comma list of committed fixtures to write ('': none)")
    ap.add_argument("--no-speed", action="store_true", help="the report without the speed part")
    ap.add_argument("--defect", action="store_true", help="only LCE's small-map zero-padding defect")
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(*args.worker)
    why = _missing()
    if why:
        print(f"skipped: {why}")
        return 0
    if args.defect:
        return lce_small_map_defect()
    args.out.mkdir(parents=True, exist_ok=True)
    rows, cases = [], {}
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="tflite_fixtures_"))
    work.mkdir(parents=True, exist_ok=True)
    only = args.only_fixtures
    fixtures = list(COMMITTED) if only is None else [f for f in only.split(",") if f]
    for name in fixtures:
        build = COMMITTED[name]
        path = args.out / f"{name}.tflite"
        shape, keras = convert(build, 0, path)
        n = min(args.inputs, 2) if name == "lce_exact_tiny" else args.inputs  # its outputs are maps
        r = check(path, shape, n, 7, keras)
        np.save(args.out / f"{name}.inputs.npy", r["inputs"])
        np.save(args.out / f"{name}.outputs.npy", r["outputs"])
        if name == "lce_exact_tiny":  # both LCE kernels, compared bit for bit
            np.save(args.out / f"{name}.outputs_ref.npy", r["outputs_ref"])
        print(
            f"{name}: {path.stat().st_size} B, max|diff| {r['max_abs_diff']:.3g}, rel {r['rel_diff']:.3g}, "
            f"vs LCE's reference kernel: rel {r['rel_diff_ref']:.3g}, lce_kernel='optimized' vs LCE: "
            f"rel {r['rel_diff_opt']:.3g}, "
            f"top-1 {r['top1_agree']:.2f}, rel diff vs Keras: xnor-edge {r['xe_vs_keras']:.3g}, "
            f"LCE {r['lce_vs_keras']:.3g}; {r['layers']}"
        )
    if args.report:
        names = args.only.split(",") if args.only else list(REPORT)
        for name in names:
            path = work / f"{name}.tflite"
            t0 = time.time()
            shape, keras = convert(REPORT[name], 0, path)
            try:
                r = check(path, shape, args.report, 11, keras)
            except ValueError as e:
                rows.append((name, None, str(e)))
                print(f"{name}: not imported: {e}", flush=True)
                continue
            xp, xo = work / f"{name}.xnor", work / f"{name}.opt.xnor"
            xp.write_bytes(r["xnor"])
            xo.write_bytes(r["xnor_opt"])
            cases[name] = (path, xp, xo)
            rows.append((name, r, None))
            print(
                f"{name}: max|diff| {r['max_abs_diff']:.3g} rel {r['rel_diff']:.3g} top-1 "
                f"{r['top1_agree']:.3f}, vs LCE's reference kernel: rel {r['rel_diff_ref']:.3g} top-1 "
                f"{r['top1_agree_ref']:.3f}, lce_kernel='optimized' vs LCE: rel {r['rel_diff_opt']:.3g} "
                f"top-1 {r['top1_agree_opt']:.3f}, vs Keras: xnor-edge {r['xe_vs_keras']:.3g} "
                f"LCE {r['lce_vs_keras']:.3g} "
                f"({time.time() - t0:.0f} s) {r['layers']}",
                flush=True,
            )
        speed = bench(cases, args.rounds, args.iters) if cases and not args.no_speed else {}
        print()
        print(
            f"CPU: {cpu_report()['model']}; 1 thread; {args.report} random inputs per network; "
            f"speed: medians of {args.rounds} interleaved rounds x {args.iters} iterations, each engine "
            "in its own process"
        )
        print()
        print(
            "| network | vs LCE: max abs diff | rel diff | top-1 agree | "
            "rel diff vs LCE use_reference_bconv | lce_kernel='optimized' vs LCE: rel diff / top-1 | "
            "rel diff vs Keras: xnor-edge / LCE | "
            "top-1 vs Keras: xnor-edge / LCE | xnor-edge ms (lce_kernel='optimized') | LCE ms | "
            "LCE / xnor-edge |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for name, r, err in rows:
            if r is None:
                print(f"| {name} | not imported: {err} | | | | | | | | | |")
                continue
            s = speed.get(name, {})
            xe, xo, lc = s.get("xnor-edge"), s.get("xnor-edge-opt"), s.get("lce")
            print(
                f"| {name} | {r['max_abs_diff']:.3g} | {r['rel_diff']:.3g} | {r['top1_agree']:.3f} | "
                f"{r['rel_diff_ref']:.3g} | {r['rel_diff_opt']:.3g} / {r['top1_agree_opt']:.3f} | "
                f"{r['xe_vs_keras']:.3g} / {r['lce_vs_keras']:.3g} | "
                f"{r['top1_xe_keras']:.3f} / {r['top1_lce_keras']:.3f} | "
                + (f"{xe:.3f} ({xo:.3f}) | {lc:.3f} | {lc / xe:.2f}x |" if xe and lc else "- | - | - |")
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
