"""gconv2d (op 21): grouped and dilated float convolution. Builder (conv2d with groups /
dilation), reference.py and the C runtime agree with PyTorch's Conv2d; every kernel set
and thread count gives the same bits; both loaders reject a bad config."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

import xnor_edge
from xnor_edge.builder import GraphBuilder
from xnor_edge.errors import ModelError
from xnor_edge.reference import ReferenceError, ReferenceModel

torch = pytest.importorskip("torch")


def torch_conv(x, w, b, stride, pad, groups, dilation, relu):
    y = torch.nn.functional.conv2d(
        torch.from_numpy(x.transpose(2, 0, 1))[None].double(),
        torch.from_numpy(w).double(),
        torch.from_numpy(b).double(),
        stride=stride,
        padding=pad,
        dilation=dilation,
        groups=groups,
    )[0]
    y = torch.relu(y) if relu else y
    return y.numpy().transpose(1, 2, 0)


@pytest.mark.parametrize(
    "ic,oc,groups,k,dilation,stride,pad",
    [
        (4, 6, 2, 3, 1, 1, 1),
        (6, 6, 3, (3, 1), 1, 2, (1, 0)),
        (4, 8, 1, 3, 2, 1, 2),  # dilation alone
        (6, 9, 3, 3, (2, 3), (1, 2), (2, 3)),
        (5, 10, 5, 3, 2, 1, 2),  # depthwise, multiplier 2, dilated
        (33, 66, 3, 2, 3, 2, 0),
    ],
)
@pytest.mark.parametrize("relu", [False, True])
def test_matches_torch_and_reference(rng, ic, oc, groups, k, dilation, stride, pad, relu):
    kh, kw = (k, k) if isinstance(k, int) else k
    x = rng.normal(size=(11, 10, ic)).astype(np.float32)
    w = rng.normal(size=(oc, ic // groups, kh, kw)).astype(np.float32)
    b = rng.normal(size=oc).astype(np.float32)
    g = GraphBuilder(x.shape)
    v = g.conv2d(g.input, w, b, stride, pad, relu, groups=groups, dilation=dilation)
    data = g.to_bytes()
    assert ReferenceModel(data).nodes[0].name == "gconv2d"
    want = torch_conv(x, w, b, stride, pad, groups, dilation, relu)
    assert v.shape == want.shape
    np.testing.assert_allclose(ReferenceModel(data).run(x), want, rtol=1e-9, atol=1e-9)
    outs = []
    with xnor_edge.load(data) as m:
        info = m.info()["layers"][0]
        assert info["op"] == "gconv2d" and info["macs"] == int(np.prod(want.shape)) * kh * kw * (ic // groups)
        for isa in xnor_edge.available_isas():
            for threads in (1, 2, 4):
                with m.session(threads, isa) as s:
                    outs.append(s.run(x))
    np.testing.assert_allclose(outs[0], want, rtol=1e-4, atol=1e-4)
    for o in outs[1:]:
        np.testing.assert_array_equal(o, outs[0])


def test_groups_one_dilation_one_stays_conv2d(rng):
    g = GraphBuilder((5, 5, 2))
    g.conv2d(g.input, rng.normal(size=(3, 2, 3, 3)), groups=1, dilation=1)
    assert ReferenceModel(g.to_bytes()).nodes[0].name == "conv2d"


def test_builder_rejections(rng):
    g = GraphBuilder((6, 6, 4))
    with pytest.raises(ValueError, match="groups 3 must divide value 0's 4 channels"):
        g.conv2d(g.input, np.ones((3, 1, 3, 3)), groups=3)
    with pytest.raises(ValueError, match=r"weight must be \[OC, 2, KH, KW\] with OC a multiple of 2"):
        g.conv2d(g.input, np.ones((3, 2, 3, 3)), groups=2)
    with pytest.raises(ValueError, match="dilation"):
        g.conv2d(g.input, np.ones((2, 4, 3, 3)), dilation=0)
    with pytest.raises(ValueError, match="pad_h = 5 must be >= 0 and < kernel_h = 5"):
        g.conv2d(g.input, np.ones((2, 4, 3, 3)), padding=5, dilation=2)


def _edit_config(data: bytes, word: int, value: int) -> bytes:
    b = bytearray(data)
    params_off = struct.unpack_from("<Q", b, 80)[0]
    off = struct.unpack_from("<Q", b, params_off + 8)[0]  # param 0: the config
    struct.pack_into("<I", b, off + 4 * word, value)
    struct.pack_into("<I", b, len(b) - 8, zlib.crc32(bytes(b[:-8])) & 0xFFFFFFFF)
    return bytes(b)


@pytest.mark.parametrize(
    "word,value,msg",
    [(0, 3, "groups 3 does not divide"), (1, 0, "dilation 0x2"), (3, 7, "reserved"), (0, 1, "weights have")],
)
def test_loaders_reject_bad_configs(rng, word, value, msg):
    g = GraphBuilder((7, 7, 4))
    g.conv2d(g.input, rng.normal(size=(6, 2, 3, 3)), groups=2, dilation=2)
    bad = _edit_config(g.to_bytes(), word, value)
    with pytest.raises(ModelError, match=msg):
        xnor_edge.load(bad)
    with pytest.raises(ReferenceError):
        ReferenceModel(bad)


# ------------------------------------------------------------------ importers


def test_onnx_grouped_dilated_conv_with_bn(tmp_path, rng):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    from xnor_edge.importers.onnx_import import convert, import_onnx

    w = rng.normal(size=(6, 2, 3, 3)).astype(np.float32)
    bn = {k: rng.uniform(0.5, 1.5, 6).astype(np.float32) for k in "gbmv"}
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="gd", group=2, dilations=[2, 3], pads=[2, 3, 2, 3]),
        helper.make_node("BatchNormalization", ["c", "g", "b", "m", "v"], ["y"], name="bn"),
    ]
    inits = [numpy_helper.from_array(v, k) for k, v in {"w": w, **bn}.items()]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 9, 10])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        inits,
    )
    p = tmp_path / "gd.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(p))
    _, report = import_onnx(p)
    assert report.layers == {"gconv2d": 1}  # the BN folded into it
    convert(p, tmp_path / "gd.xnor", log=lambda s: None)  # self-checked against onnx's evaluator


def _tf_same(x, k, s, d):
    """TFLite's SAME padding on the dilated extent, then a VALID window (NHWC)."""
    pads = []
    for size, kk, ss, dd in zip(x.shape[:2], k, s, d):
        ext = (kk - 1) * dd + 1
        out = (size + ss - 1) // ss
        total = max((out - 1) * ss + ext - size, 0)
        pads.append((total // 2, total - total // 2))
    return np.pad(x, (*pads, (0, 0)))


@pytest.mark.parametrize("depthwise", [False, True])
def test_tflite_dilated_and_grouped_conv(tmp_path, rng, depthwise):
    tflite = pytest.importorskip("tflite")
    import importlib

    from test_import_tflite import _flatbuffer

    from xnor_edge.importers.tflite_import import import_tflite

    ic, oc, k, s, d = 4, 8, (3, 2), (2, 1), (2, 3)
    x = rng.normal(size=(9, 10, ic)).astype(np.float32)
    bias = rng.normal(size=oc).astype(np.float32)
    if depthwise:
        fw = rng.normal(size=(1, *k, oc)).astype(np.float32)  # multiplier 2
        wt, groups, kind = fw[0].transpose(2, 0, 1)[:, None], ic, "DepthwiseConv2DOptions"
    else:
        fw = rng.normal(size=(oc, *k, ic // 2)).astype(np.float32)  # 2 groups
        wt, groups, kind = fw.transpose(0, 3, 1, 2), 2, "Conv2DOptions"
    Opts = importlib.import_module(f"tflite.{kind}")

    def options(b):
        Opts.Start(b)
        Opts.AddPadding(b, tflite.Padding.SAME)
        Opts.AddStrideH(b, s[0])
        Opts.AddStrideW(b, s[1])
        Opts.AddDilationHFactor(b, d[0])
        Opts.AddDilationWFactor(b, d[1])
        if depthwise:
            Opts.AddDepthMultiplier(b, oc // ic)
        return Opts.End(b)

    want = torch_conv(_tf_same(x, k, s, d), wt, bias, s, 0, groups, d, False)
    f32 = tflite.TensorType.FLOAT32
    tensors = [
        ([1, 9, 10, ic], f32, None),
        (list(fw.shape), f32, fw),
        ([oc], f32, bias),
        ([1, *want.shape[:2], oc], f32, None),
    ]
    code = tflite.BuiltinOperator.DEPTHWISE_CONV_2D if depthwise else tflite.BuiltinOperator.CONV_2D
    opt_type = getattr(tflite.BuiltinOptions, kind)
    p = tmp_path / "gd.tflite"
    p.write_bytes(_flatbuffer(tensors, [(code, [0, 1, 2], [3], (opt_type, options))], [0], [3]))
    g, report = import_tflite(p)
    assert report.layers.get("gconv2d") == 1
    with xnor_edge.load(g.to_bytes()) as m:
        np.testing.assert_allclose(m.run(x), want, rtol=1e-4, atol=1e-4)
