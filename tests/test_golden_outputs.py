"""Every shipped model, every kernel set, 1-4 threads: outputs equal the stored ones bit for bit.

tests/data/golden_outputs.json was written by tools/make_golden_outputs.py with the release
before the core was reshaped; any change that moves a single bit of a shipped model's output
fails here.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

import xnor_edge

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = json.loads((ROOT / "tests" / "data" / "golden_outputs.json").read_text(encoding="utf-8"))
_spec = importlib.util.spec_from_file_location("make_golden", ROOT / "tools" / "make_golden_outputs.py")
make_golden = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_golden)


@pytest.fixture
def restore_isa():
    yield
    xnor_edge.set_kernel_isa("auto")


@pytest.mark.parametrize("name", sorted(GOLDEN["models"]))
def test_shipped_model_outputs_are_bit_identical_to_stored(name, restore_isa):
    entries = GOLDEN["models"][name]
    path = ROOT / "models" / name
    shape = xnor_edge.load(str(path)).input_shape
    inputs = make_golden.golden_inputs(shape)
    assert len(inputs) == len(entries)
    checked = 0
    for isa in xnor_edge.available_isas():
        xnor_edge.set_kernel_isa(isa)
        for threads in (1, 2, 3, 4):
            with xnor_edge.load(str(path), num_threads=threads) as m:
                for x, e in zip(inputs, entries):
                    assert make_golden.digest(x) == e["input_sha256"], "the input generator changed"
                    want = np.array([float.fromhex(v) for v in e["output"]], dtype=np.float32)
                    got = m.run(x).ravel()
                    diff = np.flatnonzero(got.view(np.uint32) != want.view(np.uint32))
                    assert diff.size == 0, (
                        f"{name} {isa} {threads} threads: outputs {diff[:5].tolist()} differ "
                        f"({got[diff[:5]].tolist()} vs stored {want[diff[:5]].tolist()})"
                    )
                    checked += 1
    assert checked >= 4 * len(entries)
