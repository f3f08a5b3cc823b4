"""MST-compression of binary convolutions (issue 13, docs/mst.md): trees, codes, maths.

Pure NumPy. An output channel of a binary convolution is computed from another
one ("its parent") plus only the weight bits where the two filters differ
(Vo et al., ICCV 2023, arXiv 2308.13735). In this project's convention (bit 1 =
-1, d = popcount(a XOR w) over the packed window; docs/bitpacking.md), with
m = w_child XOR w_parent and D = popcount(m):

    d_child = d_parent + D - 2 * popcount((a XOR w_parent) AND m)

Proof, per bit: outside m the child's bit equals the parent's, so both
popcounts agree there. On m the child's bit is the parent's flipped, so
(a XOR w_child) = NOT (a XOR w_parent) there: the child counts
D - popcount((a XOR w_parent) AND m) where the parent counted
popcount((a XOR w_parent) AND m). The identity holds on any set of bit
positions, in particular on the full window of an explicitly padded input, so
zero-padding corrections (per-tap weight popcounts of the child's own filter)
and the epilogue are unchanged (docs/mst.md).

Filters are handled as a 2-D array ``fw`` of shape [OC, L] uint32, L = KH*KW*CW,
CW = ceil(IC/32): the model file's [OC][KH][KW][CW] weights, one row per filter.
K = KH*KW*IC is the number of real (non-padding) bits of a filter.

Tree building (``build_tree``), per chunk of ``chunk`` consecutive output
channels (the executor's XE_CHUNK_OC = 64, so that threads that own whole
chunks stay independent), is Prim's algorithm on the complete graph of the
chunk's filters plus one virtual vertex whose edge to every filter costs what
a root costs (a stored full filter):

* the cost of a child edge is the size in bytes of its difference in the
  chosen encoding (``child_cost``), of a root edge the size of a full filter.
  Both are increasing in the distance, so without the virtual vertex the tree
  is an ordinary Hamming (or differing-word) MST; with it, a filter becomes a
  fresh root exactly when no allowed edge is cheaper than storing it whole
  (ties go to the root). ``forest=False`` gives the plain MST (root edges cost
  infinity) used for the paper-style statistics;
* the first vertex of every chunk, and the next root when several filters tie
  on the root cost, is the medoid: the smallest sum of distances to the
  chunk's other filters;
* among edges of equal byte cost the one shorter in the other measure wins
  (fewer differing bits for "words", fewer differing words for "bits"), then the
  shallower parent, then the lower channel. (For "words", while every word still
  differs, as in an untrained layer, this makes the tree the Hamming MST rather
  than a star around the first root.);
* depth bound ``max_depth`` (root = depth 0): a vertex at depth ``max_depth``
  never becomes a parent, so every remaining vertex attaches to its cheapest
  allowed parent, or becomes a root when none is allowed or cheaper. (The
  depth-bounded MST is NP-hard; this is the usual greedy bound on Prim. With no
  bound, the result is an exact minimum spanning forest of the augmented graph.)

The order (``MstTree.order``) lists each chunk's channels by depth, then by
channel: roots first (one dense bgemm over them), parents before children.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

__all__ = [
    "ENCODINGS",
    "MstCode",
    "MstFormatError",
    "MstTree",
    "build_tree",
    "child_cost",
    "choose_code",
    "code_stats",
    "coded_layers",
    "compress_model",
    "decompress_model",
    "dense_bgemm",
    "differing_words",
    "encode",
    "filter_rows",
    "from_params",
    "hamming",
    "iter_binary_layers",
    "layer_stats",
    "level_order",
    "mst_bgemm_reference",
    "popcount",
    "popcount_bytes",
    "real_bit_mask",
    "to_params",
    "tree_stats",
    "validate",
]

ENCODINGS = ("words", "bits")
NO_PARENT = 0xFFFFFFFF

_BYTE_TABLE = np.array([bin(i).count("1") for i in range(256)], dtype=np.int64)


def popcount_bytes(x: Any) -> np.ndarray:
    """Per-element popcount through a byte table (the NumPy < 2 path of ``popcount``)."""
    a = np.ascontiguousarray(x)
    b = a.view(np.uint8).reshape(a.shape + (a.itemsize,))
    return _BYTE_TABLE[b].sum(axis=-1)


def popcount(x: Any) -> np.ndarray:
    """Per-element popcount of an unsigned integer array (int64 result)."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(np.asarray(x)).astype(np.int64)
    return popcount_bytes(x)  # pragma: no cover - NumPy < 2


