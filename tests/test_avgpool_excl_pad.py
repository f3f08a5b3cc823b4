"""avgpool_excl_pad (op 20): the average over the valid taps only, with possibly
asymmetric padding (TFLite's SAME average pool, ONNX AveragePool with
count_include_pad = 0). Builder, reference.py and the C runtime agree with an
independent loop and with PyTorch; both loaders reject what docs/format.md forbids."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

import xnor_edge
from xnor_edge.builder import GraphBuilder
from xnor_edge.errors import ModelError
from xnor_edge.reference import ReferenceError, ReferenceModel


def naive(x, k, s, pads):
    """Loops over output positions: mean of the window's taps inside x."""
    top, bottom, left, right = pads
    h, w, c = x.shape
    oh, ow = (h + top + bottom - k[0]) // s[0] + 1, (w + left + right - k[1]) // s[1] + 1
    y = np.zeros((oh, ow, c))
    for i in range(oh):
        for j in range(ow):
            r0, c0 = i * s[0] - top, j * s[1] - left
            win = x[max(r0, 0) : r0 + k[0], max(c0, 0) : c0 + k[1]]
            y[i, j] = win.reshape(-1, c).mean(axis=0)
    return y


CASES = [
    ((3, 3), (1, 1), 1),  # symmetric
    ((2, 2), (1, 1), "same"),  # the odd pixel after the input
    ((3, 3), (2, 2), "same"),
    ((3, 2), (2, 1), (0, 2, 1, 0)),  # explicit, asymmetric
    ((5, 5), (3, 3), (2, 1, 4, 0)),  # floor drops the input's last rows
    ((1, 1), (2, 2), 0),
]


@pytest.mark.parametrize("k,s,padding", CASES)
@pytest.mark.parametrize("shape", [(8, 7, 3), (5, 5, 33)])
def test_matches_the_loop_and_reference(rng, k, s, padding, shape):
    x = rng.normal(size=shape).astype(np.float32)
    g = GraphBuilder(shape)
    v = g.avgpool_excl_pad(g.input, k, s, padding)
    data = g.to_bytes()
    pads = padding if isinstance(padding, tuple) else None
    if padding == "same":
        pads = []
        for size, kk, ss in zip(shape[:2], k, s):
            total = max(((size + ss - 1) // ss - 1) * ss + kk - size, 0)
            pads += [total // 2, total - total // 2]
    elif isinstance(padding, int):
        pads = (padding,) * 4
    want = naive(x.astype(np.float64), k, s, pads)
    assert v.shape == want.shape
    np.testing.assert_allclose(ReferenceModel(data).run(x), want, rtol=1e-12, atol=1e-12)
    outs = []
    for isa in xnor_edge.available_isas():
        for threads in (1, 3):
            with xnor_edge.load(data) as m, m.session(threads, isa) as sess:
                outs.append(sess.run(x))
    np.testing.assert_allclose(outs[0], want, rtol=1e-6, atol=1e-6)
    for o in outs[1:]:
        np.testing.assert_array_equal(o, outs[0])


def test_matches_torch_count_include_pad_false(rng):
    torch = pytest.importorskip("torch")
    x = rng.normal(size=(9, 8, 4)).astype(np.float32)
    pool = torch.nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)
    want = pool(torch.from_numpy(x.transpose(2, 0, 1))[None])[0].numpy().transpose(1, 2, 0)
    g = GraphBuilder(x.shape)
    g.avgpool_excl_pad(g.input, 3, 2, 1)
    with xnor_edge.load(g.to_bytes()) as m:
        np.testing.assert_allclose(m.run(x), want, rtol=1e-6, atol=1e-6)


def test_builder_rejections():
    g = GraphBuilder((4, 4, 3))
    with pytest.raises(ValueError, match=r"padding \(0, 3, 0, 0\) on h: each side must be in 0..kernel_h-1"):
        g.avgpool_excl_pad(g.input, 3, 1, (0, 3, 0, 0))
    with pytest.raises(ValueError, match="needs a float32 input"):
        g.avgpool_excl_pad(g.sign(g.input), 2)
    with pytest.raises(ValueError, match="use 'same', an int"):
        g.avgpool_excl_pad(g.input, 2, 1, "valid-ish")
    tiny = GraphBuilder((1, 1, 1))
    with pytest.raises(ValueError, match=r"size \+ 2\*before >= kernel"):
        tiny.avgpool_excl_pad(tiny.input, 2, 1, "same")  # (0, 1): bottom only


def _with_out_h(data: bytes, node: int, out_h: int) -> bytes:
    b = bytearray(data)
    nodes_off = struct.unpack_from("<Q", b, 72)[0]
    struct.pack_into("<I", b, nodes_off + 64 * node + 44, out_h)
    struct.pack_into("<I", b, len(b) - 8, zlib.crc32(bytes(b[:-8])) & 0xFFFFFFFF)
    return bytes(b)


def test_loaders_check_the_recorded_size():
    g = GraphBuilder((5, 6, 3))
    g.avgpool_excl_pad(g.input, 3, 2, (1, 0, 1, 1))  # out_h 2 (bottom 0); 3 (bottom 2) is also valid
    data = g.to_bytes()
    with xnor_edge.load(_with_out_h(data, 0, 3)) as m:
        assert m.output_shape == (3, 3, 3)
    ReferenceModel(_with_out_h(data, 0, 3))
    for bad in (1, 4):  # after padding -3 (<= -stride) and 3 (>= kernel)
        with pytest.raises(ModelError, match="avgpool_excl_pad"):
            xnor_edge.load(_with_out_h(data, 0, bad))
        with pytest.raises(ReferenceError, match="padding after"):
            ReferenceModel(_with_out_h(data, 0, bad))


# ------------------------------------------------------------------ importers


@pytest.mark.parametrize(
    "pads,include,layers",
    [
        ([1, 1, 1, 1], 0, {"avgpool_excl_pad": 1}),
        ([0, 1, 1, 0], 0, {"avgpool_excl_pad": 1}),  # ONNX order: top, left, bottom, right
        ([1, 0, 2, 1], 1, {"avgpool": 1, "pad": 1}),
        ([1, 1, 1, 1], 1, {"avgpool": 1}),
    ],
)
def test_onnx_average_pool_count_include_pad(tmp_path, rng, pads, include, layers):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from xnor_edge.importers.onnx_import import compare, import_onnx

    node = helper.make_node(
        "AveragePool",
        ["x"],
        ["y"],
        name="pool",
        kernel_shape=[3, 3],
        strides=[2, 2],
        pads=pads,
        count_include_pad=include,
    )
    inp = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 9, 8])
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    model = helper.make_model(
        helper.make_graph([node], "g", [inp], [out]), opset_imports=[helper.make_opsetid("", 17)]
    )
    path = tmp_path / "pool.onnx"
    onnx.save(model, str(path))
    g, report = import_onnx(path)
    assert report.layers == layers
    _, rows = compare(path, g.to_bytes(), rng.normal(size=(3, 3, 9, 8)).astype(np.float32))
    assert max(r["max_abs_diff"] for r in rows) < 1e-5, rows
