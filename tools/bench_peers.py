#!/usr/bin/env python3
"""xnor-edge side by side with peer engines on the same networks, in one run.

Each engine runs in its own worker process (one per engine and thread count) that loads
its models once and answers "run case C for N iterations" over a pipe with the
per-iteration wall times (and, for one thread, the calling thread's CPU time from
time.thread_time_ns, less disturbed by other load). Rounds visit every (worker, case)
pair in a new shuffled order, so slow phases of a shared machine fall on every engine
alike; the report gives medians, p90 and the ratio xnor-edge vs each peer.

Modes (batch 1 throughout):
  default     whole networks: the shipped ResNet-18 XNOR at 96 px, the same layout at
              224 px (random weights) and the CIFAR VGG-small XNOR. The peers run the
              float counterpart (same architecture, float convolutions in place of the
              binary ones, random weights) exported to ONNX by xnor_train.
  --layers    one whole binary layer (sign-pack, K, popcount GEMM, epilogue) as a
              one-layer xnor-edge model vs onnxruntime's Conv of the same shape (and
              NumPy im2col + sgemm), on the four ResNet-18 3x3 shapes.
  --fig4      XNOR-Net Figure 4b-c: binary over float speed-up as the channel count
              grows (3x3, 14x14) and as the filter grows (256 channels), next to the
              paper's 58x measured / 62x theory, with a PNG plot when matplotlib is there.

Peers (optional, each skipped with a message when absent): onnxruntime (float ONNX,
intra_op_num_threads = threads, inter_op 1, sequential), ai-edge-litert (float TFLite
with its XNNPACK delegate, converted by litert-torch, which needs no TensorFlow, or given
with --tflite NET=FILE), the Larq Compute Engine interpreter (needs TensorFlow; --lce
NET=FILE, the binary network converted by LCE's converter), and numpy-sgemm (--layers
only; OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE are removed from its environment and
threadpoolctl's BLAS kernel is printed).

    pip install onnxruntime ai-edge-litert litert-torch threadpoolctl matplotlib

    python tools/bench_peers.py                          # networks, threads 1,2
    python tools/bench_peers.py --layers --rounds 15
    python tools/bench_peers.py --fig4 --plot fig4.png
    python tools/bench_peers.py --quick --networks vggsmall-32 --engines xnor-edge
    python tools/bench_peers.py --markdown out.md --json out.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "models"

NETWORKS = {  # key: (label, shipped file giving the layout, input size or None = the file's)
    "resnet18-96": ("ResNet-18 XNOR, 96 px (shipped)", "imagenette-resnet18-xnor.xnor", None),
    "resnet18-224": ("same layout, 224 px (random weights)", "imagenette-resnet18-xnor.xnor", 224),
    "vggsmall-32": ("CIFAR VGG-small XNOR, 32 px (shipped)", "cifar10-vggsmall-xnor.xnor", None),
}
RESNET_LAYERS = [(56, 64), (28, 128), (14, 256), (7, 512)]  # (H = W, C_in = C_out), 3x3 s1 p1
FIG4_CHANNELS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
FIG4_FILTERS = [1, 3, 5, 7, 9, 11]
PAPER_MEASURED, PAPER_THEORY = 58.0, 62.0  # XNOR-Net section 4.1, c = 256, 3x3
ENGINES = ("xnor-edge", "onnxruntime", "litert", "lce", "numpy-sgemm")
BLAS_ENV_UNSET = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
# Set in onnxruntime's worker processes by --ort-spin off.
ORT_SPIN_ENV = "XE_BENCH_ORT_SPIN"


def fig4_theory(c: int, n_w: int) -> float:
    """The paper's speed-up in operations: S = 64 c N_W / (c N_W + 64)."""
    return 64.0 * c * n_w / (c * n_w + 64.0)


# ----------------------------------------------------------------------------- worker


def _engine_xnor_edge(threads: int):
    import xnor_edge

    def load(spec):
        model = xnor_edge.load(spec["xnor"])
        s = model.session(threads)
        x = np.random.default_rng(0).standard_normal(model.input_shape).astype(np.float32)
        out = np.empty(model.output_shape, np.float32)

        def run():
            s.run(x, out=out)

        return run, (model, s), lambda: sum(s.node_times_ns())

    info = {
        "kernel_isa": xnor_edge.kernel_isa(),
        "available_isas": xnor_edge.available_isas(),
        "library_version": xnor_edge.library_version(),
    }
    return load, info


def _engine_onnxruntime(threads: int):
    import onnxruntime as ort

    def load(spec):
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if os.environ.get(ORT_SPIN_ENV) == "0":  # --ort-spin off
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        sess = ort.InferenceSession(spec["onnx"], so, providers=["CPUExecutionProvider"])
        inp = sess.get_inputs()[0]
        x = np.random.default_rng(0).standard_normal(inp.shape).astype(np.float32)
        feed = {inp.name: x}
        names = [o.name for o in sess.get_outputs()]

        def run():
            sess.run(names, feed)

        return run, sess, None

    return load, {"version": ort.__version__, "providers": ort.get_available_providers()}


def _engine_litert(threads: int):
    import ai_edge_litert
    from ai_edge_litert.interpreter import Interpreter

    def load(spec):
        it = Interpreter(model_path=spec["tflite"], num_threads=threads)
        it.allocate_tensors()
        d = it.get_input_details()[0]
        x = np.random.default_rng(0).standard_normal(d["shape"]).astype(d["dtype"])
        it.set_tensor(d["index"], x)

        def run():
            it.invoke()

        return run, it, None

    return load, {"version": getattr(ai_edge_litert, "__version__", "?")}


def _engine_lce(threads: int):
    import larq_compute_engine as lce
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    options = {"use_indirect_bgemm": True, "use_xnnpack": True}  # LCE's fastest x86 settings

    def load(spec):
        flatbuffer = Path(spec["tflite"]).read_bytes()
        try:
            it = Interpreter(flatbuffer, num_threads=threads, **options)
        except TypeError:  # an LCE release without these options
            options.clear()
            it = Interpreter(flatbuffer, num_threads=threads)
        x = np.random.default_rng(0).standard_normal(tuple(it.input_shapes[0])).astype(np.float32)

        def run():
            it.interpreter.predict([x])  # the wrapper itself: no batching generator per call

        return run, it, None

    return load, {"version": getattr(lce, "__version__", "?"), "options": options}


