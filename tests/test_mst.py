"""MST-compression in NumPy (xnor_edge.mst, docs/mst.md): trees, codes, the identity."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from xnor_edge import mst
from xnor_edge.builder import pack_signs

ROOT = Path(__file__).resolve().parents[1]


def _filters(rng, oc, kh, kw, ic):
    real = mst.real_bit_mask(kh, kw, ic)
    w = rng.integers(0, 2**32, (oc, real.size), dtype=np.uint64).astype(np.uint32)
    return w & real


def _random_tree(rng, oc, chunk, p_root=0.2):
    parent = np.full(oc, -1, dtype=np.int64)
    depth = np.zeros(oc, dtype=np.int64)
    for c0 in range(0, oc, chunk):
        perm = c0 + rng.permutation(min(chunk, oc - c0))
        for i, c in enumerate(perm[1:], start=1):
            if rng.random() >= p_root:
                p = perm[rng.integers(0, i)]
                parent[c], depth[c] = p, depth[p] + 1
    return mst.MstTree(parent, depth, mst.level_order(parent, depth, chunk), chunk)


def _check_identity(rng, fw, tree, kh, kw, ic, n_pos=9):
    a = _filters(rng, n_pos, kh, kw, ic)
    want = mst.dense_bgemm(a, fw)
    for enc in mst.ENCODINGS:
        code = mst.encode(fw, tree, enc, kh, kw, ic)
        assert np.array_equal(mst.validate(code), fw)
        assert np.array_equal(mst.mst_bgemm_reference(a, code), want), enc


def test_popcount_paths_agree():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 2**32, 1000, dtype=np.uint64).astype(np.uint32)
    want = np.array([bin(int(v)).count("1") for v in x])
    assert np.array_equal(mst.popcount(x), want)
    assert np.array_equal(mst.popcount_bytes(x), want)


def test_distance_matrices():
    rng = np.random.default_rng(2)
    fw = _filters(rng, 70, 3, 3, 40)
    h, dw = mst.hamming(fw), mst.differing_words(fw)
    for i, j in [(0, 1), (5, 69), (33, 33), (68, 2)]:
        assert h[i, j] == sum(bin(int(v)).count("1") for v in fw[i] ^ fw[j])
        assert dw[i, j] == int(np.count_nonzero(fw[i] != fw[j]))


def _mst_weight(dist):
    """Kruskal on a small dense matrix (independent of the Prim in mst.py)."""
    n = dist.shape[0]
    comp = list(range(n))

    def find(i):
        while comp[i] != i:
            comp[i] = comp[comp[i]]
            i = comp[i]
        return i

    total = 0
    for d, i, j in sorted((dist[i, j], i, j) for i, j in itertools.combinations(range(n), 2)):
        ri, rj = find(i), find(j)
        if ri != rj:
            comp[ri] = rj
            total += d
    return total


@pytest.mark.parametrize("chunk", [16, 64, None])
def test_unbounded_tree_is_a_minimum_spanning_tree(chunk):
    rng = np.random.default_rng(3)
    fw = _filters(rng, 40, 1, 3, 50)
    tree = mst.build_tree(fw, "bits", chunk, None, forest=False)
    weight = sum(mst.hamming(fw[[c, p]])[0, 1] for c, p in enumerate(tree.parent) if p >= 0)
    want = sum(_mst_weight(mst.hamming(fw[c0 : c0 + (chunk or 40)])) for c0 in range(0, 40, chunk or 40))
    assert weight == want
    assert tree.roots == -(-40 // (chunk or 40))


@pytest.mark.parametrize("encoding", mst.ENCODINGS)
@pytest.mark.parametrize("max_depth", [None, 0, 1, 3])
def test_tree_rules(encoding, max_depth):
    rng = np.random.default_rng(4)
    base = _filters(rng, 6, 3, 3, 64)
    fw = base[rng.integers(0, 6, 150)]  # families of near-duplicates: deep trees
    flips = rng.integers(0, 2**32, fw.shape, dtype=np.uint64).astype(np.uint32)
    fw = fw ^ (flips & (flips >> 3) & (flips >> 7) & (flips >> 11) & mst.real_bit_mask(3, 3, 64))
    tree = mst.build_tree(fw, encoding, 64, max_depth)
    pos = np.empty(150, dtype=np.int64)
    pos[tree.order] = np.arange(150)
    for c, p in enumerate(tree.parent):
        assert pos[c] // 64 == c // 64
        if p >= 0:
            assert p // 64 == c // 64 and pos[p] < pos[c] and tree.depth[c] == tree.depth[p] + 1
            db, dw = mst.hamming(fw[[c, p]])[0, 1], mst.differing_words(fw[[c, p]])[0, 1]
            assert mst.child_cost(encoding, fw.shape[1], db, dw) < 4 * fw.shape[1]  # cheaper than a root
    if max_depth is not None:
        assert tree.depth.max() <= max_depth
    if max_depth == 0:
        assert tree.roots == 150
    else:
        assert tree.roots < 150


def test_depth_bound_costs_little():
    rng = np.random.default_rng(5)
    fw = _filters(rng, 64, 3, 3, 32)
    free = mst.build_tree(fw, "bits", 64, None, forest=False)
    bound = mst.build_tree(fw, "bits", 64, 4, forest=False)
    assert bound.depth.max() <= 4 < free.depth.max()
    total = [mst.tree_stats(fw, t, 9 * 32)["ops_ratio"] for t in (free, bound)]
    assert total[0] <= total[1] < 1.2 * total[0]


@pytest.mark.parametrize("ic", [1, 31, 32, 33, 70])
def test_identity_random_trees(ic):
    rng = np.random.default_rng(10 + ic)
    fw = _filters(rng, 100, 3, 3, ic)
    _check_identity(rng, fw, _random_tree(rng, 100, 64), 3, 3, ic)
    _check_identity(rng, fw, _random_tree(rng, 100, 7, p_root=0.0), 3, 3, ic)


def test_identity_chain_of_depth_oc_minus_1():
    rng = np.random.default_rng(20)
    oc, ic = 48, 45
    fw = _filters(rng, oc, 3, 3, ic)
    parent = np.arange(oc) - 1
    depth = np.arange(oc)
    tree = mst.MstTree(parent, depth, np.arange(oc), oc)
    _check_identity(rng, fw, tree, 3, 3, ic)
    code = mst.encode(fw, tree, "words", 3, 3, ic)
    assert code.max_depth == oc - 1


def test_identity_duplicates_and_complements():
    rng = np.random.default_rng(21)
    kh, kw, ic = 3, 3, 37
    real = mst.real_bit_mask(kh, kw, ic)
    base = _filters(rng, 4, kh, kw, ic)
    fw = np.concatenate([base, base, base ^ real, base[:2]])  # D = 0 and D = K children
    tree = mst.build_tree(fw, "bits", 64, None, forest=False)
    k = kh * kw * ic
    dists = [mst.hamming(fw[[c, p]])[0, 1] for c, p in enumerate(tree.parent) if p >= 0]
    assert 0 in dists
    _check_identity(rng, fw, tree, kh, kw, ic)
    parent = np.array([-1, -1, -1, -1, 0, 1, 2, 3, 0, 1, 2, 3, 4, 5])
    depth = np.where(parent < 0, 0, 1) + (np.arange(14) >= 12)
    forced = mst.MstTree(parent, depth, mst.level_order(parent, depth, 64), 64)
    assert {mst.hamming(fw[[c, p]])[0, 1] for c, p in enumerate(parent) if p >= 0} == {0, k}
    _check_identity(rng, fw, forced, kh, kw, ic)


def test_identity_gives_zero_padded_convolution():
    """Full-window d from the tree + the child's own per-tap popcounts = zero padding."""
    rng = np.random.default_rng(22)
    h, w, ic, oc, k, pad, stride = 6, 5, 40, 20, 3, 1, 2
    x = rng.standard_normal((h, w, ic))
    wt = rng.standard_normal((oc, k, k, ic))
    fw = pack_signs(wt, axis=-1).reshape(oc, -1)
    cw = (ic + 31) // 32
    xp = np.zeros((h + 2 * pad, w + 2 * pad, cw), dtype=np.uint32)  # padding words = 0 (+1)
    xp[pad:-pad, pad:-pad] = pack_signs(x, axis=-1)
    inside = np.zeros((h + 2 * pad, w + 2 * pad), dtype=bool)
    inside[pad:-pad, pad:-pad] = True
    oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    rows, valid = [], []
    for i, j in itertools.product(range(oh), range(ow)):
        win = (slice(i * stride, i * stride + k), slice(j * stride, j * stride + k))
        rows.append(xp[win].reshape(-1))
        valid.append(inside[win].reshape(-1))
    a, valid = np.array(rows), np.array(valid)
    code = mst.choose_code(fw, k, k, ic, chunk=8)
    d_full = mst.mst_bgemm_reference(a, code)
    tap_pc = mst.popcount(mst.validate(code).reshape(oc, k * k, cw)).sum(axis=2)  # [OC, taps]
    d = d_full - (~valid).astype(np.int64) @ tap_pc.T
    dot = ic * valid.sum(axis=1)[:, None] - 2 * d
    s = np.where(x < 0, -1.0, 1.0)
    b = np.where(wt < 0, -1.0, 1.0)
    sp = np.pad(s, ((pad, pad), (pad, pad), (0, 0)))
    want = np.array(
        [
            [np.sum(sp[i * stride : i * stride + k, j * stride : j * stride + k] * b[o]) for o in range(oc)]
            for i, j in itertools.product(range(oh), range(ow))
        ]
    )
    assert np.array_equal(dot, want.astype(np.int64))


