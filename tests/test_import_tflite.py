"""`xnor-edge import` of TFLite files from Larq Compute Engine (xnor_edge/importers/tflite_import.py).

The fixtures in tests/data/import/tflite/ were built in Larq, converted by LCE's
converter and their reference outputs computed by LCE's interpreter
(tools/make_tflite_fixtures.py), so these tests need the `tflite` package only
(no TensorFlow). Error cases edit a fixture's flatbuffer in place, at positions
found through the `tflite` schema classes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import xnor_edge
from xnor_edge.reference import ReferenceModel

tflite = pytest.importorskip("tflite")

from xnor_edge import cli  # noqa: E402
from xnor_edge.importers.tflite_import import TfliteImportError, convert, import_tflite  # noqa: E402

DATA = Path(__file__).parent / "data" / "import" / "tflite"
FIXTURES = {
    # name: expected layer counts of the import. A float-output binary conv is bconv2d (dot - K)
    # + batchnorm (LCE's multiplier and bias + K * multiplier), with a fused ReLU a batchnorm more.
    "mixed_tiny": {"bconv2d": 3, "maxpool(bits)": 1, "prelu": 1, "batchnorm": 3, "dwconv2d": 1, "clip": 1},
    "quicknet_tiny": {"bconv2d": 4, "batchnorm": 8, "add": 4, "dwconv2d": 3, "maxpool": 2},
    # SAME padding one pixel longer after the input: pad nodes, and a zero-padded binary conv as
    # two binary convs (+1 and -1 padding) whose halves add up
    "strided_tiny": {"pad": 6, "bconv2d": 4, "maxpool(bits)": 2, "add": 1, "conv2d": 1},
    "lce_exact_tiny": {"bconv2d": 4, "batchnorm": 4, "add": 1, "pad": 2, "concat": 2},
}


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_fixture_matches_lce_interpreter(name):
    g, report = import_tflite(DATA / f"{name}.tflite")
    for kind, n in FIXTURES[name].items():
        assert report.layers.get(kind) == n, (kind, report.layers)
    data = g.to_bytes()
    x = np.load(DATA / f"{name}.inputs.npy")  # NHWC, like the runtime
    want = np.load(DATA / f"{name}.outputs.npy")
    with xnor_edge.load(data) as m:
        got = np.concatenate([m.run(xi[None]).reshape(1, -1) for xi in x])
    scale = max(1.0, float(np.abs(want).max()))
    assert float(np.abs(got - want).max()) <= 1e-4 * scale
    np.testing.assert_array_equal(got.argmax(axis=1), want.argmax(axis=1))
    ref = ReferenceModel(data)  # the runtime against the float64 reference of the written file
    for xi, gi in zip(x, got):
        np.testing.assert_allclose(gi, ref.run(xi).reshape(-1), rtol=1e-5, atol=1e-5 * scale)


@pytest.mark.parametrize("kernel", ["optimized", "reference"])
def test_binary_conv_outputs_bit_exact_to_lce(kernel):
    """lce_exact_tiny's output is the float outputs of three binary convolutions (zero-padded over
    an even size at stride 2, +1-padded with a fused ReLU, zero-padded at stride 1): xnor-edge gives
    LCE's floats bit for bit, those of its optimised kernels (the interpreter's default: border
    pixels from the +1-padded dot plus a float correction) with lce_kernel="optimized", and those
    of use_reference_bconv=True with lce_kernel="reference" (the default). Writing dot * mul + bias
    instead differs in most elements (LCE computes float(2 * popcount) * -mul + (bias + K * mul))."""
    g, report = import_tflite(DATA / "lce_exact_tiny.tflite", lce_kernel=kernel)
    if kernel == "optimized":  # the border correction: ones, a dwconv2d, a batchnorm, an add each
        assert report.layers["dwconv2d"] == 2 and report.layers["bconv2d"] == 5, report.layers
    x = np.load(DATA / "lce_exact_tiny.inputs.npy")
    suffix = "" if kernel == "optimized" else "_ref"
    want = np.load(DATA / f"lce_exact_tiny.outputs{suffix}.npy")
    other = np.load(DATA / f"lce_exact_tiny.outputs{'_ref' if kernel == 'optimized' else ''}.npy")
    assert np.count_nonzero(want != other) > 100  # the two kernels' border rounding differs
    with xnor_edge.load(g.to_bytes()) as m:
        got = np.stack([m.run(xi[None]).reshape(want.shape[1:]) for xi in x])
    np.testing.assert_array_equal(got, want)


def test_lce_kernel_is_checked():
    with pytest.raises(ValueError, match="lce_kernel must be 'optimized' or 'reference'"):
        import_tflite(DATA / "lce_exact_tiny.tflite", lce_kernel="fast")


@pytest.mark.parametrize("kernel", ["optimized", "reference"])
def test_mixed_tiny_binary_layers(kernel):
    """Zero padding (pad_values 0: LCE's optimised kernels compute the +1-padded dot and correct
    the border, after a 1 x 1 bconv2d giving ones; its reference kernel pads with zeros), +1
    padding (PAD_ONE), and a bit-packed output through LCE's thresholds (OUT_BITS) feeding a
    binary max pool."""
    g, _ = import_tflite(DATA / "mixed_tiny.tflite", lce_kernel=kernel)
    with xnor_edge.load(g.to_bytes()) as m:
        layers = m.info()["layers"]
    ops = [(n["op"], n["flags"]) for n in layers if n["op"] in ("bconv2d", "maxpool")]
    first = [("bconv2d", []), ("bconv2d", ["pad_one"])] if kernel == "optimized" else [("bconv2d", [])]
    assert ops == first + [
        ("bconv2d", ["pad_one", "out_bits"]),
        ("maxpool", []),
        ("bconv2d", ["pad_one"]),
    ]


# ---------------------------------------------------------- edited models


def _model(data: bytes):
    return tflite.Model.GetRootAsModel(data, 0)


def _field_pos(table, vt_offset: int) -> int:
    o = table._tab.Offset(vt_offset)
    assert o, "the field is not stored in this fixture"
    return table._tab.Pos + o


def _write(tmp_path: Path, data: bytearray, name: str = "edited.tflite") -> Path:
    p = tmp_path / name
    p.write_bytes(bytes(data))
    return p


def _first_op(m, kind: int):
    sg = m.Subgraphs(0)
    for i in range(sg.OperatorsLength()):
        op = sg.Operators(i)
        code = m.OperatorCodes(op.OpcodeIndex())
        if max(code.BuiltinCode(), code.DeprecatedBuiltinCode()) == kind:
            return i, op, code
    raise AssertionError(f"no operator {kind}")


def test_unsupported_op_names_operator_and_list(tmp_path):
    data = bytearray((DATA / "quicknet_tiny.tflite").read_bytes())
    m = _model(bytes(data))
    i, _, code = _first_op(m, tflite.BuiltinOperator.CONV_2D)
    tanh = tflite.BuiltinOperator.TANH
    data[_field_pos(code, 4)] = tanh  # deprecated_builtin_code (int8)
    if code._tab.Offset(10):
        data[_field_pos(code, 10) : _field_pos(code, 10) + 4] = int(tanh).to_bytes(4, "little")
    with pytest.raises(
        TfliteImportError,
        match=rf"operator {i} \(TANH, output .*\): op type TANH is not "
        r"supported; supported: LceQuantize",
    ):
        import_tflite(_write(tmp_path, data))


def _avgpool_same_on_odd(tmp_path: Path) -> Path:
    """mixed_tiny at 15 x 15 pixels with its 2x2 stride-2 average pool made SAME: TFLite pads the
    odd pixel after the input and divides by the valid count there."""
    data = bytearray((DATA / "mixed_tiny.tflite").read_bytes())
    m = _model(bytes(data))
    sg = m.Subgraphs(0)
    t = sg.Tensors(int(sg.Inputs(0)))
    start = t._tab.Vector(t._tab.Offset(4))  # shape
    for j in (1, 2):
        data[start + 4 * j : start + 4 * j + 4] = (15).to_bytes(4, "little")
    _, op, _ = _first_op(m, tflite.BuiltinOperator.AVERAGE_POOL_2D)
    opts = tflite.Pool2DOptions()
    tab = op.BuiltinOptions()
    opts.Init(tab.Bytes, tab.Pos)
    assert opts.Padding() == tflite.Padding.VALID
    data[_field_pos(opts, 4)] = tflite.Padding.SAME
    return _write(tmp_path, data)


def test_same_average_pool_with_padding_divides_by_the_valid_count(tmp_path, rng):
    with pytest.raises(TfliteImportError, match=r"operator 10 \(ADD"):  # the pool maps; 15x15 breaks
        import_tflite(_avgpool_same_on_odd(tmp_path))  # a residual
    # mixed_tiny's 2x2 stride-2 pool as 3x3 SAME: same output size, one padded pixel after the input.
    data = bytearray((DATA / "mixed_tiny.tflite").read_bytes())
    _, op, _ = _first_op(_model(bytes(data)), tflite.BuiltinOperator.AVERAGE_POOL_2D)
    opts = tflite.Pool2DOptions()
    opts.Init(op.BuiltinOptions().Bytes, op.BuiltinOptions().Pos)
    data[_field_pos(opts, 4)] = tflite.Padding.SAME
    for field in (10, 12):  # filter width, height
        data[_field_pos(opts, field) : _field_pos(opts, field) + 4] = (3).to_bytes(4, "little")
    g, report = import_tflite(_write(tmp_path, data))
    assert report.layers.get("avgpool_excl_pad") == 1
    data = g.to_bytes()
    x = rng.normal(size=g.input.shape).astype(np.float32)
    with xnor_edge.load(data) as m:
        np.testing.assert_allclose(m.run(x), ReferenceModel(data).run(x), rtol=1e-4, atol=1e-4)


def test_unsupported_fused_activation(tmp_path):
    data = bytearray((DATA / "mixed_tiny.tflite").read_bytes())
    m = _model(bytes(data))
    i, op, _ = _first_op(m, tflite.BuiltinOperator.DEPTHWISE_CONV_2D)
    opts = tflite.DepthwiseConv2DOptions()
    t = op.BuiltinOptions()
    opts.Init(t.Bytes, t.Pos)
    assert opts.FusedActivationFunction() == tflite.ActivationFunctionType.RELU6
    data[_field_pos(opts, 12)] = tflite.ActivationFunctionType.TANH
    with pytest.raises(TfliteImportError, match=rf"operator {i} \(DEPTHWISE_CONV_2D.*fused activation TANH"):
        import_tflite(_write(tmp_path, data))


def test_not_a_tflite_file(tmp_path):
    p = tmp_path / "x.tflite"
    p.write_bytes(b"\x00" * 64)
    with pytest.raises(TfliteImportError, match="not a TFLite flatbuffer"):
        import_tflite(p)


def test_missing_tflite_names_the_extra(block_import):
    block_import("tflite")
    with pytest.raises(ImportError, match=r"'tflite' package .*\[import\] extra installs: pip install"):
        import_tflite(DATA / "mixed_tiny.tflite")


# -------------------------------------------------------------------- CLI


def test_cli_import_dispatches_on_tflite(tmp_path, capsys):
    out = tmp_path / "q.xnor"
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(f"class {i}" for i in range(10)) + "\n")
    rc = cli.main(["import", str(DATA / "quicknet_tiny.tflite"), "-o", str(out), "--labels", str(labels)])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "self-check" in text and "wrote" in text
    with xnor_edge.load(out) as m:
        meta = m.metadata
        x = np.load(DATA / "quicknet_tiny.inputs.npy")[:1]
        got = m.run(x).reshape(-1)
    assert meta["source"]["format"] == "tflite" and meta["input_size"] == [29, 29]
    assert meta["labels"][3] == "class 3"
    want = np.load(DATA / "quicknet_tiny.outputs.npy")[0]
    assert float(np.abs(got - want).max()) <= 1e-4 * max(1.0, float(np.abs(want).max()))


@pytest.mark.parametrize("kernel", ["optimized", "reference"])
def test_cli_lce_kernel_option(tmp_path, capsys, kernel):
    """`xnor-edge import --lce-kernel` reaches the importer: the written file gives that LCE
    kernel's floats of lce_exact_tiny bit for bit."""
    out = tmp_path / "e.xnor"
    rc = cli.main(["import", str(DATA / "lce_exact_tiny.tflite"), "-o", str(out), "--lce-kernel", kernel])
    assert rc == 0, capsys.readouterr().out
    x = np.load(DATA / "lce_exact_tiny.inputs.npy")
    want = np.load(DATA / f"lce_exact_tiny.outputs{'' if kernel == 'optimized' else '_ref'}.npy")
    with xnor_edge.load(out) as m:
        got = np.stack([m.run(xi[None]).reshape(want.shape[1:]) for xi in x])
    np.testing.assert_array_equal(got, want)


