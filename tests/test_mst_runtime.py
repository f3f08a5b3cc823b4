"""The C op bconv2d_mst (op 32) and `xnor-edge compress` against the uncompressed models.

Every shipped model, coded on the plain MST (every channel but one per chunk a child),
must give logits bit-identical to the original on every kernel set at 1-4 threads, on
the golden inputs of tools/make_golden_outputs.py; so must a storage-optimal code of a
model whose filters do compress. The reference interpreter evaluates op 32 by decoding
(xnor_edge.mst), independently of the C code.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import xnor_edge
from xnor_edge import cli, mst
from xnor_edge.builder import GraphBuilder
from xnor_edge.reference import ReferenceModel

ROOT = Path(__file__).resolve().parent.parent
MODELS = sorted(p for p in (ROOT / "models").glob("*.xnor") if p.name != "default.xnor")

_spec = importlib.util.spec_from_file_location("make_golden", ROOT / "tools" / "make_golden_outputs.py")
_golden = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_golden)


def _assert_same_logits(a: bytes, b: bytes) -> None:
    shape = xnor_edge.load(a).input_shape
    try:
        for x in _golden.golden_inputs(shape):
            for isa in xnor_edge.available_isas():
                xnor_edge.set_kernel_isa(isa)
                for threads in (1, 2, 3, 4):
                    with xnor_edge.load(a, threads) as ma, xnor_edge.load(b, threads) as mb:
                        ya, yb = ma.run(x), mb.run(x)
                    assert ya.tobytes() == yb.tobytes(), (isa, threads)
    finally:
        xnor_edge.set_kernel_isa("auto")


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.stem)
def test_plain_mst_of_every_shipped_model_is_bit_identical(path):
    data = path.read_bytes()
    packed, report = mst.compress_model(data, min_ratio=0, forest=False)
    assert all(r["converted"] for r in report)
    if not report:  # BWN models: float input, no bconv2d; bwn_conv2d stays as is (docs/mst.md)
        assert packed == data
        return
    n_bconv = sum(1 for n in xnor_edge.load(data).info()["layers"] if n["op"] == "bconv2d")
    assert sum(n["op"] == "bconv2d_mst" for n in xnor_edge.load(packed).info()["layers"]) == n_bconv
    _assert_same_logits(data, packed)


@pytest.mark.parametrize("encoding", ["words", "bits"])
def test_each_encoding_with_a_depth_bound_is_bit_identical(encoding):
    data = (ROOT / "models" / "cifar10-vggsmall-xnor.xnor").read_bytes()
    packed, report = mst.compress_model(data, max_depth=4, min_ratio=0, forest=False, encoding=encoding)
    assert {r["encoding"] for r in report} == {encoding} and max(r["depth"] for r in report) <= 4
    _assert_same_logits(data, packed)


def _near_duplicate_model() -> bytes:
    """Filters in families of 8 that differ in a few bits: an MST code pays here."""
    rng = np.random.default_rng(32)
    g = GraphBuilder((8, 8, 3), {"name": "mst-near-duplicates"})
    x = g.conv2d(g.input, rng.standard_normal((40, 3, 3, 3)), padding=1)
    base = np.repeat(rng.standard_normal((12, 40, 3, 3)), 8, axis=0)
    flip = rng.random(base.shape) < 0.01
    x = g.bconv2d(x, np.where(flip, -base, base), rng.random(96) + 0.1, padding=1, relu=True)
    base = np.repeat(rng.standard_normal((5, 96, 3, 3)), 7, axis=0)[:33]
    x = g.bconv2d(x, base, rng.random(33) + 0.1, stride=2, padding=1, pad_mode="one", out_bits=True)
    x = g.bconv2d(x, np.repeat(rng.standard_normal((2, 33, 3, 3)), 10, axis=0), rng.random(20), padding=1)
    g.dense(g.global_avgpool(x), rng.standard_normal((5, 20)))
    return g.to_bytes()


def test_storage_optimal_code_is_smaller_and_bit_identical():
    data = _near_duplicate_model()
    packed, report = mst.compress_model(data)  # size-optimal forest, only where it pays
    assert all(r["converted"] and r["bytes_after"] < r["bytes_before"] for r in report)
    assert len(packed) < len(data)
    _assert_same_logits(data, packed)
    x = np.random.default_rng(1).standard_normal((8, 8, 3))
    assert np.array_equal(ReferenceModel(packed).run(x), ReferenceModel(data).run(x))
    info = [r for r in mst.coded_layers(packed)]
    assert [r["node"] for r in info] == [r["node"] for r in report]


@pytest.mark.parametrize("encoding", ["words", "bits"])
def test_builder_writes_bconv2d_mst(encoding):
    def build(mst_op: bool) -> bytes:
        rng = np.random.default_rng(33)
        g = GraphBuilder((7, 6, 5), {"name": "builder-mst"})
        conv = g.bconv2d_mst if mst_op else g.bconv2d
        kw = dict(encoding=encoding, forest=False, chunk=16, max_depth=5) if mst_op else {}
        x = conv(g.input, rng.standard_normal((40, 5, 3, 3)), rng.random(40), padding=1, use_k=True, **kw)
        x = conv(x, rng.standard_normal((33, 40, 3, 3)), rng.random(33) + 0.1, stride=2, out_bits=True, **kw)
        x = conv(x, rng.standard_normal((9, 33, 2, 2)), rng.random(9), pad_mode="one", padding=1, **kw)
        g.dense(g.global_avgpool(x), rng.standard_normal((3, 9)))
        return g.to_bytes()

    plain, coded = build(False), build(True)
    assert [n["op"] for n in xnor_edge.load(coded).info()["layers"]][:3] == ["bconv2d_mst"] * 3
    assert mst.decompress_model(coded) == plain
    _assert_same_logits(plain, coded)


def test_storage_optimal_compress_keeps_shipped_layers():
    """Untrained-for-MST filters share no word: every size-optimal forest is all roots,
    larger than plain packing by its per-channel overhead, so every layer stays bconv2d."""
    data = (ROOT / "models" / "mnist-digits-xnor.xnor").read_bytes()
    packed, report = mst.compress_model(data)
    assert packed == data and not any(r["converted"] for r in report)


def test_reference_evaluates_op_32_by_decoding():
    data = (ROOT / "models" / "mnist-digits-xnor.xnor").read_bytes()
    packed, _ = mst.compress_model(data, min_ratio=0, forest=False, encoding="bits")
    x = np.random.default_rng(2).standard_normal(xnor_edge.load(data).input_shape)
    assert np.array_equal(ReferenceModel(packed).run(x), ReferenceModel(data).run(x))


def test_cli_compress_and_info(tmp_path, capsys):
    src = ROOT / "models" / "mnist-digits-xnor.xnor"
    out = tmp_path / "m.xnor"
    argv = ["compress", str(src), "-o", str(out), "--tree", "mst", "--force", "--runs", "2"]
    assert cli.main(argv + ["--depth-bound", "8", "--encoding", "words"]) == 0
    text = capsys.readouterr().out
    assert "outputs bit-identical" in text and "kept" not in text
    _assert_same_logits(src.read_bytes(), out.read_bytes())
    assert cli.main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "MST-coded layers" in text and text.count("roots ") == 3 and "bconv2d_mst" in text
    # Without --force the plain MST does not pay on these filters: every layer is kept.
    assert cli.main(["compress", str(src), "-o", str(out), "--tree", "mst", "--runs", "1"]) == 0
    assert "kept" in capsys.readouterr().out and out.read_bytes() == src.read_bytes()


def test_cli_compress_refuses_on_a_difference(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "_same_outputs", lambda a, b, shape: False)
    out = tmp_path / "m.xnor"
    argv = ["compress", str(ROOT / "models" / "mnist-digits-xnor.xnor"), "-o", str(out), "--force"]
    assert cli.main(argv) == 1
    assert "self-check failed" in capsys.readouterr().err and not out.exists()
    assert list(tmp_path.iterdir()) == []


def _special_trees_model(encoding: str, chunk: int | None, pad_mode: str, stride: int) -> tuple[bytes, bytes]:
    """The child kernel's battery (kernels.h xe_mst_children_fn): a chain (each filter
    one bit from the previous, so with one tree per layer the plain MST holds a path of
    depth 44), exact duplicates (D = 0), complement pairs (D = K), random filters; channels
    not multiples of 32; odd output sizes so the row blocks have tails; K on and off,
    bit outputs, both paddings and strides 1 and 2. Returns (plain, coded)."""
    rng = np.random.default_rng(34 + stride)

    def build(coded: bool) -> bytes:
        g = GraphBuilder((9, 7, 5), {"name": "mst-battery"})
        kw = dict(encoding=encoding, forest=False, chunk=chunk) if coded else {}
        conv = g.bconv2d_mst if coded else g.bconv2d
        r = np.random.default_rng(7)
        # 21 copies of f0, then f_i = f0 with its first i weights (a fixed order) flipped:
        # the copies make f0 the medoid root, and f1..f44 hang below it as a path.
        chain = np.repeat(r.standard_normal((1, 45)), 65, axis=0)
        order = r.permutation(45)
        for i in range(1, 45):
            chain[20 + i, order[:i]] *= -1
        chain = chain.reshape(65, 5, 3, 3)
        x = conv(g.input, chain, r.random(65) + 0.1, stride=stride, padding=1, pad_mode=pad_mode,
                 use_k=True, **kw)  # fmt: skip
        dup = np.repeat(r.standard_normal((3, 65, 3, 3)), 11, axis=0)  # D = 0 children
        x = conv(x, dup, r.random(33) + 0.1, padding=1, pad_mode=pad_mode, relu=True, **kw)
        f = r.standard_normal((1, 33, 2, 2))
        x = conv(x, np.concatenate([f, -f]), r.random(2) + 0.1, padding=1, **kw)  # D = K
        x = conv(x, r.standard_normal((37, 2, 3, 3)), r.random(37) - 0.5, padding=1, pad_mode=pad_mode,
                 out_bits=True, **kw)  # fmt: skip
        x = conv(x, r.standard_normal((70, 37, 3, 3)), r.random(70) + 0.1, stride=stride, padding=1, **kw)
        g.dense(g.global_avgpool(x), r.standard_normal((4, 70)))
        return g.to_bytes()

    del rng
    return build(False), build(True)


@pytest.mark.parametrize("encoding", ["words", "bits"])
@pytest.mark.parametrize("chunk", [None, 16])
@pytest.mark.parametrize("pad_mode,stride", [("zero", 1), ("one", 2), ("zero", 2)])
def test_child_kernel_battery_is_bit_identical(encoding, chunk, pad_mode, stride):
    plain, coded = _special_trees_model(encoding, chunk, pad_mode, stride)
    layers = mst.coded_layers(coded)
    assert len(layers) == 5
    if chunk is None:
        assert layers[0]["depth"] >= 32  # a deep path below the root (44 on bit costs)
    assert layers[2]["mean_d"] == 1.0  # the complement pair: D = K
    assert layers[1]["mean_d"] < 0.1  # duplicates: D = 0 but for the edges between the families
    _assert_same_logits(plain, coded)
    x = np.random.default_rng(2).standard_normal((9, 7, 5))
    assert np.array_equal(ReferenceModel(coded).run(x), ReferenceModel(plain).run(x))