def _good_code():
    rng = np.random.default_rng(30)
    fw = _filters(rng, 20, 1, 3, 40)
    tree = _random_tree(rng, 20, 8, p_root=0.1)
    return mst.encode(fw, tree, "bits", 1, 3, 40), mst.encode(fw, tree, "words", 1, 3, 40), tree


def _bad_codes():
    bits, words, tree = _good_code()
    child = int(np.flatnonzero((bits.parent != mst.NO_PARENT) & (np.diff(bits.offsets) >= 2))[0])
    lo = int(bits.offsets[child])
    root = int(np.flatnonzero(bits.parent == mst.NO_PARENT)[0])

    def edit(code, **kw):
        arrays = {k: np.array(v, copy=True) for k, v in kw.items()}
        return replace(code, **arrays)

    order_swapped = bits.order.copy()
    i = int(np.flatnonzero(order_swapped == child)[0])
    p_pos = int(np.flatnonzero(order_swapped == bits.parent[child])[0])
    order_swapped[[i, p_pos]] = order_swapped[[p_pos, i]]
    parent_other_chunk = bits.parent.copy()
    other = (child + 8) % 20
    parent_other_chunk[child] = other
    idx_unsorted = bits.index.copy()
    idx_unsorted[[lo, lo + 1]] = idx_unsorted[[lo + 1, lo]]
    last = int(bits.offsets[child + 1]) - 1
    idx_pad = bits.index.copy()
    idx_pad[last] = 32 * 5 + 31  # channel 63 of the last tap of a 40-channel filter
    idx_range = bits.index.copy()
    idx_range[last] = 32 * 6
    wmask_pad = words.mask.copy()
    wmask_pad[np.flatnonzero(words.index % 2 == 1)[0]] |= np.uint32(1 << 31)
    wmask_zero = words.mask.copy()
    wmask_zero[int(words.offsets[child])] = 0
    root_pad = bits.roots.copy()
    root_pad[0, 1] |= np.uint32(1 << 31)
    dup = bits.order.copy()
    dup[0] = dup[1]
    return {
        "order is not a permutation": edit(bits, order=dup),
        "ordered outside its chunk": edit(bits, order=np.roll(bits.order, 1)),
        "parent not earlier": edit(bits, order=order_swapped),
        "parent in another chunk": edit(bits, parent=parent_other_chunk),
        "parent index out of range": edit(bits, parent=np.where(np.arange(20) == child, 20, bits.parent)),
        "not strictly increasing": edit(bits, index=idx_unsorted),
        "channel-padding bit": edit(bits, index=idx_pad),
        "index out of range": edit(bits, index=idx_range),
        "zero word mask": edit(words, mask=wmask_zero),
        "difference on a channel-padding": edit(words, mask=wmask_pad),
        "a root sets a channel-padding bit": edit(bits, roots=root_pad),
        "root count": edit(bits, roots=bits.roots[1:]),
        "offsets not non-decreasing": edit(bits, offsets=bits.offsets[::-1]),
        "entry counts inconsistent": edit(bits, index=bits.index[:-1]),
        "depth exceeds max_depth": replace(bits, max_depth=int(tree.depth.max()) - 1),
        "a root has difference entries": edit(
            bits,
            offsets=np.where(np.arange(21) > root, bits.offsets + 1, bits.offsets),
            index=np.insert(bits.index, int(bits.offsets[root]), 0),
        ),
        "unknown encoding": replace(bits, encoding="nibbles"),
    }


