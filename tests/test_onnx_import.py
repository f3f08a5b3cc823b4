"""`xnor-edge import` of ONNX binary networks (xnor_edge/importers/onnx_import.py).

The fixtures in tests/data/import/ were exported from PyTorch and their
reference outputs computed by onnxruntime (tools/make_import_fixtures.py), so
these tests need the `onnx` package only.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import xnor_edge
from xnor_edge.reference import ReferenceModel

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from xnor_edge import cli  # noqa: E402
from xnor_edge.importers.onnx_import import OnnxImportError, convert, import_onnx  # noqa: E402

DATA = Path(__file__).parent / "data" / "import"
FIXTURES = {
    # name: expected layer counts of the import (binary layers found and packed)
    "digits_xnor": {"bconv2d": 3, "conv2d": 1, "dense": 1},
    "digits_xnor_k": {"bconv2d": 3, "conv2d": 1, "dense": 1},
    "vgg_small_xnor": {"bconv2d": 5, "conv2d": 1, "dense": 1},
    "bireal_style": {"bconv2d": 4, "prelu": 4, "clip": 1, "concat": 1, "add": 4, "avgpool": 1},
}


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_fixture_matches_onnxruntime(name):
    g, report = import_onnx(DATA / f"{name}.onnx")
    for kind, n in FIXTURES[name].items():
        assert report.layers.get(kind) == n, (kind, report.layers)
    data = g.to_bytes()
    x = np.load(DATA / f"{name}.inputs.npy")
    want = np.load(DATA / f"{name}.outputs.npy")
    with xnor_edge.load(data) as m:
        got = m.run(np.ascontiguousarray(x.transpose(0, 2, 3, 1))).reshape(want.shape)
    scale = max(1.0, float(np.abs(want).max()))
    assert float(np.abs(got - want).max()) <= 1e-4 * scale
    np.testing.assert_array_equal(got.argmax(axis=1), want.argmax(axis=1))
    # The runtime against the float64 reference interpreter of the written file.
    ref = ReferenceModel(data)
    for xi, gi in zip(x, got):
        np.testing.assert_allclose(
            gi, ref.run(xi.transpose(1, 2, 0)).reshape(-1), rtol=1e-5, atol=1e-5 * scale
        )


def test_digits_k_map_becomes_use_k():
    g, _ = import_onnx(DATA / "digits_xnor_k.onnx")
    with xnor_edge.load(g.to_bytes()) as m:
        flags = [n["flags"] for n in m.info()["layers"] if n["op"] == "bconv2d"]
    assert flags == [["relu", "use_k"]] * 3


def test_bireal_pad_one_and_sign_note():
    g, report = import_onnx(DATA / "bireal_style.onnx")
    with xnor_edge.load(g.to_bytes()) as m:
        flags = [n["flags"] for n in m.info()["layers"] if n["op"] == "bconv2d"]
    assert flags == [[], ["pad_one"], [], []]
    assert any("Sign(0) = 0" in n for n in report.notes)


# ------------------------------------------------------------ small graphs


def graph_model(nodes, inits, in_shape=(1, 2, 4, 4), out_shape=None, opset=17):
    inp = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))
    out = helper.make_tensor_value_info(nodes[-1].output[0], TensorProto.FLOAT, out_shape)
    g = helper.make_graph(nodes, "g", [inp], [out], [numpy_helper.from_array(v, k) for k, v in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def save(tmp_path, model, name="m.onnx"):
    p = tmp_path / name
    onnx.save(model, str(p))
    return p


def binariser(x, out):
    return [
        helper.make_node("Less", [x, "zero"], [out + "_lt"], name=out + "_less"),
        helper.make_node("Where", [out + "_lt", "m1", "p1"], [out], name=out + "_where"),
    ]


SIGN_CONSTS = {
    "zero": np.array(0, np.float32),
    "m1": np.array(-1, np.float32),
    "p1": np.array(1, np.float32),
}


def test_unsupported_op_names_node_and_supported(tmp_path):
    m = graph_model([helper.make_node("Tanh", ["x"], ["y"], name="act7")], {})
    with pytest.raises(
        OnnxImportError, match=r"node 'act7' \(Tanh\): op type Tanh is not supported; supported: Abs"
    ):
        import_onnx(save(tmp_path, m))


@pytest.mark.parametrize("value,ok", [(0.0, True), (1.0, True), (-1.0, False)])
def test_pad_value_of_binary_input(tmp_path, value, ok, rng):
    w = np.sign(rng.normal(size=(3, 2, 3, 3))).astype(np.float32) * 0.5
    nodes = binariser("x", "s") + [
        helper.make_node("Pad", ["s", "pads", "pv"], ["sp"], name="pad1", mode="constant"),
        helper.make_node("Conv", ["sp", "w"], ["y"], name="conv1"),
    ]
    inits = {**SIGN_CONSTS, "w": w, "pads": np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64)}
    inits["pv"] = np.array(value, np.float32)
    p = save(tmp_path, graph_model(nodes, inits))
    if not ok:
        with pytest.raises(OnnxImportError, match=r"node 'pad1' \(Pad\): padding value -1 is not supported"):
            import_onnx(p)
        return
    g, report = import_onnx(p)
    assert report.layers == {"bconv2d": 1}
    out = tmp_path / "m.xnor"
    convert(p, out, log=lambda s: None)
    x = rng.normal(size=(4, 4, 2)).astype(np.float32)
    s = np.pad(np.where(x < 0, -1.0, 1.0), ((1, 1), (1, 1), (0, 0)), constant_values=value)
    want = np.einsum(
        "hwcij,oijc->hwo",
        np.lib.stride_tricks.sliding_window_view(s, (3, 3), axis=(0, 1)),
        w.transpose(0, 2, 3, 1),
    )
    with xnor_edge.load(out) as m:
        np.testing.assert_allclose(m.run(x[None])[0], want, rtol=1e-6)


def test_binary_input_needs_binary_weight(tmp_path, rng):
    w = rng.normal(size=(3, 2, 3, 3)).astype(np.float32)
    nodes = binariser("x", "s") + [
        helper.make_node("Conv", ["s", "wq"], ["y"], name="conv2", pads=[1, 1, 1, 1])
    ]
    p = save(tmp_path, graph_model(nodes, {**SIGN_CONSTS, "wq": w}))
    with pytest.raises(
        OnnxImportError, match=r"node 'conv2' \(Conv\): its input is binarised .* weight 'wq' is not exactly"
    ):
        import_onnx(p)


def test_nearly_binary_weight_is_reported_and_stays_float(tmp_path, rng):
    w = np.sign(rng.normal(size=(3, 2, 3, 3))).astype(np.float32) * 0.5
    w[1, 0, 0, 0] *= 0.999
    nodes = [helper.make_node("Conv", ["x", "wnb"], ["y"], name="conv3", pads=[1, 1, 1, 1])]
    g, report = import_onnx(save(tmp_path, graph_model(nodes, {"wnb": w})))
    assert report.layers == {"conv2d": 1}
    assert any("'wnb' looks binary but is not exactly +-alpha" in n for n in report.notes)
    w[1, 0, 0, 0] /= 0.999
    nodes = [helper.make_node("Conv", ["x", "wb"], ["y"], name="conv4", pads=[1, 1, 1, 1])]
    _, report = import_onnx(save(tmp_path, graph_model(nodes, {"wb": w}), "b.onnx"))
    assert report.layers == {"bwn_conv2d": 1} and not report.notes


@pytest.mark.parametrize("c,flattened", [(1, True), (32, False)])
def test_binary_gemm_over_a_map(tmp_path, rng, c, flattened):
    """sign -> Flatten -> Gemm with +-alpha rows: a flatten + 1x1 bconv2d when C wastes bits."""
    w = np.sign(rng.normal(size=(6, c * 5 * 4))).astype(np.float32) * rng.uniform(0.1, 1, (6, 1)).astype(
        np.float32
    )
    nodes = binariser("x", "s") + [
        helper.make_node("Flatten", ["s"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "w", "b"], ["y"], name="fc", transB=1),
    ]
    inits = {**SIGN_CONSTS, "w": w, "b": rng.normal(size=6).astype(np.float32)}
    p = save(tmp_path, graph_model(nodes, inits, in_shape=(1, c, 5, 4)))
    _, report = import_onnx(p)
    assert report.layers.get("flatten", 0) == int(flattened) and report.layers["binary_dense"] == 1
    convert(p, tmp_path / "m.xnor", log=lambda s: None)  # the self-check compares with the ONNX model


@pytest.mark.parametrize("c", [1, 32])
def test_binary_dense_with_k(tmp_path, rng, c):
    """XNOR-Net's K of a binary dense layer (tools/xnor_train's BinLinear): mean |x| over the input."""
    w = np.sign(rng.normal(size=(5, c * 3 * 2))).astype(np.float32) * np.float32(0.5)
    nodes = [
        helper.make_node("Flatten", ["x"], ["f"], name="flat"),
        *binariser("f", "s"),
        helper.make_node("Gemm", ["s", "w"], ["d"], name="fc", transB=1),
        helper.make_node("Abs", ["f"], ["a"], name="abs"),
        helper.make_node("ReduceMean", ["a"], ["k"], name="mean", axes=[1], keepdims=1),
        helper.make_node("Mul", ["d", "k"], ["dk"], name="k"),
        helper.make_node("Add", ["dk", "b"], ["y"], name="bias"),
    ]
    inits = {**SIGN_CONSTS, "w": w, "b": rng.normal(size=5).astype(np.float32)}
    p = save(tmp_path, graph_model(nodes, inits, in_shape=(1, c, 3, 2)))
    g, _ = import_onnx(p)
    with xnor_edge.load(g.to_bytes()) as m:
        assert [n["flags"] for n in m.info()["layers"] if n["op"] == "bconv2d"] == [["use_k"]]
    convert(p, tmp_path / "m.xnor", log=lambda s: None)


def test_k_map_of_another_value_is_an_error(tmp_path, rng):
    w = np.sign(rng.normal(size=(3, 2, 3, 3))).astype(np.float32)
    nodes = [
        *binariser("x", "s"),
        helper.make_node("Conv", ["s", "w"], ["c"], name="bconv", pads=[1, 1, 1, 1]),
        helper.make_node("Abs", ["x"], ["a"], name="abs"),
        helper.make_node("ReduceMean", ["a"], ["m"], name="mean", axes=[1], keepdims=1),
        helper.make_node("AveragePool", ["m"], ["k"], name="box", kernel_shape=[3, 3], strides=[2, 2]),
        helper.make_node("Mul", ["c", "k"], ["y"], name="use_k"),
    ]
    p = save(tmp_path, graph_model(nodes, {**SIGN_CONSTS, "w": w}))
    with pytest.raises(OnnxImportError, match=r"node 'use_k' \(Mul\): this K map does not match"):
        import_onnx(p)


def test_rsign_threshold_becomes_sign_shift(tmp_path, rng):
    """prelu(x) + b[c] -> binariser -> binary conv: the add folds into a sign_shift."""
    w = np.sign(rng.normal(size=(3, 2, 3, 3))).astype(np.float32) * 0.25
    nodes = [
        helper.make_node("PRelu", ["x", "slope"], ["a"], name="act"),
        helper.make_node("Add", ["a", "thr"], ["t"], name="rsign_shift"),
        *binariser("t", "s"),
        helper.make_node("Conv", ["s", "w"], ["y"], name="bconv", pads=[1, 1, 1, 1]),
    ]
    inits = {
        **SIGN_CONSTS,
        "w": w,
        "slope": np.full((2, 1, 1), 0.25, np.float32),
        "thr": rng.normal(size=(1, 2, 1, 1)).astype(np.float32),
    }
    p = save(tmp_path, graph_model(nodes, inits))
    _, report = import_onnx(p)
    assert report.layers == {"prelu": 1, "sign_shift": 1, "bconv2d": 1}
    convert(p, tmp_path / "m.xnor", log=lambda s: None)
    # The same shift read as a float value is written as a batchnorm instead.
    nodes.append(helper.make_node("Add", ["y", "t"], ["z"], name="uses_t"))
    out = helper.make_tensor_value_info("z", TensorProto.FLOAT, None)
    m = graph_model(nodes[:-1], inits)
    m.graph.node.append(nodes[-1])
    del m.graph.output[:]
    m.graph.output.append(out)
    w3 = np.sign(rng.normal(size=(2, 2, 3, 3))).astype(np.float32) * 0.25
    m.graph.initializer.remove(next(i for i in m.graph.initializer if i.name == "w"))
    m.graph.initializer.append(numpy_helper.from_array(w3, "w"))
    p2 = save(tmp_path, m, "m2.onnx")
    _, report = import_onnx(p2)
    assert report.layers["sign_shift"] == 1 and report.layers["batchnorm"] == 1
    convert(p2, tmp_path / "m2.xnor", log=lambda s: None)


@pytest.mark.parametrize("form", ["detach", "residual"])
def test_ste_sign_patterns_with_dead_branch(tmp_path, rng, form):
    """sign(x) - p + p (Bi-Real) and x + (sign(x) - x): the value is sign(x); the unsupported
    ops that compute p never reach the model."""
    w = np.sign(rng.normal(size=(3, 2, 3, 3))).astype(np.float32) * 0.25
    p_name = "p" if form == "detach" else "x"
    nodes = [
        helper.make_node("Sign", ["x"], ["sg"], name="sign"),
        helper.make_node("Tanh", ["x"], ["p"], name="poly"),
        helper.make_node("Sub", ["sg", p_name], ["d"], name="sub"),
        helper.make_node("Add", [p_name, "d"] if form == "residual" else ["d", p_name], ["s"], name="add"),
        helper.make_node("Conv", ["s", "w"], ["y"], name="bconv", pads=[1, 1, 1, 1]),
    ]
    if form == "residual":
        nodes.pop(1)
    p = save(tmp_path, graph_model(nodes, {"w": w}))
    _, report = import_onnx(p)
    assert report.layers == {"bconv2d": 1}
    convert(p, tmp_path / "m.xnor", log=lambda s: None)


def test_depthwise_and_grouped_conv(tmp_path, rng):
    w = rng.normal(size=(4, 1, 3, 3)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="dw", group=2, pads=[1, 1, 1, 1], strides=[2, 1]),
        helper.make_node("BatchNormalization", ["c", "g", "b", "m", "v"], ["y"], name="bn"),
    ]
    bn = {k: rng.uniform(0.5, 1.5, 4).astype(np.float32) for k in "gbmv"}
    p = save(tmp_path, graph_model(nodes, {"w": w, **bn}))
    _, report = import_onnx(p)
    assert report.layers == {"dwconv2d": 1}
    convert(p, tmp_path / "dw.xnor", log=lambda s: None)
    w = rng.normal(size=(6, 2, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="grouped", group=2, pads=[1, 1, 1, 1])]
    p = save(tmp_path, graph_model(nodes, {"w": w}, in_shape=(1, 4, 4, 4)), "g.onnx")
    _, report = import_onnx(p)
    assert report.layers == {"gconv2d": 1} and not report.notes
    convert(p, tmp_path / "g.xnor", log=lambda s: None)  # self-checked against onnx's evaluator
    nodes = [*binariser("x", "s"), helper.make_node("Conv", ["s", "w"], ["y"], name="bgrouped", group=2)]
    p = save(tmp_path, graph_model(nodes, {**SIGN_CONSTS, "w": np.sign(w)}, in_shape=(1, 4, 4, 4)), "b.onnx")
    with pytest.raises(OnnxImportError, match=r"node 'bgrouped' \(Conv\): group = 2, dilations \[1, 1\] on"):
        import_onnx(p)


def test_missing_onnx_names_the_extra(block_import, tmp_path):
    block_import("onnx")
    with pytest.raises(ImportError, match=r"\[import\] extra installs: pip install 'xnor-edge\[import\]'"):
        import_onnx(tmp_path / "x.onnx")


# -------------------------------------------------------------------- CLI


def test_cli_import_with_labels_and_check(tmp_path, capsys):
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(f"digit {i}" for i in range(10)) + "\n")
    x = np.load(DATA / "digits_xnor.inputs.npy")[:2]
    np.save(tmp_path / "in.npy", x)
    out = tmp_path / "digits.xnor"
    rc = cli.main(
        [
            "import",
            str(DATA / "digits_xnor.onnx"),
            "-o",
            str(out),
            "--labels",
            str(labels),
            "--mean",
            "0.1307",
            "--std",
            "0.3081",
            "--color-order",
            "GRAY",
            "--check",
            str(tmp_path / "in.npy"),
        ]
    )
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "self-check against" in text and text.count("output max |difference|") == 2
    with xnor_edge.load(out) as m:
        meta = m.metadata
    assert meta["labels"][3] == "digit 3" and meta["mean"] == [0.1307] and meta["color_order"] == "GRAY"
    assert meta["input_size"] == [28, 28] and meta["source"]["format"] == "onnx"


def test_cli_failed_self_check_writes_nothing(tmp_path, capsys):
    out = tmp_path / "d.xnor"
    rc = cli.main(["import", str(DATA / "digits_xnor.onnx"), "-o", str(out), "--tolerance", "-1"])
    assert rc == 1
    assert "self-check failed" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("opset,ok", [(13, True), (11, False)])
def test_softmax_over_channels_per_position(tmp_path, opset, ok):
    m = graph_model([helper.make_node("Softmax", ["x"], ["y"], name="sm", axis=1)], {}, opset=opset)
    p = save(tmp_path, m)
    if ok:
        convert(p, tmp_path / "s.xnor", log=lambda s: None)
    else:
        with pytest.raises(OnnxImportError, match=r"node 'sm' \(Softmax\): softmax over axis 1"):
            import_onnx(p)


def test_metadata_is_json(tmp_path):
    g, _ = import_onnx(DATA / "digits_xnor.onnx", labels=[str(i) for i in range(10)])
    json.dumps(g.metadata)
    with pytest.raises(OnnxImportError, match="3 labels for 10 outputs"):
        import_onnx(DATA / "digits_xnor.onnx", labels=["a", "b", "c"])
    with pytest.raises(OnnxImportError, match="--mean has 3 values for 1 input channels"):
        import_onnx(DATA / "digits_xnor.onnx", mean=[0.1, 0.2, 0.3])


def test_self_check_without_onnxruntime(block_import, tmp_path):
    block_import("onnxruntime")
    lines: list[str] = []
    convert(DATA / "digits_xnor.onnx", tmp_path / "d.xnor", log=lines.append)
    assert any(line.startswith("self-check against onnx.reference") for line in lines), lines
