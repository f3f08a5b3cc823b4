"""Frame sources and streams, through real video files written with cv2."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from xnor_edge.camera import FrameSource, open_stream
from xnor_edge.errors import CameraError


def write_video(path, n=30, size=(64, 48), fps=30.0):
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    assert vw.isOpened()
    for i in range(n):
        img = np.zeros((size[1], size[0], 3), np.uint8)
        img[:, :, 1] = i * 8  # frame number encoded in the green level
        vw.write(img)
    vw.release()
    return path


def test_video_file_in_order_without_drops(tmp_path):
    p = write_video(tmp_path / "v.avi", n=20)
    with open_stream(str(p)) as s:
        frames = list(s)
    assert [f.index for f in frames] == list(range(20))
    greens = [int(round(f.image[:, :, 1].mean() / 8)) for f in frames]
    assert greens == list(range(20))
    assert s.stats.frames == 20 and s.stats.dropped == 0
    assert frames[0].image.shape == (48, 64, 3) and frames[0].image.dtype == np.uint8


def test_max_frames(tmp_path):
    p = write_video(tmp_path / "v.avi", n=20)
    with open_stream(p, max_frames=5) as s:
        assert len(list(s)) == 5


def test_realtime_slow_consumer_gets_newest_frames(tmp_path):
    p = write_video(tmp_path / "v.avi", n=30, fps=100.0)
    seen = []
    with open_stream(str(p), realtime=True) as s:
        for f in s:
            seen.append(f.index)
            time.sleep(0.05)  # 5 source frames per consumed frame
    assert s.stats.dropped > 0
    assert s.stats.frames + s.stats.dropped == s.stats.read == 30
    assert seen == sorted(seen) and len(seen) < 30
    assert max(b - a for a, b in zip(seen, seen[1:])) > 1  # gaps: stale frames were skipped


class FlakySource(FrameSource):
    """A live source that delivers `good` frames, then fails `bad` times, then recovers (or not)."""

    def __init__(self, good: int, bad: int, total: int) -> None:
        self.name, self.live = "flaky", True
        self.good, self.bad, self.total, self.calls, self.n = good, bad, total, 0, 0
        self.reopened = 0

    def read(self):
        self.calls += 1
        if self.n >= self.total:
            return None
        if self.good <= self.calls - 1 < self.good + self.bad:
            return None
        self.n += 1
        time.sleep(0.002)
        return np.full((4, 4, 3), self.n, np.uint8)

    def reopen(self) -> bool:
        self.reopened += 1
        return True


def test_live_source_retries_then_recovers():
    src = FlakySource(good=3, bad=2, total=8)
    with open_stream(src, drop=False, retries=3, retry_delay=0.001) as s:
        got = [f.index for _, f in zip(range(8), s)]
    assert got == list(range(8)) and s.stats.retries == 2 and src.reopened == 1


def test_live_source_gives_up_with_clear_error():
    src = FlakySource(good=2, bad=100, total=100)
    with open_stream(src, retries=3, retry_delay=0.001) as s:
        with pytest.raises(CameraError, match="no frame after 3 retries"):
            for _ in s:
                pass
    assert s.stats.frames <= 2


def test_missing_camera_and_file():
    with pytest.raises(CameraError, match="cannot open camera 99"):
        open_stream(99)
    with pytest.raises(CameraError, match="no such camera device or video file"):
        open_stream("/no/such/video.avi")
    with pytest.raises(CameraError, match="bad camera source"):
        open_stream("")


def test_unreadable_video_file(tmp_path):
    p = tmp_path / "junk.avi"
    p.write_bytes(b"\x00" * 1000)
    with pytest.raises(CameraError, match="cannot open"):
        open_stream(str(p))
