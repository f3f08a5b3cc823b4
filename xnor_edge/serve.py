"""``xnor-edge serve``: a small web app for a headless device.

A background thread reads the camera with FrameStream and classifies every
frame it gets (the newest one: a slow model never lags behind the scene);
an aiohttp server shows it:

    GET  /                      the page: live video (MJPEG) with the top-k labels
                                over it, FPS and latency with a live chart, the model card
    GET  /video.mjpg            the MJPEG stream (multipart/x-mixed-replace)
    GET  /api/status            camera state and error, FPS, latency, model, kernels
    GET  /api/results           the latest result
    GET  /api/results/stream    every result as Server-Sent Events
    POST /api/classify          an image (raw body or multipart field) -> top-k JSON
    GET  /api/models            the shipped models

A camera that fails or vanishes puts the state to "error" (shown on the page
and in /api/status) and is reopened with backoff until it returns; a video
file is looped. With a token, every route but /static/ needs it, as
``Authorization: Bearer TOKEN`` or ``?token=TOKEN`` (for the page, the video
and the event stream, which browsers cannot send headers for); tokens are
compared in constant time, and a non-loopback address is refused without one.

Needs the ``serve`` extra (``pip install "xnor-edge[serve]"``); aiohttp is
imported only here.
"""

from __future__ import annotations

import asyncio
import collections
import hmac
import io
import ipaddress
import json
import signal
import threading
import time
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .camera import open_stream
from .errors import CameraError

__all__ = ["CameraWorker", "LiveState", "ServeOptions", "clean_text", "create_app", "is_loopback", "serve"]

WEB_DIR = Path(__file__).resolve().parent / "web"
MB = 1 << 20


def _import_aiohttp() -> Any:
    try:
        from aiohttp import web
    except ImportError:
        raise ImportError(
            'xnor-edge serve needs aiohttp: pip install "xnor-edge[serve]" (or pip install aiohttp)'
        ) from None
    return web


def is_loopback(host: str) -> bool:
    """Whether ``host`` only listens on this machine (127.0.0.0/8, ::1, localhost)."""
    if host.rstrip(".").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name or an empty/wildcard address: reachable from outside


def clean_text(text: Any) -> str:
    """``text`` without control, format (bidi overrides) and line/paragraph separator
    characters, for terminal output of strings that came from a model file."""
    return "".join(c for c in str(text) if unicodedata.category(c) not in ("Cc", "Cf", "Zl", "Zp"))


@dataclass
class ServeOptions:
    source: Any = 0
    top_k: int = 5
    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = None
    max_upload_bytes: int = 10 * MB
    max_pixels: int = 40_000_000  # uploads larger than this are refused before decoding
    backoff: tuple[float, float] = (0.5, 5.0)  # reopen delay after a camera failure: first, max
    stall_s: float = 5.0  # no frame for this long while running -> state "stalled"
    max_streams: int = 16  # concurrent MJPEG + SSE clients
    jpeg_quality: int = 80


