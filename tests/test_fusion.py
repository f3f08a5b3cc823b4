"""Fusion at session creation (runtime_c/src/fuse.c, docs/executor.md) changes no output bit.

Each graph runs with fusion on (the default) and off (XE_FUSE=0, read when a session is
created), on every kernel set at 1-4 threads, on inputs with mixed signs and scales; the
outputs must be equal bit for bit. The graphs cover every rule: batchnorm, add (the
convolution as left or right operand) and relu after a bconv2d, chains longer than
XE_MAX_POST_OPS, a value with two readers, the model output inside a chain, an add whose
other operand is computed after the convolution, x + x, a batchnorm run in its consumer's
input pass, bit outputs (never fused) and a sign ending a chain (the bconv then writes
bits). Each graph runs again with every bconv2d coded as bconv2d_mst (MST-compression), which
shares bconv2d's input pass and epilogue and so must fold the same nodes. The per-node
clock shows which nodes were folded.
"""

from __future__ import annotations

import numpy as np
import pytest

import xnor_edge
from xnor_edge import mst
from xnor_edge.builder import GraphBuilder

RNG = np.random.default_rng(7)


def _bconv(g, x, c, oc=None, relu=False, use_k=True, stride=1, out_bits=False):
    oc = oc or c
    w = RNG.standard_normal((oc, c, 3, 3)).astype(np.float32)
    scale = (np.abs(w).mean(axis=(1, 2, 3)) * RNG.choice([-1.0, 1.0], oc)).astype(np.float32)
    bias = RNG.standard_normal(oc).astype(np.float32) * 0.1
    if out_bits:
        return g.bconv2d(x, w, scale, bias, stride=stride, padding=1, out_bits=True)
    return g.bconv2d(x, w, scale, bias, stride=stride, padding=1, use_k=use_k, relu=relu)


def _bn(g, x, c, relu=False):
    s = RNG.standard_normal(c).astype(np.float32)
    t = RNG.standard_normal(c).astype(np.float32) * 0.5
    return g.batchnorm(x, s, t, relu=relu)


def resnet_block(c=40, hw=9):
    """bn -> bconv(relu) -> bn -> bconv -> add -> bn (two readers) -> bconv -> add -> relu."""
    g = GraphBuilder(input_shape=(hw, hw, c))
    x = _bn(g, g.input, c)
    a = _bconv(g, x, c, relu=True)
    a = _bn(g, a, c)
    a = _bconv(g, a, c)
    r = g.add(a, g.input)
    y = _bn(g, r, c)
    y = _bconv(g, y, c)
    y = g.add(r, y)  # the convolution as the right operand
    g.relu(y)
    return g, 6  # nodes folded: bn into the first bconv's input, bn, add, add, relu; bn(r)


def long_chain(c=33, hw=7):
    """bconv followed by six element-wise ops: only XE_MAX_POST_OPS fold."""
    g = GraphBuilder(input_shape=(hw, hw, c))
    y = _bconv(g, g.input, c)
    for i in range(3):
        y = _bn(g, y, c, relu=i == 1)
        y = g.add(y, g.input, relu=i == 2)
    return g, 4


def awkward(c=64, hw=6):
    """An add whose other operand comes after the bconv, x + x, the model output in a chain."""
    g = GraphBuilder(input_shape=(hw, hw, c))
    a = _bconv(g, g.input, c, use_k=False, relu=True)
    b = _bn(g, g.input, c, relu=True)  # computed after a: the add cannot fold into a
    s = g.add(a, b)
    d = _bconv(g, s, c)
    d = g.add(d, d)  # x + x: not fusable
    e = _bconv(g, d, c, stride=2)
    _bn(g, e, c)  # the model output, folded into e's step
    return g, 1


def bits_between(c=64, hw=8):
    """Bit outputs never take post-ops; a batchnorm before a bits-input bconv stays."""
    g = GraphBuilder(input_shape=(hw, hw, c))
    x = _bn(g, g.input, c)
    b = _bconv(g, x, c, out_bits=True)
    y = _bconv(g, b, c, use_k=False)
    _bn(g, y, c)
    return g, 2  # the first bn (input pass) and the last bn (post-op)


def packed_between(c=48, hw=7):
    """A sign after a bconv's chain: the bconv writes packed bits (channel tails, channel split)."""
    g = GraphBuilder(input_shape=(hw, hw, c))
    a = _bconv(g, g.input, c, oc=96, use_k=False)
    a = _bn(g, a, 96)
    b = g.sign(a)  # folded: the bconv writes bits, 96 channels split in 64 + 32 (7x7 positions)
    y = _bconv(g, b, 96, oc=c, use_k=False)
    y = g.add(y, g.input)
    s = g.sign(y)  # folded after the add
    z = _bconv(g, s, c, oc=40, use_k=False)
    _bn(g, z, 40)
    return g, 5


GRAPHS = {
    "resnet_block": resnet_block,
    "long_chain": long_chain,
    "awkward": awkward,
    "bits_between": bits_between,
    "packed_between": packed_between,
}


@pytest.fixture
def restore(monkeypatch):
    yield monkeypatch
    xnor_edge.set_kernel_isa("auto")


def _inputs(shape):
    return [
        RNG.standard_normal(shape).astype(np.float32),
        (RNG.standard_normal(shape) * 100).astype(np.float32),
        RNG.uniform(-1e-3, 1e-3, shape).astype(np.float32),
    ]


@pytest.mark.parametrize("coded", [False, True], ids=["bconv2d", "bconv2d_mst"])
@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_fused_outputs_are_bit_identical_to_unfused(name, coded, restore):
    g, folded = GRAPHS[name]()
    data = g.to_bytes()
    if coded:
        data, report = mst.compress_model(data, chunk=16, min_ratio=0)
        assert report and all(r["converted"] for r in report), name
    shape = tuple(xnor_edge.load(data).input_shape)
    xs = _inputs(shape)
    for isa in xnor_edge.available_isas():
        xnor_edge.set_kernel_isa(isa)
        for threads in (1, 2, 3, 4):
            outs = {}
            for fuse in ("0", "1"):
                restore.setenv("XE_FUSE", fuse)
                with xnor_edge.load(data) as m:
                    s = m.session(threads)
                    try:
                        outs[fuse] = [s.run(x).view(np.uint32).copy() for x in xs]
                        zeros = sum(1 for t in s.node_times_ns() if t == 0)
                    finally:
                        s.close()
                assert zeros == (folded if fuse == "1" else 0), (name, isa, threads, fuse, zeros)
            for a, b in zip(outs["0"], outs["1"]):
                diff = np.flatnonzero(a != b)
                assert diff.size == 0, f"{name} {isa} {threads} threads: elements {diff[:5]}"