class MstFormatError(ValueError):
    """An MST code breaks docs/mst.md; the message is the loader's reason."""


def filter_rows(words: Any, oc: int, kh: int, kw: int, ic: int) -> np.ndarray:
    """The model file's packed weights [OC][KH][KW][CW] as [OC, L] uint32 rows."""
    cw = (ic + 31) // 32
    w = np.asarray(words, dtype=np.uint32)
    if w.size != oc * kh * kw * cw:
        raise ValueError(f"{w.size} weight words, expected {oc}*{kh}*{kw}*{cw}")
    return w.reshape(oc, kh * kw * cw).copy()


def real_bit_mask(kh: int, kw: int, ic: int) -> np.ndarray:
    """[L] uint32: the bits of a packed filter that hold channels (not padding)."""
    cw = (ic + 31) // 32
    per = np.full(cw, 0xFFFFFFFF, dtype=np.uint32)
    if ic % 32:
        per[-1] = np.uint32((1 << (ic % 32)) - 1)
    return np.tile(per, kh * kw)


def hamming(fw: np.ndarray, block: int = 64) -> np.ndarray:
    """[N, N] int64 Hamming distances between the rows of ``fw`` (popcount of XOR)."""
    n = fw.shape[0]
    out = np.empty((n, n), dtype=np.int64)
    for i in range(0, n, block):
        out[i : i + block] = popcount(fw[i : i + block, None, :] ^ fw[None, :, :]).sum(axis=-1)
    return out


def differing_words(fw: np.ndarray, block: int = 64) -> np.ndarray:
    """[N, N] int64 counts of 32-bit words in which two rows differ."""
    n = fw.shape[0]
    out = np.empty((n, n), dtype=np.int64)
    for i in range(0, n, block):
        out[i : i + block] = (fw[i : i + block, None, :] != fw[None, :, :]).sum(axis=-1)
    return out


def index_bytes(encoding: str, n_words: int) -> int:
    """Bytes per stored index: 2 when every index of the encoding fits 16 bits, else 4."""
    span = n_words if encoding == "words" else 32 * n_words
    return 2 if span <= 0x10000 else 4


def child_cost(encoding: str, n_words: int, dist_bits: Any, dist_words: Any) -> Any:
    """Bytes a child's difference takes in ``encoding`` (docs/mst.md)."""
    ib = index_bytes(encoding, n_words)
    if encoding == "words":
        return np.asarray(dist_words) * (ib + 4)
    if encoding == "bits":
        return np.asarray(dist_bits) * ib
    raise ValueError(f"encoding must be one of {ENCODINGS}, got {encoding!r}")


@dataclass
class MstTree:
    """A forest over one layer's output channels, confined to chunks.

    parent[c] is the parent channel of c, or -1 for a root; depth[c] is 0 for a
    root; order lists each chunk's channels in a topological (level) order.
    """

    parent: np.ndarray
    depth: np.ndarray
    order: np.ndarray
    chunk: int
    max_depth: int | None = None

    @property
    def oc(self) -> int:
        return int(self.parent.size)

    @property
    def roots(self) -> int:
        return int((self.parent < 0).sum())


def _chunks(oc: int, chunk: int | None) -> Iterator[tuple[int, int]]:
    step = oc if not chunk else int(chunk)
    for c0 in range(0, oc, step):
        yield c0, min(oc, c0 + step)


def level_order(parent: np.ndarray, depth: np.ndarray, chunk: int | None) -> np.ndarray:
    """Each chunk's channels by (depth, channel): parents before children."""
    oc = parent.size
    ch = np.arange(oc)
    out = []
    for c0, c1 in _chunks(oc, chunk):
        idx = ch[c0:c1]
        out.append(idx[np.lexsort((idx, depth[c0:c1]))])
    return np.concatenate(out).astype(np.int64)


def _prim(cost: np.ndarray, root_cost: float, central: np.ndarray, max_depth: int | None):
    """Depth-bounded Prim from a virtual root; see the module docstring."""
    n = cost.shape[0]
    done = np.zeros(n, dtype=bool)
    key = np.full(n, root_cost, dtype=np.float64)
    par = np.full(n, -1, dtype=np.int64)
    pdepth = np.full(n, -1, dtype=np.int64)
    depth = np.zeros(n, dtype=np.int64)
    idx = np.arange(n)
    for _ in range(n):
        cand = np.flatnonzero(~done)
        pick = np.lexsort((idx[cand], central[cand], pdepth[cand], key[cand]))[0]
        u = cand[pick]
        done[u] = True
        depth[u] = pdepth[u] + 1
        if max_depth is not None and depth[u] >= max_depth:
            continue
        c = cost[u]
        better = ~done & ((c < key) | ((c == key) & (par >= 0) & (depth[u] < pdepth)))
        key[better] = c[better]
        par[better] = u
        pdepth[better] = depth[u]
    return par, depth