def _im2col_conv(spec: dict):
    h, c, oc, k, pad = spec["hw"], spec["c"], spec["oc"], spec["k"], spec["pad"]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((h, h, c), dtype=np.float32)
    wt = rng.standard_normal((k * k * c, oc), dtype=np.float32)
    oh = h + 2 * pad - k + 1
    xp = np.zeros((h + 2 * pad, h + 2 * pad, c), np.float32)
    cols = np.empty((oh, oh, k * k, c), np.float32)
    out = np.empty((oh * oh, oc), np.float32)

    def run():
        xp[pad : pad + h, pad : pad + h] = x
        for t in range(k * k):
            dy, dx = divmod(t, k)
            cols[:, :, t, :] = xp[dy : dy + oh, dx : dx + oh]
        np.matmul(cols.reshape(oh * oh, k * k * c), wt, out=out)

    return run


def _engine_numpy(threads: int):
    info = {"numpy": np.__version__, "env_unset": [v for v in BLAS_ENV_UNSET if v not in os.environ]}
    try:
        from threadpoolctl import threadpool_info

        info["blas"] = [
            {k: d.get(k) for k in ("internal_api", "architecture", "version", "num_threads", "filepath")}
            for d in threadpool_info()
            if d.get("user_api") == "blas"
        ]
    except ImportError:
        info["blas"] = "threadpoolctl not installed: BLAS kernel unknown"

    def load(spec):
        return _im2col_conv(spec["conv"]), None, None

    return load, info


ENGINE_FACTORIES = {
    "xnor-edge": _engine_xnor_edge,
    "onnxruntime": _engine_onnxruntime,
    "litert": _engine_litert,
    "lce": _engine_lce,
    "numpy-sgemm": _engine_numpy,
}


def worker_main() -> int:
    """Protocol: one JSON line in (engine, threads, cases), one JSON line out per request."""
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything the engines print goes to stderr, not into the protocol
    hello = json.loads(sys.stdin.readline())
    threads = hello["threads"]
    try:
        load, info = ENGINE_FACTORIES[hello["engine"]](threads)
        runs, keep, c_clock = {}, [], {}
        for case, spec in hello["cases"].items():
            run, handle, clock = load(spec)
            keep.append(handle)
            runs[case] = run
            c_clock[case] = clock
            t_end = time.perf_counter() + hello.get("warmup_s", 0.1)
            for i in range(1000):
                run()
                if i >= 1 and time.perf_counter() > t_end:
                    break
    except Exception as e:  # report any engine failure to the parent as a skip reason
        proto.write(json.dumps({"error": f"{type(e).__name__}: {e}"}) + "\n")
        return 1
    proto.write(json.dumps({"ready": True, "info": info}) + "\n")
    for line in sys.stdin:
        req = json.loads(line)
        if req.get("cmd") == "quit":
            break
        run, clock = runs[req["case"]], c_clock[req["case"]]
        wall, cpu, proc, cns = [], [], [], []
        deadline = time.perf_counter() + req["max_s"]
        for _ in range(req["n"]):
            p0 = time.process_time_ns()
            c0 = time.thread_time_ns()
            t0 = time.perf_counter_ns()
            run()
            t1 = time.perf_counter_ns()
            c1 = time.thread_time_ns()
            p1 = time.process_time_ns()
            wall.append(t1 - t0)
            cpu.append(c1 - c0)
            proc.append(p1 - p0)
            if clock is not None:
                cns.append(clock())
            if time.perf_counter() > deadline:
                break
        proto.write(json.dumps({"wall_ns": wall, "cpu_ns": cpu, "proc_ns": proc, "c_ns": cns}) + "\n")
    return 0


