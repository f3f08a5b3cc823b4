"""IP cameras that drop, stall or never come back, and video files that end early, against
a local MJPEG server (multipart/x-mixed-replace, as most IP cameras serve) on 127.0.0.1."""

from __future__ import annotations

import http.server
import os
import socket
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest

import xnor_edge
from xnor_edge.camera import open_stream
from xnor_edge.errors import CameraError


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MJPEGServer:
    """Serves the shipped sample as an endless MJPEG stream; can stop, stall and restart."""

    def __init__(self, fps: float = 25.0) -> None:
        img = cv2.imread(str(xnor_edge.sample_path("cat.jpg")))
        ok, buf = cv2.imencode(".jpg", cv2.resize(img, (64, 48)))
        assert ok
        self.jpeg, self.fps, self.port = buf.tobytes(), fps, _free_port()
        self.stalled = threading.Event()
        self.httpd: http.server.ThreadingHTTPServer | None = None
        self.frames_sent = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"

    def start(self) -> None:
        server = self
        running = threading.Event()
        running.set()

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                try:
                    while running.is_set():
                        if server.stalled.is_set():  # the socket stays open, no bytes flow
                            time.sleep(0.02)
                            continue
                        n = len(server.jpeg)
                        head = f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {n}\r\n\r\n"
                        self.wfile.write(head.encode() + server.jpeg + b"\r\n")
                        self.wfile.flush()
                        server.frames_sent += 1
                        time.sleep(1.0 / server.fps)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        httpd.daemon_threads = True
        httpd.running = running  # type: ignore[attr-defined]
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.httpd = httpd

    def stop(self) -> None:
        """The camera goes away: open connections end, new ones are refused."""
        if self.httpd is not None:
            self.httpd.running.clear()  # type: ignore[attr-defined]
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None


@pytest.fixture
def server():
    s = MJPEGServer()
    s.start()
    yield s
    s.stop()


def _classify(url: str, *extra: object, timeout: float = 60) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "xnor_edge", "classify", "--camera", url, "--json", *map(str, extra)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_frames(proc: subprocess.Popen, n: int, timeout: float = 30) -> None:
    t0 = time.monotonic()
    seen = 0
    while seen < n:
        line = proc.stdout.readline()
        assert line, "classify ended early"
        if line.startswith('{"frame"'):
            seen += 1
        assert time.monotonic() - t0 < timeout
    return None


def _stderr_lines(err: str) -> list[str]:
    lines = err.strip().splitlines()
    # Nothing but the tool's own lines: no FFmpeg or OpenCV log, no traceback.
    assert all(line.startswith("xnor-edge: ") for line in lines), err
    return lines


def test_dropped_stream_reconnects_with_a_log_line(server):
    proc = _classify(server.url, "--max-frames", 30, "--reconnect", 20)
    try:
        _wait_frames(proc, 5)
        server.stop()
        time.sleep(1.5)
        server.start()  # the camera is back on the same address
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    lines = _stderr_lines(err)
    assert any("reconnecting for up to 20 s" in s for s in lines), err
    assert any("frames again after" in s for s in lines), err
    assert '"summary"' in out


def test_stall_is_detected_and_a_dead_stream_ends_with_an_error(server):
    t0 = time.monotonic()
    stream = open_stream(server.url, reconnect=2.0, stall_timeout=1.0, log=lambda s: logs.append(s))
    logs: list[str] = []
    with stream:
        got = 0
        with pytest.raises(CameraError, match=r"no frames for \d+\.\d s; gave up reconnecting"):
            for _ in stream:
                got += 1
                if got == 3:
                    server.stalled.set()  # socket open, no frames: read timeout
                    t_stall = time.monotonic()
    assert got == 3 and logs and "reconnecting for up to 2 s" in logs[0]
    # The stall was noticed by the read timeout (1 s), then 2 s of reconnecting.
    assert time.monotonic() - t_stall < 15, time.monotonic() - t0  # about 4 s; slack for a loaded CI


def test_stream_that_never_returns_exits_nonzero(server):
    proc = _classify(server.url, "--reconnect", 2)
    try:
        _wait_frames(proc, 3)
        server.stop()
        t_stop = time.monotonic()
        out, err = proc.communicate(timeout=40)
    finally:
        proc.kill()
    assert proc.returncode == 1
    lines = _stderr_lines(err)
    assert lines[-1].startswith("xnor-edge: error: ") and "gave up reconnecting (--reconnect 2)" in lines[-1]
    assert time.monotonic() - t_stop < 20  # 2 s of reconnecting, plus start-up and timeouts


def _write_video(path, n=30):
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (64, 48))
    for i in range(n):
        vw.write(np.full((48, 64, 3), i * 8, np.uint8))
    vw.release()


def test_truncated_video_file_ends_with_a_warning(tmp_path):
    p = tmp_path / "clip.avi"
    _write_video(p)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    model = tmp_path / "m.xnor"
    from conftest import tiny_classifier

    model.write_bytes(tiny_classifier())
    r = subprocess.run(
        [sys.executable, "-m", "xnor_edge", "classify", str(p), "--model", str(model)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    lines = _stderr_lines(r.stderr)
    assert len(lines) == 1 and "of its 30 frames (truncated or damaged file?)" in lines[0], r.stderr
    assert lines[0].startswith("xnor-edge: warning: ")
    whole = tmp_path / "whole.avi"
    _write_video(whole)
    with open_stream(str(whole)) as s:
        assert len(list(s)) == 30 and s.warning is None


def test_video_file_deleted_while_read_ends_with_a_warning(tmp_path):
    p = tmp_path / "clip.avi"
    _write_video(p)
    with open_stream(str(p)) as s:
        it = iter(s)
        next(it)
        os.unlink(p)
        rest = list(it)
    assert len(rest) >= 0 and s.warning and "disappeared while it was read" in s.warning
