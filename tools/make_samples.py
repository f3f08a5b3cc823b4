"""Generates the sample image and video shipped in xnor_edge/samples/.

    python tools/make_samples.py   # needs scikit-image (build-time only)

cat.jpg: scikit-image's ``chelsea`` photo (CC0, Stefan van der Walt),
resized to 224 px wide. cat.avi: 40 pan/zoom frames (160x120, 15 fps, MJPG)
cut from the same photo, readable by opencv-python-headless. Both are
deterministic, so re-running reproduces them.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

OUT = Path(__file__).resolve().parent.parent / "xnor_edge" / "samples"
FRAMES = 40
SIZE = (160, 120)  # width, height
FPS = 15.0


def main() -> None:
    from skimage import data

    rgb = data.chelsea()  # (300, 451, 3) uint8 RGB
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    OUT.mkdir(parents=True, exist_ok=True)

    h, w = bgr.shape[:2]
    small = cv2.resize(bgr, (224, round(h * 224 / w)), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(OUT / "cat.jpg"), small, [cv2.IMWRITE_JPEG_QUALITY, 88])

    video = OUT / "cat.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), FPS, SIZE)
    if not writer.isOpened():
        raise SystemExit("make_samples: OpenCV cannot write MJPG AVI")
    for i in range(FRAMES):
        t = i / (FRAMES - 1)
        zoom = 1.0 + 0.6 * np.sin(np.pi * t)  # 1.0 -> 1.6 -> 1.0
        cw, ch = w / zoom, w / zoom * SIZE[1] / SIZE[0]
        ch = min(ch, h)
        cx = cw / 2 + (w - cw) * t  # pan left to right
        cy = h / 2
        x0, y0 = int(round(cx - cw / 2)), int(round(cy - ch / 2))
        crop = bgr[y0 : y0 + int(ch), x0 : x0 + int(cw)]
        writer.write(cv2.resize(crop, SIZE, interpolation=cv2.INTER_AREA))
    writer.release()
    for p in (OUT / "cat.jpg", video):
        print(f"{p.relative_to(OUT.parent.parent)}: {p.stat().st_size} bytes")


if __name__ == "__main__":
    main()