class Worker:
    def __init__(self, engine: str, threads: int, cases: dict, warmup_s: float, ort_spin: str = "on"):
        env = dict(os.environ)
        if engine == "numpy-sgemm":
            for v in BLAS_ENV_UNSET:
                env.pop(v, None)
            for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
                env[v] = str(threads)
        else:
            # NumPy's BLAS threads are never used by the other engines; one
            # thread means none idles on the other core.
            for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
                env[v] = "1"
        if engine == "onnxruntime":
            env[ORT_SPIN_ENV] = "0" if ort_spin == "off" else "1"
        self.engine, self.threads, self.cases = engine, threads, list(cases)
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        self._send({"engine": engine, "threads": threads, "cases": cases, "warmup_s": warmup_s})
        reply = self._recv()
        self.error = reply.get("error")
        self.info = reply.get("info", {})

    def _send(self, obj) -> None:
        self.proc.stdin.write(json.dumps(obj) + "\n")
        self.proc.stdin.flush()

    def _recv(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            return {"error": f"worker exited with status {self.proc.wait()}"}
        return json.loads(line)

    def request(self, case: str, n: int, max_s: float) -> dict:
        try:
            self._send({"cmd": "run", "case": case, "n": n, "max_s": max_s})
        except BrokenPipeError:
            return {"error": f"worker exited with status {self.proc.wait()}"}
        return self._recv()

    def cpu_ns(self) -> int | None:
        """CPU time all of the worker's threads have run (Linux schedstat), or None."""
        total = 0
        try:
            for tid in os.listdir(f"/proc/{self.proc.pid}/task"):
                with open(f"/proc/{self.proc.pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return total

    def settle(self, max_s: float, window_s: float = 0.005, busy: float = 0.25) -> float | None:
        """Waits until the worker's threads ran under `busy` of one core over the last
        `window_s` (spinning pool threads gone quiet), at most max_s; returns the wait
        in seconds, or None where its CPU time cannot be read."""
        t0 = time.perf_counter()
        last = self.cpu_ns()
        if last is None:
            return None
        marks = [(t0, last)]
        while time.perf_counter() - t0 < max_s:
            time.sleep(0.001)
            now, c = time.perf_counter(), self.cpu_ns()
            if c is None:
                return None
            marks.append((now, c))
            old = [m for m in marks if now - m[0] >= window_s]
            if old:
                t_old, c_old = old[-1]
                if (c - c_old) * 1e-9 < busy * (now - t_old):
                    return now - t0
        return time.perf_counter() - t0

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self._send({"cmd": "quit"})
            except BrokenPipeError:
                pass
        self.proc.wait()


# ------------------------------------------------------------------- environment report


def cpu_report() -> dict:
    model, flags, ident = None, set(), {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, val = line.partition(":")
            key = key.strip()
            if key == "model name" and model is None:
                model = val.strip()
            elif key in ("cpu family", "model") and key not in ident:
                ident[key] = val.strip()  # a VM's model name may say only "AMD EPYC"
            elif key in ("flags", "Features") and not flags:
                flags = set(val.split())
    except OSError:
        pass
    simd = sorted(f for f in flags if f == "avx2" or f.startswith("avx512") or f in ("asimd", "neon"))
    try:
        load = Path("/proc/loadavg").read_text().split()[:3]
    except OSError:
        load = []
    if model and len(ident) == 2:
        model += f" (family {ident['cpu family']} model {ident['model']})"
    return {
        "model": model or platform.processor() or platform.machine(),
        "simd_flags": simd,
        "cores": os.cpu_count(),
        "machine": platform.machine(),
        "loadavg": load,
    }


def probe_peers(engines: list[str], mode: str) -> tuple[dict, dict]:
    """(versions, skipped) for the requested peers: import each in this process."""
    versions, skipped = {}, {}
    for e in engines:
        if e == "onnxruntime":
            try:
                import onnxruntime as ort

                versions[e] = {"version": ort.__version__, "providers": ort.get_available_providers()}
            except ImportError as err:
                skipped[e] = f"onnxruntime not installed ({err}); pip install onnxruntime"
        elif e == "litert":
            try:
                import ai_edge_litert.interpreter  # noqa: F401

                versions[e] = {"package": "ai-edge-litert"}
            except ImportError as err:
                skipped[e] = f"ai-edge-litert not installed ({err}); pip install ai-edge-litert"
        elif e == "lce":
            try:
                # larq 0.14 (the converter's model builder) needs Keras 2 (tf-keras), chosen
                # when TensorFlow is first imported, which importing LCE does
                os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
                import larq_compute_engine  # noqa: F401

                versions[e] = {"package": "larq-compute-engine"}
            except ImportError as err:
                skipped[e] = f"larq-compute-engine not installed ({err}); it needs TensorFlow"
        elif e == "numpy-sgemm" and mode == "networks":
            skipped[e] = "the NumPy im2col + sgemm baseline runs only with --layers"
    return versions, skipped


# ------------------------------------------------------------------------ case building


@contextlib.contextmanager
def _stdout_to_stderr():
    """Converters print progress on stdout (some from C); keep stdout for the report."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _tflite_converter():
    """A PyTorch -> TFLite converter that is importable here, or the reason there is none."""
    reasons = []
    for name in ("litert_torch", "ai_edge_torch"):
        try:
            return __import__(name), None
        except Exception as e:  # both need TensorFlow; any import failure means "none"
            reasons.append(f"{name}: {type(e).__name__}: {e}")
    return None, "no PyTorch -> TFLite converter without TensorFlow (" + "; ".join(reasons) + ")"


def _skip(notes: list[str], msg: str) -> None:
    print(f"skip {msg}")
    notes.append(msg)


def build_network_cases(
    names: list[str],
    engines: list[str],
    workdir: Path,
    skipped: dict,
    given: dict,
    notes: list[str],
    layout: dict,
) -> tuple[dict, dict]:
    """(specs per engine and case, case labels); skips are printed and added to notes, each
    network's input shape, MACs and architecture to layout."""
    import xnor_edge

    per_engine: dict[str, dict] = {e: {} for e in engines}
    labels = {}
    peers_float = [e for e in engines if e in ("onnxruntime", "litert") and e not in skipped]
    torch_ok = True
    need_torch = bool(peers_float) or any(NETWORKS[n][2] for n in names)
    if need_torch:
        try:
            import torch
            from xnor_train.export import export_model, export_onnx
            from xnor_train.models import build_model
        except ImportError as e:
            torch_ok = False
            torch_reason = f"the float counterpart needs the [train] extra (torch, onnx): {e}"
    converter, conv_reason = (None, None)
    if "litert" in peers_float:
        with _stdout_to_stderr():
            converter, conv_reason = _tflite_converter()
        if converter is not None:
            version = getattr(converter, "__version__", "?")
            layout["_tflite_converter"] = f"{converter.__name__} {version}"
    for name in names:
        label, shipped, size = NETWORKS[name]
        labels[name] = label
        with xnor_edge.load(MODELS / shipped) as m:
            cfg = dict(m.metadata["training"]["arch"])
        if size:
            cfg["input_size"] = size
        xnor_path = MODELS / shipped
        if size:
            if not torch_ok:
                _skip(notes, f"{name}: {torch_reason}")
                continue
            torch.manual_seed(0)
            xm = build_model(dict(cfg, variant="xnor")).eval()
            xnor_path = workdir / f"{name}.xnor"
            export_model(xm, (size, size, cfg["in_ch"])).save(xnor_path)
        per_engine["xnor-edge"][name] = {"xnor": str(xnor_path)}
        with xnor_edge.load(xnor_path) as m:
            info = m.info()
        layout[name] = {
            "input": list(m.input_shape),
            "macs": info["macs"],
            "binary_macs": info["binary_macs"],
            "arch": cfg,
        }
        if not peers_float:
            continue
        if not torch_ok:
            for e in peers_float:
                _skip(notes, f"{e} on {name}: {torch_reason}")
            continue
        torch.manual_seed(0)
        latent = build_model(dict(cfg, variant="xnor")).eval()
        hw = cfg["input_size"]
        if "onnxruntime" in peers_float:
            onnx_path = workdir / f"{name}-float.onnx"
            with _stdout_to_stderr():
                msg = export_onnx(latent, {"config": cfg, "data": {"input_size": [hw, hw]}}, onnx_path)
            if msg.startswith("skipped"):
                _skip(notes, f"onnxruntime on {name}: ONNX export {msg}")
            else:
                per_engine["onnxruntime"][name] = {"onnx": str(onnx_path)}
        if "litert" in peers_float:
            if name in given.get("litert", {}):
                per_engine["litert"][name] = {"tflite": given["litert"][name]}
            elif converter is None:
                _skip(notes, f"litert on {name}: {conv_reason}; or pass --tflite {name}=FILE")
            else:
                fm = build_model(dict(cfg, variant="float")).eval()
                path = workdir / f"{name}-float.tflite"
                with _stdout_to_stderr():
                    converter.convert(fm, (torch.zeros(1, cfg["in_ch"], hw, hw),)).export(str(path))
                per_engine["litert"][name] = {"tflite": str(path)}
    if "lce" in engines and "lce" not in skipped:
        for name in names:
            if name in given.get("lce", {}):
                per_engine["lce"][name] = {"tflite": given["lce"][name]}
            elif name in layout:
                path = workdir / f"{name}-lce.tflite"
                try:
                    with _stdout_to_stderr():
                        path.write_bytes(_lce_flatbuffer(layout[name]["arch"]))
                except ImportError as e:
                    _skip(
                        notes,
                        f"lce on {name}: converting needs larq and larq-compute-engine ({e}); "
                        f"or pass --lce {name}=FILE",
                    )
                    continue
                per_engine["lce"][name] = {"tflite": str(path)}
    return per_engine, labels


def _lce_flatbuffer(cfg: dict) -> bytes:
    """The binary network of cfg's layout (xnor_train.models: B-A-C-P blocks, float stem,
    1x1 float projection shortcuts, float classifier) built in Larq with random weights
    and converted by LCE's converter. Binary convolutions: sign inputs and weights
    (`ste_sign`), no K scale (LCE has none), padding with +1 (`pad_values=1`, the
    padding LCE's optimised kernels take without a correction: its fastest form)."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # larq 0.14 needs tf-keras (Keras 2)
    import larq as lq
    import larq_compute_engine as lce
    import tensorflow as tf

    keras = tf.keras
    tf.random.set_seed(0)
    L = keras.layers
    w, hw, arch = cfg["width"], cfg["input_size"], cfg["arch"]
    quant = dict(
        input_quantizer="ste_sign",
        kernel_quantizer="ste_sign",
        kernel_constraint="weight_clip",
        use_bias=False,
        pad_values=1.0,
    )

    def bconv(x, c: int, stride: int):
        x = L.BatchNormalization()(x)
        return lq.layers.QuantConv2D(c, 3, strides=stride, padding="same", **quant)(x)

    inp = keras.Input((hw, hw, cfg["in_ch"]))
    if arch == "resnet18":
        x = L.Conv2D(w, 7, 2, use_bias=False)(L.ZeroPadding2D(3)(inp))
        x = L.ReLU()(L.BatchNormalization()(x))
        x = L.MaxPool2D(3, 2)(L.ZeroPadding2D(1)(x))  # after ReLU, zero = -inf padding
        cin = w
        for i, cout in enumerate((w, 2 * w, 4 * w, 8 * w)):
            for j in range(2):
                stride = 2 if i > 0 and j == 0 else 1
                y = L.ReLU()(bconv(x, cout, stride))
                y = L.BatchNormalization()(bconv(y, cout, 1))
                sc = x
                if stride != 1 or cin != cout:
                    sc = L.BatchNormalization()(L.Conv2D(cout, 1, stride, use_bias=False)(x))
                x, cin = L.Add()([y, sc]), cout
        x = L.GlobalAveragePooling2D()(L.ReLU()(x))
    elif arch == "vgg-small":
        x = L.ReLU()(L.BatchNormalization()(L.Conv2D(w, 3, padding="same")(inp)))
        for c, pool in ((w, True), (2 * w, False), (2 * w, True), (4 * w, False), (4 * w, True)):
            x = L.ReLU()(bconv(x, c, 1))
            if pool:
                x = L.MaxPool2D(2)(x)
        x = L.Flatten()(L.BatchNormalization()(x))
    else:
        raise ValueError(f"no LCE layout for {arch}")
    model = keras.Model(inp, L.Dense(cfg["num_classes"])(x))
    return lce.convert_keras_model(model)


def _one_layer_xnor(hw: int, c: int, k: int, path: Path) -> None:
    from xnor_edge.builder import GraphBuilder

    rng = np.random.default_rng(0)
    g = GraphBuilder(input_shape=(hw, hw, c))
    w = rng.standard_normal((c, c, k, k)).astype(np.float32)
    scale = np.abs(w).mean(axis=(1, 2, 3)).astype(np.float32)
    g.bconv2d(g.input, w, scale, np.zeros(c, np.float32), stride=1, padding=k // 2, use_k=True)
    g.save(path)


def _one_layer_onnx(hw: int, c: int, k: int, path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((c, c, k, k)).astype(np.float32), "W")
    b = numpy_helper.from_array(np.zeros(c, np.float32), "B")
    p = k // 2
    node = helper.make_node("Conv", ["x", "W", "B"], ["y"], kernel_shape=[k, k], pads=[p, p, p, p])
    graph = helper.make_graph(
        [node],
        "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, hw, hw])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c, hw, hw])],
        [w, b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))


def build_layer_cases(
    shapes: list[tuple], engines: list[str], workdir: Path, skipped: dict, notes: list[str], mode: str
) -> tuple[dict, str | None]:
    """shapes: (case, hw, c, k): one 'same' convolution, stride 1, per case and engine.
    Returns (specs per engine and case, the TFLite converter used or None)."""
    per_engine: dict[str, dict] = {e: {} for e in engines if e not in skipped}
    if "onnxruntime" in per_engine:
        try:
            import onnx  # noqa: F401
        except ImportError as e:
            _skip(notes, f"onnxruntime: building the Conv model needs the 'onnx' package ({e})")
            del per_engine["onnxruntime"]
    converter = None
    if "litert" in per_engine and mode == "layers":
        with _stdout_to_stderr():
            converter, reason = _tflite_converter()
        if converter is None:
            _skip(notes, f"litert: {reason}")
            del per_engine["litert"]
    for e in ("litert", "lce"):
        if e in per_engine and (e == "lce" or mode == "fig4"):
            _skip(notes, f"{e}: not part of --{mode} (its float side is onnxruntime's Conv)")
            del per_engine[e]
    for case, hw, c, k in shapes:
        xp = workdir / f"{case}.xnor"
        _one_layer_xnor(hw, c, k, xp)
        per_engine["xnor-edge"][case] = {"xnor": str(xp)}
        if "onnxruntime" in per_engine:
            op = workdir / f"{case}.onnx"
            _one_layer_onnx(hw, c, k, op)
            per_engine["onnxruntime"][case] = {"onnx": str(op)}
        if "litert" in per_engine:
            import torch

            tp = workdir / f"{case}.tflite"
            conv = torch.nn.Conv2d(c, c, k, 1, k // 2).eval()
            with _stdout_to_stderr():
                converter.convert(conv, (torch.zeros(1, c, hw, hw),)).export(str(tp))
            per_engine["litert"][case] = {"tflite": str(tp)}
        if "numpy-sgemm" in per_engine:
            per_engine["numpy-sgemm"][case] = {"conv": {"hw": hw, "c": c, "oc": c, "k": k, "pad": k // 2}}
    name = f"{converter.__name__} {getattr(converter, '__version__', '?')}" if converter else None
    return per_engine, name


# ------------------------------------------------------------------------- measurement


def _stats(ns: list[int]) -> dict | None:
    if not ns:
        return None
    a = np.asarray(ns, dtype=np.float64) * 1e-6
    return {
        "n": int(a.size),
        "p50_ms": float(np.median(a)),
        "p90_ms": float(np.percentile(a, 90)),
        "min_ms": float(a.min()),
        "mean_ms": float(a.mean()),
    }


PINGPONG_NEAR_NS, PINGPONG_FAR_NS = 200.0, 300.0  # round trip: below = near, at or above = far


def pingpong_binary(choice: str) -> Path | None:
    """The bench_pool binary for --pingpong, or None (off, or auto and not built)."""
    if choice == "off":
        return None
    path = REPO / "build" / "runtime_c" / "bench" / "bench_pool" if choice == "auto" else Path(choice)
    if not path.is_file() or not os.access(path, os.X_OK):
        if choice != "auto":
            sys.exit(f"--pingpong: {path} is not an executable bench_pool (cmake --build build)")
        return None
    return path


def pingpong_ns(binary: Path | None) -> float | None:
    """One cache-line round trip between the first two CPUs (ns), or None."""
    if binary is None:
        return None
    try:
        out = subprocess.run(
            [str(binary), "pingpong", "20000"], capture_output=True, text=True, timeout=10
        ).stdout.split()
        return float(out[0]) if out else None
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None


def measure(
    per_engine: dict, threads: list[int], args, skipped: dict, notes: list[str]
) -> tuple[list[dict], dict]:
    """Starts the workers, runs the shuffled rounds; returns (results, worker infos)."""
    workers = []
    infos: dict = {}
    for engine, cases in per_engine.items():
        if engine in skipped or not cases:
            continue
        for t in threads:
            w = Worker(engine, t, cases, args.warmup, args.ort_spin)
            if w.error:
                _skip(notes, f"{engine} ({t} thr): worker failed: {w.error}")
                w.close()
                continue
            infos.setdefault(engine, w.info)
            workers.append(w)
    pairs = [(w, case) for w in workers for case in w.cases]
    raw: dict = {
        (w.engine, w.threads, c): {"wall_ns": [], "cpu_ns": [], "proc_ns": [], "c_ns": []} for w, c in pairs
    }
    probe = pingpong_binary(args.pingpong)
    probes: dict = {key: [] for key in raw}  # per iteration: the round trip before its request
    rng = random.Random(args.seed)
    settle_s: dict = {}
    try:
        for r in range(args.rounds):
            rng.shuffle(pairs)
            for w, case in list(pairs):
                if w.error:
                    continue
                rt = pingpong_ns(probe)
                rep = w.request(case, args.iters, args.max_request_s)
                if "error" in rep:  # a crashed peer drops out whole: no partial rows
                    w.error = rep["error"]
                    _skip(notes, f"{w.engine} ({w.threads} thr): worker failed on {case}: {w.error}")
                    pairs = [pc for pc in pairs if pc[0] is not w]
                    for c in w.cases:
                        raw.pop((w.engine, w.threads, c), None)
                    continue
                acc = raw[(w.engine, w.threads, case)]
                for k in acc:
                    acc[k].extend(rep[k])
                probes[(w.engine, w.threads, case)].extend([rt] * len(rep["wall_ns"]))
                if args.settle == "on":
                    waited = w.settle(args.settle_max_s)
                    if waited is not None:
                        settle_s.setdefault(w.engine, []).append(waited)
                if args.gap_ms:
                    time.sleep(args.gap_ms * 1e-3)
            print(f"  round {r + 1}/{args.rounds} done", file=sys.stderr)
    finally:
        for w in workers:
            w.close()
    if settle_s:
        infos["_settle_ms"] = {
            e: {"median": float(np.median(v)) * 1e3, "max": float(np.max(v)) * 1e3}
            for e, v in sorted(settle_s.items())
        }
    if probe is not None:
        infos["_pingpong"] = str(probe)
    results = []
    for (engine, t, case), acc in raw.items():
        rts = probes[(engine, t, case)]
        near = [ns for ns, rt in zip(acc["wall_ns"], rts) if rt is not None and rt < PINGPONG_NEAR_NS]
        far = [ns for ns, rt in zip(acc["wall_ns"], rts) if rt is not None and rt >= PINGPONG_FAR_NS]
        results.append(
            {
                "case": case,
                "engine": engine,
                "threads": t,
                "n": len(acc["wall_ns"]),
                "wall": _stats(acc["wall_ns"]),
                "cpu": _stats(acc["cpu_ns"]) if t == 1 else None,
                "process_cpu": _stats(acc["proc_ns"]),
                "c_clock": _stats(acc["c_ns"]),
                "wall_ns": acc["wall_ns"],
                "cpu_ns": acc["cpu_ns"] if t == 1 else None,
                "pingpong_ns": rts if probe is not None else None,
                "wall_near": _stats(near),
                "wall_far": _stats(far),
            }
        )
    return results, infos


# ------------------------------------------------------------------------------ output


def _find(results, case, engine, t):
    for r in results:
        if r["case"] == case and r["engine"] == engine and r["threads"] == t:
            return r
    return None


def _ms(r: dict | None) -> str:
    """Median wall time (p90; thread CPU time at 1 thread; xnor-edge's own C clock)."""
    if r is None:
        return "-"
    s = f"{r['wall']['p50_ms']:.3f} ms (p90 {r['wall']['p90_ms']:.3f}"
    if r.get("cpu"):
        s += f"; CPU {r['cpu']['p50_ms']:.3f}"
    if r.get("c_clock"):
        s += f"; C {r['c_clock']['p50_ms']:.3f}"
    return s + ")"


def _ratio(peer: dict | None, ours: dict | None, key: str = "wall") -> float | None:
    """peer median / xnor-edge median: how many times faster xnor-edge is."""
    if not peer or not ours or not peer.get(key) or not ours.get(key):
        return None
    return peer[key]["p50_ms"] / ours[key]["p50_ms"]


def _x(v: float | None, bold: bool = False) -> str:
    if v is None:
        return "-"
    return f"**{v:.2f}x**" if bold else f"{v:.2f}x"


def _x_wall_cpu(peer: dict | None, ours: dict | None) -> str:
    """Ratio of medians, wall time (bold) and, at one thread, calling-thread CPU time."""
    r = _x(_ratio(peer, ours), bold=True)
    rc = _ratio(peer, ours, "cpu")
    return r + (f" (CPU {rc:.2f}x)" if rc is not None else "")


def helper_thread_notes(results: list[dict]) -> list[str]:
    """One-thread rows whose process CPU time exceeds the calling thread's: work elsewhere."""
    notes = []
    for r in results:
        cpu, proc = r.get("cpu"), r.get("process_cpu")
        if cpu and proc and proc["p50_ms"] > 1.15 * cpu["p50_ms"] + 0.01:
            notes.append(
                f"note: {r['engine']} at 1 thread on {r['case']}: process CPU {proc['p50_ms']:.3f} ms "
                f"> calling thread {cpu['p50_ms']:.3f} ms (other threads worked)"
            )
    return notes


def load_warning(cpu: dict) -> list[str]:
    """Other work on the machine makes wall-time ratios unfair: say so in the report."""
    loads = [float(v) for v in cpu["loadavg"][:1] + cpu.get("loadavg_end", [])[:1]]
    if not loads or max(loads) < 0.75 * (cpu["cores"] or 1):
        return []
    return [
        f"warning: the machine was busy (1-minute load average up to {max(loads):.1f} on "
        f"{cpu['cores']} cores): a run longer than a scheduler slice waits for other work more "
        "often than a short one, so wall-time ratios favour the faster engine; at 1 thread the "
        "CPU-time ratio is the fairer figure. Re-run on a quiet machine for the published table."
    ]


def header_lines(meta: dict) -> list[str]:
    cpu = meta["cpu"]
    simd = ", ".join(cpu["simd_flags"]) or "none listed"
    if not any(f.startswith("avx512") for f in cpu["simd_flags"]) and cpu["machine"] in ("x86_64", "AMD64"):
        simd += " (no AVX-512)"
    lines = [
        f"- CPU: {cpu['model']} ({cpu['machine']}, {cpu['cores']} cores visible), SIMD flags: {simd}; "
        f"load average at start {' '.join(cpu['loadavg'])}",
    ]
    xe = meta["infos"].get("xnor-edge", {})
    if xe:
        lines.append(
            f"- xnor-edge {xe.get('library_version')}, kernel set `{xe.get('kernel_isa')}` "
            f"(available: {', '.join(xe.get('available_isas', []))})"
        )
    for e, v in meta["versions"].items():
        info = meta["infos"].get(e, v)
        if e == "onnxruntime":
            lines.append(
                f"- onnxruntime {info.get('version')}, providers {', '.join(info.get('providers', []))} "
                "(CPUExecutionProvider used; intra_op_num_threads = threads, inter_op 1, sequential; "
                f"spinning between runs {meta.get('settings', {}).get('ort_spin', 'on')})"
            )
        elif e not in meta["infos"]:
            continue  # installed, but it ran no case (the skip notes say why)
        elif e == "litert":
            conv = meta.get("tflite_converter") or "none (given files)"
            lines.append(
                f"- ai-edge-litert {info.get('version')}, float TFLite converted by {conv} "
                "(NCHW signature as in PyTorch; XNNPACK delegate, num_threads = threads)"
            )
        elif e == "lce":
            lines.append(f"- larq-compute-engine {info.get('version')}, options {info.get('options')}")
        else:
            lines.append(f"- {e}: {info}")
    if "numpy-sgemm" in meta["infos"]:
        info = meta["infos"]["numpy-sgemm"]
        blas = info["blas"]
        if isinstance(blas, list):
            blas = "; ".join(
                f"{b.get('internal_api')} {b.get('version')} kernel {b.get('architecture')}" for b in blas
            )
        lines.append(
            f"- numpy {info['numpy']} im2col + sgemm, BLAS: {blas} "
            f"(run with {' and '.join(BLAS_ENV_UNSET)} unset; in the calling shell: "
            f"{meta['blas_env_parent'] or 'neither set'})"
        )
    s = meta["settings"]
    lines.append(
        f"- {s['rounds']} rounds x up to {s['iters']} iterations per engine and case, shuffled "
        f"interleaved order, each engine x thread count in its own process; medians (p90); "
        "CPU = the calling thread's CPU time (1 thread only), C = xnor-edge's own node clock; "
        f"batch 1; {meta['date']}"
    )
    for name, n in meta.get("networks", {}).items():
        h, w, c = n["input"]
        lines.append(
            f"- {name}: {n['arch']['arch']} width {n['arch']['width']}, input {h}x{w}x{c}, "
            f"{n['macs'] / 1e6:.0f} M MACs ({n['binary_macs'] / 1e6:.0f} M in binary convolutions); "
            "the float peers run the same layout with float convolutions"
            + (
                "; lce runs it binary (Larq QuantConv2D, sign inputs and weights, no K, +1 padding), "
                "converted by LCE's converter"
                if "lce" in meta["infos"]
                else ""
            )
        )
    settle = meta["infos"].get("_settle_ms")
    if settle:
        lines.append(
            "- before each request the previous engine's process was let go quiet (its threads under "
            "a quarter of a core over 5 ms), after a request of "
            + ", ".join(f"{e} median {v['median']:.1f} ms (max {v['max']:.1f})" for e, v in settle.items())
        )
    for e, why in meta["skipped"].items():
        lines.append(f"- skipped {e}: {why}")
    for msg in meta["skip_notes"]:
        lines.append(f"- skipped {msg}")
    return lines


def network_tables(results, labels, peers, threads) -> list[str]:
    out = []
    head = "| network (batch 1) | threads | xnor-edge |"
    sep = "|---|---|---|"
    for p in peers:
        head += f" {p} {'binary' if p == 'lce' else 'float'} | xnor-edge vs {p} |"
        sep += "---|---|"
    out += [head, sep]
    for case, label in labels.items():
        for t in threads:
            ours = _find(results, case, "xnor-edge", t)
            row = f"| {label} | {t} | {_ms(ours)} |"
            for p in peers:
                pr = _find(results, case, p, t)
                row += f" {_ms(pr)} | {_x_wall_cpu(pr, ours)} |"
            out.append(row)
    if len(threads) > 1:
        out += ["", "| network | engine | " + " | ".join(f"{t} thr" for t in threads) + " | "]
        out[-1] += " | ".join(f"{t} vs {threads[0]} thr" for t in threads[1:]) + " |"
        out.append("|---|---|" + "---|" * (2 * len(threads) - 1))
        for case, label in labels.items():
            for e in ["xnor-edge", *peers]:
                rs = [_find(results, case, e, t) for t in threads]
                if not any(rs):
                    continue
                cells = [f"{r['wall']['p50_ms']:.3f} ms" if r else "-" for r in rs]
                sp = [_x(_ratio(rs[0], r)) for r in rs[1:]]
                out.append(f"| {label} | {e} | " + " | ".join(cells + sp) + " |")
    return out


def pingpong_lines(results, labels, engines, threads) -> list[str]:
    """The thread-scaling table again, requests split by the round trip measured before them."""
    rts = [rt for r in results for rt in (r.get("pingpong_ns") or []) if rt is not None]
    if not rts or len(threads) < 2:
        return []
    near = sum(rt < PINGPONG_NEAR_NS for rt in rts) / len(rts)
    far = sum(rt >= PINGPONG_FAR_NS for rt in rts) / len(rts)
    out = [
        "",
        f"Cross-core round trip before each request (`bench_pool pingpong`): median "
        f"{np.median(rts):.0f} ns; near (< {PINGPONG_NEAR_NS:.0f} ns) for {near:.0%} of the iterations, "
        f"far (>= {PINGPONG_FAR_NS:.0f} ns) for {far:.0%}. The scaling on each kind of request "
        "(medians of those iterations, in brackets how many at each thread count; - where a side "
        "has none). A probe takes ~10 ms and a request up to a second, so a label can be stale:",
        "",
        "| network | engine | "
        + " | ".join(f"{t} vs {threads[0]} thr near | far" for t in threads[1:])
        + " |",
        "|---|---|" + "---|---|" * (len(threads) - 1),
    ]
    for case, label in labels.items():
        for e in engines:
            rs = [_find(results, case, e, t) for t in threads]
            if not rs[0]:
                continue
            cells = []
            for r in rs[1:]:
                for key in ("wall_near", "wall_far"):
                    a, b = rs[0].get(key), r.get(key) if r else None
                    cells.append(f"{_x(a['p50_ms'] / b['p50_ms'])} ({a['n']}/{b['n']})" if a and b else "-")
            out.append(f"| {label} | {e} | " + " | ".join(cells) + " |")
    return out


def layer_table(results, shapes, peers, threads) -> list[str]:
    head = "| layer | threads | xnor-edge whole layer |"
    sep = "|---|---|---|"
    for p in peers:
        name = {"numpy-sgemm": "NumPy im2col + sgemm", "litert": "LiteRT Conv (XNNPACK)"}.get(p, f"{p} Conv")
        head += f" {name} | xnor-edge vs {p} |"
        sep += "---|---|"
    out = [head, sep]
    for case, _hw, _c, _k in shapes:
        for t in threads:
            ours = _find(results, case, "xnor-edge", t)
            row = f"| {case} | {t} | {_ms(ours)} |"
            for p in peers:
                pr = _find(results, case, p, t)
                row += f" {_ms(pr)} | {_x_wall_cpu(pr, ours)} |"
            out.append(row)
    return out


def fig4_table(results, shapes, peer: str) -> tuple[list[str], list[dict]]:
    out = [
        f"| sweep | channels c | filter | binary layer (xnor-edge) | float Conv ({peer}) | "
        "measured speed-up | theory S = 64cN_W/(cN_W+64) |",
        "|---|---|---|---|---|---|---|",
    ]
    points = []
    for case, _hw, c, k in shapes:
        ours, pr = _find(results, case, "xnor-edge", 1), _find(results, case, peer, 1)
        s, s_cpu = _ratio(pr, ours), _ratio(pr, ours, "cpu")
        theory = fig4_theory(c, k * k)
        sweep = "channels" if case.startswith("c") else "filter"
        points.append(
            {
                "case": case,
                "sweep": sweep,
                "c": c,
                "k": k,
                "speedup": s,
                "speedup_cpu": s_cpu,
                "theory": theory,
            }
        )
        out.append(
            f"| {sweep} | {c} | {k}x{k} | {_ms(ours)} | {_ms(pr)} | {_x_wall_cpu(pr, ours)} | {theory:.1f}x |"
        )
    out.append(
        f"| paper (XNOR-Net 4.1) | 256 | 3x3 | | | {PAPER_MEASURED:.0f}x (reported) | "
        f"{PAPER_THEORY:.0f}x ({fig4_theory(256, 9):.2f}) |"
    )
    return out, points


def fig4_plot(points: list[dict], path: str, peer: str, title: str) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "no plot: matplotlib is not installed (pip install matplotlib)"
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, sweep, xkey, xlabel in (
        (axes[0], "channels", "c", "number of channels c (3x3 filter, 14x14 input)"),
        (axes[1], "filter", "k", "filter size (256 channels, 14x14 input)"),
    ):
        pts = [p for p in points if p["sweep"] == sweep]
        xs = [p[xkey] for p in pts]
        ax.plot(xs, [p["theory"] for p in pts], "k--", label="theory 64cN_W/(cN_W+64)")
        for key, style, what in (("speedup", "o-", "wall time"), ("speedup_cpu", "s:", "thread CPU time")):
            meas = [(p[xkey], p[key]) for p in pts if p[key] is not None]
            if meas:
                ax.plot(*zip(*meas), style, label=f"xnor-edge bconv2d vs {peer} Conv, 1 thread, {what}")
        if sweep == "channels":
            ax.set_xscale("log", base=2)
            ax.plot([256], [PAPER_MEASURED], "r*", markersize=12, label="paper: 58x measured (c=256, 3x3)")
        else:
            ax.plot([3], [PAPER_MEASURED], "r*", markersize=12, label="paper: 58x measured (c=256, 3x3)")
            ax.set_xticks(xs)
            ax.set_xticklabels([f"{k}x{k}" for k in xs])
        ax.set_xlabel(xlabel)
        ax.set_ylabel("speed-up of binary over float")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"XNOR-Net Figure 4b-c measured: {title}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"wrote {path}"


# -------------------------------------------------------------------------------- main


def _given(items: list[str], flag: str) -> dict:
    out = {}
    for it in items or []:
        name, sep, path = it.partition("=")
        if not sep or name not in NETWORKS:
            sys.exit(f"{flag} takes NET=FILE with NET one of {', '.join(NETWORKS)}; got {it!r}")
        out[name] = path
    return out


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--layers", action="store_true", help="one binary layer vs one Conv, ResNet-18 shapes")
    mode.add_argument(
        "--fig4", action="store_true", help="XNOR-Net Figure 4b-c: speed-up vs channels, filter"
    )
    ap.add_argument("--networks", default=",".join(NETWORKS), help=f"comma list of {', '.join(NETWORKS)}")
    ap.add_argument("--engines", default=None, help=f"comma list of {', '.join(ENGINES)} (default: all)")
    ap.add_argument("--threads", default=None, help="comma list (default 1,2; --layers/--fig4: 1)")
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 20; quick 2)")
    ap.add_argument("--iters", type=int, default=None, help="iterations per request (default 10; quick 3)")
    ap.add_argument("--max-request-s", type=float, default=1.0, help="cap on one request's duration (s)")
    ap.add_argument("--warmup", type=float, default=None, help="warm-up seconds per case (default 0.2)")
    ap.add_argument(
        "--settle",
        choices=("on", "off"),
        default="on",
        help="after each request, wait until that engine's process has gone quiet (under a "
        "quarter of a core over 5 ms; Linux): onnxruntime's pool threads spin on a core for "
        "~50 ms after a run, which would take the core from the next engine's request",
    )
    ap.add_argument("--settle-max-s", type=float, default=0.5, help="cap on one settle wait (s)")
    ap.add_argument("--gap-ms", type=float, default=5.0, help="pause between requests, after settling")
    ap.add_argument(
        "--ort-spin",
        choices=("on", "off"),
        default="on",
        help="onnxruntime's intra-op threads spin between runs (its default) or not: off keeps "
        "them from busy-waiting on a core while another engine's request runs",
    )
    ap.add_argument(
        "--pingpong",
        default="auto",
        help="before each request, time a cache line's round trip between the first two CPUs "
        "with this bench_pool binary (auto: build/runtime_c/bench/bench_pool if built; off): "
        "labels each request near or far, since a VM host may move its vCPUs apart "
        "(docs/contributing.md)",
    )
    ap.add_argument("--quick", action="store_true", help="smoke test: few rounds and iterations")
    ap.add_argument("--seed", type=int, default=0, help="seed of the shuffled order")
    ap.add_argument("--tflite", action="append", metavar="NET=FILE", help="float TFLite model for litert")
    ap.add_argument("--lce", action="append", metavar="NET=FILE", help="LCE-converted binary TFLite model")
    ap.add_argument("--workdir", help="keep the generated models here (default: a temporary folder)")
    ap.add_argument("--markdown", help="also write the Markdown report to this file")
    ap.add_argument("--json", help="also write all results (per-iteration times included) to this file")
    ap.add_argument("--plot", default="bench_peers_fig4.png", help="--fig4 plot file (PNG)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.rounds = args.rounds or (2 if args.quick else 20)
    args.iters = args.iters or (3 if args.quick else 10)
    args.warmup = args.warmup if args.warmup is not None else (0.02 if args.quick else 0.2)
    if args.quick:
        args.max_request_s = min(args.max_request_s, 0.2)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker_main()
    mode = "layers" if args.layers else "fig4" if args.fig4 else "networks"
    engines = args.engines.split(",") if args.engines else list(ENGINES)
    unknown = [e for e in engines if e not in ENGINES]
    if unknown or "xnor-edge" not in engines:
        sys.exit(f"--engines: choose from {', '.join(ENGINES)}, xnor-edge included; got {args.engines}")
    default_threads = "1" if mode != "networks" else "1,2"
    threads = [int(t) for t in (args.threads or default_threads).split(",")]
    if mode == "fig4" and threads != [1]:
        sys.exit("--fig4 measures at 1 thread, as the paper's CPU figure (leave out --threads)")
    cpu_at_start = cpu_report()
    versions, skipped = probe_peers(engines, mode)
    if mode == "fig4":
        skipped.setdefault("numpy-sgemm", "not part of --fig4 (the paper's float side is one Conv)")
    for e, why in skipped.items():
        print(f"skip {e}: {why}")

    notes: list[str] = []
    layout: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench_peers_") as tmp:
        workdir = Path(args.workdir or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        shapes: list[tuple] = []
        labels: dict = {}
        if mode == "networks":
            names = args.networks.split(",")
            bad = [n for n in names if n not in NETWORKS]
            if bad:
                sys.exit(f"--networks: unknown {bad}; choose from {', '.join(NETWORKS)}")
            given = {"litert": _given(args.tflite, "--tflite"), "lce": _given(args.lce, "--lce")}
            per_engine, labels = build_network_cases(names, engines, workdir, skipped, given, notes, layout)
        else:
            if mode == "layers":
                shapes = [(f"{hw}x{hw}x{c} 3x3", hw, c, 3) for hw, c in RESNET_LAYERS]
            else:
                chans = [c for c in FIG4_CHANNELS if not args.quick or c in (1, 64, 256)]
                filt = [k for k in FIG4_FILTERS if not args.quick or k in (1, 3)]
                shapes = [(f"c{c} 3x3", 14, c, 3) for c in chans] + [(f"k{k} c256", 14, 256, k) for k in filt]
            per_engine, layout["_tflite_converter"] = build_layer_cases(
                shapes, engines, workdir, skipped, notes, mode
            )
        print(f"measuring ({mode}): {args.rounds} rounds x {args.iters} iterations ...", file=sys.stderr)
        results, infos = measure(per_engine, threads, args, skipped, notes)

    meta = {
        "mode": mode,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": cpu_at_start,
        "python": sys.version.split()[0],
        "versions": versions,
        "infos": infos,
        "skipped": skipped,
        "skip_notes": notes,
        "networks": {k: v for k, v in layout.items() if not k.startswith("_")},
        "tflite_converter": layout.get("_tflite_converter"),
        "blas_env_parent": {v: os.environ[v] for v in BLAS_ENV_UNSET if v in os.environ},
        "settings": {
            "rounds": args.rounds,
            "iters": args.iters,
            "threads": threads,
            "max_request_s": args.max_request_s,
            "gap_ms": args.gap_ms,
            "settle": args.settle,
            "ort_spin": args.ort_spin,
            "pingpong": args.pingpong,
            "seed": args.seed,
            "quick": args.quick,
        },
    }
    peers = [e for e in ENGINES if e != "xnor-edge" and any(r["engine"] == e for r in results)]
    lines = [f"## xnor-edge vs peers ({mode})", ""] + header_lines(meta) + [""]
    extra: dict = {}
    if mode == "networks":
        lines += network_tables(results, labels, peers, threads)
        lines += pingpong_lines(results, labels, ["xnor-edge", *peers], threads)
    elif mode == "layers":
        lines += layer_table(results, shapes, peers, threads)
        lines += [
            "",
            "Times are per Python call for every engine; C = xnor-edge's own clock (the sum of "
            "its node times, no Python).",
        ]
    else:
        table, points = fig4_table(results, shapes, "onnxruntime")
        lines += table
        lines += [
            "",
            "Times are per Python call on both sides; at small channel counts they are mostly "
            "per-call overhead (compare xnor-edge's call time with its C clock), not convolution.",
        ]
        extra["fig4"] = points
        if "onnxruntime" in peers:
            kernels = infos.get("xnor-edge", {}).get("kernel_isa")
            title = f"{meta['cpu']['model']}, xnor-edge kernels {kernels}"
            lines += ["", fig4_plot(points, args.plot, "onnxruntime", title)]
        else:
            lines += ["", "no float side ran: the speed-up needs onnxruntime"]
    meta["cpu"]["loadavg_end"] = cpu_report()["loadavg"]
    warnings = helper_thread_notes(results) + load_warning(meta["cpu"])
    if warnings:
        lines += [""] + warnings
    lines.append("")
    lines.append(f"load average at the end: {' '.join(meta['cpu']['loadavg_end'])}")
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps({**meta, **extra, "results": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
