"""Measure the MST sweep's runs (issue 13; docs/mst.md section 9).

    python tools/mst_sweep_eval.py RUN_DIR [RUN_DIR ...] --data cifar10|imagenette --data-path PATH \
        [--baseline models/cifar10-vggsmall-xnor.xnor] [--rounds 15] [--pause PID] [--json OUT]

Per run (its last.pt) and for the baseline file: export to RUN_DIR/model.xnor; top-1 of
the C runtime on the whole test set; ``xnor-edge compress``'s coding (size-optimal
forest, chunk 64, the smaller encoding per layer, a layer kept as bconv2d when its code
is not smaller) to RUN_DIR/model-mst.xnor (the baseline: a temporary folder), whose logits
must be bit-identical to the
uncompressed file's on the whole test set; the plain MST's mean distance / K (the
paper's tree; layers weighted by their work, positions*OC*K); the binary layers' weight
bytes, plain bit-packing over the coded form; the counted binary ops ratio of the coded
model (roots K, children D, kept layers K per channel; work-weighted); and speed:
whole model and the binary layers' node times, uncompressed vs compressed, at 1 and 2
threads, one image per run, in interleaved rounds (each round times every
(file, threads) session on the same image, in a shuffled order), medians over rounds.

--pause PID (repeatable) sends SIGSTOP to that process (a training run) for the timing and SIGCONT
after, so the timing does not compete with it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_peers import cpu_report

import xnor_edge
from xnor_edge import mst
from xnor_edge.reference import ReferenceModel


def logits(path: Path, x: np.ndarray) -> np.ndarray:
    with xnor_edge.load(str(path), num_threads=1) as m:
        return np.stack([np.asarray(m.run(xi)).reshape(-1) for xi in x])


def tree_figures(data: bytes, coded: bytes, report: list[dict]) -> dict:
    """Plain-MST mean D/K, binary weight bytes before/after and the counted ops ratio."""
    ref = ReferenceModel(data)
    work, dk, ops, before, after = [], [], [], 0, 0
    by_node = {r["node"]: r for r in report}
    for idx, name, fw, kh, kw, ic in mst.iter_binary_layers(ref):
        if name != "bconv2d":
            continue
        n = ref.nodes[idx]
        oh, ow, oc = n.out_shape
        k = kh * kw * ic
        tree = mst.build_tree(fw, "bits", 64, None, forest=False)
        dk.append(mst.tree_stats(fw, tree, k)["mean_edge_k"])
        work.append(oh * ow * oc * k)
        r = by_node[idx]
        ops.append(r["ops_ratio"] if r["converted"] else 1.0)
        before += r["bytes_before"]
        after += r["bytes_after"] if r["converted"] else r["bytes_before"]
    w = np.asarray(work, dtype=np.float64) / np.sum(work)
    return {
        "mean_d_k": float(np.dot(w, dk)),
        "ops_ratio": float(np.dot(w, ops)),
        "weight_bytes_plain": before,
        "weight_bytes_coded": after,
        "size_ratio": before / after,
        "converted_layers": sum(r["converted"] for r in report),
        "layers": len(report),
    }


def timing(paths: list[Path], x: np.ndarray, rounds: int, reps: int = 20) -> dict:
    """Median (over rounds) whole-run ms and binary-layer node ms per (file, threads)."""
    models = [xnor_edge.load(str(p)) for p in paths]
    binary = [[i for i, n in enumerate(ReferenceModel.from_file(p).nodes) if n.name.startswith("bconv2d")]
              for p in paths]  # fmt: skip
    keys = [(k, t) for k in range(len(paths)) for t in (1, 2)]
    sess = {(k, t): models[k].session(t) for k, t in keys}
    whole = {key: [] for key in keys}
    layers = {key: [] for key in keys}
    try:
        for s in sess.values():
            for _ in range(5):
                s.run(x)
        order = np.random.default_rng(13)
        for _ in range(rounds):
            for key in order.permutation(len(keys)):
                key = keys[key]
                s = sess[key]
                ts, ls = [], []
                for _ in range(reps):
                    t0 = time.perf_counter()
                    s.run(x)
                    ts.append(time.perf_counter() - t0)
                    nt = s.node_times_ns()
                    ls.append(sum(nt[i] for i in binary[key[0]]) / 1e6)
                whole[key].append(float(np.median(ts)) * 1e3)
                layers[key].append(float(np.median(ls)))
    finally:
        for s in sess.values():
            s.close()
        for m in models:
            m.close()
    out = {}
    for t in (1, 2):
        w0, w1 = np.median(whole[(0, t)]), np.median(whole[(1, t)])
        l0, l1 = np.median(layers[(0, t)]), np.median(layers[(1, t)])
        out[f"t{t}"] = {
            "model_ms": [round(float(w0), 4), round(float(w1), 4)],
            "model_speedup": round(float(w0 / w1), 3),
            "layers_ms": [round(float(l0), 4), round(float(l1), 4)],
            "layers_speedup": round(float(l0 / l1), 3),
        }
    return out


def measure(src: Path, dst: Path, x: np.ndarray, y: np.ndarray, rounds: int, pause: list[int] | None) -> dict:
    data = src.read_bytes()
    coded, report = mst.compress_model(data, chunk=64, max_depth=None, min_ratio=1.0, forest=True)
    dst.write_bytes(coded)
    a, b = logits(src, x), logits(dst, x)
    res = {
        "model": str(src),
        "top1": float((a.argmax(1) == y).mean()),
        "n_test": int(len(y)),
        "bit_identical": bool(a.tobytes() == b.tobytes()),
        **tree_figures(data, coded, report),
    }
    _signal(pause, signal.SIGSTOP)
    try:
        res["speed"] = timing([src, dst], x[0], rounds)
    finally:
        _signal(pause, signal.SIGCONT)
    return res


def _signal(pids: list[int] | None, sig: int) -> None:
    """--pause: a training run that has ended in the meantime is no error."""
    for pid in pids or ():
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def table(path: str) -> str:
    """The markdown results table of a --json file (docs/mst.md section 9)."""
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    n = sorted({r["n_test"] for r in rows})
    n_test = "/".join("10k" if k == 10000 else str(k) for k in n)  # CIFAR-10: 10k; Imagenette: 3925
    out = [
        "| lambda | variant | pull | seed | latent | lr | ramp | floats | fine-tune | time | "
        f"top-1 (C, {n_test}) | bit-identical | "
        "mean D/K | size vs packing | ops ratio | layers 1 thr | model 1 thr | layers 2 thr | model 2 thr |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        m = r.get("mst")
        lam, var = (m["lambda"], m["variant"]) if m else ("shipped", "-")
        tune = f"{r['epochs']} x {r['images']} img" if m else "-"
        cmd = (r.get("command") or "").split()
        latent = cmd[cmd.index("--init-latent") + 1] if "--init-latent" in cmd else "-"
        lr = cmd[cmd.index("--lr") + 1] if "--lr" in cmd else "-"
        ramp = f"{m.get('ramp_epochs', 0):g}" if m else "-"
        floats = ("frozen" if "--freeze-float" in cmd else "trained") if m else "-"
        seed = cmd[cmd.index("--seed") + 1] if "--seed" in cmd else "-"
        pull = "-"
        if m:  # one lambda for every layer, balanced per layer (--mst-layer-norm), first N skipped
            pull = ("balanced" if m.get("layer_norm") else "plain") + (
                f", skip {m['skip_layers']}" if m.get("skip_layers") else ""
            )
        t = f"{r['wall_s'] / 60:.1f} min" if m else "-"
        sp = r["speed"]
        out.append(
            f"| {lam} | {var} | {pull} | {seed} | {latent} | {lr} | {ramp} | {floats} | {tune} | {t} | "
            f"{r['top1'] * 100:.2f}% | "
            f"{'yes' if r['bit_identical'] else 'NO'} | "
            f"{r['mean_d_k']:.4f} | {r['size_ratio']:.2f}x | {r['ops_ratio']:.3f} | "
            f"{sp['t1']['layers_speedup']:.2f}x | {sp['t1']['model_speedup']:.2f}x | "
            f"{sp['t2']['layers_speedup']:.2f}x | {sp['t2']['model_speedup']:.2f}x |"
        )
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="*", help="run directories (their last.pt)")
    p.add_argument("--data", default="cifar10")
    p.add_argument("--data-path", default=None)
    p.add_argument("--baseline", default=None, help="also measure this model file as it is")
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument(
        "--pause", type=int, action="append", default=None, help="SIGSTOP this pid while timing (repeatable)"
    )
    p.add_argument("--json", default=None, help="append one JSON line per run here")
    p.add_argument("--table", default=None, metavar="JSON", help="print the markdown table of a --json file")
    args = p.parse_args(argv)
    if args.table:
        print(table(args.table))
        return 0
    from xnor_train.evaluate import load_test_inputs
    from xnor_train.export import export_model, load_checkpoint, metadata_for

    targets = []
    if args.baseline:
        targets.append((Path(args.baseline), None))
    for r in args.runs:
        run = Path(r)
        model, ck = load_checkpoint(run / "last.pt")
        out = run / "model.xnor"
        h, w = ck["data"]["input_size"]
        export_model(model, (h, w, ck["config"]["in_ch"]), metadata_for(ck, run.name)).save(out)
        targets.append((out, ck))
    x = y = None
    tmp = tempfile.mkdtemp()
    for path, ck in targets:
        if x is None:
            _, _, x, y = load_test_inputs(str(path), args.data, args.data_path, None)
        dst = path.with_name(path.stem + "-mst.xnor") if ck is not None else Path(tmp) / "baseline-mst.xnor"
        res = measure(path, dst, x, y, args.rounds, args.pause)
        res["cpu"] = cpu_report()["model"]
        if ck is not None:
            res.update(mst=ck.get("mst"), epochs=ck.get("epoch"), wall_s=ck.get("wall_s"),
                       images=ck["data"]["n_train"], command=ck.get("command"))  # fmt: skip
        print(json.dumps(res), flush=True)
        if args.json:
            with open(args.json, "a") as f:
                f.write(json.dumps(res) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
