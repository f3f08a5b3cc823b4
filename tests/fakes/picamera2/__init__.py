"""A stand-in for picamera2 (Raspberry Pi camera library) for tests on machines without
a Pi camera. It follows the documented behaviour that xnor_edge.camera relies on
("The Picamera2 Library" manual, sections 4.2 and 6.1):

- ``Picamera2()`` opens the camera; ``create_preview_configuration`` and
  ``create_video_configuration`` take ``main={"size": (w, h), "format": ...}``;
  ``configure`` must come before ``start``; ``capture_array()`` needs a started camera.
- Formats name the pixel as a little-endian word, so the bytes in memory are reversed:
  "RGB888" arrays are (h, w, 3) in B, G, R order (OpenCV's), "BGR888" R, G, B,
  "XRGB8888" (h, w, 4) B, G, R, 255 and "XBGR8888" R, G, B, 255.

The scene it films is a fixed RGB colour (``SCENE_RGB``), so tests can check channel order.
"""

from __future__ import annotations

import numpy as np

SCENE_RGB = (200, 40, 10)  # a red-orange scene
FORMATS = ("RGB888", "BGR888", "XRGB8888", "XBGR8888")
instances: list[Picamera2] = []


class Picamera2:
    def __init__(self, camera_num: int = 0) -> None:
        self.camera_num = camera_num
        self.camera_config: dict | None = None
        self.started = False
        self.closed = False
        self.frames = 0
        instances.append(self)

    def _configuration(self, use_case: str, main: dict | None, buffer_count: int) -> dict:
        m = {"format": "XBGR8888", "size": (640, 480)}
        m.update(main or {})
        return {"use_case": use_case, "buffer_count": buffer_count, "main": m, "lores": None, "raw": None}

    def create_preview_configuration(self, main: dict | None = None, **kwargs: object) -> dict:
        return self._configuration("preview", main, 4)

    def create_video_configuration(self, main: dict | None = None, **kwargs: object) -> dict:
        return self._configuration("video", main, 6)

    def configure(self, camera_config: dict) -> None:
        if self.started:
            raise RuntimeError("Camera must be stopped before configuring")
        fmt = camera_config["main"]["format"]
        if fmt not in FORMATS:
            raise RuntimeError(f"Format {fmt} not supported")
        w, h = camera_config["main"]["size"]
        if not (isinstance(w, int) and isinstance(h, int) and w > 0 and h > 0):
            raise RuntimeError(f"bad size {camera_config['main']['size']}")
        self.camera_config = camera_config

    def start(self) -> None:
        if self.camera_config is None:
            raise RuntimeError("Camera has not been configured")
        self.started = True

    def capture_array(self, name: str = "main") -> np.ndarray:
        if not self.started or self.closed:
            raise RuntimeError("Camera is not running")
        cfg = self.camera_config[name]
        w, h = cfg["size"]
        r, g, b = SCENE_RGB
        order = {
            "RGB888": (b, g, r),
            "BGR888": (r, g, b),
            "XRGB8888": (b, g, r, 255),
            "XBGR8888": (r, g, b, 255),
        }
        px = order[cfg["format"]]
        self.frames += 1
        return np.tile(np.array(px, np.uint8), (h, w, 1))

    def stop(self) -> None:
        self.started = False

    def close(self) -> None:
        self.started = False
        self.closed = True
