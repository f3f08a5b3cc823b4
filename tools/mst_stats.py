"""MST statistics of every binary convolution of model files (issue 13, docs/mst.md).

    python tools/mst_stats.py models/*.xnor [--depth none,16,8] [--chunk 64] [--json OUT]

Per layer and depth bound, a markdown table row:
  MST columns: the plain minimum spanning tree per chunk (the paper's tree): mean edge
  over K (K = KH*KW*IC weight bits), deepest channel, counted binary-op ratio (bits
  touched: K per root plus D per child, over OC*K). Words columns, on the MST over
  differing words: words-touched ratio (32-bit words a SIMD kernel reads: L per root
  plus differing words per child, over OC*L) and the estimated kernel speed-up when a
  child costs 1.4 dense words per word it touches (issue 13's AVX2 prototype) and is
  computed densely when that is cheaper.
  "random D/K" is the same MST over uniformly random filters of the layer's shape, the
  baseline that says how much closer training made the filters than chance.
  Forest columns: the size-optimal forest of the smaller encoding (docs/mst.md): its
  encoding, roots, and the plain bit-packed weight bytes over the op's MST param bytes
  (> 1 means smaller). The "all" rows weight layers by their work, positions*OC*K
  (the speed-up as a harmonic mean), and add up bytes.
bwn_conv2d layers are listed (the storage compresses the same way) and marked; the bit
exact identity is for bconv2d.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from xnor_edge import mst
from xnor_edge.reference import ReferenceModel


def _bounds(text: str) -> list[int | None]:
    out: list[int | None] = []
    for part in text.split(","):
        out.append(None if part.strip().lower() == "none" else int(part))
    return out


def model_rows(path: Path, bounds: list[int | None], chunk: int | None) -> list[dict]:
    rows = []
    ref = ReferenceModel.from_file(path)
    rng = np.random.default_rng(0)
    for index, op, fw, kh, kw, ic in mst.iter_binary_layers(ref):
        noise = rng.integers(0, 2**32, fw.shape, dtype=np.uint64).astype(np.uint32)
        noise &= mst.real_bit_mask(kh, kw, ic)
        for bound in bounds:
            s = mst.layer_stats(fw, kh, kw, ic, chunk, bound)
            rand = mst.tree_stats(noise, mst.build_tree(noise, "bits", chunk, bound, forest=False), s["K"])
            best = s[s["best"]]
            rows.append(
                {
                    "model": path.name,
                    "node": index,
                    "op": op,
                    "oc": int(fw.shape[0]),
                    "positions": int(ref.nodes[index].out_shape[0] * ref.nodes[index].out_shape[1]),
                    "K": s["K"],
                    "bound": bound,
                    "mst_mean_edge_k": s["mst"]["mean_edge_k"],
                    "random_mean_edge_k": rand["mean_edge_k"],
                    "mst_depth": s["mst"]["max_depth"],
                    "mst_ops_ratio": s["mst"]["ops_ratio"],
                    "mst_words_ratio": s["mst"]["words_ratio"],
                    "word_tree_words_ratio": s["speed"]["words_ratio"],
                    "est_speedup": s["speed"]["est_speedup"],
                    "encoding": s["best"],
                    "forest_roots": best["roots"],
                    "dense_bytes": s["dense_bytes"],
                    "mst_bytes": best["bytes"],
                    "storage_ratio": best["ratio"],
                }
            )
    return rows


def _summary(rows: list[dict]) -> dict:
    """Whole-model figures: weighted by each layer's work (positions*OC*K) or bytes."""
    w = np.array([r["positions"] * r["oc"] * r["K"] for r in rows], dtype=np.float64)
    return {
        "mean_edge_k": float(np.average([r["mst_mean_edge_k"] for r in rows], weights=w)),
        "random_mean_edge_k": float(np.average([r["random_mean_edge_k"] for r in rows], weights=w)),
        "ops_ratio": float(np.average([r["mst_ops_ratio"] for r in rows], weights=w)),
        "words_ratio": float(np.average([r["word_tree_words_ratio"] for r in rows], weights=w)),
        "est_speedup": float(w.sum() / np.sum(w / np.array([r["est_speedup"] for r in rows]))),
        "storage_ratio": sum(r["dense_bytes"] for r in rows) / sum(r["mst_bytes"] for r in rows),
        "max_depth": max(r["mst_depth"] for r in rows),
    }


def print_table(rows: list[dict], bounds: list[int | None], out=sys.stdout) -> None:
    head = (
        "| node | op | OC x K | depth bound | MST mean D/K | random D/K | MST depth | ops ratio "
        "| words ratio | est. speed | forest enc | roots | storage x |"
    )
    for model in dict.fromkeys(r["model"] for r in rows):
        print(f"\n### {model}\n", file=out)
        print(head, file=out)
        print("|" + "---|" * 13, file=out)
        mine = [r for r in rows if r["model"] == model]
        for r in mine:
            op = "bwn" if r["op"] == "bwn_conv2d" else "xnor"
            bound = "none" if r["bound"] is None else r["bound"]
            print(
                f"| {r['node']} | {op} | {r['oc']} x {r['K']} | {bound} | {r['mst_mean_edge_k']:.3f} "
                f"| {r['random_mean_edge_k']:.3f} | {r['mst_depth']} | {r['mst_ops_ratio']:.3f} "
                f"| {r['word_tree_words_ratio']:.3f} | {r['est_speedup']:.2f} "
                f"| {r['encoding']} | {r['forest_roots']}/{r['oc']} | {r['storage_ratio']:.3f} |",
                file=out,
            )
        for bound in bounds:
            s = _summary([r for r in mine if r["bound"] == bound])
            name = "none" if bound is None else bound
            print(
                f"| all | | | {name} | {s['mean_edge_k']:.3f} "
                f"| {s['random_mean_edge_k']:.3f} | {s['max_depth']} | {s['ops_ratio']:.3f} "
                f"| {s['words_ratio']:.3f} | {s['est_speedup']:.2f} | | | {s['storage_ratio']:.3f} |",
                file=out,
            )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+", type=Path)
    p.add_argument("--depth", default="none,16,8", help="comma-separated depth bounds ('none' = unbounded)")
    p.add_argument("--chunk", type=int, default=64, help="output channels per chunk (0 = whole layer)")
    p.add_argument("--json", type=Path, help="also write every row to this JSON file")
    args = p.parse_args(argv)
    bounds = _bounds(args.depth)
    rows = []
    for path in args.models:
        rows += model_rows(path, bounds, args.chunk or None)
    print(f"chunk = {args.chunk or 'whole layer'} output channels")
    print_table(rows, bounds)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