class LiveState:
    """What the camera thread last saw, shared with the server (thread-safe)."""

    def __init__(self, stall_s: float = 5.0) -> None:
        self._lock = threading.Lock()
        self.stall_s = stall_s
        self.state = "starting"  # starting | running | error (stalled is derived)
        self.error: str | None = None
        self.result: dict[str, Any] | None = None
        self.jpeg: bytes | None = None
        self.seq = 0  # bumped on every new result
        self.frames = 0
        self.reopens = 0
        self.last_frame = 0.0
        self.viewers = 0  # MJPEG clients: frames are JPEG-encoded only while there are some
        self.started = time.time()
        self._latency: collections.deque[float] = collections.deque(maxlen=100)
        self._times: collections.deque[float] = collections.deque(maxlen=30)

    def add_result(self, top: list[tuple[str, float]], latency_ms: float, index: int, source: str) -> dict:
        now = time.perf_counter()
        with self._lock:
            self._latency.append(latency_ms)
            self._times.append(now)
            n = len(self._times)
            fps = (n - 1) / (self._times[-1] - self._times[0]) if n > 1 and now > self._times[0] else 0.0
            self.frames += 1
            self.seq += 1
            self.last_frame = now
            self.state, self.error = "running", None
            self.result = {
                "frame": index,
                "time": round(time.time(), 3),
                "top": [{"label": label, "p": round(p, 6)} for label, p in top],
                "latency_ms": round(latency_ms, 3),
                "fps": round(fps, 2),
                "source": source,
            }
            return self.result

    def set_jpeg(self, jpeg: bytes) -> None:
        with self._lock:
            self.jpeg = jpeg

    def count_reopen(self) -> None:
        with self._lock:
            self.reopens += 1

    def set_error(self, message: str) -> None:
        with self._lock:
            self.state, self.error = "error", message
            self.seq += 1

    def add_viewer(self, n: int) -> None:
        with self._lock:
            self.viewers += n

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            lat = np.asarray(self._latency, dtype=np.float64)
            state = self.state
            if state == "running" and time.perf_counter() - self.last_frame > self.stall_s:
                state = "stalled"
            return {
                "state": state,
                "error": self.error
                if state != "stalled"
                else f"no frame for {time.perf_counter() - self.last_frame:.0f} s",
                "frames": self.frames,
                "reopens": self.reopens,
                "fps": self.result["fps"] if self.result and state == "running" else 0.0,
                "latency_ms": {
                    "p50": round(float(np.percentile(lat, 50)), 3) if lat.size else None,
                    "p90": round(float(np.percentile(lat, 90)), 3) if lat.size else None,
                },
                "uptime_s": round(time.time() - self.started, 1),
            }