def test_cli_failed_import_writes_nothing(tmp_path, capsys):
    src = _avgpool_same_on_odd(tmp_path)
    out = tmp_path / "bad.xnor"
    rc = cli.main(["import", str(src), "-o", str(out)])
    assert rc == 1
    assert "operator 10 (ADD" in capsys.readouterr().err
    assert not out.exists()


def test_convert_logs_skip_without_lce(tmp_path, block_import):
    block_import("larq_compute_engine")
    lines: list[str] = []
    convert(DATA / "mixed_tiny.tflite", tmp_path / "m.xnor", log=lines.append)
    assert any("self-check skipped: larq-compute-engine is not installed" in s for s in lines)
    with pytest.raises(ImportError, match="--check needs LCE's interpreter"):
        convert(
            DATA / "mixed_tiny.tflite", tmp_path / "m2.xnor", check=np.zeros((16, 16, 3)), log=lines.append
        )
    assert not (tmp_path / "m2.xnor").exists()


# ------------------------------------------------------------ the pad op


@pytest.mark.parametrize("bits", [False, True])
def test_pad_op_matches_reference(bits):
    """pad (op 19), asymmetric, on floats (any value) and bits (+1 / -1, seen through a 1x1
    binary conv), against the float64 reference interpreter of the file."""
    from xnor_edge.builder import GraphBuilder

    rng = np.random.default_rng(5)
    for value in [1.0, -1.0] if bits else [0.0, -3.4028234663852886e38, 2.5]:
        g = GraphBuilder((5, 4, 35))
        x = g.sign(g.input) if bits else g.input
        y = g.pad(x, 0, 1, 2, 3, value)
        assert y.shape == (6, 9, 35) and y.dtype == x.dtype
        if bits:
            g.bconv2d(y, rng.choice([-1.0, 1.0], size=(7, 35, 1, 1)), np.ones(7))
        else:
            g.maxpool(y, 2, 1) if value < -1e30 else g.relu(y)
        data = g.to_bytes()
        xi = rng.normal(size=(5, 4, 35)).astype(np.float32)
        want = ReferenceModel(data).run(xi)
        with xnor_edge.load(data) as m:
            got = m.run(xi[None]).reshape(want.shape)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_pad_op_rejects_bad_arguments():
    from xnor_edge.builder import GraphBuilder

    g = GraphBuilder((4, 4, 3))
    with pytest.raises(ValueError, match="on bits: must be \\+1 or -1"):
        g.pad(g.sign(g.input), 1, 0, 0, 0, 0.0)
    with pytest.raises(ValueError, match="non-negative integers"):
        g.pad(g.input, -1, 0, 0, 0)
    with pytest.raises(ValueError, match="bottom/right must be < size"):
        g.pad(g.input, 0, 4, 0, 0)