@pytest.mark.parametrize("reason", list(_bad_codes()))
def test_validate_names_every_broken_rule(reason):
    good_bits, good_words, _ = _good_code()
    mst.validate(good_bits)
    mst.validate(good_words)
    with pytest.raises(mst.MstFormatError, match=reason):
        mst.validate(_bad_codes()[reason])


def test_choose_code_picks_the_smaller_encoding():
    rng = np.random.default_rng(40)
    kh, kw, ic = 3, 3, 64
    base = _filters(rng, 2, kh, kw, ic)
    words_like = base[rng.integers(0, 2, 64)].copy()
    words_like[:, rng.integers(0, 18, 64)] ^= np.uint32(0xFFFFFFFF)  # one whole word differs
    bits_like = base[rng.integers(0, 2, 64)].copy()
    bits_like[np.arange(64), rng.integers(0, 18, 64)] ^= np.uint32(1)  # one bit differs
    assert mst.choose_code(words_like, kh, kw, ic).encoding == "words"
    assert mst.choose_code(bits_like, kh, kw, ic).encoding == "bits"
    stats = mst.layer_stats(bits_like, kh, kw, ic)
    assert stats["best"] == "bits" and stats["bits"]["ratio"] > 4
    assert stats["mst"]["ops_ratio"] < 0.1


