"""uint8 model input (docs/format.md, "uint8 input"): a model declares that it takes
uint8 HWC pixels and carries their normalisation as a [C][256] table. The C runtime
converts by lookup in one pass; reference.py looks up the same table; the builder
writes it (GraphBuilder.uint8_input, with_uint8_input for an existing file); the
Python API runs uint8 arrays and classify feeds frames without float conversion."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_classifier

import xnor_edge
from xnor_edge.builder import GraphBuilder, uint8_table, with_uint8_input
from xnor_edge.errors import ModelError
from xnor_edge.reference import ReferenceError, ReferenceModel

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def _graph(rng, shape=(9, 7, 3)) -> GraphBuilder:
    g = GraphBuilder(shape, {"name": "u8"})
    x = g.conv2d(g.input, rng.normal(size=(8, shape[2], 3, 3)), rng.normal(size=8), padding=1, relu=True)
    x = g.bconv2d(x, rng.normal(size=(16, 8, 3, 3)), rng.uniform(0.1, 1, 16), padding=1)
    g.dense(g.global_avgpool(x), rng.normal(size=(5, 16)), rng.normal(size=5))
    return g


def test_table_is_the_normalisation_rounded_once():
    t, stats = uint8_table(3, MEAN, STD)
    u = np.arange(256)
    want = ((u[None, :] / 255.0 - np.array(MEAN)[:, None]) / np.array(STD)[:, None]).astype(np.float32)
    np.testing.assert_array_equal(t, want)
    assert stats == {"mean": MEAN, "std": STD}
    t2, stats2 = uint8_table(3, scale=1 / 255, offset=[0.0, -0.5, 1.0])
    np.testing.assert_array_equal(t2[1], (u / 255 - 0.5).astype(np.float32))
    np.testing.assert_allclose(stats2["std"], [1.0, 1.0, 1.0])
    np.testing.assert_allclose(stats2["mean"], [0.0, 0.5, -1.0])


@pytest.mark.parametrize("shape", [(9, 7, 3), (5, 6, 1), (4, 4, 33)])
@pytest.mark.parametrize("threads", [1, 3])
def test_runtime_reference_and_float_path_agree(rng, shape, threads):
    g = _graph(rng, shape)
    g.uint8_input(mean=0.5, std=0.25)
    data = g.to_bytes()
    ref = ReferenceModel(data)
    px = rng.integers(0, 256, size=(4, *shape), dtype=np.uint8)
    table = ref.input_table
    assert table.shape == (shape[2], 256)
    x = table[np.arange(shape[2]), px]  # the format's lookup, by hand
    with xnor_edge.load(data, num_threads=threads) as m:
        assert m.takes_uint8
        np.testing.assert_array_equal(m.input_u8_table, table)
        y8 = m.run(px)
        yf = m.run(x)
        np.testing.assert_array_equal(y8, yf)  # uint8 path == float path, bit for bit
        np.testing.assert_array_equal(m.run(px[1]), y8[1])  # single image
        for k in range(len(px)):
            want = ref.run(px[k])
            np.testing.assert_array_equal(want, ref.run(x[k]))
            np.testing.assert_allclose(y8[k], want, rtol=1e-4, atol=1e-4)
        with m.session(kernel_isa=xnor_edge.available_isas()[0]) as s:
            np.testing.assert_array_equal(s.run(px), y8)


def test_with_uint8_input_keeps_the_model(rng):
    data = _graph(rng).to_bytes()
    data8 = with_uint8_input(data, MEAN, STD)
    with pytest.raises(ValueError, match="already takes uint8"):
        with_uint8_input(data8, MEAN, STD)
    px = rng.integers(0, 256, size=(9, 7, 3), dtype=np.uint8)
    table, _ = uint8_table(3, MEAN, STD)
    x = table[np.arange(3), px]
    with xnor_edge.load(data) as mf, xnor_edge.load(data8) as m8:
        assert not mf.takes_uint8 and m8.takes_uint8
        assert m8.metadata["mean"] == MEAN and m8.metadata["std"] == STD
        assert m8.metadata["name"] == "u8"
        np.testing.assert_array_equal(m8.run(px), mf.run(x))
        np.testing.assert_array_equal(m8.run(x), mf.run(x))
        assert len(m8.info()["layers"]) == len(mf.info()["layers"])


def test_classify_feeds_uint8_frames(monkeypatch):
    data8 = with_uint8_input(tiny_classifier(shape=(12, 12, 3)), MEAN, STD)
    frame = np.random.default_rng(5).integers(0, 256, size=(30, 40, 3), dtype=np.uint8)
    with xnor_edge.load(data8) as m:
        img = m.preprocess_uint8(frame)
        assert img.dtype == np.uint8 and img.shape == (12, 12, 3)
        x = m.preprocess(frame)  # the table's floats: what the C side computes
        np.testing.assert_array_equal(x, m.input_u8_table[np.arange(3), img])
        want = m.postprocess(m.run(x), 3)
        seen = []
        real_run = xnor_edge.Model.run

        def spy(self, inp):
            seen.append(np.asarray(inp).dtype)
            return real_run(self, inp)

        monkeypatch.setattr(xnor_edge.Model, "run", spy)
        assert m.classify(frame, top_k=3) == want
        assert seen == [np.uint8]


def test_wrong_dtype_and_shape_are_clear(rng):
    g = _graph(rng)
    g.uint8_input(MEAN, STD)
    with xnor_edge.load(g.to_bytes()) as m:
        with pytest.raises(TypeError, match="uint8 pixels or float32 normalised input, got int64"):
            m.run(np.zeros((9, 7, 3), dtype=np.int64))
        with pytest.raises(ValueError, match=r"input shape \(7, 9, 3\) does not match"):
            m.run(np.zeros((7, 9, 3), dtype=np.uint8))
        # float64 still works as normalised values
        x = rng.normal(size=(9, 7, 3))
        np.testing.assert_array_equal(m.run(x), m.run(x.astype(np.float32)))
    # A float-only model keeps casting uint8 values as they are.
    with xnor_edge.load(_graph(rng).to_bytes()) as mf:
        assert not mf.takes_uint8 and mf.input_u8_table is None
        px = np.full((9, 7, 3), 3, dtype=np.uint8)
        np.testing.assert_array_equal(mf.run(px), mf.run(px.astype(np.float32)))


def test_builder_rejections():
    g = GraphBuilder((4, 4, 3))
    with pytest.raises(ValueError, match="mean and std, or scale and offset"):
        g.uint8_input(MEAN, STD, scale=1.0)
    with pytest.raises(ValueError, match="mean and std, or scale and offset"):
        g.uint8_input()
    with pytest.raises(ValueError, match="std contains 0"):
        g.uint8_input(0.5, [1, 0, 1])
    with pytest.raises(ValueError, match="mean has 2 values, the input has 3 channels"):
        g.uint8_input([0.5, 0.5], 1.0)
    with pytest.raises(ValueError, match="overflows float32"):
        g.uint8_input(scale=1e38, offset=0.0)


def _header_edit(data: bytes, off: int, value: int) -> bytes:
    b = bytearray(data)
    b[off : off + 4] = struct.pack("<I", value)
    b[-8:-4] = struct.pack("<I", zlib.crc32(bytes(b[:-8])) & 0xFFFFFFFF)
    return bytes(b)


def test_both_loaders_reject_bad_tables(rng):
    data8 = with_uint8_input(_graph(rng).to_bytes(), MEAN, STD)
    table_index = struct.unpack_from("<I", data8, 52)[0]
    cases = [
        (_header_edit(data8, 28, 3), "flags"),
        (_header_edit(data8, 52, table_index + 1), "input_table"),
        (_header_edit(data8, 52, 0), "input_table param 0"),  # the conv's weights
        (_header_edit(_graph(rng).to_bytes(), 52, 1), "input_table"),  # no flag
    ]
    for bad, msg in cases:
        with pytest.raises(ModelError, match=msg):
            xnor_edge.load(bad)
        with pytest.raises(ReferenceError):
            ReferenceModel(bad)


# ------------------------------------------------------------------ importers

IMPORT_DATA = Path(__file__).parent / "data" / "import"


def test_onnx_import_option_matches_the_float_import():
    pytest.importorskip("onnx")
    from xnor_edge.importers.onnx_import import import_onnx

    src = IMPORT_DATA / "digits_xnor.onnx"
    gf, _ = import_onnx(src, mean=[0.1307], std=[0.3081])
    g8, _ = import_onnx(src, mean=[0.1307], std=[0.3081], uint8_input=True)
    px = np.random.default_rng(3).integers(0, 256, size=(28, 28, 1), dtype=np.uint8)
    x = ((px / 255.0 - 0.1307) / 0.3081).astype(np.float32)  # the table, by its definition
    with xnor_edge.load(gf.to_bytes()) as mf, xnor_edge.load(g8.to_bytes()) as m8:
        assert m8.takes_uint8 and not mf.takes_uint8
        np.testing.assert_array_equal(m8.run(px), mf.run(x))


@pytest.mark.parametrize(
    "src,mean,std",
    [("digits_xnor.onnx", 0.1307, 0.3081), ("tflite/quicknet_tiny.tflite", None, None)],
)
def test_cli_import_uint8_input(tmp_path, capsys, src, mean, std):
    pytest.importorskip("tflite" if src.endswith(".tflite") else "onnx")
    from xnor_edge import cli

    extra = [] if mean is None else ["--mean", str(mean), "--std", str(std)]
    out, out8 = tmp_path / "f.xnor", tmp_path / "u8.xnor"
    assert cli.main(["import", str(IMPORT_DATA / src), "-o", str(out), *extra]) == 0
    assert cli.main(["import", str(IMPORT_DATA / src), "-o", str(out8), "--uint8-input", *extra]) == 0
    assert "takes uint8 input" in capsys.readouterr().out
    with xnor_edge.load(out) as mf, xnor_edge.load(out8) as m8:
        assert m8.takes_uint8 and m8.metadata["name"] == mf.metadata["name"]
        c = m8.input_shape[2]
        table, _ = uint8_table(c, 0.0 if mean is None else mean, 1.0 if std is None else std)
        np.testing.assert_array_equal(m8.input_u8_table, table)
        px = np.random.default_rng(4).integers(0, 256, size=m8.input_shape, dtype=np.uint8)
        np.testing.assert_array_equal(m8.run(px), mf.run(table[np.arange(c), px]))


def test_mst_compress_keeps_the_table(rng):
    from xnor_edge.mst import compress_model

    g = _graph(rng, (6, 6, 3))
    g.uint8_input(MEAN, STD)
    data = g.to_bytes()
    packed, _ = compress_model(data, min_ratio=0.0)
    assert packed != data
    px = rng.integers(0, 256, size=(6, 6, 3), dtype=np.uint8)
    with xnor_edge.load(data) as m, xnor_edge.load(packed) as mc:
        assert mc.takes_uint8
        assert any(n["op"] == "bconv2d_mst" for n in mc.info()["layers"])
        np.testing.assert_array_equal(mc.run(px), m.run(px))


def test_cli_info_says_uint8(tmp_path, capsys, rng):
    from xnor_edge import cli

    g = _graph(rng)
    g.uint8_input(MEAN, STD)
    p = tmp_path / "u8.xnor"
    g.save(p)
    assert cli.main(["info", str(p)]) == 0
    assert "RGB (takes uint8)" in capsys.readouterr().out
