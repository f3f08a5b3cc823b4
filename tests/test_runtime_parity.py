"""Models made by the builder, run by the C runtime, checked against reference.py.

Binarised ops read the model input directly (exact float32 values on both
sides), or thresholds sit far from zero, so no sign can flip between the
float32 runtime and the float64 reference.
"""

from __future__ import annotations

import numpy as np
import pytest

import xnor_edge
from xnor_edge.builder import GraphBuilder
from xnor_edge.reference import ReferenceModel

ISAS = xnor_edge.available_isas()


def check(g: GraphBuilder, rng, batch: int = 1, rtol: float = 2e-5):
    data = g.to_bytes()
    ref = ReferenceModel(data)
    x = rng.normal(size=(batch, *ref.input_shape)).astype(np.float32)
    with xnor_edge.load(data) as m:
        got = m.run(x)
    want = np.stack([ref.run(xi) for xi in x])
    assert got.dtype == np.float32 and got.shape == want.shape
    atol = rtol * max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)
    return got


def w(rng, *shape):
    return rng.normal(size=shape)


@pytest.mark.parametrize("c", [1, 3, 5])
@pytest.mark.parametrize("k,stride,pad", [(1, 1, 0), (3, 1, 1), ((3, 5), (2, 1), (1, 2)), (5, 2, 2)])
@pytest.mark.parametrize("relu", [False, True])
def test_conv2d(rng, c, k, stride, pad, relu):
    kh, kw = (k, k) if isinstance(k, int) else k
    g = GraphBuilder((9, 10, c))
    g.conv2d(g.input, w(rng, 6, c, kh, kw), w(rng, 6), stride=stride, padding=pad, relu=relu)
    check(g, rng)


@pytest.mark.parametrize("c", [3, 32, 33])
@pytest.mark.parametrize("k,stride,pad", [(1, 1, 0), (3, 1, 1), (3, 2, 1), ((2, 3), (1, 2), (1, 0))])
@pytest.mark.parametrize("relu", [False, True])
def test_bwn_conv2d(rng, c, k, stride, pad, relu):
    kh, kw = (k, k) if isinstance(k, int) else k
    g = GraphBuilder((8, 9, c))
    g.bwn_conv2d(g.input, w(rng, 5, c, kh, kw), rng.uniform(0.1, 1, 5), w(rng, 5), stride, pad, relu)
    check(g, rng)


@pytest.mark.parametrize("c", [1, 3, 32, 33, 70])
@pytest.mark.parametrize(
    "k,stride,pad", [(1, 1, 0), (3, 1, 1), (3, 2, 1), ((3, 2), (2, 1), (2, 1)), (5, 1, 2)]
)
@pytest.mark.parametrize("pad_mode", ["zero", "one"])
@pytest.mark.parametrize("use_k", [False, True])
@pytest.mark.parametrize("relu", [False, True])
def test_bconv2d_float_input(rng, c, k, stride, pad, pad_mode, use_k, relu):
    kh, kw = (k, k) if isinstance(k, int) else k
    g = GraphBuilder((7, 9, c))
    g.bconv2d(
        g.input, w(rng, 9, c, kh, kw), rng.uniform(0.1, 1, 9), w(rng, 9), stride, pad, pad_mode, use_k, relu
    )
    check(g, rng)


@pytest.mark.parametrize("c", [3, 32, 65])
@pytest.mark.parametrize("pad_mode", ["zero", "one"])
@pytest.mark.parametrize("relu", [False, True])
def test_bconv2d_bits_input(rng, c, pad_mode, relu):
    g = GraphBuilder((8, 7, c))
    b = g.sign(g.input)
    g.bconv2d(
        b,
        w(rng, 40, c, 3, 3),
        rng.uniform(0.1, 1, 40),
        w(rng, 40),
        stride=(1, 2),
        padding=1,
        pad_mode=pad_mode,
        relu=relu,
    )
    check(g, rng)


@pytest.mark.parametrize("pad_mode", ["zero", "one"])
def test_bconv2d_out_bits_chain(rng, pad_mode):
    """float -> bits (threshold) -> bits maxpool -> bconv on bits -> float."""
    oc = 35
    g = GraphBuilder((9, 9, 6))
    scale = rng.uniform(0.5, 1, oc)
    bias = scale * (rng.integers(-3, 4, oc) + 0.5)  # dot*scale+bias never near 0
    b = g.bconv2d(g.input, w(rng, oc, 6, 3, 3), scale, bias, padding=1, pad_mode=pad_mode, out_bits=True)
    b = g.maxpool(b, 3, stride=2, padding=1)
    g.bconv2d(b, w(rng, 8, oc, 3, 3), rng.uniform(0.1, 1, 8), w(rng, 8), padding=1, pad_mode=pad_mode)
    check(g, rng)