def test_stats_tool_on_a_shipped_model(tmp_path):
    out = tmp_path / "rows.json"
    cmd = [
        sys.executable,
        str(ROOT / "tools" / "mst_stats.py"),
        str(ROOT / "models" / "mnist-digits-xnor.xnor"),
    ]
    run = subprocess.run([*cmd, "--depth", "none,4", "--json", str(out)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    rows = json.loads(out.read_text())
    assert len(rows) == 6 and "| all |" in run.stdout
    for r in rows:
        assert 0.3 < r["mst_mean_edge_k"] < r["random_mean_edge_k"] < 0.5
        assert r["bound"] is None or r["mst_depth"] <= r["bound"]


# ------------------------------------------------ the training regulariser (tools/xnor_train)


@pytest.fixture
def reg_mod():
    torch = pytest.importorskip("torch")
    from xnor_train import mst_reg

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # toy sizes: threads only add overhead
    torch.manual_seed(0)
    yield torch, mst_reg
    torch.set_num_threads(threads)


class _SGD:
    """Plain SGD with momentum (torch.optim's first step imports torch._dynamo: seconds)."""

    def __init__(self, torch, params, lr, momentum=0.0):
        self.torch, self.params, self.lr, self.momentum = torch, list(params), lr, momentum
        self.bufs = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def step(self):
        with self.torch.no_grad():
            for p, b in zip(self.params, self.bufs):
                if p.grad is not None:
                    b.mul_(self.momentum).add_(p.grad)
                    p.sub_(self.lr * b)


def _toy(torch, mst_reg, oc=32, alpha_mode="mean"):
    from xnor_train.layers import BinConv2d

    return BinConv2d(48, oc, 3, padding=1, mode="xnor", use_k=False, alpha_mode=alpha_mode)


@pytest.mark.parametrize("variant", ["bit", "word"])
def test_reg_is_zero_for_identical_filters(reg_mod, variant):
    torch, mst_reg = reg_mod
    layer = _toy(torch, mst_reg)
    with torch.no_grad():
        layer.weight.copy_(layer.weight[:1].expand_as(layer.weight))
    reg = mst_reg.MstRegularizer(layer, 1.0, variant)
    assert reg.loss().item() == 0.0
    assert mst_reg.tree_distances(layer)[""]["mean_edge_k"] == 0.0


@pytest.mark.parametrize("variant", ["bit", "word"])
def test_reg_decreases_and_reaches_only_latent_weights(reg_mod, variant):
    torch, mst_reg = reg_mod
    layer = _toy(torch, mst_reg, alpha_mode="learned")
    model = torch.nn.Sequential(torch.nn.BatchNorm2d(48), layer)
    reg = mst_reg.MstRegularizer(model, 100.0, variant, chunk=16, max_depth=4)
    reg.freeze()
    opt = _SGD(torch, model.parameters(), lr=0.003)
    losses = []
    for _ in range(6):
        opt.zero_grad()
        loss = reg.loss()
        loss.backward()
        losses.append(loss.item())
        for name, p in model.named_parameters():
            assert (p.grad is not None and p.grad.abs().sum() > 0) == name.endswith("1.weight"), name
        opt.step()
        reg.update_trees()  # frozen: a no-op
    assert all(b < a for a, b in zip(losses, losses[1:]))
    assert reg.state()["frozen"] and mst_reg.lambda_ramp(0.5, 2.0, 2.0, 0.0) == 0.5


def test_word_variant_cuts_differing_words_faster(reg_mod):
    """Measured, same lambda, steps and SGD: the group penalty makes whole words agree."""
    torch, mst_reg = reg_mod
    from xnor_train.layers import BinConv2d

    x = torch.randn(4, 64, 6, 6)
    ratios = {}
    for variant in ("bit", "word"):
        torch.manual_seed(1)
        layer = BinConv2d(64, 64, 3, padding=1, mode="xnor", use_k=False)
        with torch.no_grad():
            target = layer(x)
        reg = mst_reg.MstRegularizer(layer, 30.0, variant)
        opt = _SGD(torch, [layer.weight], lr=0.006, momentum=0.9)
        for step in range(80):
            if step % 10 == 0:
                reg.update_trees()
            opt.zero_grad()
            task = torch.nn.functional.mse_loss(layer(x), target) / target.var()
            (task + reg.loss()).backward()
            opt.step()
        ratios[variant] = mst_reg.tree_distances(layer)[""]["words_ratio"]
    assert ratios["word"] < 0.85 * ratios["bit"], ratios  # measured: 0.62 against 0.80


@pytest.mark.parametrize("encoding", mst.ENCODINGS)
@pytest.mark.parametrize("kh, ic", [(1, 40), (3, 64), (45, 1500)])  # 45x1x1500: 32-bit bit indices
def test_params_round_trip(encoding, kh, ic):
    rng = np.random.default_rng(50 + kh)
    fw = _filters(rng, 24, kh, 1, ic)
    fw[12:] = fw[:12] ^ (fw[12:] & fw[12:] >> 1 & fw[12:] >> 2 & fw[12:] >> 3)
    code = mst.encode(fw, mst.build_tree(fw, encoding, 16, 5, forest=False), encoding, kh, 1, ic)
    params = mst.to_params(code)
    assert all(p.dtype == np.uint32 for p in params)
    assert code.nbytes() == 4 * sum(p.size for p in params)
    back = mst.from_params(params, 24, kh, 1, ic)
    assert np.array_equal(mst.validate(back), fw)
    n_words = kh * ((ic + 31) // 32)
    assert int(params[0][5]) == (16 if encoding == "words" or 32 * n_words <= 65536 else 32)


def test_params_header_checks():
    bits, words, _ = _good_code()
    good = mst.to_params(bits)

    def with_tree(i, v):
        t = good[0].copy()
        t[i] = v
        return [t, *good[1:]]

    cases = {
        "unknown encoding": with_tree(0, 7),
        "reserved tree field": with_tree(6, 1),
        "root count out of range": with_tree(3, 0),
        "index width": with_tree(5, 32),
        "roots param count": with_tree(3, int(good[0][3]) + 1),
        "index param count": [good[0], good[1], good[2], good[3][:-1], good[4]],
        "mask param count": [good[0], good[1], good[2], good[3], np.ones(1, np.uint32)],
    }
    for reason, params in cases.items():
        with pytest.raises(mst.MstFormatError, match=reason):
            mst.from_params(params, 20, 1, 3, 40)
    if bits.index.size % 2:
        tail = good[3].copy()
        tail[-1] |= np.uint32(1 << 16)
        with pytest.raises(mst.MstFormatError, match="unused index halfword"):
            mst.from_params([good[0], good[1], good[2], tail, good[4]], 20, 1, 3, 40)
    mst.from_params(mst.to_params(words), 20, 1, 3, 40)


@pytest.mark.parametrize("encoding", mst.ENCODINGS)
def test_unbounded_forest_is_minimal_with_a_root_vertex(encoding):
    """Roots cost a full filter; the forest equals Kruskal on the graph plus a root vertex."""
    rng = np.random.default_rng(6)
    base = _filters(rng, 3, 3, 3, 32)
    fw = base[rng.integers(0, 3, 30)]
    for c in range(30):  # a few single-bit flips per filter
        fw[c, rng.integers(0, 9, 2)] ^= np.uint32(1) << rng.integers(0, 32, 2).astype(np.uint32)
    fw[:10] = _filters(rng, 10, 3, 3, 32)  # far from everything: roots
    n, n_words = fw.shape
    cost = mst.child_cost(encoding, n_words, mst.hamming(fw), mst.differing_words(fw))
    graph = np.full((n + 1, n + 1), 4 * n_words, dtype=np.int64)
    graph[:n, :n] = cost
    tree = mst.build_tree(fw, encoding, None, None)
    got = sum(cost[c, p] if p >= 0 else 4 * n_words for c, p in enumerate(tree.parent))
    assert got == _mst_weight(graph)
    assert 1 < tree.roots < n


def _small_model():
    from xnor_edge.builder import GraphBuilder

    rng = np.random.default_rng(60)
    g = GraphBuilder((9, 7, 3), {"name": "mst-test"})
    x = g.conv2d(g.input, rng.standard_normal((40, 3, 3, 3)), padding=1, relu=True)
    x = g.bconv2d(x, rng.standard_normal((70, 40, 3, 3)), rng.random(70), padding=1, use_k=True)
    x = g.bconv2d(x, rng.standard_normal((33, 70, 3, 3)), rng.random(33), stride=2, padding=1, pad_mode="one")
    b = g.bconv2d(x, rng.standard_normal((65, 33, 1, 1)), rng.random(65) + 0.1, out_bits=True)
    x = g.bconv2d(b, rng.standard_normal((20, 65, 3, 3)), rng.random(20), padding=1)
    g.dense(g.global_avgpool(x), rng.standard_normal((5, 20)))
    return g.to_bytes()


@pytest.mark.parametrize("max_depth", [None, 2])
def test_compress_model_round_trip(max_depth):
    from xnor_edge.reference import ReferenceModel

    data = _small_model()
    packed, report = mst.compress_model(data, chunk=16, max_depth=max_depth, min_ratio=0)
    assert len(report) == 4 and packed != data
    x = np.random.default_rng(61).standard_normal((9, 7, 3))
    assert np.array_equal(ReferenceModel(packed).run(x), ReferenceModel(data).run(x))  # op 32 decoded
    assert mst.decompress_model(packed) == data
    same, _ = mst.compress_model(data)  # nothing here compresses: the file is unchanged
    assert same == data
    trees, report = mst.compress_model(data, chunk=16, max_depth=max_depth, min_ratio=0, forest=False)
    assert [r["roots"] for r in report] == [5, 3, 5, 2]  # one per chunk of 16: children everywhere
    assert mst.decompress_model(trees) == data
    shipped = (ROOT / "models" / "mnist-digits-xnor.xnor").read_bytes()
    assert mst.decompress_model(mst.compress_model(shipped, min_ratio=0, forest=False)[0]) == shipped


def test_identity_on_a_shipped_layer():
    from xnor_edge.reference import ReferenceModel

    ref = ReferenceModel.from_file(ROOT / "models" / "mnist-digits-xnor.xnor")
    _, _, fw, kh, kw, ic = next(iter(mst.iter_binary_layers(ref)))
    rng = np.random.default_rng(70)
    a = _filters(rng, 16, kh, kw, ic)
    for depth in (None, 3):
        code = mst.choose_code(fw, kh, kw, ic, 64, depth, forest=False)
        assert code.roots.shape[0] == 1
        assert np.array_equal(mst.mst_bgemm_reference(a, code), mst.dense_bgemm(a, fw))


def test_decompress_rejects_a_broken_tree():
    import struct
    import zlib

    packed = bytearray(mst.compress_model(_small_model(), min_ratio=0)[0])
    head = struct.unpack_from("<IIQIIIIIIIIQQQQ", packed, 8)
    nodes_off, params_off = head[13], head[14]
    node = struct.unpack_from("<16I", packed, nodes_off + 64)  # node 1: the first bconv2d_mst
    assert node[0] == 32
    tree_off = struct.unpack_from("<IIQQQ", packed, params_off + 32 * node[13])[2]
    oc = node[10]
    order = np.frombuffer(bytes(packed[tree_off + 32 : tree_off + 32 + 4 * oc]), dtype="<u4")
    last = int(order[15])  # the last channel of chunk 0 becomes the parent of its first root
    struct.pack_into("<I", packed, tree_off + 32 + 4 * oc + 4 * int(order[0]), last)
    struct.pack_into("<I", packed, len(packed) - 8, zlib.crc32(bytes(packed[:-8])) & 0xFFFFFFFF)
    with pytest.raises(mst.MstFormatError, match="bconv2d_mst"):
        mst.decompress_model(bytes(packed))