def build_tree(
    fw: np.ndarray,
    encoding: str = "bits",
    chunk: int | None = 64,
    max_depth: int | None = None,
    forest: bool = True,
) -> MstTree:
    """The (depth-bounded, chunk-confined) minimum spanning forest of ``fw``'s rows.

    ``encoding`` sets the cost model ("bits": Hamming distance, "words": number
    of differing words, both in bytes of their code, docs/mst.md); ``chunk=None``
    builds one tree over the whole layer; ``forest=False`` gives the plain MST.
    """
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding must be one of {ENCODINGS}, got {encoding!r}")
    if max_depth is not None and max_depth < 0:
        raise ValueError("max_depth must be >= 0 or None")
    oc, n_words = fw.shape
    parent = np.full(oc, -1, dtype=np.int64)
    depth = np.zeros(oc, dtype=np.int64)
    root_cost = float(4 * n_words) if forest else float("inf")
    for c0, c1 in _chunks(oc, chunk):
        sub = fw[c0:c1]
        db, dw = hamming(sub), differing_words(sub)
        cost = child_cost(encoding, n_words, db, dw).astype(np.float64)
        # Ties on the encoding's (integer) byte cost go to the edge that is shorter in
        # the other measure: a fraction below one byte keeps every other comparison.
        if encoding == "words":
            cost += db / (32.0 * n_words + 1.0)
        else:
            cost += dw / (n_words + 1.0)
        p, d = _prim(cost, root_cost, db.sum(axis=1), max_depth)
        parent[c0:c1] = np.where(p >= 0, p + c0, -1)
        depth[c0:c1] = d
    return MstTree(parent, depth, level_order(parent, depth, chunk), int(chunk or oc), max_depth)


