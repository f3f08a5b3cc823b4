"""PiCameraSource ("picam") against a fake picamera2 module (tests/fakes/picamera2) that
behaves as the real one documents, so the Pi camera path runs in CI."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_classifier

import xnor_edge
from xnor_edge.camera import PiCameraSource, open_stream
from xnor_edge.errors import CameraError

FAKE = Path(__file__).resolve().parent / "fakes" / "picamera2" / "__init__.py"


@pytest.fixture
def picamera2(monkeypatch):
    spec = importlib.util.spec_from_file_location("picamera2", FAKE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setitem(sys.modules, "picamera2", mod)
    return mod


def test_picam_frames_are_bgr_and_classify(picamera2, tmp_path):
    with open_stream("picam", max_frames=4) as stream:
        frames = list(stream)
    assert len(frames) == 4 and stream.stats.frames == 4
    (cam,) = picamera2.instances
    assert cam.camera_config["main"]["format"] == "RGB888" and cam.closed and not cam.started
    img = frames[-1].image
    r, g, b = picamera2.SCENE_RGB
    assert img.shape == (480, 640, 3) and img.dtype == np.uint8 and img.flags.c_contiguous
    assert tuple(img[0, 0]) == (b, g, r)  # OpenCV's BGR, as frame.image promises
    p = tmp_path / "m.xnor"
    p.write_bytes(tiny_classifier())
    with xnor_edge.load(p) as m:
        rgb = np.full((48, 64, 3), picamera2.SCENE_RGB, np.uint8)
        assert m.classify(img) == m.classify(rgb, color_order="RGB")


def test_picam_errors_are_camera_errors(picamera2, monkeypatch):
    def broken(self):
        raise RuntimeError("Camera __init__ sequence did not complete.")

    monkeypatch.setattr(picamera2.Picamera2, "start", broken)
    with pytest.raises(CameraError, match="cannot open the Pi camera: Camera __init__ sequence"):
        PiCameraSource()


def test_picam_without_picamera2_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)
    with pytest.raises(CameraError, match="sudo apt install python3-picamera2"):
        open_stream("picam")
