"""The ``xnor-edge`` command line: classify, serve, info, bench, compress.

Errors print one line ``xnor-edge: error: ...`` on stderr and exit with 2
(usage) or 1 (anything else); no tracebacks.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any, NoReturn, Sequence

import numpy as np

import xnor_edge
from xnor_edge._text import safe_text
from xnor_edge.errors import CameraError, ModelError

PROG = "xnor-edge"
MAX_THREADS = 256  # XE_MAX_THREADS in runtime_c/src/session.c
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
VIDEO_EXTS = {".avi", ".mp4", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg"}
CONFIG_KEYS = {
    "model": str,
    "camera": (str, int),
    "images": list,
    "top_k": int,
    "threads": int,
    "json": bool,
    "display": bool,
    "max_frames": int,
    "realtime": bool,
    "mqtt": str,
    "mqtt_mode": str,
    "mqtt_min_confidence": (float, int),
    "mqtt_qos": int,
    "mqtt_retain": bool,
    "mqtt_queue": int,
    "min_confidence": (int, float),
    "reconnect": (int, float),
}
DEFAULTS: dict[str, Any] = {
    "top_k": 5,
    "threads": 1,
    "json": False,
    "display": False,
    "max_frames": None,
    "realtime": False,
    "images": [],
    "min_confidence": None,
    "reconnect": 30.0,
}


class UsageError(Exception):
    pass


class CliError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Run XNOR-Net binarised neural networks on the CPU.")
    p.add_argument("--version", action="version", version=f"{PROG} {xnor_edge.__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    c = sub.add_parser("classify", help="classify images, a folder, a video file or a camera")
    c.add_argument("images", nargs="*", metavar="IMAGES", help="image files, folders or video files")
    c.add_argument(
        "--camera",
        metavar="SRC",
        default=None,
        help="camera index, /dev/videoN, video file, stream URL or 'picam'",
    )
    c.add_argument(
        "--model",
        "-m",
        default=None,
        help="model file or shipped model name (`xnor-edge models`; default: the shipped default)",
    )
    c.add_argument("--top-k", "-k", type=int, default=None, dest="top_k")
    c.add_argument("--threads", "-t", type=int, default=None)
    c.add_argument(
        "--json",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="one JSON object per line (--no-json undoes a config file's json: true)",
    )
    c.add_argument(
        "--display", action="store_true", default=None, help="show frames with labels (needs a GUI)"
    )
    c.add_argument("--max-frames", type=int, default=None, dest="max_frames")
    c.add_argument(
        "--min-confidence",
        type=float,
        default=None,
        dest="min_confidence",
        metavar="P",
        help="answer 'unknown' when the top probability is below P (0..1)",
    )
    c.add_argument(
        "--reconnect",
        type=float,
        default=None,
        metavar="SECONDS",
        help="how long a camera or stream that stops delivering frames is retried (default 30)",
    )
    c.add_argument(
        "--realtime",
        action="store_true",
        default=None,
        help="pace video files at their frame rate and drop stale frames, like a camera",
    )
    c.add_argument("--config", default=None, help="YAML file whose keys mirror the flags (flags win)")
    _add_mqtt_args(c)

    i = sub.add_parser("info", help="describe a model: layers, parameters, MACs, kernels")
    i.add_argument("model", nargs="?", default=None)
    i.add_argument("--json", action="store_true")

    m = sub.add_parser("models", help="list the models shipped with the package")
    m.add_argument("--json", action="store_true")

    b = sub.add_parser("bench", help="measure latency (Python call vs C time)")
    b.add_argument("model", nargs="?", default=None)
    b.add_argument("--threads", default="1", help="comma-separated thread counts, e.g. 1,2,4")
    b.add_argument("--repeats", type=int, default=50)
    b.add_argument("--warmup", type=int, default=5)
    b.add_argument("--json", action="store_true")

    z = sub.add_parser("compress", help="MST-code every binary conv, losslessly (docs/mst.md)")
    z.add_argument("model", help="model file or shipped model name")
    z.add_argument("-o", "--out", required=True, help="output .xnor file")
    z.add_argument("--depth-bound", type=int, default=None, dest="depth_bound")
    z.add_argument("--encoding", choices=("auto", "words", "bits"), default="auto")
    z.add_argument("--chunk", type=int, default=64, help="output channels per tree (0: one per layer)")
    z.add_argument("--tree", choices=("mst", "forest"), default="forest", help="plain MST or size-optimal")
    z.add_argument("--force", action="store_true", help="code a layer even when the code is larger")
    z.add_argument("--runs", type=int, default=5, help="timed runs per model for the layer speeds")
    z.add_argument("--json", action="store_true")

    # serve: the web view (xnor_edge/serve.py); --mqtt: fleet events (xnor_edge/mqtt.py)
    s = sub.add_parser("serve", help="web page and JSON API for a headless device (the [serve] extra)")
    s.add_argument("--camera", metavar="SRC", default="0", help="as for classify (default: camera 0)")
    s.add_argument("--model", "-m", default=None, help="model file or shipped model name")
    s.add_argument("--top-k", "-k", type=int, default=5, dest="top_k")
    s.add_argument("--threads", "-t", type=int, default=1)
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (not loopback: needs a token)")
    s.add_argument("--port", type=int, default=8080, help="TCP port (0: any free port)")
    tok = s.add_mutually_exclusive_group()
    tok.add_argument("--token", default=None, help="required from clients (Authorization: Bearer, ?token=)")
    tok.add_argument("--token-file", default=None, metavar="FILE", help="read the token from FILE")
    s.add_argument("--max-upload-mb", type=float, default=10.0, help="POST /api/classify size limit")
    _add_mqtt_args(s)

    # import: ONNX or TFLite -> xnor-edge (xnor_edge/importers/; the [import] extra)
    from .importers import onnx_import, run_import

    im = sub.add_parser("import", help="convert an ONNX or TFLite (LCE) binary network (the [import] extra)")
    onnx_import.add_arguments(im)
    im.set_defaults(handler=run_import)
    return p


# ------------------------------------------------------------------- helpers


def _model_path(arg: str | None) -> str:
    if arg:
        try:
            return str(xnor_edge.model_path(arg))
        except FileNotFoundError as e:
            raise CliError(str(e)) from None
    p = xnor_edge.default_model_path()
    if p is None:
        raise CliError("no default model is installed (xnor_edge/models/default.xnor); pass --model FILE")
    return str(p)


def _load(path: str, threads: int = 1) -> Any:
    if not Path(path).exists():
        raise CliError(f"{path}: no such model file")
    return xnor_edge.load(path, num_threads=threads)


def _percentiles(ms: Sequence[float]) -> dict[str, float]:
    a = np.asarray(ms, dtype=np.float64)
    if a.size == 0:
        return {"mean": 0.0, "p50": 0.0, "p90": 0.0, "p99": 0.0}
    return {
        "mean": float(a.mean()),
        "p50": float(np.percentile(a, 50)),
        "p90": float(np.percentile(a, 90)),
        "p99": float(np.percentile(a, 99)),
    }


def _read_config(path: str) -> dict[str, Any]:
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            cfg = yaml.safe_load(f)
    except OSError as e:
        raise CliError(f"{path}: cannot read config ({e.strerror})") from None
    except yaml.YAMLError as e:
        raise CliError(f"{path}: invalid YAML ({str(e).splitlines()[0]})") from None
    if cfg is None:
        return {}
    if not isinstance(cfg, dict):
        raise UsageError(f"{path}: the config must be a mapping of option names to values")
    out = {}
    for key, value in cfg.items():
        k = str(key).replace("-", "_")
        if k not in CONFIG_KEYS:
            raise UsageError(f"{path}: unknown config key {key!r} (known: {', '.join(sorted(CONFIG_KEYS))})")
        if not isinstance(value, CONFIG_KEYS[k]) or (CONFIG_KEYS[k] is int and isinstance(value, bool)):
            raise UsageError(f"{path}: config key {key!r} has a bad value {value!r}")
        out[k] = value
    return out


def _merge(args: argparse.Namespace) -> dict[str, Any]:
    cfg = _read_config(args.config) if args.config else {}
    opts = dict(DEFAULTS)
    opts.update(cfg)
    for k in CONFIG_KEYS:
        v = getattr(args, k, None)
        if k == "images":
            if v:
                opts[k] = v
        elif v is not None:
            opts[k] = v
    if opts["top_k"] < 1:
        raise UsageError("--top-k must be >= 1")
    if not 1 <= opts["threads"] <= MAX_THREADS:
        raise UsageError(f"--threads must be from 1 to {MAX_THREADS} (the runtime's limit)")
    mc = opts["min_confidence"]
    if mc is not None and not 0.0 <= mc <= 1.0:
        raise UsageError(f"--min-confidence must be a probability from 0 to 1, got {mc}")
    if not 0.0 <= opts["reconnect"] <= 86400:
        raise UsageError("--reconnect must be from 0 to 86400 seconds")
    if opts["max_frames"] is not None and opts["max_frames"] < 1:
        raise UsageError("--max-frames must be >= 1")
    return opts


def _expand_inputs(items: Sequence[str]) -> list[tuple[str, str]]:
    """-> [(kind, path)] with kind "image" or "video"; folders give their images, sorted."""
    out = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_EXTS and f.is_file())
            if not files:
                raise CliError(f"{p}: folder holds no images")
            out.extend(("image", str(f)) for f in files)
        elif not p.exists():
            raise CliError(f"{p}: no such file or folder")
        elif p.suffix.lower() in VIDEO_EXTS:
            out.append(("video", str(p)))
        else:
            out.append(("image", str(p)))
    return out


def _emit(text: str) -> None:
    print(text, flush=True)


def _warn(text: str) -> None:
    print(f"{PROG}: warning: {safe_text(text)}", file=sys.stderr, flush=True)


def _fmt_top(top: list[tuple[str, float]], opts: dict[str, Any] | None = None) -> str:
    text = "  ".join(f"{safe_text(label)} {p:.3f}" for label, p in top)
    if _unknown(top, opts):
        return f"unknown (below {opts['min_confidence']:g}: {text})"  # type: ignore[index]
    return text


def _unknown(top: list[tuple[str, float]], opts: dict[str, Any] | None) -> bool:
    mc = opts.get("min_confidence") if opts else None
    return mc is not None and (not top or top[0][1] < mc)


def _top_json(top: list[tuple[str, float]]) -> list[dict[str, Any]]:
    return [{"label": label, "p": round(p, 6)} for label, p in top]


def _record(rec: dict[str, Any], top: list[tuple[str, float]], opts: dict[str, Any]) -> dict[str, Any]:
    """A JSON result; with --min-confidence, "label" is the answer: top-1 or "unknown"."""
    if opts.get("min_confidence") is not None:
        rec["label"] = "unknown" if _unknown(top, opts) else top[0][0]
    return rec


# ------------------------------------------------------------------ classify


def _display_problem() -> str | None:
    """Why no window can open here, or None. Checked before OpenCV's GUI is touched:
    a GUI build of OpenCV without a reachable display aborts the whole process."""
    if not sys.platform.startswith("linux"):
        return None
    wayland, x11 = os.environ.get("WAYLAND_DISPLAY"), os.environ.get("DISPLAY")
    if wayland:
        runtime_dir = os.environ.get("XDG_RUNTIME_DIR", "")
        path = wayland if os.path.isabs(wayland) else os.path.join(runtime_dir, wayland)
        if os.path.exists(path):
            return None
        if not x11:
            return f"the Wayland display {wayland} is not running ({path} does not exist)"
    if not x11:
        return "there is no display (neither DISPLAY nor WAYLAND_DISPLAY is set: a headless or ssh session?)"
    host, _, num = x11.rpartition(":")
    num = num.split(".")[0]
    if not num.isdigit():
        return f"DISPLAY={x11!r} is not a display name"
    if host in ("", "unix") or host.startswith("/"):
        sock = f"/tmp/.X11-unix/X{num}"
        if os.path.exists(sock) or (host.startswith("/") and os.path.exists(x11)):
            return None
        return f"the X display {x11} is not running ({sock} does not exist)"
    try:
        socket.create_connection((host, 6000 + int(num)), timeout=1.0).close()
    except OSError as e:
        return f"the X display {x11} cannot be reached ({e.strerror or e})"
    return None


def _opencv_gui(cv2: Any) -> bool:
    import re

    m = re.search(r"^\s*GUI:\s*(\S+)", cv2.getBuildInformation(), re.M)
    return m is None or m.group(1).upper() != "NONE"


class _Display:
    def __init__(self) -> None:
        problem = _display_problem()
        if problem:
            raise CliError(
                f"--display needs a display: {problem}; drop --display, or run on the device's "
                "desktop (or with ssh -X)"
            )
        import cv2

        self.cv2 = cv2
        if not _opencv_gui(cv2):
            raise CliError(
                "--display needs OpenCV with GUI support; this OpenCV (opencv-python-headless?) "
                "cannot open windows: drop --display or install opencv-python"
            )
        try:
            cv2.namedWindow(PROG, cv2.WINDOW_AUTOSIZE)
        except cv2.error:
            raise CliError(
                "--display needs OpenCV with GUI support and a display; this OpenCV "
                "(opencv-python-headless?) cannot open windows: drop --display or install opencv-python"
            ) from None

    def show(self, img: np.ndarray, top: list[tuple[str, float]], fps: float) -> bool:
        cv2 = self.cv2
        img = img.copy()
        for i, (label, p) in enumerate(top[:3]):
            cv2.putText(
                img, f"{label} {p:.2f}", (8, 22 + 22 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 255, 0), 2
            )
        cv2.putText(
            img, f"{fps:.1f} FPS", (8, img.shape[0] - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 255, 255), 2
        )
        cv2.imshow(PROG, img)
        return (cv2.waitKey(1) & 0xFF) not in (27, ord("q"))

    def close(self) -> None:
        self.cv2.destroyAllWindows()


def _classify_images(model: Any, paths: list[str], opts: dict[str, Any]) -> int:
    status = 0
    for path in paths:
        t0 = time.perf_counter()
        try:
            top = model.classify(path, top_k=opts["top_k"])
        except (ValueError, TypeError) as e:
            print(f"{PROG}: error: {safe_text(e)}", file=sys.stderr, flush=True)
            status = 1
            continue
        ms = (time.perf_counter() - t0) * 1e3
        _mqtt_submit(opts, model, top, source=path, latency_ms=ms)
        if opts["json"]:
            rec = {"source": path, "top": _top_json(top), "latency_ms": round(ms, 3)}
            _emit(json.dumps(_record(rec, top, opts)))
        else:
            _emit(f"{safe_text(path)}: {_fmt_top(top, opts)}  ({ms:.1f} ms)")
    return status


def _classify_stream(model: Any, source: Any, opts: dict[str, Any]) -> int:
    from xnor_edge.camera import open_stream

    display = _Display() if opts["display"] else None
    stream = open_stream(
        source,
        realtime=opts["realtime"],
        max_frames=opts["max_frames"],
        reconnect=opts["reconnect"],
        log=_warn,
    )
    lat_ms: list[float] = []
    t_start = time.perf_counter()
    interrupted = False
    try:
        for frame in stream:
            t0 = time.perf_counter()
            top = model.classify(frame.image, top_k=opts["top_k"])
            t1 = time.perf_counter()
            lat_ms.append((t1 - t0) * 1e3)
            elapsed = t1 - t_start
            fps = len(lat_ms) / elapsed if elapsed > 0 else 0.0
            _mqtt_submit(opts, model, top, source=str(source), frame=frame.index, latency_ms=lat_ms[-1])
            if opts["json"]:
                rec = {
                    "frame": frame.index,
                    "top": _top_json(top),
                    "latency_ms": round(lat_ms[-1], 3),
                    "fps": round(fps, 2),
                    "dropped": stream.stats.dropped,
                }
                _emit(json.dumps(_record(rec, top, opts)))
            else:
                _emit(f"frame {frame.index:5d}  {fps:6.1f} FPS  {lat_ms[-1]:6.1f} ms  {_fmt_top(top, opts)}")
            if display is not None and not display.show(frame.image, top, fps):
                break
    except KeyboardInterrupt:
        interrupted = True
    finally:
        stream.close()
        if display is not None:
            display.close()
    if stream.warning:
        _warn(stream.warning)
    elapsed = time.perf_counter() - t_start
    pct = _percentiles(lat_ms)
    summary = {
        "source": str(source),
        "frames": len(lat_ms),
        "mean_fps": round(len(lat_ms) / elapsed, 2) if elapsed > 0 else 0.0,
        "latency_ms": {k: round(v, 3) for k, v in pct.items()},
        "dropped": stream.stats.dropped,
        "interrupted": interrupted,
    }
    if opts["json"]:
        _emit(json.dumps({"summary": summary}))
    else:
        _emit(
            f"summary: {summary['frames']} frames, {summary['mean_fps']:.1f} FPS, latency p50 "
            f"{pct['p50']:.1f} / p90 {pct['p90']:.1f} / p99 {pct['p99']:.1f} ms, "
            f"{summary['dropped']} dropped" + (" (interrupted)" if interrupted else "")
        )
    return 0


def cmd_classify(args: argparse.Namespace) -> int:
    opts = _merge(args)
    camera = opts.get("camera")
    inputs = _expand_inputs([str(i) for i in opts["images"]])
    if camera is None and not inputs:
        inputs = [("image", str(xnor_edge.sample_path("cat.jpg")))]
    model = _load(_model_path(opts.get("model")), opts["threads"])
    status = 0
    with model, _mqtt_events(opts):
        if model.output_shape[:2] != (1, 1):
            raise CliError(f"{model.source}: not a classifier (output shape {model.output_shape})")
        model.classify(np.zeros((*model.input_size, 3), np.uint8))  # warm-up: imports, session, caches
        images = [p for kind, p in inputs if kind == "image"]
        if images:
            status = _classify_images(model, images, opts)
        for kind, p in inputs:
            if kind == "video":
                status = max(status, _classify_stream(model, p, opts))
        if camera is not None:
            src = int(camera) if isinstance(camera, int) or str(camera).isdigit() else str(camera)
            status = max(status, _classify_stream(model, src, opts))
    return status


# ---------------------------------------------------------------------- info


def _human(n: float, unit: str = "") -> str:
    for suffix in ("", "K", "M", "G"):
        if abs(n) < 1000:
            return f"{n:.0f}{suffix}{unit}" if suffix == "" else f"{n:.2f}{suffix}{unit}"
        n /= 1000
    return f"{n:.2f}T{unit}"


def cmd_info(args: argparse.Namespace) -> int:
    path = _model_path(args.model)
    with _load(path) as model:
        info = model.info()
    if args.json:
        _emit(json.dumps(info))
        return 0
    shape = lambda s: "x".join(str(v) for v in s)  # noqa: E731
    _emit(f"model      {safe_text(info['name'])}  ({safe_text(path)})")
    _emit(
        f"input      {shape(info['input_shape'])} {info['color_order']}"
        f"{' (takes uint8)' if info['uint8_input'] else ''}   "
        f"output {shape(info['output_shape'])}   labels {info['labels']}"
    )
    _emit(f"variant    {safe_text(info['variant'] or '-')}   uses K: {'yes' if info['uses_k'] else 'no'}")
    _emit(
        f"params     {_human(info['binary_params'])} binary + {_human(info['float_params'])} float, "
        f"{_human(info['param_bytes'], 'B')} in file "
        f"(float32 would be {_human(info['float32_equivalent_bytes'], 'B')})"
    )
    _emit(f"compute    {_human(info['macs'])} MACs ({_human(info['binary_macs'])} binary)")
    _emit(
        f"kernels    {info['kernel_isa']} (available: {', '.join(xnor_edge.available_isas())})"
        f"   library {info['library_version']}"
    )
    _emit("")
    _emit(
        f"{'#':>3}  {'op':<15} {'in':<14} {'out':<14} {'k/s/p':<10} {'flags':<16} {'bin':>8} "
        f"{'float':>8} {'MACs':>9}"
    )
    for layer in info["layers"]:
        ksp = "-"
        if layer["kernel"] != (0, 0):
            k, s, p = layer["kernel"], layer["stride"], layer["pad"]
            ksp = (
                f"{k[0]}x{k[1]}/{s[0]}/{p[0]}"
                if k[0] == k[1] and s[0] == s[1] and p[0] == p[1]
                else f"{k[0]}x{k[1]}/{s[0]}x{s[1]}/{p[0]}x{p[1]}"
            )
        ins = shape(layer["in_shape"]) + ("b" if layer["in_dtype"] == "bits" else "")
        outs = shape(layer["out_shape"]) + ("b" if layer["out_dtype"] == "bits" else "")
        _emit(
            f"{layer['index']:>3}  {layer['op']:<15} {ins:<14} {outs:<14} {ksp:<10} "
            f"{','.join(layer['flags']) or '-':<16} {_human(layer['binary_params']):>8} "
            f"{_human(layer['float_params']):>8} {_human(layer['macs']):>9}"
        )
    if any(layer["op"] == "bconv2d_mst" for layer in info["layers"]):
        from xnor_edge import mst

        _emit("\nMST-coded layers (docs/mst.md):")
        for r in mst.coded_layers(Path(path).read_bytes()):
            _emit(
                f"{r['node']:>3}  {r['encoding']:<5} roots {r['roots']}/{r['oc']} depth {r['depth']} "
                f"mean D/K {r['mean_d']:.3f} ops {r['ops_ratio']:.3f} "
                f"bytes {r['bytes_before']} -> {r['bytes_after']}"
            )
    return 0


# ------------------------------------------------------------------ compress


def _node_ms(models: Sequence[Any], x: np.ndarray, runs: int) -> list[np.ndarray]:
    """Median wall time of each node of each model (1 thread, runs interleaved), in ms."""
    sessions = [m.session(1) for m in models]
    try:
        for s in sessions:
            s.run(x)
        times: list[list[list[int]]] = [[] for _ in sessions]
        for _ in range(max(1, runs)):
            for s, t in zip(sessions, times):
                s.run(x)
                t.append(s.node_times_ns())
    finally:
        for s in sessions:
            s.close()
    return [np.median(np.asarray(t, dtype=np.float64), axis=0) / 1e6 for t in times]


def _same_outputs(a: bytes, b: bytes, shape: tuple[int, int, int]) -> bool:
    """Runs both files on random inputs with every kernel set at 1 and 3 threads."""
    rng = np.random.default_rng(13)
    xs = [rng.standard_normal(shape).astype(np.float32) * s for s in (1.0, 3.0)]
    xs.append(rng.uniform(0, 2, shape).astype(np.float32))
    try:
        for isa in xnor_edge.available_isas():
            xnor_edge.set_kernel_isa(isa)
            for threads in (1, 3):
                with xnor_edge.load(a, threads) as ma, xnor_edge.load(b, threads) as mb:
                    if any(ma.run(x).tobytes() != mb.run(x).tobytes() for x in xs):
                        return False
    finally:
        xnor_edge.set_kernel_isa("auto")
    return True


def cmd_compress(args: argparse.Namespace) -> int:
    import os
    import tempfile

    from xnor_edge import mst

    path = _model_path(args.model)
    data = Path(path).read_bytes()
    out, report = mst.compress_model(
        data,
        chunk=args.chunk or None,
        max_depth=args.depth_bound,
        min_ratio=0.0 if args.force else 1.0,
        forest=args.tree == "forest",
        encoding=args.encoding,
    )
    with xnor_edge.load(data) as before, xnor_edge.load(out) as after:
        if not _same_outputs(data, out, before.input_shape):
            raise CliError("self-check failed: the coded model's outputs differ; nothing written")
        x = np.random.default_rng(0).standard_normal(before.input_shape).astype(np.float32)
        t0, t1 = _node_ms((before, after), x, args.runs)
    for r in report:
        r["ms_before"], r["ms_after"] = float(t0[r["node"]]), float(t1[r["node"]])
    tmp = tempfile.NamedTemporaryFile(dir=str(Path(args.out).resolve().parent), delete=False)
    with tmp:
        tmp.write(out)
    os.chmod(tmp.name, 0o644)
    os.replace(tmp.name, args.out)
    if args.json:
        _emit(json.dumps({"model": path, "out": args.out, "bytes": [len(data), len(out)], "layers": report}))
        return 0
    _emit(
        f"{'#':>3} {'oc':>4} {'K':>5} {'coded':<6} {'enc':<5} {'roots':>5} {'D/K':>5} "
        f"{'bytes before':>12} {'after':>9} {'ops':>5} {'ms before':>9} {'after':>7}"
    )
    for r in report:
        coded = r["encoding"] if r["converted"] else "kept"
        after = r["bytes_after"] if r["converted"] else r["bytes_before"]
        _emit(
            f"{r['node']:>3} {r['oc']:>4} {r['K']:>5} {coded:<6} {r['encoding']:<5} {r['roots']:>5} "
            f"{r['mean_d']:>5.3f} {r['bytes_before']:>12} {after:>9} {r['ops_ratio']:>5.3f} "
            f"{r['ms_before']:>9.3f} {r['ms_after']:>7.3f}"
        )
    _emit(f"wrote {args.out}: {len(out)} bytes (input {len(data)}), outputs bit-identical (self-check)")
    return 0


# -------------------------------------------------------------------- models


def _data_name(source: str) -> str | None:
    """'path/x.tar.gz (CIFAR-10 JPEG q75)' -> 'CIFAR-10 JPEG q75'; 'path/mnist' -> 'mnist'."""
    if source.endswith(")") and " (" in source:
        return source[source.rindex(" (") + 2 : -1]
    return Path(source).name or None


def cmd_models(args: argparse.Namespace) -> int:
    shipped = xnor_edge.shipped_models()
    blobs = {name: p.read_bytes() for name, p in shipped.items()}
    rows = []
    for name, path in shipped.items():
        with _load(str(path)) as model:
            md = model.metadata
            shape = model.input_shape
        trained = md.get("training") or {}
        acc = (trained.get("accuracy") or {}).get("test_top1_torch")
        same = [o for o in shipped if o != name and blobs[o] == blobs[name]]
        rows.append(
            {
                "name": name,
                "path": str(path),
                "labels": len(md.get("labels") or []),
                "input": list(shape),
                "variant": md.get("variant"),
                "data": _data_name(str(trained.get("data") or "")),
                "test_top1": acc,
                "bytes": len(blobs[name]),
                "copy_of": same[0] if name == "default" and same else None,
            }
        )
    if args.json:
        _emit(json.dumps(rows))
        return 0
    if not rows:
        _emit("no models are installed with the package")
        return 0
    _emit(f"{'name':<28} {'input':<11} {'classes':>7} {'variant':<8} {'top-1':>7} {'size':>8}  data")
    for r in rows:
        top1 = f"{r['test_top1'] * 100:.2f}%" if r["test_top1"] is not None else "-"
        data = safe_text(r["data"] or "-")
        if r["copy_of"]:
            data = f"same file as {r['copy_of']}"
        variant = safe_text(r["variant"] or "-")
        _emit(
            f"{r['name']:<28} {'x'.join(map(str, r['input'])):<11} {r['labels']:>7} {variant:<8} "
            f"{top1:>7} {_human(r['bytes'], 'B'):>8}  {data}"
        )
    _emit("(top-1: the training run's test-set figure from the metadata; cards in models/*.md)")
    return 0


# --------------------------------------------------------------------- bench


def cmd_bench(args: argparse.Namespace) -> int:
    try:
        threads = [int(t) for t in str(args.threads).split(",") if t.strip()]
    except ValueError:
        raise UsageError(f"--threads must be comma-separated integers, got {args.threads!r}") from None
    if not threads or min(threads) < 1 or max(threads) > MAX_THREADS:
        raise UsageError(f"--threads values must be from 1 to {MAX_THREADS} (the runtime's limit)")
    if args.repeats < 1 or args.warmup < 0:
        raise UsageError("--repeats must be >= 1 and --warmup >= 0")
    path = _model_path(args.model)
    rows = []
    with _load(path) as model:
        x = np.random.default_rng(0).standard_normal(model.input_shape).astype(np.float32)
        for n in threads:
            with model.session(n) as s:
                for _ in range(args.warmup):
                    s.run(x)
                call_ms, c_ms = [], []
                out = np.empty(model.output_shape, dtype=np.float32)
                for _ in range(args.repeats):
                    t0 = time.perf_counter_ns()
                    s.run(x, out=out)
                    call_ms.append((time.perf_counter_ns() - t0) / 1e6)
                    c_ms.append(sum(s.node_times_ns()) / 1e6)
                rows.append(
                    {
                        "threads": n,
                        "effective_threads": s.num_threads,
                        "call_ms": _percentiles(call_ms),
                        "c_ms": _percentiles(c_ms),
                        "overhead_us": (float(np.mean(call_ms)) - float(np.mean(c_ms))) * 1e3,
                    }
                )
        name, isa = model.name, xnor_edge.kernel_isa()
    if args.json:
        _emit(
            json.dumps(
                {"model": name, "path": path, "kernel_isa": isa, "repeats": args.repeats, "results": rows}
            )
        )
        return 0
    _emit(
        f"model {safe_text(name)} ({safe_text(path)}), kernels {isa}, {args.repeats} runs "
        f"after {args.warmup} warm-up"
    )
    _emit(
        f"{'threads':>7}  {'mean':>8} {'p50':>8} {'p90':>8} {'p99':>8}   {'C mean':>8} {'C p50':>8}"
        f"   {'py overhead':>11}"
    )
    for r in rows:
        c, k = r["call_ms"], r["c_ms"]
        _emit(
            f"{r['threads']:>7}  {c['mean']:8.3f} {c['p50']:8.3f} {c['p90']:8.3f} {c['p99']:8.3f}   "
            f"{k['mean']:8.3f} {k['p50']:8.3f}   {r['overhead_us']:8.1f} us"
        )
    _emit("(ms; 'C' = sum of per-node C times, from xe_session_node_time_ns)")
    return 0


# ------------------------------------------------------------ serve, MQTT


def _add_mqtt_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("MQTT fleet events (the [mqtt] extra)")
    g.add_argument(
        "--mqtt", metavar="URL", default=None, help="publish results as JSON to mqtt://host:1883/topic"
    )
    g.add_argument(
        "--mqtt-mode", choices=("all", "change"), default=None, help="every result or label changes"
    )
    g.add_argument("--mqtt-min-confidence", type=float, default=None, metavar="P", help="skip top-1 below P")
    g.add_argument("--mqtt-qos", type=int, choices=(0, 1, 2), default=None)
    g.add_argument("--mqtt-retain", action="store_true", default=None)
    g.add_argument("--mqtt-queue", type=int, default=None, metavar="N", help="kept while away (default 100)")


@contextlib.contextmanager
def _mqtt_events(opts: dict[str, Any]) -> Any:
    """Sets opts["mqtt_publisher"] for the block when --mqtt is given; reports losses at the end."""
    if not opts.get("mqtt"):
        yield None
        return
    from xnor_edge.mqtt import MqttPublisher

    if opts.get("mqtt_queue") is not None and opts["mqtt_queue"] < 1:
        raise UsageError("--mqtt-queue must be >= 1")
    try:
        pub = MqttPublisher(
            opts["mqtt"],
            mode=opts.get("mqtt_mode") or "all",
            min_confidence=opts.get("mqtt_min_confidence") or 0.0,
            qos=opts.get("mqtt_qos") or 0,
            retain=bool(opts.get("mqtt_retain")),
            queue_size=opts.get("mqtt_queue") or 100,
        )
    except ValueError as e:
        raise UsageError(str(e)) from None
    opts["mqtt_publisher"] = pub
    try:
        yield pub
    finally:
        pub.close(flush_timeout=2.0)
        st = pub.stats
        lost = st.submitted - st.skipped - st.sent
        if lost:
            why = f": {st.last_error}" if st.last_error else ""
            print(
                f"{PROG}: warning: mqtt: {lost} of {st.submitted - st.skipped} messages not delivered to "
                f"{pub.url} ({st.dropped} dropped from the full queue){why}",
                file=sys.stderr,
                flush=True,
            )


def _mqtt_submit(opts: dict[str, Any], model: Any, top: list[tuple[str, float]], **fields: Any) -> None:
    pub = opts.get("mqtt_publisher")
    if pub is not None:
        fields["latency_ms"] = round(fields["latency_ms"], 3)
        pub.submit({**fields, "top": _top_json(top), "model": model.name})


def cmd_serve(args: argparse.Namespace) -> int:
    from xnor_edge import serve as srv

    srv._import_aiohttp()  # the missing extra is named before anything loads
    token = args.token
    if args.token_file:
        try:
            token = Path(args.token_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as e:
            raise CliError(f"{args.token_file}: cannot read the token ({e})") from None
        if not token:
            raise UsageError(f"{args.token_file}: the token file is empty")
    if token is not None and not token:
        raise UsageError("--token must not be empty")
    if args.top_k < 1 or args.threads < 1 or not 0 <= args.port <= 65535 or args.max_upload_mb <= 0:
        raise UsageError("--top-k and --threads must be >= 1, --port 0-65535, --max-upload-mb > 0")
    try:
        srv.check_host(args.host, token)
    except ValueError as e:
        raise UsageError(str(e)) from None
    camera = int(args.camera) if str(args.camera).isdigit() else args.camera
    opts = srv.ServeOptions(
        source=camera,
        top_k=args.top_k,
        host=args.host,
        port=args.port,
        token=token,
        max_upload_bytes=int(args.max_upload_mb * (1 << 20)),
    )
    model = _load(_model_path(args.model), args.threads)
    with model, _mqtt_events(vars(args)) as pub:
        if model.output_shape[:2] != (1, 1):
            raise CliError(f"{model.source}: not a classifier (output shape {model.output_shape})")
        listeners = []
        if pub is not None:
            listeners.append(lambda r: r is not None and pub.submit({**r, "model": model.name}))
        extra = (lambda: {"mqtt": vars(pub.stats)}) if pub is not None else None
        return srv.serve(model, opts, listeners, extra, log=lambda line: print(line, flush=True))


# ---------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
        handler = {
            "classify": cmd_classify,
            "serve": cmd_serve,
            "info": cmd_info,
            "models": cmd_models,
            "bench": cmd_bench,
            "compress": cmd_compress,
            "import": getattr(args, "handler", None),
        }[args.command]
        return handler(args)
    except UsageError as e:
        print(f"{PROG}: error: {safe_text(e)}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    except (
        CliError,
        ModelError,
        CameraError,
        ValueError,
        TypeError,
        FileNotFoundError,
        ImportError,
        RuntimeError,
        OSError,
    ) as e:
        print(f"{PROG}: error: {safe_text(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