@pytest.mark.parametrize("k,stride,pad", [(2, None, 0), (3, 2, 1), ((3, 2), (1, 2), (1, 1))])
def test_pools(rng, k, stride, pad):
    g = GraphBuilder((9, 8, 5))
    a = g.maxpool(g.input, k, stride, pad)
    b = g.avgpool(g.input, k, stride, pad)
    g.add(a, b)
    check(g, rng)


@pytest.mark.parametrize("k,stride,pad", [(2, None, 0), (3, 2, 1), (3, 1, 2)])
def test_bits_maxpool(rng, k, stride, pad):
    g = GraphBuilder((7, 8, 40))
    b = g.maxpool(g.sign(g.input), k, stride, pad)
    g.bconv2d(b, w(rng, 4, 40, 1, 1), np.ones(4))  # 1x1: reads the pooled bits back as +-1
    check(g, rng)


def test_elementwise_ops(rng):
    g = GraphBuilder((5, 6, 7))
    a = g.batchnorm(g.input, rng.uniform(0.5, 2, 7), w(rng, 7))
    b = g.batchnorm(g.input, w(rng, 7), w(rng, 7), relu=True)
    r = g.relu(g.add(a, b, relu=False))
    s = g.add(r, g.input, relu=True)
    g.softmax(s)
    check(g, rng)


def test_global_avgpool_dense(rng):
    g = GraphBuilder((6, 5, 12))
    p = g.global_avgpool(g.input)
    d = g.dense(p, w(rng, 9, 12), w(rng, 9), relu=True)
    g.dense(d, w(rng, 3, 9), input_order="chw")
    check(g, rng)


@pytest.mark.parametrize("input_order", ["hwc", "chw"])
def test_dense_over_spatial_input(rng, input_order):
    g = GraphBuilder((4, 3, 5))
    g.dense(g.input, w(rng, 7, 60), w(rng, 7), input_order=input_order)
    check(g, rng)


@pytest.mark.parametrize("use_k,bits", [(False, False), (True, False), (False, True)])
def test_binary_dense(rng, use_k, bits):
    g = GraphBuilder((4, 4, 20))
    x = g.sign(g.input) if bits else g.input
    g.binary_dense(x, w(rng, 10, 320), rng.uniform(0.1, 1, 10), w(rng, 10), use_k=use_k, input_order="chw")
    check(g, rng)


def test_batch_equals_single_runs(rng):
    from conftest import tiny_classifier

    data = tiny_classifier()
    x = rng.normal(size=(5, 12, 12, 3)).astype(np.float32)
    with xnor_edge.load(data) as m:
        batch = m.run(x)
        singles = np.stack([m.run(xi) for xi in x])
    np.testing.assert_array_equal(batch, singles)


@pytest.mark.parametrize("isa", ISAS)
def test_every_kernel_isa_gives_identical_results(rng, isa):
    from conftest import tiny_classifier

    data = tiny_classifier(seed=3)
    x = rng.normal(size=(3, 12, 12, 3)).astype(np.float32)
    before = xnor_edge.kernel_isa()
    try:
        xnor_edge.set_kernel_isa("ref")
        with xnor_edge.load(data) as m:
            want = m.run(x)
        xnor_edge.set_kernel_isa(isa)
        assert xnor_edge.kernel_isa() == isa
        with xnor_edge.load(data) as m:
            got = m.run(x)
    finally:
        xnor_edge.set_kernel_isa(before)
    np.testing.assert_array_equal(got, want)


def test_deeper_network_close_to_reference(rng):
    """A whole small XNOR net: values may differ by float rounding before a sign,
    so compare the top class and a loose tolerance over several inputs."""
    from conftest import tiny_classifier

    data = tiny_classifier(n_classes=10, seed=5)
    ref = ReferenceModel(data)
    x = rng.normal(size=(8, 12, 12, 3)).astype(np.float32)
    with xnor_edge.load(data) as m:
        got = m.run(x)
    want = np.stack([ref.run(xi) for xi in x])
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3 * float(np.abs(want).max()))