def test_custom_op_named_like_a_builtin_is_not_mapped(tmp_path):
    """A custom op is mapped only when it is one of LCE's: one called "RELU" is an error."""
    data = bytearray((DATA / "mixed_tiny.tflite").read_bytes())
    m = _model(bytes(data))
    for j in range(m.OperatorCodesLength()):
        code = m.OperatorCodes(j)
        if code.CustomCode() == b"LceQuantize":
            start = code._tab.Vector(code._tab.Offset(6))  # custom_code: length, then bytes
            data[start - 4 : start] = (4).to_bytes(4, "little")
            data[start : start + 5] = b"RELU\x00"
    with pytest.raises(TfliteImportError, match=r"\(RELU, output .*op type RELU is not supported"):
        import_tflite(_write(tmp_path, data))


# ------------------------------------- a flatbuffer written with the schema


def _flatbuffer(tensors, ops, inputs, outputs) -> bytes:
    """A TFLite model from (shape, type, data or None) tensors and (code, inputs, outputs, options)
    operators, code a BuiltinOperator or a custom op's name; options (type, builder fn) or None."""
    import importlib

    import flatbuffers

    # the generated modules (the package's names are the classes)
    mod = {n: importlib.import_module(f"tflite.{n}") for n in ("Buffer", "Model", "Operator", "OperatorCode")}
    Buffer, Model, Operator, OperatorCode = (mod[n] for n in ("Buffer", "Model", "Operator", "OperatorCode"))
    SubGraph, Tensor = importlib.import_module("tflite.SubGraph"), importlib.import_module("tflite.Tensor")

    b = flatbuffers.Builder(1024)

    def ivec(start, vals):
        start(b, len(vals))
        for v in reversed(vals):
            b.PrependInt32(int(v))
        return b.EndVector()

    bufs, tens = [], []
    datas = [None] + [t[2] for t in tensors if t[2] is not None]
    for d in datas:
        off = b.CreateByteVector(np.ascontiguousarray(d).tobytes()) if d is not None else None
        Buffer.Start(b)
        if off is not None:
            Buffer.AddData(b, off)
        bufs.append(Buffer.End(b))
    k = 0
    for i, (shape, ttype, data) in enumerate(tensors):
        name = b.CreateString(f"t{i}")
        sh = ivec(Tensor.StartShapeVector, shape)
        Tensor.Start(b)
        Tensor.AddShape(b, sh)
        Tensor.AddType(b, ttype)
        if data is not None:
            k += 1
        Tensor.AddBuffer(b, k if data is not None else 0)
        Tensor.AddName(b, name)
        tens.append(Tensor.End(b))
    codes, code_ix, opoffs = [], {}, []
    for code, _, _, _ in ops:
        if code in code_ix:
            continue
        cc = b.CreateString(code) if isinstance(code, str) else None
        OperatorCode.Start(b)
        builtin = tflite.BuiltinOperator.CUSTOM if cc is not None else code
        OperatorCode.AddDeprecatedBuiltinCode(b, builtin)
        OperatorCode.AddBuiltinCode(b, builtin)
        if cc is not None:
            OperatorCode.AddCustomCode(b, cc)
        code_ix[code] = len(codes)
        codes.append(OperatorCode.End(b))
    for code, ins, outs, options in ops:
        iv, ov = ivec(Operator.StartInputsVector, ins), ivec(Operator.StartOutputsVector, outs)
        opt = options[1](b) if options else None
        Operator.Start(b)
        Operator.AddOpcodeIndex(b, code_ix[code])
        Operator.AddInputs(b, iv)
        Operator.AddOutputs(b, ov)
        if opt is not None:
            Operator.AddBuiltinOptionsType(b, options[0])
            Operator.AddBuiltinOptions(b, opt)
        opoffs.append(Operator.End(b))

    def tvec(start, offs):
        start(b, len(offs))
        for o in reversed(offs):
            b.PrependUOffsetTRelative(o)
        return b.EndVector()

    tv, ov = tvec(SubGraph.StartTensorsVector, tens), tvec(SubGraph.StartOperatorsVector, opoffs)
    iv, outv = ivec(SubGraph.StartInputsVector, inputs), ivec(SubGraph.StartOutputsVector, outputs)
    SubGraph.Start(b)
    SubGraph.AddTensors(b, tv)
    SubGraph.AddInputs(b, iv)
    SubGraph.AddOutputs(b, outv)
    SubGraph.AddOperators(b, ov)
    sg = SubGraph.End(b)
    sgv = tvec(Model.StartSubgraphsVector, [sg])
    cv = tvec(Model.StartOperatorCodesVector, codes)
    bv = tvec(Model.StartBuffersVector, bufs)
    Model.Start(b)
    Model.AddVersion(b, 3)
    Model.AddOperatorCodes(b, cv)
    Model.AddSubgraphs(b, sgv)
    Model.AddBuffers(b, bv)
    b.Finish(Model.End(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def test_xnor_net_weight_quantiser_folds_into_a_binary_conv(tmp_path):
    """XNOR-Net's alpha * sign(W) left in the graph (LCE does so for large layers): ABS, MEAN,
    LceQuantize/LceDequantize of the constant W fold to +-alpha filters, and a CONV_2D reading
    LceDequantize'd activations becomes a bconv2d with scale alpha."""
    import importlib

    Conv2DOptions = importlib.import_module("tflite.Conv2DOptions")
    ReducerOptions = importlib.import_module("tflite.ReducerOptions")

    rng = np.random.default_rng(3)
    w = rng.normal(size=(5, 3, 3, 40)).astype(np.float32)
    bias = rng.normal(size=5).astype(np.float32)
    f32, i32 = tflite.TensorType.FLOAT32, tflite.TensorType.INT32
    tensors = [
        ([1, 4, 4, 40], f32, None),  # 0 input
        ([1, 4, 4, 2], i32, None),  # 1 bits
        ([1, 4, 4, 40], f32, None),  # 2 +-1
        ([5, 3, 3, 40], f32, w),  # 3 W
        ([5, 3, 3, 40], f32, None),  # 4 |W|
        ([5, 1, 1, 1], f32, None),  # 5 alpha
        ([3], i32, np.array([1, 2, 3], np.int32)),  # 6 axes
        ([5, 3, 3, 2], i32, None),  # 7 sign bits of W
        ([5, 3, 3, 40], f32, None),  # 8 sign(W)
        ([5, 3, 3, 40], f32, None),  # 9 alpha * sign(W)
        ([5], f32, bias),  # 10
        ([1, 2, 2, 5], f32, None),  # 11 output
    ]

    def reducer(b):
        ReducerOptions.Start(b)
        ReducerOptions.AddKeepDims(b, True)
        return ReducerOptions.End(b)

    def conv(b):
        Conv2DOptions.Start(b)
        Conv2DOptions.AddPadding(b, tflite.Padding.VALID)
        Conv2DOptions.AddStrideW(b, 1)
        Conv2DOptions.AddStrideH(b, 1)
        return Conv2DOptions.End(b)

    op = tflite.BuiltinOperator
    ops = [
        ("LceQuantize", [0], [1], None),
        ("LceDequantize", [1], [2], None),
        (op.ABS, [3], [4], None),
        (op.MEAN, [4, 6], [5], (tflite.BuiltinOptions.ReducerOptions, reducer)),
        ("LceQuantize", [3], [7], None),
        ("LceDequantize", [7], [8], None),
        (op.MUL, [5, 8], [9], None),
        (op.CONV_2D, [2, 9, 10], [11], (tflite.BuiltinOptions.Conv2DOptions, conv)),
    ]
    p = tmp_path / "xnor_tail.tflite"
    p.write_bytes(_flatbuffer(tensors, ops, [0], [11]))
    g, report = import_tflite(p)
    assert report.layers == {"bconv2d": 1}
    x = rng.normal(size=(4, 4, 40)).astype(np.float32)
    s = np.where(x < 0, -1.0, 1.0)
    alpha = np.abs(w.astype(np.float64)).mean(axis=(1, 2, 3))
    wq = alpha[:, None, None, None] * np.where(w < 0, -1.0, 1.0)
    want = np.array(
        [
            [[(s[i : i + 3, j : j + 3] * wq[o]).sum() + bias[o] for o in range(5)] for j in range(2)]
            for i in range(2)
        ]
    )
    with xnor_edge.load(g.to_bytes()) as m:
        got = m.run(x[None]).reshape(want.shape)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    # filters that are not +-alpha on a binary input: no op computes that
    tensors[3] = ([5, 3, 3, 40], f32, w)
    ops[6] = (op.MUL, [3, 8], [9], None)  # W * sign(W) = |W|: not +-alpha
    p.write_bytes(_flatbuffer(tensors, ops, [0], [11]))
    with pytest.raises(TfliteImportError, match=r"\(CONV_2D, .*filters are not exactly \+-alpha per filter"):
        import_tflite(p)


@pytest.mark.parametrize(
    "hw, k, stride, wrong",
    # (map, kernel, stride): whether LCE 0.16's optimised kernels got a zero-padded SAME binary
    # convolution wrong, measured with its interpreter (tools/make_tflite_fixtures.py --defect)
    [
        (1, 3, 1, True),
        (2, 3, 1, True),
        (3, 3, 1, False),
        (4, 3, 1, False),
        (3, 5, 1, True),
        (4, 5, 1, True),
        (5, 5, 1, False),
        (6, 5, 1, False),
        (2, 3, 2, True),
        (3, 3, 2, False),
        (4, 3, 2, False),
        (5, 3, 2, False),
    ],
)
def test_lce_small_map_defect_prediction(hw, k, stride, wrong):
    from xnor_edge.importers.tflite_import import _lce_skips_correction, _same_pad

    _, before, _ = _same_pad(hw, k, stride)
    assert _lce_skips_correction(hw, hw, k, k, (stride, stride), (before, before)) is wrong
