"""Binary dense layers with bit-packed outputs (bconv2d's OUT_BITS over a whole-window or
flattened input): a binary dense layer feeding a sign and the next binary dense layer
writes the signs directly, compared with integer thresholds in C. The bits equal
sign(dot * scale + bias) of the float layer (so the model's output is bit-identical to
the float-then-sign chain), on every kernel set and thread count; the ONNX importer
writes them for a binary Gemm read by its binariser alone."""

from __future__ import annotations

import numpy as np
import pytest

import xnor_edge
from xnor_edge.builder import GraphBuilder
from xnor_edge.reference import ReferenceModel


def chain(rng, shape, widths, out_bits, flatten=False):
    g = GraphBuilder(shape)
    v = g.flatten(g.input) if flatten else g.input
    for n in widths:
        w = rng.normal(size=(n, int(np.prod(v.shape))))
        scale, bias = rng.uniform(0.05, 1, n), rng.normal(size=n)
        v = g.binary_dense(v, w, scale, bias, out_bits=out_bits)
        if not out_bits:
            v = g.sign(v)
    head = g.binary_dense(v, rng.normal(size=(7, int(np.prod(v.shape)))), 0.5)  # reads the bits
    g.dense(head, rng.normal(size=(3, 7)))
    return g.to_bytes()


@pytest.mark.parametrize("shape,flatten", [((1, 1, 300), False), ((3, 4, 20), False), ((3, 4, 20), True)])
@pytest.mark.parametrize("widths", [(64,), (33, 1000), (2050, 31, 65)])
def test_bits_chain_equals_float_then_sign(shape, flatten, widths):
    rng = np.random.default_rng(sum(widths))
    data_bits = chain(np.random.default_rng(7), shape, widths, True, flatten)
    data_float = chain(np.random.default_rng(7), shape, widths, False, flatten)
    ref = ReferenceModel(data_bits)
    assert sum(1 for n in ref.nodes if n.out_bits and n.name == "bconv2d") == len(widths)
    x = rng.normal(size=shape).astype(np.float32)
    with xnor_edge.load(data_float) as mf:
        want = mf.run(x)
    outs = []
    with xnor_edge.load(data_bits) as m:
        for isa in xnor_edge.available_isas():
            for threads in (1, 2, 4):
                with m.session(threads, isa) as s:
                    outs.append(s.run(x))
    for o in outs:
        np.testing.assert_array_equal(o, want)
    np.testing.assert_allclose(outs[0], ref.run(x), rtol=1e-4, atol=1e-4)


def test_builder_rejects_out_bits_with_relu_or_k():
    g = GraphBuilder((1, 1, 8))
    with pytest.raises(ValueError, match="out_bits excludes use_k and relu"):
        g.binary_dense(g.input, np.ones((4, 8)), 1.0, relu=True, out_bits=True)


def _onnx_mlp(tmp_path, rng, extra_reader: bool):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    def binary(n_out, n_in):
        return (np.sign(rng.normal(size=(n_out, n_in))) * rng.uniform(0.1, 1, (n_out, 1))).astype(np.float32)

    def sign(x, out):
        return [
            helper.make_node("Less", [x, "zero"], [out + "_lt"], name=out + "_less"),
            helper.make_node("Where", [out + "_lt", "m1", "p1"], [out], name=out + "_where"),
        ]

    nodes = [
        helper.make_node("Flatten", ["x"], ["f"], name="flat"),
        *sign("f", "s0"),
        helper.make_node("Gemm", ["s0", "w1", "b1"], ["d1"], name="fc1", transB=1),
        helper.make_node("BatchNormalization", ["d1", "g", "b", "m", "v"], ["n1"], name="bn1"),
        *sign("n1", "s1"),
        helper.make_node("Gemm", ["s1", "w2", "b2"], ["d2"], name="fc2", transB=1),
        *sign("d2", "s2"),
        helper.make_node("Gemm", ["s2", "w3", "b3"], ["y0"], name="fc3", transB=1),
    ]
    if extra_reader:  # fc2's float output also feeds the result: it must stay float
        nodes += [
            helper.make_node("Gemm", ["d2", "w4"], ["y1"], name="fc4", transB=1),
            helper.make_node("Add", ["y0", "y1"], ["y"], name="sum"),
        ]
    else:
        nodes += [helper.make_node("Identity", ["y0"], ["y"], name="out")]
    inits = {
        "zero": np.array(0, np.float32),
        "m1": np.array(-1, np.float32),
        "p1": np.array(1, np.float32),
        "w1": binary(40, 3 * 4 * 5),
        "b1": rng.normal(size=40).astype(np.float32),
        "w2": binary(70, 40),
        "b2": rng.normal(size=70).astype(np.float32),
        "w3": binary(5, 70),
        "b3": rng.normal(size=5).astype(np.float32),
        "w4": rng.normal(size=(5, 70)).astype(np.float32),
        **{k: rng.uniform(0.5, 1.5, 40).astype(np.float32) for k in "gv"},
        **{k: rng.normal(size=40).astype(np.float32) for k in "bm"},
    }
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    p = tmp_path / "mlp.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(p))
    return p


@pytest.mark.parametrize("extra_reader", [False, True])
def test_onnx_binary_gemm_read_by_its_sign_writes_bits(tmp_path, rng, extra_reader):
    from xnor_edge.importers.onnx_import import convert, import_onnx

    p = _onnx_mlp(tmp_path, rng, extra_reader)
    g, report = import_onnx(p)
    assert report.layers.get("out_bits", 0) == (1 if extra_reader else 2)
    assert report.layers["binary_dense"] == 3
    with xnor_edge.load(g.to_bytes()) as m:
        flags = [n["flags"] for n in m.info()["layers"] if n["op"] == "bconv2d"]
    assert flags == [["out_bits"], [] if extra_reader else ["out_bits"], []]
    convert(p, tmp_path / "mlp.xnor", log=lambda s: None)  # self-checked against onnx's evaluator
