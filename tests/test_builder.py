"""The builder (pure NumPy): bit packing, file layout, checks; the reference parser."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from conftest import naive_conv, pm1

from xnor_edge.builder import GraphBuilder, fold_batchnorm, pack_signs
from xnor_edge.reference import ReferenceError, ReferenceModel, unpack_signs


def test_pack_signs_bit_rules():
    x = np.zeros(40)
    x[[0, 5, 31, 32, 39]] = -1.0
    x[1] = -0.0  # not < 0: +1
    x[2] = np.nan  # not < 0: +1
    w = pack_signs(x)
    assert w.dtype == np.uint32 and w.shape == (2,)
    assert w[0] == (1 << 0) | (1 << 5) | (1 << 31)
    assert w[1] == (1 << 0) | (1 << 7)  # channels 32 and 39; high bits 8..31 stay 0


def test_pack_signs_axis_and_roundtrip(rng):
    a = rng.normal(size=(3, 70, 2))
    p = pack_signs(a, axis=1)
    assert p.shape == (3, 3, 2)
    np.testing.assert_array_equal(unpack_signs(p, 70, axis=1), pm1(a))


def test_fold_batchnorm():
    scale, shift = fold_batchnorm([2.0], [1.0], [3.0], [4.0], 0.0)
    assert scale[0] == pytest.approx(1.0) and shift[0] == pytest.approx(-2.0)
    with pytest.raises(ValueError, match="same length"):
        fold_batchnorm([1, 2], [1], [1], [1], 1e-5)


def test_file_layout(rng):
    g = GraphBuilder((5, 6, 3), {"name": "layout", "labels": ["a", "b"]})
    g.dense(
        g.bconv2d(g.input, rng.normal(size=(4, 3, 3, 3)), np.ones(4), padding=1), rng.normal(size=(2, 120))
    )
    data = g.to_bytes()
    magic, fmt, pack, size, hsize = struct.unpack_from("<8sIIQI", data, 0)
    assert (magic, fmt, pack, size, hsize) == (b"XNOREDGE", 1, 1, len(data), 128)
    assert struct.unpack_from("<IIIII", data, 32) == (5, 6, 3, 2, 5)
    meta_off, meta_size, nodes_off, params_off = struct.unpack_from("<QQQQ", data, 56)
    assert data[meta_off + meta_size] == 0 and nodes_off % 8 == 0 and params_off % 8 == 0
    assert not any(data[88:128])
    for i in range(5):
        dtype, _, off, count, _ = struct.unpack_from("<IIQQQ", data, params_off + 32 * i)
        assert off % 64 == 0 and off + 4 * count <= len(data) - 8
    assert struct.unpack_from("<I", data, len(data) - 8)[0] == zlib.crc32(data[:-8])
    assert data[-4:] == b"XEND"
    ref = ReferenceModel(data)
    assert ref.metadata["labels"] == ["a", "b"] and ref.output_shape == (1, 1, 2)


@pytest.mark.parametrize("stride,pad", [(1, 0), (2, 1), ((2, 1), (1, 2))])
def test_conv_weight_layout_matches_pytorch(rng, stride, pad):
    """The builder's [OC,IC,KH,KW] -> file conversion, checked by direct loops."""
    x = rng.normal(size=(7, 8, 5))
    w = rng.normal(size=(3, 5, 3, 4))
    g = GraphBuilder(x.shape)
    g.conv2d(g.input, w, stride=stride, padding=pad)
    s = stride if isinstance(stride, tuple) else (stride, stride)
    p = pad if isinstance(pad, tuple) else (pad, pad)
    got = ReferenceModel(g.to_bytes()).run(x.astype(np.float32))
    np.testing.assert_allclose(
        got, naive_conv(x.astype(np.float32), w.astype(np.float32), s, p), rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("pad_mode", ["zero", "one"])
def test_bconv_semantics_by_loops(rng, pad_mode):
    x = rng.normal(size=(6, 5, 33)).astype(np.float32)
    w = rng.normal(size=(4, 33, 3, 3))
    scale, bias = rng.uniform(0.1, 1, 4), rng.normal(size=4)
    g = GraphBuilder(x.shape)
    g.bconv2d(g.input, w, scale, bias, padding=1, pad_mode=pad_mode)
    got = ReferenceModel(g.to_bytes()).run(x)
    dot = naive_conv(pm1(x), pm1(w), (1, 1), (1, 1), 1.0 if pad_mode == "one" else 0.0)
    np.testing.assert_allclose(got, dot * scale.astype(np.float32) + bias.astype(np.float32), rtol=1e-6)


def test_dense_chw_order_matches_pytorch_flatten(rng):
    x = rng.normal(size=(3, 4, 5)).astype(np.float32)
    w = rng.normal(size=(6, 60)).astype(np.float32)
    g = GraphBuilder(x.shape)
    g.dense(g.input, w, input_order="chw")
    got = ReferenceModel(g.to_bytes()).run(x).reshape(-1)
    np.testing.assert_allclose(got, w.astype(np.float64) @ x.transpose(2, 0, 1).reshape(-1), rtol=1e-6)


def test_binary_dense_chw(rng):
    x = rng.normal(size=(2, 3, 40)).astype(np.float32)
    w = rng.normal(size=(5, 240))
    scale = rng.uniform(0.1, 1, 5)
    g = GraphBuilder(x.shape)
    g.binary_dense(g.input, w, scale, input_order="chw")
    got = ReferenceModel(g.to_bytes()).run(x).reshape(-1)
    want = (pm1(w) @ pm1(x.transpose(2, 0, 1).reshape(-1))) * scale.astype(np.float32)
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_value_shapes_and_dtypes(rng):
    g = GraphBuilder((9, 9, 3))
    assert g.input.id == 0 and g.input.shape == (9, 9, 3) and g.input.dtype == "float32"
    b = g.sign(g.input)
    assert b.dtype == "bits" and b.id == 1
    p = g.maxpool(b, 3, stride=2, padding=1)
    assert p.shape == (5, 5, 3) and p.dtype == "bits"
    y = g.bconv2d(p, rng.normal(size=(7, 3, 2, 2)), np.ones(7), out_bits=True, stride=(1, 2))
    assert y.shape == (4, 2, 7) and y.dtype == "bits"
    assert g.avgpool(g.input, (3, 1)).shape == (3, 9, 3)


@pytest.mark.parametrize(
    "build,match",
    [
        (lambda g, r: g.conv2d(g.input, r.normal(size=(4, 2, 3, 3))), "input channels"),
        (lambda g, r: g.conv2d(g.input, r.normal(size=(4, 3, 3))), r"\[OC, IC, KH, KW\]"),
        (lambda g, r: g.conv2d(g.input, r.normal(size=(4, 3, 3, 3)), bias=np.ones(3)), "bias has 3 values"),
        (lambda g, r: g.conv2d(g.input, r.normal(size=(4, 3, 3, 3)), padding=3), "pad_h = 3"),
        (lambda g, r: g.conv2d(g.input, r.normal(size=(4, 3, 9, 3))), "larger than the padded input"),
        (lambda g, r: g.conv2d(g.sign(g.input), r.normal(size=(4, 3, 3, 3))), "needs a float32 input"),
        (
            lambda g, r: g.bconv2d(g.sign(g.input), r.normal(size=(4, 3, 3, 3)), np.ones(4), use_k=True),
            "use_k",
        ),
        (
            lambda g, r: g.bconv2d(
                g.input, r.normal(size=(4, 3, 3, 3)), np.ones(4), out_bits=True, relu=True
            ),
            "out_bits excludes",
        ),
        (
            lambda g, r: g.bconv2d(g.input, r.normal(size=(4, 3, 3, 3)), np.ones(4), pad_mode="two"),
            "pad_mode",
        ),
        (lambda g, r: g.bconv2d(g.input, r.normal(size=(4, 3, 3, 3)), None), "scale is required"),
        (lambda g, r: g.dense(g.input, r.normal(size=(4, 10))), r"\[OUT, 192\]"),
        (lambda g, r: g.dense(g.input, r.normal(size=(4, 192)), input_order="nchw"), "input_order"),
        (lambda g, r: g.add(g.input, g.relu(g.avgpool(g.input, 2))), "shapes differ"),
        (lambda g, r: g.avgpool(g.sign(g.input), 2), "needs a float32 input"),
        (lambda g, r: g.maxpool(g.input, 2, stride=0), "stride_h = 0"),
        (lambda g, r: g.batchnorm(g.input, [1, 2, np.nan], [0, 0, 0]), "NaN"),
        (lambda g, r: g.relu(GraphBuilder((8, 8, 3)).input), "another GraphBuilder"),
        (lambda g, r: g.conv2d(g.input, r.normal(size=(4, 3, 3, 3)), stride="x"), "stride"),
    ],
)
def test_builder_errors(rng, build, match):
    g = GraphBuilder((8, 8, 3))
    with pytest.raises(ValueError, match=match):
        build(g, rng)


def test_graph_must_end_float():
    g = GraphBuilder((4, 4, 3))
    with pytest.raises(ValueError, match="no nodes"):
        g.to_bytes()
    g.sign(g.input)
    with pytest.raises(ValueError, match="must be float32"):
        g.to_bytes()
    with pytest.raises(ValueError, match=r"\(h, w, c\)"):
        GraphBuilder((4, 4))


def test_binary_dense_too_large_window(rng):
    g = GraphBuilder((65, 2, 1))
    with pytest.raises(ValueError, match="larger than the largest window"):
        g.binary_dense(g.input, rng.normal(size=(2, 130)), np.ones(2))


def test_reference_rejects_corruption(rng):
    g = GraphBuilder((4, 4, 3))
    g.conv2d(g.input, rng.normal(size=(2, 3, 3, 3)), padding=1)
    data = bytearray(g.to_bytes())
    bad = bytearray(data)
    bad[200] ^= 0xFF
    with pytest.raises(ReferenceError, match="checksum"):
        ReferenceModel(bytes(bad))
    with pytest.raises(ReferenceError, match="truncated"):
        ReferenceModel(bytes(data[:-16]))
    with pytest.raises(ReferenceError, match="magic"):
        ReferenceModel(b"NOTAMODEL" + bytes(data[9:]))
