"""Builds a wheel, installs it into a fresh venv and uses it from outside the source tree."""

from __future__ import annotations

import json
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_builds_installs_and_runs(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(ROOT),
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(wheels),
            "-q",
        ],
        check=True,
        timeout=900,
    )
    (whl,) = wheels.glob("xnor_edge-*.whl")
    assert whl.name.endswith("-py3-none-linux_x86_64.whl") or "-py3-none-" in whl.name
    names = zipfile.ZipFile(whl).namelist()
    assert "xnor_edge/libxnor_edge.so" in names and "xnor_edge/include/xnor_edge.h" in names
    assert "xnor_edge/samples/cat.jpg" in names
    assert {"xnor_edge/web/index.html", "xnor_edge/web/app.js", "xnor_edge/web/style.css"} <= set(names)
    zoo = sorted(p.name for p in (ROOT / "models").glob("*.xnor"))
    assert "default.xnor" in zoo
    assert sorted(n.rsplit("/", 1)[1] for n in names if n.startswith("xnor_edge/models/")) == zoo
    assert not any(n.startswith(("lib/", "include/")) for n in names)  # only the python component
    # The training tools ship as the package xnor_train (tools/xnor_train in the source).
    assert "xnor_train/train.py" in names and "xnor_train/__init__.py" in names
    assert not any(n.startswith("tools/") for n in names)
    # Metadata: the header's version, the README, the licence and the console scripts.
    zf = zipfile.ZipFile(whl)
    dist_info = next(n.split("/", 1)[0] for n in names if n.endswith(".dist-info/METADATA"))
    meta = zf.read(f"{dist_info}/METADATA").decode()
    import xnor_edge

    assert f"\nVersion: {xnor_edge.__version__}\n" in meta and f"-{xnor_edge.__version__}-" in whl.name
    assert "Description-Content-Type: text/markdown" in meta and "# xnor-edge" in meta
    assert "License :: OSI Approved :: MIT License" in meta
    (lic,) = [n for n in names if n.startswith(dist_info) and n.endswith("/LICENSE")]
    assert zf.read(lic).decode() == (ROOT / "LICENSE").read_text() and "MIT License" in zf.read(lic).decode()
    scripts = zf.read(f"{dist_info}/entry_points.txt").decode()
    assert "xnor-edge-train = xnor_train.train:main" in scripts

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    py = venv / "bin" / "python"
    # Reuse this environment's dependencies (numpy, cv2, PIL, ...) without its xnor_edge:
    # directories listed in a .pth file come after the venv's own site-packages.
    site_dir = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(site_dir, "parent_env.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run([str(py), "-m", "pip", "install", "--no-deps", "-q", str(whl)], check=True, timeout=300)
    code = (
        "import numpy as np, xnor_edge, xnor_edge._native as n\n"
        "from xnor_edge import GraphBuilder\n"
        f"assert n.library_path.startswith({str(venv)!r}), n.library_path\n"
        f"assert xnor_edge.__file__.startswith({str(venv)!r}), xnor_edge.__file__\n"
        "g = GraphBuilder((6, 6, 3), {'labels': ['a', 'b']})\n"
        "x = g.bconv2d(g.input, np.ones((4, 3, 3, 3)), np.ones(4), padding=1, use_k=True)\n"
        "g.dense(g.global_avgpool(x), np.ones((2, 4)))\n"
        "m = xnor_edge.load(g.to_bytes())\n"
        "print(m.classify(str(xnor_edge.sample_path('cat.jpg')), top_k=1), xnor_edge.kernel_isa())\n"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}

    def run(*argv: str) -> subprocess.CompletedProcess:  # from outside the source tree
        return subprocess.run(list(argv), cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120)

    r = run(str(py), "-c", code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("[('a', ") or r.stdout.startswith("[('b', ")
    r = run(str(venv / "bin" / "xnor-edge"), "info", "/nonexistent.xnor")
    assert r.returncode == 1 and r.stderr.startswith("xnor-edge: error: ")
    # The zoo is found by name from the installed package.
    r = run(str(venv / "bin" / "xnor-edge"), "models", "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert sorted(row["name"] + ".xnor" for row in rows) == zoo
    assert all(row["path"].startswith(str(venv)) for row in rows)
    # The training tools run from the installed wheel (torch from this environment).
    r = run(str(py), "-c", "import xnor_train.train as t; print(t.__file__)")
    assert r.returncode == 0 and r.stdout.startswith(str(venv)), r.stderr
