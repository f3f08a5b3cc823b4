"""tools/bench_peers.py --quick on the CIFAR model: xnor-edge only, every peer skipped by name.

The peers are hidden behind stub modules that raise ImportError, so the test runs the
same way whether or not onnxruntime, ai-edge-litert or LCE are installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

TOOL = Path(__file__).resolve().parents[1] / "tools" / "bench_peers.py"
PEERS = ("onnxruntime", "litert", "lce", "numpy-sgemm")


def test_quick_cifar_xnor_edge_only_peers_skipped(tmp_path):
    hide = tmp_path / "hide"
    hide.mkdir()
    for mod in ("onnxruntime", "larq_compute_engine"):
        (hide / f"{mod}.py").write_text('raise ImportError("hidden by the test")\n')
    (hide / "ai_edge_litert").mkdir()
    (hide / "ai_edge_litert" / "__init__.py").write_text('raise ImportError("hidden by the test")\n')
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(hide), env.get("PYTHONPATH")) if p)
    out_json, out_md = tmp_path / "r.json", tmp_path / "r.md"
    cmd = [sys.executable, str(TOOL), "--quick", "--networks", "vggsmall-32"]
    cmd += ["--json", str(out_json), "--markdown", str(out_md)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr

    for peer in PEERS:
        assert f"skip {peer}:" in r.stdout, r.stdout
    assert "onnxruntime not installed" in r.stdout

    md = out_md.read_text()
    assert "CPU:" in md and "kernel set `" in md
    assert "| network (batch 1) | threads | xnor-edge |" in md
    assert "| CIFAR VGG-small XNOR, 32 px (shipped) | 1 |" in md
    assert "| CIFAR VGG-small XNOR, 32 px (shipped) | 2 |" in md
    assert md in r.stdout

    data = json.loads(out_json.read_text())
    assert data["mode"] == "networks"
    assert data["cpu"]["model"] and "simd_flags" in data["cpu"]
    assert data["infos"]["xnor-edge"]["kernel_isa"]
    assert set(data["skipped"]) == set(PEERS)
    rows = {(r["engine"], r["threads"]): r for r in data["results"]}
    assert set(rows) == {("xnor-edge", 1), ("xnor-edge", 2)}
    for (_, t), row in rows.items():
        assert row["case"] == "vggsmall-32"
        assert row["n"] == len(row["wall_ns"]) >= 2
        assert 0 < row["wall"]["p50_ms"] <= row["wall"]["p90_ms"]
        assert row["c_clock"]["p50_ms"] > 0
        assert (row["cpu"] is not None) == (t == 1)


def test_fig4_theory_is_the_papers_formula():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_peers", TOOL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert abs(mod.fig4_theory(256, 9) - 62.27) < 0.01  # the paper's ~62x for c = 256, 3x3
    assert mod.fig4_theory(1, 1) == 64.0 / 65.0


def test_pingpong_probe_labels_requests_near_and_far(tmp_path):
    """--pingpong runs the given binary before each request; a stand-in answers 100 ns and
    400 ns in turn, so requests fall on both sides and the split table has every cell."""
    probe = tmp_path / "bench_pool"
    count = tmp_path / "count"
    probe.write_text(
        "#!/bin/sh\n"
        f'n=$(cat "{count}" 2>/dev/null || echo 0); echo $((n + 1)) > "{count}"\n'
        'if [ $((n % 2)) -eq 0 ]; then echo "100 ns per round trip"; '
        'else echo "400 ns per round trip"; fi\n'
    )
    probe.chmod(0o755)
    out_json = tmp_path / "r.json"
    cmd = [sys.executable, str(TOOL), "--quick", "--rounds", "4", "--networks", "vggsmall-32"]
    cmd += ["--engines", "xnor-edge", "--pingpong", str(probe), "--json", str(out_json)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert int(count.read_text()) == 8  # 4 rounds x 2 thread counts
    data = json.loads(out_json.read_text())
    assert data["settings"]["pingpong"] == str(probe)
    for row in data["results"]:
        rts = row["pingpong_ns"]
        assert len(rts) == len(row["wall_ns"]) and set(rts) <= {100.0, 400.0}
        near = [w for w, rt in zip(row["wall_ns"], rts) if rt == 100.0]
        far = [w for w, rt in zip(row["wall_ns"], rts) if rt == 400.0]
        assert near and far  # the seeded shuffle puts each worker on both sides
        assert abs(row["wall_near"]["p50_ms"] - float(np.median(near)) / 1e6) < 1e-9
        assert abs(row["wall_far"]["p50_ms"] - float(np.median(far)) / 1e6) < 1e-9
    assert "near (< 200 ns) for 50% of the iterations, far (>= 300 ns) for 50%" in r.stdout
    assert "| CIFAR VGG-small XNOR, 32 px (shipped) | xnor-edge | " in r.stdout.split("near | far |")[1]


def test_pingpong_missing_binary_is_named(tmp_path):
    cmd = [sys.executable, str(TOOL), "--quick", "--networks", "vggsmall-32", "--engines", "xnor-edge"]
    cmd += ["--pingpong", str(tmp_path / "nope")]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert "--pingpong:" in r.stderr and "nope" in r.stderr