class CameraWorker(threading.Thread):
    """Reads ``source`` with FrameStream, classifies each frame, reports to ``state``
    and to each of ``listeners`` (called with the result dict, in this thread).

    Failures (the source cannot be opened, or fails after FrameStream's retries)
    set the error state; the source is then reopened after a delay that doubles
    from ``backoff[0]`` to ``backoff[1]`` and resets once frames flow again.
    A source that ends (a video file) is reopened at once: files are looped.
    """

    def __init__(
        self,
        model: Any,
        source: Any,
        state: LiveState,
        top_k: int = 5,
        backoff: tuple[float, float] = (0.5, 5.0),
        listeners: list[Callable[[dict], None]] | None = None,
        jpeg_quality: int = 80,
        max_frames: int | None = None,
    ) -> None:
        super().__init__(name="xnor-edge-camera", daemon=True)
        self.model, self.source, self.state, self.top_k = model, source, state, top_k
        self.backoff = backoff
        self.listeners = listeners or []
        self.jpeg_quality = jpeg_quality
        self.max_frames = max_frames
        self._halt = threading.Event()
        self._stream: Any = None
        self._lock = threading.Lock()

    def stop(self, timeout: float = 5.0) -> None:
        self._halt.set()
        with self._lock:
            stream = self._stream
        if stream is not None:
            stream.close()  # wakes a consumer blocked on the next frame
        self.join(timeout)

    def run(self) -> None:
        delay = self.backoff[0]
        first = True
        while not self._halt.is_set():
            if not first:
                self.state.count_reopen()
            first = False
            try:
                got = self._run_once()
            except CameraError as e:
                got, message = 0, clean_text(e)
            except Exception as e:  # a frame the model cannot take: report it, keep serving
                got, message = 0, clean_text(f"{type(e).__name__}: {e}")
            else:
                message = f"{self.source}: the source ended without a frame"
            if got:
                delay = self.backoff[0]
                continue  # a looped video file, or a live source that failed after frames
            self.state.set_error(message)
            self._notify(None)
            if self._halt.wait(delay):
                break
            delay = min(delay * 2, self.backoff[1])

    def _run_once(self) -> int:
        """One opening of the source; returns the number of frames classified."""
        stream = open_stream(self.source, realtime=True)
        with self._lock:
            if self._halt.is_set():
                stream.close()
                return 0
            self._stream = stream
        got = 0
        name = clean_text(stream.source.name)
        try:
            for frame in stream:
                if self._halt.is_set():
                    break
                t0 = time.perf_counter()
                top = self.model.classify(frame.image, top_k=self.top_k)
                ms = (time.perf_counter() - t0) * 1e3
                got += 1
                if self.state.viewers > 0:
                    self.state.set_jpeg(self._encode(frame.image))
                self._notify(self.state.add_result(top, ms, frame.index, name))
                if self.max_frames is not None and self.state.frames >= self.max_frames:
                    self._halt.set()
        except CameraError as e:
            if not got:
                raise
            self.state.set_error(clean_text(e))
            self._notify(None)
        finally:
            with self._lock:
                self._stream = None
            stream.close()
        return got

    def _encode(self, img: np.ndarray) -> bytes:
        import cv2

        h, w = img.shape[:2]
        if w > 640:
            img = cv2.resize(img, (640, max(1, round(h * 640 / w))), interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        return buf.tobytes() if ok else b""

    def _notify(self, result: dict | None) -> None:
        for fn in self.listeners:
            try:
                fn(result)
            except Exception:  # a listener (MQTT, the web hub) must never stop the camera
                pass


# ------------------------------------------------------------------ uploads


class ImageRejected(ValueError):
    pass


def decode_upload(data: bytes, max_pixels: int) -> np.ndarray:
    """Image bytes -> uint8 RGB array, EXIF orientation applied; ImageRejected if the
    bytes are not an image Pillow reads, or it has more than ``max_pixels`` pixels."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not data:
        raise ImageRejected("empty upload: send the image as the request body or a multipart file")
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size  # from the header: checked before any pixel is decoded
            if w * h > max_pixels:
                raise ImageRejected(f"image is {w}x{h} pixels, over the limit of {max_pixels}")
            im = ImageOps.exif_transpose(im)
            return np.asarray(im.convert("RGB"))
    except ImageRejected:
        raise
    except Image.DecompressionBombError:
        raise ImageRejected(f"image is over the limit of {max_pixels} pixels (decompression bomb?)") from None
    except UnidentifiedImageError:
        raise ImageRejected("not an image in a format this server reads (JPEG, PNG, ...)") from None
    except Exception as e:  # Pillow raises many types for hostile bytes; all mean "not an image"
        raise ImageRejected(f"cannot decode the image ({type(e).__name__}: {e})") from None


# ---------------------------------------------------------------- the app


class _Hub:
    """Wakes every waiting handler when the camera thread reports (in the event loop)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.closing = False

    def bump(self) -> None:
        ev, self._event = self._event, asyncio.Event()
        ev.set()

    async def wait(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except asyncio.TimeoutError:
            pass


def model_card(model: Any) -> dict[str, Any]:
    """The model facts the page and /api/status show; ``card`` is the text of the model
    card beside the file (models/NAME.md in a source checkout), if there is one."""
    import xnor_edge

    info = model.info()
    md = dict(model.metadata)
    card = None
    if model.source != "<bytes>":
        p = Path(str(model.source)).with_suffix(".md")
        try:
            if p.is_file() and p.stat().st_size <= 256 * 1024:
                card = p.read_text(encoding="utf-8", errors="replace")
        except OSError:
            pass
    return {
        "name": model.name,
        "source": str(model.source),
        "variant": md.get("variant"),
        "input_shape": list(model.input_shape),
        "labels": model.labels,
        "uses_k": model.uses_k,
        "kernel_isa": xnor_edge.kernel_isa(),
        "available_isas": xnor_edge.available_isas(),
        "library_version": xnor_edge.library_version(),
        "threads": model.num_threads,
        "macs": info["macs"],
        "binary_macs": info["binary_macs"],
        "param_bytes": info["param_bytes"],
        "metadata": {k: v for k, v in md.items() if k != "labels"},
        "card": card,
    }


def create_app(
    model: Any, opts: ServeOptions, state: LiveState, extra_status: Callable[[], dict] | None = None
):
    """-> (the aiohttp Application, the camera thread's listener: thread-safe, it wakes the
    handlers waiting for a new result). The camera thread is run by ``serve``."""
    web = _import_aiohttp()
    import xnor_edge

    card = model_card(model)
    shipped = xnor_edge.shipped_models()
    active = Path(str(model.source)).resolve() if model.source != "<bytes>" else None
    models = [
        {"name": n, "path": str(p), "bytes": p.stat().st_size, "active": p.resolve() == active}
        for n, p in shipped.items()
    ]
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="xnor-edge-upload")
    uploads = asyncio.Semaphore(2)  # bodies held in memory at once
    streams = {"n": 0}
    token = opts.token.encode() if opts.token else None

    def jerror(status: int, message: str) -> Any:
        return web.json_response({"error": message, "status": status}, status=status)

    @web.middleware
    async def errors_and_auth(request: Any, handler: Any) -> Any:
        if token is not None and not request.path.startswith("/static/"):
            given = request.query.get("token")
            auth = request.headers.get("Authorization", "")
            if auth[:7].lower() == "bearer ":
                given = auth[7:].strip()
            if given is None:
                r = jerror(401, "a token is required: Authorization: Bearer TOKEN, or ?token=TOKEN")
                r.headers["WWW-Authenticate"] = "Bearer"
                return r
            if not hmac.compare_digest(given.encode(), token):
                return jerror(403, "wrong token")
        try:
            return await handler(request)
        except web.HTTPException as e:
            if e.status >= 400 and request.path.startswith("/api/"):
                return jerror(e.status, e.reason if e.status != 413 else _too_large())
            raise

    def _too_large() -> str:
        return f"upload too large: the limit is {opts.max_upload_bytes} bytes"

    async def on_prepare(request: Any, response: Any) -> None:
        h = response.headers
        h.setdefault("X-Content-Type-Options", "nosniff")
        h.setdefault("Referrer-Policy", "no-referrer")  # the page URL may hold the token
        h.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; object-src 'none'; frame-ancestors 'none'",
        )
        if not request.path.startswith("/static/"):
            h.setdefault("Cache-Control", "no-store")

    def full_status() -> dict[str, Any]:
        s = state.snapshot()
        s["camera"] = str(opts.source)
        s["model"] = card
        s["version"] = xnor_edge.__version__
        if extra_status is not None:
            s.update(extra_status())
        return s

    async def index(request: Any) -> Any:
        return web.FileResponse(WEB_DIR / "index.html")

    async def api_status(request: Any) -> Any:
        return web.json_response(full_status())

    async def api_results(request: Any) -> Any:
        if state.result is None:
            return jerror(503, f"no result yet (camera {state.snapshot()['state']})")
        return web.json_response(state.result)

    async def api_models(request: Any) -> Any:
        return web.json_response(models)

    def stream_slot() -> bool:
        if streams["n"] >= opts.max_streams:
            return False
        streams["n"] += 1
        return True

    async def api_stream(request: Any) -> Any:
        if not stream_slot():
            return jerror(503, f"too many live clients (limit {opts.max_streams})")
        hub = live["hub"]
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "X-Accel-Buffering": "no"})
        try:
            await resp.prepare(request)
            seq, last_state = -1, None
            while not hub.closing:
                wrote = False
                now_state = (state.state, state.error)
                if now_state != last_state:
                    last_state = now_state
                    body = json.dumps({"state": now_state[0], "error": now_state[1]})
                    await resp.write(f"event: status\ndata: {body}\n\n".encode())
                    wrote = True
                result, result_seq = state.result, state.seq
                if result is not None and result_seq != seq and now_state[0] == "running":
                    seq = result_seq
                    await resp.write(f"id: {seq}\nevent: result\ndata: {json.dumps(result)}\n\n".encode())
                    wrote = True
                if not wrote:
                    await resp.write(b": keep-alive\n\n")
                await hub.wait(15.0)
        except (ConnectionResetError, ConnectionError):
            pass
        finally:
            streams["n"] -= 1
        return resp

    async def video(request: Any) -> Any:
        if not stream_slot():
            return jerror(503, f"too many live clients (limit {opts.max_streams})")
        hub = live["hub"]
        resp = web.StreamResponse(
            headers={"Content-Type": "multipart/x-mixed-replace; boundary=frame", "Cache-Control": "no-store"}
        )
        state.add_viewer(1)
        try:
            await resp.prepare(request)
            sent = None
            while not hub.closing:
                jpeg = state.jpeg
                if jpeg and jpeg is not sent:
                    sent = jpeg
                    head = f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                    await resp.write(head.encode() + jpeg + b"\r\n")
                await hub.wait(1.0)
        except (ConnectionResetError, ConnectionError):
            pass
        finally:
            state.add_viewer(-1)
            streams["n"] -= 1
        return resp

    async def api_classify(request: Any) -> Any:
        if request.content_length is not None and request.content_length > opts.max_upload_bytes:
            return jerror(413, _too_large())
        try:
            top_k = int(request.query.get("top_k", opts.top_k))
        except ValueError:
            return jerror(400, "top_k must be an integer")
        if not 1 <= top_k <= len(model.labels):
            return jerror(400, f"top_k must be between 1 and {len(model.labels)}")
        async with uploads:
            if request.content_type.startswith("multipart/"):
                form = await request.post()
                files = [v for v in form.values() if hasattr(v, "file")]
                if not files:
                    return jerror(400, "the multipart upload holds no file")
                data = files[0].file.read()
            else:
                data = await request.read()
            loop = asyncio.get_running_loop()
            try:
                rgb = await loop.run_in_executor(executor, decode_upload, data, opts.max_pixels)
                t0 = time.perf_counter()
                top = await loop.run_in_executor(executor, lambda: model.classify(rgb, top_k, "RGB"))
            except (ValueError, TypeError) as e:  # ImageRejected, or an image the model refuses
                return jerror(400, str(e))
            ms = (time.perf_counter() - t0) * 1e3
        return web.json_response(
            {
                "top": [{"label": label, "p": round(p, 6)} for label, p in top],
                "latency_ms": round(ms, 3),
                "width": int(rgb.shape[1]),
                "height": int(rgb.shape[0]),
            }
        )

    live: dict[str, Any] = {}  # the event loop and its hub, once the app runs

    async def on_startup(app: Any) -> None:
        live["loop"], live["hub"] = asyncio.get_running_loop(), _Hub()

    def on_result(_result: dict | None) -> None:
        if "loop" in live:
            try:
                live["loop"].call_soon_threadsafe(live["hub"].bump)
            except RuntimeError:  # the loop has closed: shutting down
                pass

    async def on_shutdown(app: Any) -> None:
        live["hub"].closing = True
        live["hub"].bump()

    async def on_cleanup(app: Any) -> None:
        executor.shutdown(wait=True)

    app = web.Application(middlewares=[errors_and_auth], client_max_size=opts.max_upload_bytes)
    app.on_response_prepare.append(on_prepare)
    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    app.on_cleanup.append(on_cleanup)
    app.router.add_get("/", index)
    app.router.add_get("/video.mjpg", video)
    app.router.add_get("/api/status", api_status)
    app.router.add_get("/api/results", api_results)
    app.router.add_get("/api/results/stream", api_stream)
    app.router.add_get("/api/models", api_models)
    app.router.add_post("/api/classify", api_classify)
    app.router.add_static("/static/", WEB_DIR)
    return app, on_result


