"""Inputs as people really have them: phone photos, 16-bit scans, huge and tiny images,
headless devices, thresholds, shipped names, limits and environment settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import tiny_classifier
from PIL import Image

import xnor_edge
from xnor_edge import _image
from xnor_edge import cli as cli_mod


def cli(*args, env=None):
    r = subprocess.run(
        [sys.executable, "-m", "xnor_edge", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )
    return r.returncode, r.stdout, r.stderr


def one_error_line(err: str, code_msg: str) -> None:
    assert "Traceback" not in err and "Warning" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xnor-edge: error: ") and code_msg in lines[0], err


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    p = tmp_path_factory.mktemp("m") / "tiny.xnor"
    p.write_bytes(tiny_classifier(shape=(16, 16, 3)))
    return p


def _asymmetric(h=24, w=40) -> np.ndarray:
    rng = np.random.default_rng(5)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    img[:, : w // 3] = (255, 0, 0)  # a red band on the left: rotation moves it
    return img


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_applied_for_files_and_pil_images(tmp_path, model_path, orientation):
    upright = _asymmetric()
    stored = {3: Image.ROTATE_180, 6: Image.ROTATE_90, 8: Image.ROTATE_270}[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation  # the camera held sideways: pixels stored rotated
    p = tmp_path / "phone.png"
    Image.fromarray(upright).transpose(stored).save(p, exif=exif)
    assert np.array_equal(_image.read_rgb(p), upright)
    with Image.open(p) as im:
        assert np.array_equal(_image.to_rgb(im), upright)
    with xnor_edge.load(model_path) as m:
        want = m.classify(upright, color_order="RGB")
        assert m.classify(str(p)) == want
        with Image.open(p) as im:
            assert m.classify(im) == want


def test_16bit_greyscale_png_and_uint16_arrays_are_scaled(tmp_path):
    grad = (np.arange(64, dtype=np.uint32).reshape(8, 8) * 1040).astype(np.uint16)  # 0..65520
    p = tmp_path / "scan16.png"
    Image.fromarray(grad).save(p)
    with Image.open(p) as im:
        assert im.mode.startswith("I")  # Pillow's convert("RGB") would clip this to white
    want = np.round(grad / 257.0).astype(np.uint8)
    got = _image.read_rgb(p)
    assert got.shape == (8, 8, 3) and np.array_equal(got[:, :, 0], want)
    assert len(np.unique(got)) == 64  # a gradient, not clipped
    arr = _image.to_rgb(grad)
    assert np.array_equal(arr[:, :, 0], want)
    rgb16 = np.stack([grad, grad // 2, grad // 4], axis=2)
    assert np.array_equal(_image.to_rgb(rgb16, "RGB")[:, :, 1], np.round(grad // 2 / 257.0).astype(np.uint8))


@pytest.mark.parametrize("pixels", [1500, 5000])  # over the limit (Pillow warns), over twice it (raises)
def test_decompression_bomb_is_one_clear_line(tmp_path, model_path, monkeypatch, capsys, pixels):
    side = int(pixels**0.5)
    p = tmp_path / "big.png"
    Image.new("RGB", (side, side)).save(p)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ValueError, match="image too large"):
        _image.read_rgb(p)
    rc = cli_mod.main(["classify", str(p), "--model", str(model_path)])
    err = capsys.readouterr().err
    assert rc == 1
    one_error_line(err, "image too large")
    assert "decompression bomb" in err


def test_tiny_image_is_refused_clearly(tmp_path, model_path):
    with xnor_edge.load(model_path) as m:
        with pytest.raises(ValueError, match=r"1x1 pixels, far below the model's 16x16 input"):
            m.classify(np.zeros((1, 1, 3), np.uint8))
        m.classify(np.zeros((4, 4, 3), np.uint8))  # 4x upscaling still works
    p = tmp_path / "dot.png"
    Image.new("RGB", (1, 1)).save(p)
    rc, out, err = cli("classify", p, "--model", model_path)
    assert rc == 1
    one_error_line(err, "far below the model's 16x16 input")


def test_display_is_checked_before_opencv_is_touched(monkeypatch, tmp_path):
    if not sys.platform.startswith("linux"):
        pytest.skip("display detection is for Linux")
    for var in ("DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(var, raising=False)
    assert "neither DISPLAY nor WAYLAND_DISPLAY" in cli_mod._display_problem()
    monkeypatch.setenv("DISPLAY", ":4711")
    assert "is not running" in cli_mod._display_problem()
    monkeypatch.setenv("DISPLAY", "127.0.0.1:4711")
    assert "cannot be reached" in cli_mod._display_problem()
    monkeypatch.setenv("WAYLAND_DISPLAY", str(tmp_path / "no-wayland-0"))
    monkeypatch.delenv("DISPLAY")
    assert "Wayland display" in cli_mod._display_problem()
    sock = tmp_path / "wayland-0"
    sock.write_bytes(b"")
    monkeypatch.setenv("WAYLAND_DISPLAY", str(sock))
    assert cli_mod._display_problem() is None


def test_display_without_a_display_exits_cleanly(model_path):
    env = {"DISPLAY": "", "WAYLAND_DISPLAY": ""}
    video = xnor_edge.sample_path("cat.avi")
    rc, out, err = cli("classify", "--camera", video, "--display", "--model", model_path, env=env)
    assert rc == 1
    one_error_line(err, "--display needs a display")
    assert "drop --display" in err


def test_min_confidence_answers_unknown(model_path):
    with xnor_edge.load(model_path) as m:
        top1 = m.classify(str(xnor_edge.sample_path("cat.jpg")), top_k=1)[0]
    rc, out, err = cli("classify", "--model", model_path, "--min-confidence", 1.0, "--top-k", 2)
    assert rc == 0 and "cat.jpg: unknown (below 1: " in out, (out, err)
    rc, out, err = cli("classify", "--model", model_path, "--min-confidence", 1.0, "--json")
    assert rc == 0 and json.loads(out)["label"] == "unknown"
    rc, out, err = cli("classify", "--model", model_path, "--min-confidence", top1[1] / 2, "--json")
    assert rc == 0 and json.loads(out)["label"] == top1[0]
    rc, out, err = cli("classify", "--model", model_path, "--min-confidence", 1.5)
    assert rc == 2 and "--min-confidence must be a probability from 0 to 1" in err


def test_load_accepts_shipped_names():
    if "mnist-digits-xnor" not in xnor_edge.shipped_models():
        pytest.skip("the model zoo is not installed")
    with xnor_edge.load("mnist-digits-xnor") as m:
        assert m.input_shape == (28, 28, 1) and m.source == xnor_edge.model_path("mnist-digits-xnor")


def test_threads_over_the_limit_says_the_limit(model_path):
    rc, out, err = cli("classify", "--model", model_path, "--threads", 300)
    assert rc == 2 and "--threads must be from 1 to 256" in err
    rc, out, err = cli("bench", model_path, "--threads", "1,999")
    assert rc == 2 and "from 1 to 256" in err


def test_unusable_xe_kernels_is_an_error(model_path):
    rc, out, err = cli("info", model_path, env={"XE_KERNELS": "turbo"})
    assert rc == 1
    one_error_line(err, "XE_KERNELS='turbo' is not a kernel set")
    assert "auto" in err
    code = f"import xnor_edge; xnor_edge.load({str(model_path)!r})"
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "XE_KERNELS": "turbo"},
    )
    assert r.returncode != 0 and "ImportError: xnor_edge: XE_KERNELS='turbo'" in r.stderr
    other = (
        "neon-a64"
        if "avx2" in xnor_edge.available_isas() or "popcnt" in xnor_edge.available_isas()
        else "avx2"
    )
    rc, out, err = cli("info", model_path, env={"XE_KERNELS": other})
    assert rc == 1 and "is not available on this CPU" in err
    rc, out, err = cli("info", model_path, env={"XE_KERNELS": "ref"})
    assert rc == 0 and "kernels    ref " in out, err


def test_no_json_undoes_the_config_file(model_path, tmp_path):
    cfg = tmp_path / "settings.yaml"
    cfg.write_text("json: true\ntop_k: 1\n")
    rc, out, err = cli("classify", "--model", model_path, "--config", cfg)
    assert rc == 0 and json.loads(out)["top"]
    rc, out, err = cli("classify", "--model", model_path, "--config", cfg, "--no-json")
    assert rc == 0 and out.startswith(str(xnor_edge.sample_path("cat.jpg")) + ": "), out


def test_training_refuses_a_batch_larger_than_the_training_set(tmp_path, capsys):
    pytest.importorskip("torch")
    from xnor_train import train

    photos = tmp_path / "photos"
    for split in ("train", "val"):
        for ci, cls in enumerate(("dark", "light")):
            d = photos / split / cls
            d.mkdir(parents=True)
            for i in range(3):
                Image.new("RGB", (18, 18), (120 * ci,) * 3).save(d / f"{i}.png")
    run = tmp_path / "run"
    args = ["--data", "folder", "--data-path", str(photos), "--image-size", "16", "--epochs", "1"]
    rc = train.main(args + ["--batch-size", "64", "--device", "cpu", "--out", str(run)])
    out = capsys.readouterr().out
    assert rc == 2 and "--batch-size 64 is larger than the training set (6 images)" in out
    assert not (run / "last.pt").exists()
