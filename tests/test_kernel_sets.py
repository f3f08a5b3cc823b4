"""The x86 kernel sets by name, each tested or reported as skipped (never a silent pass).

tests/test_golden_outputs.py checks every set this CPU offers; a set the CPU lacks is absent
from that list, so here each known x86 set is a test of its own that says SKIPPED, naming the
missing instructions, where it cannot run. Where it can: every shipped model's stored outputs
bit for bit through a session that asks for the set by name, at 1 and 2 threads. On Linux the
avx512 set must be offered exactly when /proc/cpuinfo lists the instructions it needs (the
kernel clears those flags when the OS does not save ZMM state), and be the default then.
"""

from __future__ import annotations

import importlib.util
import json
import platform
from pathlib import Path

import numpy as np
import pytest

import xnor_edge

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = json.loads((ROOT / "tests" / "data" / "golden_outputs.json").read_text(encoding="utf-8"))
_spec = importlib.util.spec_from_file_location("make_golden", ROOT / "tools" / "make_golden_outputs.py")
make_golden = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_golden)

X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")
# Each x86 set and the /proc/cpuinfo flags of the instructions it needs.
X86_SETS = {
    "popcnt": ("popcnt",),
    "ssse3": ("ssse3",),
    "avx2": ("popcnt", "avx2", "fma"),
    "avx512": ("popcnt", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vpopcntdq"),
}


def cpu_flags() -> set[str] | None:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return None


def require(isa: str) -> None:
    if not X86:
        pytest.skip(f"SKIPPED: {isa} is an x86 kernel set and this is {platform.machine()}")
    if isa not in xnor_edge.available_isas():
        flags = cpu_flags()
        missing = [f for f in X86_SETS[isa] if flags is not None and f not in flags]
        pytest.skip(
            f"SKIPPED: this CPU lacks the instructions of the {isa} kernel set"
            + (f" (no {', '.join(missing)} in /proc/cpuinfo)" if missing else "")
            + "; it was not tested here"
        )


@pytest.mark.parametrize("isa", sorted(X86_SETS))
def test_x86_set_gives_the_stored_outputs_of_every_shipped_model(isa):
    require(isa)
    for name, entries in sorted(GOLDEN["models"].items()):
        with xnor_edge.load(str(ROOT / "models" / name)) as m:
            inputs = make_golden.golden_inputs(m.input_shape)
            for threads in (1, 2):
                s = m.session(threads, kernel_isa=isa)
                assert s.kernel_isa == isa
                for x, e in zip(inputs, entries):
                    want = np.array([float.fromhex(v) for v in e["output"]], dtype=np.float32)
                    got = s.run(x).ravel()
                    assert np.array_equal(got.view(np.uint32), want.view(np.uint32)), (
                        f"{name} {isa} {threads} threads differs from the stored output"
                    )


@pytest.mark.skipif(not X86 or cpu_flags() is None, reason="SKIPPED: needs Linux /proc/cpuinfo on x86")
def test_avx512_offered_exactly_when_the_cpu_has_it_and_then_the_default():
    flags = cpu_flags()
    has = all(f in flags for f in X86_SETS["avx512"])
    assert ("avx512" in xnor_edge.available_isas()) == has, f"cpuinfo says {has}"
    if not has:
        pytest.skip("SKIPPED: this CPU lacks AVX-512 F/BW/VL/VPOPCNTDQ; the avx512 set was not tested here")
    try:
        xnor_edge.set_kernel_isa("auto")
        assert xnor_edge.kernel_isa() == "avx512"
        assert xnor_edge.available_isas()[-1] == "avx512"
    finally:
        xnor_edge.set_kernel_isa("auto")


def test_bench_kernel_sets_compares_two_sets_on_the_layers(tmp_path):
    """tools/bench_kernel_sets.py runs (one short round) and reports every layer for both sets."""
    path = ROOT / "tools" / "bench_kernel_sets.py"
    spec = importlib.util.spec_from_file_location("bench_kernel_sets", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    isas = ["ref", xnor_edge.available_isas()[-1]]
    out = tmp_path / "sets.json"
    argv = ["--isas", ",".join(isas), "--threads", "1", "--cases", "layers", "--rounds", "1"]
    assert bench.main([*argv, "--visit-s", "0.001", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["case"] for r in rows] == [f"layer {hw}x{hw}x{c}" for hw, c in bench.LAYERS]
    for r in rows:
        assert set(r["median_ms"]) == set(isas) and all(v > 0 for v in r["median_ms"].values())
