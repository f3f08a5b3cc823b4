"""prelu, clip, sign_shift, concat, flatten and dwconv2d (ops 13-18): builder, reference.py and
the C runtime agree; the builder and both loaders reject what docs/format.md
forbids.

sign_shift reads the model input plus shifts that are multiples of 1/4 on
inputs that are multiples of 1/4, so x + shift is exact (ties at 0 included)
in float32 and float64 alike.
"""

from __future__ import annotations

import numpy as np
import pytest

import xnor_edge
from xnor_edge.builder import GraphBuilder
from xnor_edge.reference import ReferenceError, ReferenceModel


def run_both(g: GraphBuilder, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    data = g.to_bytes()
    ref = ReferenceModel(data)
    with xnor_edge.load(data) as m:
        got = m.run(x[None].astype(np.float32))[0]
    return got, ref.run(x)


@pytest.mark.parametrize("c", [1, 3, 33])
def test_prelu_and_leaky(rng, c):
    x = rng.normal(size=(5, 4, c)).astype(np.float32)
    for slope in (rng.uniform(-0.5, 0.5, c), 0.1):
        g = GraphBuilder(x.shape)
        g.prelu(g.input, slope)
        got, want = run_both(g, x)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
        s = np.broadcast_to(np.asarray(slope, dtype=np.float32), (c,))
        np.testing.assert_array_equal(got, np.where(x < 0, x * s, x))


@pytest.mark.parametrize("lo,hi", [(-1.0, 1.0), (0.0, 6.0), (0.5, 0.5)])
def test_clip(rng, lo, hi):
    x = (rng.normal(size=(3, 7, 10)) * 4).astype(np.float32)
    g = GraphBuilder(x.shape)
    g.clip(g.input, lo, hi)
    got, want = run_both(g, x)
    np.testing.assert_array_equal(got, want.astype(np.float32))
    np.testing.assert_array_equal(got, np.clip(x, lo, hi))


@pytest.mark.parametrize("c", [3, 32, 45])
def test_sign_shift(rng, c):
    x = (rng.integers(-8, 9, size=(6, 5, c)) / 4).astype(np.float32)
    shift = rng.integers(-8, 9, size=c) / 4
    g = GraphBuilder(x.shape)
    b = g.sign_shift(g.input, shift)
    # A 1x1 bconv2d whose filter j is -1 on channel j only exposes every bit.
    w = np.ones((c, c, 1, 1))
    w[np.arange(c), np.arange(c)] = -1
    g.bconv2d(b, w, np.ones(c))
    got, want = run_both(g, x)
    np.testing.assert_array_equal(got, want)
    bit = np.where(x + shift < 0, -1.0, 1.0)
    expect = bit.sum(axis=2, keepdims=True) - 2 * bit
    np.testing.assert_array_equal(got, expect)


def test_concat_and_chain(rng):
    x = rng.normal(size=(6, 6, 5)).astype(np.float32)
    g = GraphBuilder(x.shape)
    a = g.conv2d(g.input, rng.normal(size=(7, 5, 3, 3)), rng.normal(size=7), padding=1)
    a = g.prelu(a, rng.uniform(0, 0.3, 7))
    c = g.concat(g.input, a)
    c = g.concat(c, g.clip(g.input, -0.5, 0.5))
    y = g.bconv2d(g.sign_shift(c, rng.normal(size=17) * 3), rng.normal(size=(4, 17, 3, 3)), np.ones(4))
    g.global_avgpool(y)
    got, want = run_both(g, x)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", [(28, 28, 1), (3, 5, 40), (1, 1, 7)])
def test_flatten_then_binary_dense(rng, shape):
    x = rng.normal(size=shape).astype(np.float32)
    n = int(np.prod(shape))
    g = GraphBuilder(shape)
    f = g.flatten(g.input)
    assert f.shape == (1, 1, n)
    w = rng.normal(size=(12, n))
    y = g.binary_dense(f, w, rng.uniform(0.1, 1, 12), rng.normal(size=12))
    g.dense(y, rng.normal(size=(3, 12)))
    got, want = run_both(g, x)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # The same layer as a whole-window bconv2d over (h, w, c): same maths, more words.
    g2 = GraphBuilder(shape)
    g2.binary_dense(g2.input, w, np.ones(12))
    g3 = GraphBuilder(shape)
    g3.binary_dense(g3.flatten(g3.input), w, np.ones(12))
    a, _ = run_both(g2, x)
    b, _ = run_both(g3, x)
    np.testing.assert_array_equal(a, b)
    if shape[2] < 32 and shape[0] * shape[1] > 1:
        assert len(g3.to_bytes()) < len(g2.to_bytes())


@pytest.mark.parametrize("c,mult", [(1, 1), (5, 1), (3, 2)])
@pytest.mark.parametrize("k,stride,pad", [(3, 1, 1), (3, 2, 0), ((5, 3), (1, 2), (2, 1))])
@pytest.mark.parametrize("relu", [False, True])
def test_dwconv2d(rng, c, mult, k, stride, pad, relu):
    kh, kw = (k, k) if isinstance(k, int) else k
    x = rng.normal(size=(9, 8, c)).astype(np.float32)
    w, b = rng.normal(size=(c * mult, 1, kh, kw)), rng.normal(size=c * mult)
    g = GraphBuilder(x.shape)
    g.dwconv2d(g.input, w, b, stride, pad, relu)
    got, want = run_both(g, x)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # The same as a dense conv2d whose filters are zero off their own channel.
    full = np.zeros((c * mult, c, kh, kw))
    full[np.arange(c * mult), np.arange(c * mult) // mult] = w[:, 0]
    g2 = GraphBuilder(x.shape)
    g2.conv2d(g2.input, full, b, stride, pad, relu)
    np.testing.assert_allclose(got, run_both(g2, x)[1], rtol=1e-5, atol=1e-5)


def test_builder_rejections():
    g = GraphBuilder((4, 4, 3))
    with pytest.raises(ValueError, match="min 1.0 is greater than max -1.0"):
        g.clip(g.input, 1.0, -1.0)
    with pytest.raises(ValueError, match="slope has 2 values, expected 3"):
        g.prelu(g.input, [0.1, 0.2])
    small = g.maxpool(g.input, 2)
    with pytest.raises(ValueError, match="height and width must match"):
        g.concat(g.input, small)
    with pytest.raises(ValueError, match="needs a float32 input"):
        g.concat(g.input, g.sign(g.input))
    with pytest.raises(ValueError, match=r"OC a multiple of 3 .* got shape \(4, 1, 3, 3\)"):
        g.dwconv2d(g.input, np.ones((4, 1, 3, 3)))
    with pytest.raises(ValueError, match="more than|outside 1..65535"):
        big = GraphBuilder((300, 300, 1))
        big.flatten(big.input)


def test_loaders_reject_inverted_clip():
    g = GraphBuilder((2, 2, 1))
    g.clip(g.input, -1.0, 1.0)
    data = bytearray(g.to_bytes())
    # Swap the two bounds in the file and fix the CRC.
    import struct
    import zlib

    blob = data.find(struct.pack("<2f", -1.0, 1.0))
    data[blob : blob + 8] = struct.pack("<2f", 1.0, -1.0)
    data[-8:-4] = struct.pack("<I", zlib.crc32(bytes(data[:-8])) & 0xFFFFFFFF)
    with pytest.raises(ReferenceError, match="min > max"):
        ReferenceModel(bytes(data))
    with pytest.raises(xnor_edge.ModelError, match=r"node 0 \(clip\): bounds \[1, -1\]: min > max"):
        xnor_edge.load(bytes(data))