@dataclass
class MstCode:
    """A layer's filters as roots plus differences (the params of docs/mst.md).

    ``roots`` [R, L] are the roots' full filters in the order they appear in
    ``order``; child c's difference is entries offsets[c]:offsets[c+1] of
    ``index`` (word indices for "words", bit indices word*32+bit for "bits")
    and, for "words", ``mask`` (the XOR masks, non-zero).
    """

    encoding: str
    kh: int
    kw: int
    ic: int
    chunk: int
    max_depth: int
    order: np.ndarray
    parent: np.ndarray  # NO_PARENT for roots
    roots: np.ndarray
    offsets: np.ndarray
    index: np.ndarray
    mask: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint32))

    @property
    def oc(self) -> int:
        return int(self.parent.size)

    @property
    def n_words(self) -> int:
        return self.kh * self.kw * ((self.ic + 31) // 32)

    def nbytes(self) -> int:
        """Bytes of the op's MST params (docs/mst.md), scale and bias excluded."""
        return 4 * sum(a.size for a in to_params(self))


ENCODING_IDS = {"words": 1, "bits": 2}


def to_params(code: MstCode) -> list[np.ndarray]:
    """The u32 params ``tree, roots, offsets, index, mask`` of op bconv2d_mst (docs/mst.md)."""
    width = 8 * index_bytes(code.encoding, code.n_words)
    header = [ENCODING_IDS[code.encoding], code.chunk, code.max_depth, code.roots.shape[0], code.index.size]
    tree = np.concatenate([np.array(header + [width, 0, 0], dtype=np.int64), code.order, code.parent]).astype(
        np.uint32
    )
    idx = np.asarray(code.index, dtype=np.int64)
    if width == 16:
        half = np.zeros(idx.size + idx.size % 2, dtype=np.uint32)
        half[: idx.size] = idx
        index = half[0::2] | (half[1::2] << np.uint32(16))
    else:
        index = idx.astype(np.uint32)
    return [tree, code.roots.reshape(-1).astype(np.uint32), code.offsets.astype(np.uint32), index, code.mask]


def from_params(params: list[np.ndarray], oc: int, kh: int, kw: int, ic: int) -> MstCode:
    """Parses the u32 params of a bconv2d_mst node with the loader's checks (then ``validate``).

    The counts of params 1-4 follow from the ``tree`` header, as the loader derives them.
    """
    n_words = kh * kw * ((ic + 31) // 32)
    tree, roots, offsets, index, mask = (np.asarray(a, dtype=np.uint32) for a in params)
    if tree.size != 8 + 2 * oc:
        raise MstFormatError("bconv2d_mst: tree param count is not 8 + 2*OC")
    enc_id, chunk, max_depth, n_roots, n_entries, width, r0, r1 = (int(v) for v in tree[:8])
    names = {v: k for k, v in ENCODING_IDS.items()}
    if enc_id not in names:
        raise MstFormatError("bconv2d_mst: unknown encoding")
    encoding = names[enc_id]
    if r0 or r1:
        raise MstFormatError("bconv2d_mst: reserved tree field is not zero")
    if not 1 <= chunk <= 65535 or max_depth >= max(oc, 1) or not 1 <= n_roots <= oc:
        raise MstFormatError("bconv2d_mst: chunk, max_depth or root count out of range")
    if width != 8 * index_bytes(encoding, n_words):
        raise MstFormatError("bconv2d_mst: index width is not the one the encoding needs")
    want = {
        "roots": n_roots * n_words,
        "offsets": oc + 1,
        "index": (n_entries * width + 31) // 32,
        "mask": n_entries if encoding == "words" else 0,
    }
    for name, arr in zip(want, (roots, offsets, index, mask)):
        if arr.size != want[name]:
            raise MstFormatError(f"bconv2d_mst: {name} param count is not what the tree header gives")
    if width == 16:
        half = np.stack([index & 0xFFFF, index >> np.uint32(16)], axis=1).reshape(-1)
        if half.size > n_entries and half[-1] != 0:
            raise MstFormatError("bconv2d_mst: unused index halfword is not zero")
        idx = half[:n_entries].astype(np.int64)
    else:
        idx = index.astype(np.int64)
    code = MstCode(
        encoding=encoding,
        kh=kh,
        kw=kw,
        ic=ic,
        chunk=chunk,
        max_depth=max_depth,
        order=tree[8 : 8 + oc].astype(np.int64),
        parent=tree[8 + oc :].astype(np.int64),
        roots=roots.reshape(n_roots, n_words),
        offsets=offsets.astype(np.int64),
        index=idx,
        mask=mask,
    )
    validate(code)
    return code


def encode(fw: np.ndarray, tree: MstTree, encoding: str, kh: int, kw: int, ic: int) -> MstCode:
    """Codes ``fw`` along ``tree`` in ``encoding`` ("words" or "bits")."""
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding must be one of {ENCODINGS}, got {encoding!r}")
    oc, n_words = fw.shape
    fw = np.asarray(fw, dtype=np.uint32)
    roots = [fw[c] for c in tree.order if tree.parent[c] < 0]
    counts = np.zeros(oc, dtype=np.int64)
    index_parts: list[np.ndarray] = [np.zeros(0, dtype=np.int64)] * oc
    mask_parts: list[np.ndarray] = [np.zeros(0, dtype=np.uint32)] * oc
    for c in range(oc):
        p = tree.parent[c]
        if p < 0:
            continue
        m = fw[c] ^ fw[p]
        if encoding == "words":
            nz = np.flatnonzero(m)
            index_parts[c], mask_parts[c] = nz.astype(np.int64), m[nz]
        else:
            bits = (m[:, None] >> np.arange(32, dtype=np.uint32)) & 1
            index_parts[c] = np.flatnonzero(bits.reshape(-1)).astype(np.int64)
        counts[c] = index_parts[c].size
    offsets = np.zeros(oc + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(counts)
    depth_max = int(tree.depth.max()) if oc else 0
    return MstCode(
        encoding=encoding,
        kh=kh,
        kw=kw,
        ic=ic,
        chunk=tree.chunk,
        max_depth=depth_max if tree.max_depth is None else int(tree.max_depth),
        order=np.asarray(tree.order, dtype=np.int64),
        parent=np.where(tree.parent < 0, NO_PARENT, tree.parent).astype(np.int64),
        roots=np.array(roots, dtype=np.uint32).reshape(-1, n_words),
        offsets=offsets,
        index=np.concatenate(index_parts) if oc else np.zeros(0, dtype=np.int64),
        mask=np.concatenate(mask_parts).astype(np.uint32) if encoding == "words" else np.zeros(0, np.uint32),
    )


def validate(code: MstCode) -> np.ndarray:
    """Applies every rule of docs/mst.md; returns the decoded [OC, L] filters.

    Raises MstFormatError with the loader's reason on the first broken rule.
    """
    oc, n_words = code.oc, code.n_words
    if code.encoding not in ENCODINGS:
        raise MstFormatError("bconv2d_mst: unknown encoding")
    if not 1 <= code.chunk <= 65535:
        raise MstFormatError("bconv2d_mst: chunk out of range")
    order = np.asarray(code.order, dtype=np.int64)
    parent = np.asarray(code.parent, dtype=np.int64)
    if order.size != oc or not np.array_equal(np.sort(order), np.arange(oc)):
        raise MstFormatError("bconv2d_mst: order is not a permutation of the output channels")
    pos = np.empty(oc, dtype=np.int64)
    pos[order] = np.arange(oc)
    if np.any(pos // code.chunk != np.arange(oc) // code.chunk):
        raise MstFormatError("bconv2d_mst: a channel is ordered outside its chunk")
    is_root = parent == NO_PARENT
    n_roots = int(is_root.sum())
    if code.roots.shape != (n_roots, n_words):
        raise MstFormatError("bconv2d_mst: root count does not match the roots param")
    offsets = np.asarray(code.offsets, dtype=np.int64)
    if offsets.size != oc + 1 or offsets[0] != 0 or np.any(np.diff(offsets) < 0):
        raise MstFormatError("bconv2d_mst: offsets not non-decreasing from 0")
    if offsets[-1] != code.index.size or (code.encoding == "words" and code.mask.size != code.index.size):
        raise MstFormatError("bconv2d_mst: entry counts inconsistent")
    if code.encoding == "bits" and code.mask.size:
        raise MstFormatError("bconv2d_mst: masks given for the bits encoding")
    real = real_bit_mask(code.kh, code.kw, code.ic)
    if np.any(code.roots & ~real):
        raise MstFormatError("bconv2d_mst: a root sets a channel-padding bit")
    span = n_words if code.encoding == "words" else 32 * n_words
    out = np.zeros((oc, n_words), dtype=np.uint32)
    depth = np.zeros(oc, dtype=np.int64)
    seen = np.zeros(oc, dtype=bool)
    next_root = 0
    for c in order:
        lo, hi = offsets[c], offsets[c + 1]
        if is_root[c]:
            if hi != lo:
                raise MstFormatError("bconv2d_mst: a root has difference entries")
            out[c] = code.roots[next_root]
            next_root += 1
        else:
            p = parent[c]
            if not 0 <= p < oc:
                raise MstFormatError("bconv2d_mst: parent index out of range")
            if p // code.chunk != c // code.chunk:
                raise MstFormatError("bconv2d_mst: parent in another chunk")
            if not seen[p]:
                raise MstFormatError("bconv2d_mst: parent not earlier in the order")
            depth[c] = depth[p] + 1
            if depth[c] > code.max_depth:
                raise MstFormatError("bconv2d_mst: depth exceeds max_depth")
            idx = np.asarray(code.index[lo:hi], dtype=np.int64)
            if idx.size and (idx[0] < 0 or idx[-1] >= span):
                raise MstFormatError("bconv2d_mst: difference index out of range")
            if np.any(np.diff(idx) <= 0):
                raise MstFormatError("bconv2d_mst: difference indices not strictly increasing")
            m = np.zeros(n_words, dtype=np.uint32)
            if code.encoding == "words":
                mk = np.asarray(code.mask[lo:hi], dtype=np.uint32)
                if np.any(mk == 0):
                    raise MstFormatError("bconv2d_mst: zero word mask")
                m[idx] = mk
            else:
                np.bitwise_or.at(m, idx // 32, (np.uint32(1) << (idx % 32).astype(np.uint32)))
            if np.any(m & ~real):
                raise MstFormatError("bconv2d_mst: difference on a channel-padding bit")
            out[c] = out[p] ^ m
        seen[c] = True
    return out


def dense_bgemm(a_words: np.ndarray, fw: np.ndarray) -> np.ndarray:
    """[P, OC] int64 d = popcount(a XOR w) over full windows (the uncompressed op)."""
    a = np.asarray(a_words, dtype=np.uint32)
    return np.stack([popcount(a ^ w).sum(axis=1) for w in fw], axis=1)


def mst_bgemm_reference(a_words: np.ndarray, code: MstCode) -> np.ndarray:
    """[P, OC] int64 d for P packed windows a_words [P, L], computed along the tree.

    Roots fully (popcount of a XOR w_root); each child from its parent:
    d_child = d_parent + D - 2 * popcount((a XOR w_parent) AND m). The parent's
    bits under m come from the decoded filters, as the loader precomputes them.
    """
    fw = validate(code)
    a = np.asarray(a_words, dtype=np.uint32)
    n_words = code.n_words
    if a.ndim != 2 or a.shape[1] != n_words:
        raise ValueError(f"a_words must be [P, {n_words}], got {a.shape}")
    d = np.zeros((a.shape[0], code.oc), dtype=np.int64)
    is_root = code.parent == NO_PARENT
    next_root = 0
    for c in code.order:
        lo, hi = code.offsets[c], code.offsets[c + 1]
        if is_root[c]:
            d[:, c] = popcount(a ^ code.roots[next_root]).sum(axis=1)
            next_root += 1
            continue
        p = int(code.parent[c])
        idx = np.asarray(code.index[lo:hi], dtype=np.int64)
        if code.encoding == "words":
            m = np.asarray(code.mask[lo:hi], dtype=np.uint32)
            big_d = int(popcount(m).sum())
            flips = popcount((a[:, idx] ^ fw[p, idx]) & m).sum(axis=1)
        else:
            w_i, b_i = idx // 32, (idx % 32).astype(np.uint32)
            big_d = idx.size
            flips = (((a[:, w_i] ^ fw[p, w_i]) >> b_i) & 1).sum(axis=1).astype(np.int64)
        d[:, c] = d[:, p] + big_d - 2 * flips
    return d


def choose_code(
    fw: np.ndarray,
    kh: int,
    kw: int,
    ic: int,
    chunk: int | None = 64,
    max_depth: int | None = None,
    forest: bool = True,
    encoding: str = "auto",
) -> MstCode:
    """The smaller of the two encodings, each on the forest built for its own costs
    (``forest=False``: on the plain MST, every channel but one per chunk a child);
    ``encoding`` "words" or "bits" forces one."""
    encs = ENCODINGS if encoding == "auto" else (encoding,)
    codes = [encode(fw, build_tree(fw, e, chunk, max_depth, forest), e, kh, kw, ic) for e in encs]
    return min(codes, key=lambda c: c.nbytes())


CHILD_WORD_COST = 1.4  # dense words per word a child touches (issue 13, AVX2 prototype)


def tree_stats(fw: np.ndarray, tree: MstTree, k_bits: int, child_word_cost: float = CHILD_WORD_COST) -> dict:
    """Counts of one tree: roots, depth, mean edge / K, binary-op and word ratios.

    ``est_speedup`` is the kernel-time model of docs/mst.md: a root costs L dense
    words, a child ``child_word_cost`` per word it touches, and each child is
    computed densely instead when that is cheaper (which never affects its children).
    """
    oc, n_words = fw.shape
    child = tree.parent >= 0
    m = fw[child] ^ fw[tree.parent[child]]
    dist = popcount(m).sum(axis=1)
    words = (m != 0).sum(axis=1)
    roots = oc - int(child.sum())
    timed = roots * n_words + np.minimum(n_words, child_word_cost * words).sum()
    return {
        "roots": roots,
        "max_depth": int(tree.depth.max()) if oc else 0,
        "mean_edge_k": float(dist.mean() / k_bits) if dist.size else 0.0,
        "ops_ratio": float((roots * k_bits + dist.sum()) / (oc * k_bits)),
        "words_ratio": float((roots * n_words + words.sum()) / (oc * n_words)),
        "est_speedup": float(oc * n_words / timed),
    }


def layer_stats(
    fw: np.ndarray, kh: int, kw: int, ic: int, chunk: int | None = 64, max_depth: int | None = None
) -> dict:
    """Statistics of a layer (docs/mst.md, "Statistics").

    ``mst``: the plain MST (paper-style: every channel but one per chunk is a
    child) with its mean edge / K, depth, counted binary-op ratio (sum of bits
    touched over OC*K) and words-touched ratio (over OC*L, what SIMD CPUs pay);
    ``speed``: the plain MST on differing words, whose ``est_speedup`` is the
    kernel-time estimate; ``words`` / ``bits``: the size-optimal forest of each
    encoding with its bytes; ``best``: the smaller encoding; bytes are against
    plain packing.
    """
    k_bits = kh * kw * ic
    dense = 4 * fw.size
    out: dict[str, Any] = {"K": k_bits, "OC": fw.shape[0], "dense_bytes": dense}
    out["mst"] = tree_stats(fw, build_tree(fw, "bits", chunk, max_depth, forest=False), k_bits)
    out["speed"] = tree_stats(fw, build_tree(fw, "words", chunk, max_depth, forest=False), k_bits)
    for enc in ENCODINGS:
        tree = build_tree(fw, enc, chunk, max_depth)
        code = encode(fw, tree, enc, kh, kw, ic)
        out[enc] = dict(tree_stats(fw, tree, k_bits), bytes=code.nbytes(), ratio=dense / code.nbytes())
    out["best"] = min(ENCODINGS, key=lambda e: out[e]["bytes"])
    return out


def iter_binary_layers(model: Any) -> Iterator[tuple[int, str, np.ndarray, int, int, int]]:
    """(node index, op name, [OC, L] filters, KH, KW, IC) of every binary conv.

    ``model`` is an ``xnor_edge.reference.ReferenceModel``; bwn_conv2d layers are
    included (their filters compress the same way; their float maths is not
    bit-exact under the identity, see docs/mst.md).
    """
    for n in model.nodes:
        if n.name in ("bconv2d", "bwn_conv2d"):
            kh, kw = n.kernel
            ic = n.in_shape[2]
            yield n.index, n.name, filter_rows(n.params[0], n.out_shape[2], kh, kw, ic), kh, kw, ic


# ------------------------------------------------------------ model files (op 32)

OP_BCONV2D = 3
OP_BCONV2D_MST = 32


def _read_model(data: bytes) -> tuple[tuple, bytes, list[list[int]], list[tuple[int, np.ndarray]]]:
    """Header fields, metadata, node records and params of a model file, checked lightly
    (the full checks are the reference interpreter's and the C loader's)."""
    if data[:8] != b"XNOREDGE" or data[-4:] != b"XEND":
        raise MstFormatError("not an xnor-edge model file")
    if zlib.crc32(data[:-8]) & 0xFFFFFFFF != struct.unpack_from("<I", data, len(data) - 8)[0]:
        raise MstFormatError("checksum mismatch")
    head = struct.unpack_from("<IIQIIIIIIIIQQQQ", data, 8)
    n_nodes, n_params, meta_off, meta_size, nodes_off, params_off = head[8], head[9], *head[11:15]
    meta = data[meta_off : meta_off + meta_size]
    nodes = [list(struct.unpack_from("<16I", data, nodes_off + 64 * i)) for i in range(n_nodes)]
    params = []
    for i in range(n_params):
        dt, _, off, count, _ = struct.unpack_from("<IIQQQ", data, params_off + 32 * i)
        params.append((dt, np.frombuffer(data, dtype="<f4" if dt == 0 else "<u4", count=count, offset=off)))
    return head, meta, nodes, params


def _write_model(
    head: tuple, meta: bytes, nodes: list[list[int]], params: list[tuple[int, np.ndarray]]
) -> bytes:
    """Serialises like ``builder.GraphBuilder.to_bytes`` (same offsets and alignment)."""

    def align(n: int, a: int) -> int:
        return (n + a - 1) // a * a

    nodes_off = align(128 + len(meta) + 1, 8)
    params_off = align(nodes_off + 64 * len(nodes), 8)
    pos = params_off + 32 * len(params)
    table, blobs = [], []
    for dt, arr in params:
        pos = align(pos, 64)
        table.append(struct.pack("<IIQQQ", dt, 0, pos, arr.size, 0))
        blobs.append((pos, np.asarray(arr, dtype="<f4" if dt == 0 else "<u4").tobytes()))
        pos += 4 * arr.size
    size = pos + 8
    buf = bytearray(size)
    fields = list(head)
    fields[2], fields[8], fields[9] = size, len(nodes), len(params)
    fields[11:15] = [128, len(meta), nodes_off, params_off]
    buf[:88] = b"XNOREDGE" + struct.pack("<IIQIIIIIIIIQQQQ", *fields)
    buf[128 : 128 + len(meta)] = meta
    buf[nodes_off : nodes_off + 64 * len(nodes)] = b"".join(struct.pack("<16I", *n) for n in nodes)
    buf[params_off : params_off + 32 * len(table)] = b"".join(table)
    for off, blob in blobs:
        buf[off : off + len(blob)] = blob
    buf[size - 8 :] = struct.pack("<I4s", zlib.crc32(bytes(buf[: size - 8])) & 0xFFFFFFFF, b"XEND")
    return bytes(buf)


def _rewrite(data: bytes, convert) -> bytes:
    """Rebuilds a model file, passing each node and its params through ``convert``."""
    head, meta, nodes, params = _read_model(data)
    in_c = [head[7]]  # value id -> channels
    new_nodes, new_params = [], []
    for rec in nodes:
        first, count = rec[13], rec[14]
        ps = params[first : first + count] if count else []
        rec, ps = convert(list(rec), list(ps), in_c[rec[2]])
        rec[13], rec[14] = (len(new_params) if ps else 0), len(ps)
        new_params.extend(ps)
        new_nodes.append(rec)
        in_c.append(rec[10] if rec[10] else in_c[rec[2]])
    if head[4] & 1:  # the uint8 input table (docs/format.md), referenced by the header: kept, last
        new_params.append(params[head[10]])
        head = (*head[:10], len(new_params) - 1, *head[11:])
    return _write_model(head, meta, new_nodes, new_params)


def compress_model(
    data: bytes,
    chunk: int | None = 64,
    max_depth: int | None = None,
    min_ratio: float = 1.0,
    forest: bool = True,
    encoding: str = "auto",
) -> tuple[bytes, list[dict]]:
    """Rewrites every bconv2d whose MST code is smaller than plain packing by more than
    ``min_ratio`` as a bconv2d_mst node (docs/mst.md; lossless). Returns the new file
    and one record per bconv2d. For kernel tests, ``min_ratio=0`` converts every
    bconv2d and ``forest=False`` codes the plain MST (a child for all channels but one
    per chunk, however large the code). Each record: node, oc, K, encoding, roots,
    ratio (plain bytes / code bytes), bytes_before/after, mean_d (mean child distance
    / K), ops_ratio (counted binary ops / dense), converted."""
    report: list[dict] = []
    node = iter(range(1 << 30))

    def convert(rec, ps, ic):
        index = next(node)
        if rec[0] != OP_BCONV2D:
            return rec, ps
        oc, kh, kw = rec[10], rec[4], rec[5]
        fw = filter_rows(ps[0][1], oc, kh, kw, ic)
        code = choose_code(fw, kh, kw, ic, chunk, max_depth, forest, encoding)
        ratio = 4 * fw.size / code.nbytes()
        rec_ = dict(node=index, oc=oc, K=kh * kw * ic, bytes_before=4 * fw.size, ratio=ratio)
        rec_.update(code_stats(code))
        rec_["converted"] = not (ratio <= min_ratio and min_ratio > 0)
        report.append(rec_)
        if not rec_["converted"]:
            return rec, ps
        rec[0] = OP_BCONV2D_MST
        return rec, [(1, a) for a in to_params(code)] + ps[1:]

    return _rewrite(data, convert), report


def code_stats(code: MstCode) -> dict:
    """encoding, roots, children, depth, bytes, mean child distance / K and the counted
    binary-ops ratio (roots cost K, a child D) of a code."""
    k = code.kh * code.kw * code.ic
    if code.encoding == "words":
        dist = popcount(np.asarray(code.mask, dtype=np.uint32)).sum() if code.mask.size else 0
    else:
        dist = code.index.size
    roots = int(code.roots.shape[0])
    kids = code.oc - roots
    depth = np.zeros(code.oc, dtype=np.int64)
    for c in code.order:
        p = code.parent[c]
        depth[c] = 0 if p == NO_PARENT else depth[p] + 1
    return {
        "encoding": code.encoding,
        "roots": roots,
        "children": kids,
        "depth": int(depth.max()) if code.oc else 0,
        "bytes_after": code.nbytes(),
        "mean_d": float(dist) / (kids * k) if kids else 0.0,
        "ops_ratio": (roots * k + float(dist)) / (code.oc * k),
    }


def coded_layers(data: bytes) -> list[dict]:
    """``code_stats`` (plus node, oc, K, bytes_before) of every bconv2d_mst node of a file."""
    head, _, nodes, params = _read_model(data)
    in_c, out = [head[7]], []
    for i, rec in enumerate(nodes):
        ic = in_c[rec[2]]
        in_c.append(rec[10] if rec[10] else ic)
        if rec[0] != OP_BCONV2D_MST:
            continue
        oc, kh, kw = rec[10], rec[4], rec[5]
        code = from_params([a for _, a in params[rec[13] : rec[13] + 5]], oc, kh, kw, ic)
        r = dict(node=i, oc=oc, K=kh * kw * ic, bytes_before=4 * oc * code.n_words)
        out.append(dict(r, **code_stats(code)))
    return out


def decompress_model(data: bytes) -> bytes:
    """Rewrites every bconv2d_mst node as the bconv2d it encodes (validated, docs/mst.md)."""

    def convert(rec, ps, ic):
        if rec[0] != OP_BCONV2D_MST:
            return rec, ps
        if len(ps) != 7:
            raise MstFormatError("bconv2d_mst: param_count is not 7")
        oc, kh, kw = rec[10], rec[4], rec[5]
        code = from_params([a for _, a in ps[:5]], oc, kh, kw, ic)
        rec[0] = OP_BCONV2D
        return rec, [(1, validate(code).reshape(-1))] + ps[5:]

    return _rewrite(data, convert)
