"""Frame sources for live classification: cameras, video files, streams.

    with open_stream(0) as stream:            # camera index, "/dev/video0",
        for frame in stream:                  # a video file, a URL, or "picam"
            model.classify(frame.image)
        print(stream.stats)

Live sources (cameras, URLs) are read by a background thread that keeps only
the newest frame: a slow consumer always gets the latest picture, and the
frames it never saw are counted in ``stats.dropped``. Video files are read
in order without dropping, unless ``realtime=True`` (then the file is paced at
its own frame rate and stale frames are dropped, as with a camera). A live
source that fails to deliver a frame is retried ``retries`` times, then the
stream raises CameraError; with ``reconnect=SECONDS`` it is instead reopened
with backoff for up to that long (an IP camera that drops or stalls), each
outage reported through ``log``. A stream URL is opened with OpenCV's open
and read timeouts (``stall_timeout``), so a stream that stalls with its socket
open counts as a failed read instead of blocking. The end of a video file ends
the stream; a file that ends before its frame count (truncated, damaged) or
vanishes while read leaves a message in ``stream.warning``.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Union

import numpy as np

from .errors import CameraError

Source = Union[int, str, Path, "FrameSource"]

__all__ = [
    "CameraError",
    "Frame",
    "FrameSource",
    "FrameStream",
    "OpenCVSource",
    "PiCameraSource",
    "StreamStats",
    "open_source",
    "open_stream",
]


@dataclass
class Frame:
    image: np.ndarray  # uint8 (H, W, 3) BGR
    index: int  # position in the source's frame sequence (gaps = dropped frames)
    captured: float  # time.perf_counter() when the frame was read


@dataclass
class StreamStats:
    frames: int = 0  # frames handed to the consumer
    read: int = 0  # frames read from the source
    dropped: int = 0  # frames read but replaced by a newer one before use
    retries: int = 0  # failed reads that were retried


class FrameSource:
    """A source of BGR frames. ``read()`` returns a frame, or None on failure/end."""

    name: str = "source"
    live: bool = True
    fps: float = 0.0
    end_problem: str | None = None  # why a file source ended early (truncated, deleted)

    def read(self) -> np.ndarray | None:
        raise NotImplementedError

    def reopen(self) -> bool:
        """Tries to reopen after a failure; returns whether it worked."""
        return True

    def close(self) -> None:
        pass


def _quiet_opencv() -> Any:
    # FFmpeg's and OpenCV's own log lines ("[mjpeg @ 0x...] overread", "[ WARN:0@1.2]
    # global cap_ffmpeg_impl.hpp ...") would break the one-line-error rule: failures
    # are reported by this module. FFmpeg's level is read when OpenCV loads it;
    # settings made by the user win.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
    os.environ.setdefault("OPENCV_LOG_LEVEL", "SILENT")
    import cv2

    try:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    except AttributeError:  # pragma: no cover - very old OpenCV
        pass
    return cv2


class OpenCVSource(FrameSource):
    """cv2.VideoCapture: a camera index, a /dev/videoN path, a video file or a URL."""

    def __init__(self, source: int | str, live: bool | None = None, stall_timeout: float = 5.0) -> None:
        cv2 = _quiet_opencv()
        self._cv2 = cv2
        self._arg = source
        self.name = f"camera {source}" if isinstance(source, int) else str(source)
        is_url = isinstance(source, str) and bool(re.match(r"^[a-z][a-z0-9+.-]*://", source))
        self._is_url = is_url
        self.stall_timeout = stall_timeout
        self._frames = 0
        self._count = 0
        is_device = isinstance(source, int) or (isinstance(source, str) and source.startswith("/dev/"))
        if isinstance(source, str) and not is_url and not os.path.exists(source):
            raise CameraError(f"{source}: no such camera device or video file")
        self.live = live if live is not None else (is_url or is_device)
        self._cap = self._open()
        if self._cap is None:
            raise CameraError(f"cannot open {self.name}" + (" (no such camera?)" if is_device else ""))
        self.fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        if not self.live:
            self._count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)

    def _open(self) -> Any:
        cv2 = self._cv2
        cap = None
        timeout_props = ("CAP_PROP_OPEN_TIMEOUT_MSEC", "CAP_PROP_READ_TIMEOUT_MSEC")
        if self._is_url and all(hasattr(cv2, n) for n in timeout_props):
            # FFmpeg's timeouts: a stalled stream fails a read after stall_timeout
            # (without them a silent socket blocks for minutes).
            ms = max(1, int(self.stall_timeout * 1000))
            params = [getattr(cv2, timeout_props[0]), ms, getattr(cv2, timeout_props[1]), ms]
            try:
                cap = cv2.VideoCapture(self._arg, cv2.CAP_FFMPEG, params)
            except cv2.error:  # an OpenCV without these parameters
                cap = None
        if cap is None:
            cap = cv2.VideoCapture(self._arg)
        if not cap.isOpened():
            cap.release()
            return None
        return cap

    def read(self) -> np.ndarray | None:
        if self._cap is None:
            return None
        ok, img = self._cap.read()
        if not ok or img is None:
            if not self.live and self.end_problem is None:
                self.end_problem = self._why_ended()
            return None
        self._frames += 1
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        return img

    def _why_ended(self) -> str | None:
        """None for a file read to its end; else why it stopped early."""
        if isinstance(self._arg, str) and not os.path.exists(self._arg):
            return f"{self.name}: the video file disappeared while it was read ({self._frames} frames read)"
        if self._count > 0 and self._frames < self._count - max(2, self._count // 50):
            return (
                f"{self.name}: the video ended after {self._frames} of its {self._count} frames "
                "(truncated or damaged file?)"
            )
        return None

    def reopen(self) -> bool:
        if self._cap is not None:
            self._cap.release()
        self._cap = self._open()
        return self._cap is not None

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class PiCameraSource(FrameSource):
    """The Raspberry Pi camera through picamera2 (source "picam")."""

    def __init__(self, size: tuple[int, int] = (640, 480)) -> None:
        try:
            from picamera2 import Picamera2  # type: ignore[import-not-found]
        except ImportError:
            raise CameraError(
                "source 'picam' needs picamera2 (on Raspberry Pi OS: sudo apt install python3-picamera2)"
            ) from None
        self.name = "picam"
        self.live = True
        try:
            self._cam = Picamera2()
            # "RGB888" gives pixels in B, G, R byte order: OpenCV's convention.
            config = self._cam.create_preview_configuration(main={"format": "RGB888", "size": size})
            self._cam.configure(config)
            self._cam.start()
        except Exception as e:  # picamera2 raises many types; report them all the same way
            raise CameraError(f"cannot open the Pi camera: {e}") from None

    def read(self) -> np.ndarray | None:
        try:
            return np.ascontiguousarray(self._cam.capture_array()[:, :, :3])
        except Exception:
            return None

    def close(self) -> None:
        try:
            self._cam.stop()
            self._cam.close()
        except Exception:
            pass


def open_source(source: Source, stall_timeout: float = 5.0) -> FrameSource:
    """Opens a camera index (int or digit string), /dev/videoN, file, URL or "picam"
    (``stall_timeout``: seconds without data after which a URL's read fails)."""
    if isinstance(source, FrameSource):
        return source
    if isinstance(source, Path):
        source = str(source)
    if isinstance(source, bool):
        raise CameraError(f"bad camera source {source!r}")
    if isinstance(source, int) or (isinstance(source, str) and source.isdigit()):
        return OpenCVSource(int(source))
    if not isinstance(source, str) or not source:
        raise CameraError(f"bad camera source {source!r}")
    if source == "picam":
        return PiCameraSource()
    return OpenCVSource(source, stall_timeout=stall_timeout)


class FrameStream:
    """Iterates Frames from a source; see the module docstring for dropping and retries."""

    def __init__(
        self,
        source: FrameSource,
        drop: bool | None = None,
        realtime: bool = False,
        retries: int = 5,
        retry_delay: float = 0.2,
        max_frames: int | None = None,
        reconnect: float | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.source = source
        self.realtime = realtime
        self.drop = drop if drop is not None else (source.live or realtime)
        self.retries = retries
        self.retry_delay = retry_delay
        self.max_frames = max_frames
        self.reconnect = reconnect
        self.log = log or logging.getLogger("xnor_edge.camera").warning
        stall = float(getattr(source, "stall_timeout", 5.0))
        self._watchdog = None if reconnect is None else reconnect + 2 * stall + 5.0
        self.stats = StreamStats()
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._done = False
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._next_index = 0
        self._thread: threading.Thread | None = None
        if self.drop:
            self._thread = threading.Thread(target=self._reader, name="xnor-edge-reader", daemon=True)
            self._thread.start()

    @property
    def warning(self) -> str | None:
        """Why a video file ended early (truncated, deleted), else None."""
        return self.source.end_problem

    # The one read path, shared by the reader thread and synchronous mode.
    def _read_one(self) -> Frame | None:
        failures = 0
        t_fail = 0.0
        while not self._stop.is_set():
            img = self.source.read()
            if img is not None:
                if failures and self.reconnect is not None:
                    self.log(f"{self.source.name}: frames again after {time.monotonic() - t_fail:.1f} s")
                frame = Frame(img, self._next_index, time.perf_counter())
                self._next_index += 1
                self.stats.read += 1
                return frame
            if not self.source.live:
                return None  # end of a video file
            failures += 1
            if self.reconnect is None:
                if failures > self.retries:
                    raise CameraError(
                        f"{self.source.name}: no frame after {self.retries} retries; the stream stopped"
                    )
                delay = self.retry_delay
            else:
                now = time.monotonic()
                if failures == 1:
                    t_fail = now
                    self.log(
                        f"{self.source.name}: no frames (dropped or stalled); reconnecting for up to "
                        f"{self.reconnect:g} s"
                    )
                if now - t_fail >= self.reconnect:
                    raise CameraError(
                        f"{self.source.name}: no frames for {now - t_fail:.1f} s; gave up reconnecting "
                        f"(--reconnect {self.reconnect:g})"
                    )
                # Backoff: retry_delay, doubling, at most 2 s, never past the deadline.
                delay = min(self.retry_delay * 2 ** min(failures - 1, 10), 2.0)
                delay = max(0.0, min(delay, t_fail + self.reconnect - now))
            self.stats.retries += 1
            if self._stop.wait(delay):
                break
            if failures > 1 or self.reconnect is not None:
                self.source.reopen()
        return None

    def _reader(self) -> None:
        t0 = time.perf_counter()
        pace = (
            1.0 / self.source.fps if (self.realtime and not self.source.live and self.source.fps > 0) else 0
        )
        try:
            while not self._stop.is_set():
                if pace:
                    delay = t0 + self._next_index * pace - time.perf_counter()
                    if delay > 0 and self._stop.wait(delay):
                        break
                frame = self._read_one()
                if frame is None:
                    break
                with self._cond:
                    if self._latest is not None:
                        self.stats.dropped += 1
                    self._latest = frame
                    self._cond.notify_all()
        except BaseException as e:  # handed to the consumer, raised there
            with self._cond:
                self._error = e
        finally:
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def __iter__(self) -> Iterator[Frame]:
        return self

    def __next__(self) -> Frame:
        if self.max_frames is not None and self.stats.frames >= self.max_frames:
            raise StopIteration
        if self._thread is None:
            frame = self._read_one()
        else:
            with self._cond:
                t0 = time.monotonic()
                while self._latest is None and not self._done:
                    self._cond.wait(0.5)
                    waited = time.monotonic() - t0
                    if self._latest is None and self._watchdog is not None and waited > self._watchdog:
                        # The reader is stuck inside the source's read (a backend that
                        # ignores its timeouts): give up on it rather than wait forever.
                        self._stop.set()
                        raise CameraError(
                            f"{self.source.name}: no frames for {waited:.0f} s; the source stalled"
                        )
                frame, self._latest = self._latest, None
                if frame is None and self._error is not None:
                    err, self._error = self._error, None
                    raise err
        if frame is None:
            raise StopIteration
        self.stats.frames += 1
        return frame

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        self.source.close()

    def __enter__(self) -> FrameStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_stream(
    source: Source,
    drop: bool | None = None,
    realtime: bool = False,
    retries: int = 5,
    retry_delay: float = 0.2,
    max_frames: int | None = None,
    reconnect: float | None = None,
    log: Callable[[str], None] | None = None,
    stall_timeout: float = 5.0,
) -> FrameStream:
    """Opens ``source`` (see open_source) as a FrameStream. Raises CameraError.

    ``reconnect``: seconds a live source that stops delivering is reopened (with
    backoff) before CameraError; None: ``retries`` quick retries. ``log`` gets one
    line per outage and recovery. ``stall_timeout``: seconds of silence after which
    a stream URL's read fails (OpenCV's FFmpeg open/read timeouts)."""
    return FrameStream(
        open_source(source, stall_timeout=stall_timeout),
        drop,
        realtime,
        retries,
        retry_delay,
        max_frames,
        reconnect,
        log,
    )