def check_host(host: str, token: str | None) -> None:
    """Refuses a non-loopback address without a token (ValueError)."""
    if not is_loopback(host) and not token:
        raise ValueError(
            f"--host {host or '(all addresses)'} is reachable from other machines: "
            "pass --token or --token-file (or listen on 127.0.0.1)"
        )


def serve(
    model: Any,
    opts: ServeOptions,
    listeners: list[Callable[[dict], None]] | None = None,
    extra_status: Callable[[], dict] | None = None,
    log: Callable[[str], None] = print,
) -> int:
    """Runs the camera thread and the server until SIGINT/SIGTERM; returns 0."""
    web = _import_aiohttp()
    import xnor_edge

    check_host(opts.host, opts.token)
    state = LiveState(opts.stall_s)
    app, on_result = create_app(model, opts, state, extra_status)

    async def main() -> None:
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        worker: CameraWorker | None = None
        try:
            site = web.TCPSite(runner, opts.host, opts.port)
            await site.start()
            worker = CameraWorker(
                model,
                opts.source,
                state,
                opts.top_k,
                opts.backoff,
                [on_result, *(listeners or [])],
                opts.jpeg_quality,
            )
            worker.start()
            for addr in runner.addresses:
                host, port = addr[0], addr[1]
                shown = f"[{host}]" if ":" in host else host
                log(
                    f"xnor-edge: serving http://{shown}:{port}/ (camera {clean_text(opts.source)}, "
                    f"model {clean_text(model.name)}, kernels {xnor_edge.kernel_isa()})"
                    + ("; a token is required" if opts.token else "")
                )
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await stop.wait()
        finally:
            if worker is not None:
                await asyncio.get_running_loop().run_in_executor(None, worker.stop)
            await runner.cleanup()

    asyncio.run(main())
    return 0
