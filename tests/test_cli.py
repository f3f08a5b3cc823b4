"""The xnor-edge command line, run as a subprocess (exit codes, stdout, stderr)."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
from conftest import tiny_classifier

import xnor_edge


def cli(*args, timeout=120):
    r = subprocess.run(
        [sys.executable, "-m", "xnor_edge", *map(str, args)], capture_output=True, text=True, timeout=timeout
    )
    return r.returncode, r.stdout, r.stderr


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    p = tmp_path_factory.mktemp("m") / "tiny.xnor"
    p.write_bytes(tiny_classifier(resize=14, mean=[0.5] * 3, std=[0.25] * 3))
    return p


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    p = tmp_path_factory.mktemp("v") / "v.avi"
    vw = cv2.VideoWriter(str(p), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (40, 30))
    for i in range(12):
        vw.write(np.full((30, 40, 3), i * 20, np.uint8))
    vw.release()
    return p


def test_classify_images_text_and_json(model_path, tmp_path):
    img = tmp_path / "a.png"
    cv2.imwrite(str(img), np.random.default_rng(0).integers(0, 255, (20, 24, 3), dtype=np.uint8))
    rc, out, err = cli("classify", img, "--model", model_path, "--top-k", 2)
    assert rc == 0, err
    assert out.startswith(f"{img}: label") and out.count("label") == 2 and "ms)" in out
    rc, out, err = cli("classify", tmp_path, "--model", model_path, "--json", "--top-k", 3)
    assert rc == 0, err
    rec = json.loads(out.strip().splitlines()[0])
    assert rec["source"] == str(img) and len(rec["top"]) == 3
    with xnor_edge.load(model_path) as m:
        want = m.classify(str(img), top_k=3)
    assert [t["label"] for t in rec["top"]] == [label for label, _ in want]
    assert rec["top"][0]["p"] == pytest.approx(want[0][1], abs=1e-5)


def test_classify_default_sample_image(model_path):
    rc, out, err = cli("classify", "--model", model_path, "--top-k", 1)
    assert rc == 0, err
    assert "cat.jpg: label" in out


def test_classify_video_as_camera_json(model_path, video):
    rc, out, err = cli("classify", "--camera", video, "--model", model_path, "--json", "--max-frames", 8)
    assert rc == 0, err
    lines = [json.loads(s) for s in out.strip().splitlines()]
    frames, summary = lines[:-1], lines[-1]["summary"]
    assert [f["frame"] for f in frames] == list(range(8))
    assert all(f["latency_ms"] > 0 and len(f["top"]) == 4 for f in frames)  # 4 classes < top-k 5
    assert summary["frames"] == 8 and summary["dropped"] == 0 and summary["mean_fps"] > 0
    assert set(summary["latency_ms"]) == {"mean", "p50", "p90", "p99"}


def test_classify_video_text_summary(model_path, video):
    rc, out, err = cli("classify", video, "--model", model_path, "--top-k", 1)
    assert rc == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 13 and lines[0].startswith("frame     0") and "FPS" in lines[0]
    assert lines[-1].startswith("summary: 12 frames") and "p99" in lines[-1]


def test_config_file_and_flags_win(model_path, tmp_path, video):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"model: {model_path}\ntop_k: 2\njson: true\nmax_frames: 3\ncamera: {video}\n")
    rc, out, err = cli("classify", "--config", cfg, "--max-frames", 2)
    assert rc == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 3 and len(json.loads(lines[0])["top"]) == 2
    cfg.write_text("colour: red\n")
    rc, out, err = cli("classify", "--config", cfg)
    assert rc == 2 and "unknown config key 'colour'" in err


def test_info_and_bench(model_path):
    rc, out, err = cli("info", model_path)
    assert rc == 0, err
    assert "bconv2d" in out and "use_k" in out and "kernels" in out and "MACs" in out
    rc, out, err = cli("info", model_path, "--json")
    assert json.loads(out)["layers"][2]["op"] == "bconv2d"
    rc, out, err = cli("bench", model_path, "--threads", "1,2", "--repeats", 5, "--warmup", 1, "--json")
    assert rc == 0, err
    res = json.loads(out)["results"]
    assert [r["threads"] for r in res] == [1, 2]
    assert all(r["call_ms"]["mean"] >= r["c_ms"]["mean"] > 0 for r in res)
    rc, out, err = cli("bench", model_path, "--repeats", 3)
    assert rc == 0 and "p99" in out and "py overhead" in out


@pytest.mark.parametrize(
    "args,code,msg",
    [
        (["classify", "--camera", "99", "--model", "{model}"], 1, "cannot open camera 99"),
        (["classify", "--model", "{bad}"], 1, "bad.xnor"),
        (["classify", "--model", "{tmp}/none.xnor"], 1, "no such model file"),
        (["classify", "{tmp}/nope.jpg", "--model", "{model}"], 1, "no such file or folder"),
        (["classify", "{junk}", "--model", "{model}"], 1, "cannot read image"),
        (["classify", "--top-k", "0", "--model", "{model}"], 2, "--top-k must be >= 1"),
        (["classify", "--threads", "x"], 2, "invalid int value"),
        (["frobnicate"], 2, "invalid choice"),
        (["bench", "{model}", "--threads", "1,a"], 2, "comma-separated"),
        (["classify", "--display", "--model", "{model}", "--camera", "{video}"], 1, "--display needs"),
    ],
)
def test_errors_one_line_no_traceback(model_path, video, tmp_path, args, code, msg):
    bad = tmp_path / "bad.xnor"
    data = bytearray(tiny_classifier())
    data[400] ^= 1
    bad.write_bytes(data)
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"definitely not a jpeg")
    subst = {"{model}": model_path, "{bad}": bad, "{tmp}": tmp_path, "{junk}": junk, "{video}": video}
    real = []
    for a in args:
        for k, v in subst.items():
            a = a.replace(k, str(v))
        real.append(a)
    rc, out, err = cli(*real)
    assert rc == code, (out, err)
    assert "Traceback" not in err
    lines = [s for s in err.splitlines() if s.startswith("xnor-edge")]
    assert len(lines) >= 1 and lines[0].startswith("xnor-edge: error: ") and msg in err


def test_shipped_models_by_name():
    rc, out, err = cli("models", "--json")
    assert rc == 0, err
    rows = {r["name"]: r for r in json.loads(out)}
    shipped = xnor_edge.shipped_models()
    assert set(rows) == set(shipped) and "default" in rows
    # default.xnor is a byte copy of one named model, and the listing says which.
    twin = rows["default"]["copy_of"]
    assert twin and shipped[twin].read_bytes() == shipped["default"].read_bytes()
    for name, r in rows.items():
        with xnor_edge.load(shipped[name]) as m:
            assert r["labels"] == len(m.labels) and r["input"] == list(m.input_shape)
    # A name and the file it stands for classify identically.
    name = "mnist-digits-xnor"
    assert xnor_edge.model_path(name) == shipped[name]
    by_name = cli("classify", "--model", name, "--json")
    by_path = cli("classify", "--model", shipped[name], "--json")
    assert by_name[0] == 0 and [json.loads(x)["top"] for x in by_name[1].splitlines()] == [
        json.loads(x)["top"] for x in by_path[1].splitlines()
    ]


def test_unknown_model_name_lists_the_shipped_ones(tmp_path):
    rc, out, err = cli("classify", "--model", "no-such-model")
    assert rc == 1 and err.startswith("xnor-edge: error: no-such-model: no such model file")
    assert "mnist-digits-xnor" in err
    # A path that merely ends in a shipped name is not silently replaced by it.
    with pytest.raises(FileNotFoundError, match="no such model file"):
        xnor_edge.model_path(tmp_path / "mnist-digits-xnor.xnor")


def test_missing_default_model_is_clear(monkeypatch, capsys):
    from xnor_edge import cli as cli_mod

    monkeypatch.setattr(xnor_edge, "default_model_path", lambda: None)
    rc = cli_mod.main(["info"])
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith("xnor-edge: error: no default model is installed")
