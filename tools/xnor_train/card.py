"""Measure a shipped model and write its model card (models/<name>.md).

    python -m xnor_train.card RUN/best.pt models/NAME.xnor --data mnist --data-path DATA/mnist

Every figure in the card is measured here: top-1 of the C runtime on the whole test
set, parity with PyTorch, file size against the float counterpart, and single-image
latency (median of repeated runs, 1 thread) on the machine running this command.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

from .data import load_dataset
from .evaluate import Runner, model_inputs, read_metadata, run_all, run_files
from .export import export_model, load_checkpoint, size_report
from .models import build_model
from .parity import compare, torch_logits


def float_counterpart_bytes(model, ck) -> int:
    """File size of the same architecture exported with float convolutions."""
    cfg = dict(ck["config"], variant="float")
    fm = build_model(cfg).eval()
    ref = fm.state_dict()
    fm.load_state_dict(
        {k: v for k, v in model.state_dict().items() if k in ref and ref[k].shape == v.shape}, strict=False
    )
    h, w = ck["data"]["input_size"]
    return len(export_model(fm, (h, w, cfg["in_ch"]), {}).to_bytes())


def latency_ms(runner: Runner, x: np.ndarray, reps: int = 200) -> dict:
    xi = x[0]
    for _ in range(10):
        runner.model.run(xi)
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        runner.model.run(xi)
        ts.append(time.perf_counter() - t0)
    ts = np.sort(np.asarray(ts)) * 1000
    return {
        "median_ms": round(float(np.median(ts)), 3),
        "p10_ms": round(float(ts[len(ts) // 10]), 3),
        "reps": reps,
    }


def _pct(acc) -> str:
    """A test accuracy for the card; None where that epoch was not evaluated (--eval-every)."""
    return "not measured" if acc is None else f"{acc * 100:.2f}%"


def init_chain(ck: dict) -> list[dict]:
    """The runs a checkpoint was started from (--init), nearest first. Each level records
    the one before it; for checkpoints written before that was recorded, the level is read
    from the initialising checkpoint itself when it is still on disk."""
    chain, seen = [], set()
    level = ck.get("init")
    while level and level.get("path") not in seen and len(chain) < 16:
        chain.append(level)
        seen.add(level.get("path"))
        if "init" in level:
            level = level["init"]
            continue
        src = Path(str(level.get("path", ""))).expanduser()
        level = torch.load(src, map_location="cpu", weights_only=False).get("init") if src.is_file() else None
    return chain


def mst_lines(ck: dict) -> list[str]:
    """The MST regulariser's options and per-epoch tree distances (issue 13), if the run had
    it on; an --init-xnor start is named too."""
    out = []
    init = ck.get("init") or {}
    if init.get("kind") == "xnor":
        out += [
            f"Fine-tuned from the shipped file `{Path(str(init['path'])).name}` (`--init-xnor`; "
            f"{init.get('calibration_images')} training images re-estimated its batch-norm "
            f"statistics; latent weights {'sign * alpha' if init.get('latent') is None else 'sign * ' + str(init['latent'])}).",  # noqa: E501
            "",
        ]
    if ck.get("freeze_float"):
        out += [
            "Only the binary layers' latent weights were trained (`--freeze-float`): float layers, "
            "batch-norm affine and statistics (eval mode), alpha and biases kept as they started.",
            "",
        ]
    if ck.get("freeze_latent"):
        out += [
            "The binary layers' latent weights (every sign) were kept as they started "
            "(`--freeze-latent`); only the float parameters trained.",
            "",
        ]
    m = ck.get("mst")
    if not m or not m.get("lambda"):
        return out
    dist = ", ".join(
        f"{h['epoch']}: {h['mst']['mean_edge_k']:.4f} / {h['mst']['words_ratio']:.3f}"
        for h in ck.get("history", [])
        if h.get("mst") and h["mst"].get("mean_edge_k") is not None
    )
    return out + [
        f"MST regulariser (docs/mst.md): lambda {m['lambda']}, variant {m['variant']}, ramp "
        f"{m['ramp_epochs']} epochs, trees rebuilt every epoch"
        + (f" and every {m['rebuild_steps']} steps" if m.get("rebuild_steps") else "")
        + (", each layer's pull scaled to lambda x its task gradient" if m.get("layer_norm") else "")
        + (f", the first {m['skip_layers']} binary convolutions unpenalised" if m.get("skip_layers") else "")
        + f", frozen for the last {m['freeze_epochs']} epoch(s); chunk {m['chunk']}, depth bound "
        f"{m['max_depth']}. Plain-MST mean D/K / words differing (layer means) per epoch: {dist}.",
        "",
    ]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m xnor_train.card", description=__doc__.split("\n")[0])
    p.add_argument("checkpoint")
    p.add_argument("model")
    p.add_argument("--data", required=True)
    p.add_argument("--data-path", default=None)
    p.add_argument("--out", default=None, help="card path (default: MODEL with .md)")
    p.add_argument("--title", default=None)
    p.add_argument("--notes", default="", help="extra paragraph (honest status, floors, next steps)")
    p.add_argument("--json", default=None, help="also write the measurements as JSON here")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    meta = read_metadata(args.model)
    model, ck = load_checkpoint(args.checkpoint)
    ds = load_dataset(args.data, args.data_path, meta["input_size"][0])
    x = model_inputs(meta, ds)
    runner = Runner(args.model, "c", 1)
    rt, secs = run_all(runner, x)
    t32, t64 = torch_logits(model, x), torch_logits(model, x, dtype=torch.float64)
    par, par64 = compare(rt, t32, ds.y_test), compare(rt, t64, ds.y_test)
    # PyTorch's own float32 against float64: how much of the C-vs-f32 gap is f32 rounding.
    torch64 = compare(t32, t64)
    lat = latency_ms(runner, x)
    files_top1 = None
    if meta.get("resize") and ds.test_files is not None:  # photos: the package resizes them itself
        fl, fy, _ = run_files(args.model, ds, None, 1)
        files_top1 = float((fl.argmax(1) == fy).mean())
    import xnor_edge

    isa = xnor_edge.kernel_isa() if hasattr(xnor_edge, "kernel_isa") else "unknown"
    size = size_report(model)
    fbytes = float_counterpart_bytes(model, ck)
    mbytes = Path(args.model).stat().st_size
    cfg = ck["config"]
    hist = ck.get("history", [])
    chain = init_chain(ck)
    res = dict(
        parity=par,
        parity_float64=par64,
        torch_float32_vs_float64=torch64,
        latency=lat,
        isa=str(isa),
        cpu=platform.processor() or platform.machine(),
        size=size,
        file_bytes=mbytes,
        float_file_bytes=fbytes,
        eval_seconds=round(secs, 2),
        top1_from_files=files_top1,
    )
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    title = args.title or meta.get("name", Path(args.model).stem)
    data_name = {
        "cifar10": "CIFAR-10 (JPEG q75)",
        "mnist": "MNIST",
        "fashion-mnist": "Fashion-MNIST",
        "imagenette": "Imagenette",
    }.get(ds.name, ds.name)
    lines = [
        f"# {title}",
        "",
        f"`{Path(args.model).name}`: {cfg['arch']} (width {cfg['width']}), variant **{cfg['variant']}**, "
        f"{'B-A-C-P' if cfg['order'] == 'bacp' else 'C-B-A-P'} blocks, alpha {cfg['alpha_mode']}, "
        f"{cfg['pad_mode']} padding; float first and last layers.",
        "",
        "| | |",
        "|---|---|",
        f"| data | {data_name}, trained on {ck['data']['n_train']} images, tested on {len(ds.y_test)} |",
        f"| input | {meta['input_size'][0]}x{meta['input_size'][1]} {meta['color_order']}, "
        f"(x/255 - mean)/std, mean {meta['mean']}, std {meta['std']}"
        + (f", resize {meta['resize']} + centre crop" if meta.get("resize") else "")
        + " |",
        f"| **top-1, C runtime, full test set** | **{par['top1_runtime'] * 100:.2f}%** ({par['n']} images) |",
        f"| top-1, PyTorch eval | {par['top1_torch'] * 100:.2f}% |",
        *(
            [
                f"| top-1, original files through `Model.preprocess` (OpenCV resize) | "
                f"{files_top1 * 100:.2f}% (`evaluate --from-files`; the rows above use the training "
                "pipeline's PIL resize) |"
            ]
            if files_top1 is not None
            else []
        ),
        f"| parity C vs PyTorch | top-1 agreement {par['top1_agreement'] * 100:.2f}%, "
        f"max abs logit diff {par['max_abs_logit_diff']:.3g}, mean {par['mean_abs_logit_diff']:.3g} "
        f"(logit range {par['logit_range']:.3g}) |",
        f"| parity C vs PyTorch float64 | top-1 agreement {par64['top1_agreement'] * 100:.2f}%, "
        f"max abs logit diff {par64['max_abs_logit_diff']:.3g}, mean {par64['mean_abs_logit_diff']:.3g} |",
        f"| PyTorch float32 vs PyTorch float64 (no runtime) | top-1 agreement "
        f"{torch64['top1_agreement'] * 100:.2f}%, max abs logit diff {torch64['max_abs_logit_diff']:.3g} |",
        f"| epochs, training wall time | {ck.get('epoch')} epochs, {ck.get('wall_s', 0) / 60:.1f} min on "
        f"{ck.get('device')} ({ck['args'].get('threads') or 'default'} thread(s), "
        "shared 2-core x86 machine)"
        + "".join(
            f"; plus the {r['variant']} run {'it' if k == 0 else 'that one'} started from: "
            f"{r['epochs']} epochs, {r['wall_s'] / 60:.1f} min"
            for k, r in enumerate(chain)
        )
        + " |",
        f"| file size | {mbytes / 1024:.1f} KiB; float counterpart {fbytes / 1024:.1f} KiB "
        f"({fbytes / mbytes:.1f}x larger) |",
        (
            f"| binary layers | {size['binary_layers_float32_bytes'] / 1024:.1f} KiB as float32 -> "
            f"{size['binary_layers_packed_bytes'] / 1024:.1f} KiB packed (weights + scale + bias), "
            f"**{size['binary_layers_ratio']}x** |"
            if size["binary_layers_ratio"]
            else "| binary layers | none (every layer is float) |"
        ),
        f"| latency (1 image, 1 thread) | median {lat['median_ms']} ms, p10 {lat['p10_ms']} ms over "
        f"{lat['reps']} runs, kernels `{isa}`, {res['cpu']} (this dev machine, shared; not a Pi) |",
        "",
        "Training command(s) as run (a second line is a "
        "`--resume`, which recomputes the learning-rate schedule for its `--epochs`):",
        "",
        "```",
        *[str(c) for c in ck.get("commands", [ck.get("command")])],
        "```",
        "",
        *[
            line
            for k, r in enumerate(chain)
            for line in (
                f"{'It' if k == 0 else 'That run, in turn,'} started (`--init`) from the weights of a "
                f"{r['variant']} run of the same network ({r['epochs']} epochs, test top-1 "
                f"{_pct(r['test_acc'])}), trained by:",
                "",
                "```",
                *[str(c) for c in r["commands"]],
                "```",
                "",
            )
        ],
        *(
            [
                "Trained with knowledge distillation (`--distill`, weight "
                f"{ck['args'].get('distill_weight')}, temperature {ck['args'].get('distill_temp')}) "
                f"from a {t['variant']} {t['arch']} of width "
                f"{t['width']} ({t['epochs']} epochs, {t['wall_s'] / 60:.1f} min, test top-1 "
                f"{_pct(t['test_acc'])}), trained by:",
                "",
                "```",
                *[str(c) for c in t["commands"]],
                "```",
                "",
            ]
            if (t := ck.get("teacher"))
            else []
        ),
        *mst_lines(ck),
        "Test top-1 (PyTorch) per epoch: "
        + ", ".join(f"{h['epoch']}: {h['test_acc'] * 100:.2f}" for h in hist if h["test_acc"] is not None)
        + ". "
        + f"The shipped weights are those after epoch {ck.get('epoch')}"
        + (
            " (the end of the schedule; no selection on the test set)."
            if ck.get("epoch") == ck["args"].get("epochs")
            else " (stopped before the end of the schedule)."
        ),
        "",
        "Reproduce the measurements:",
        "",
        "```",
        f"python -m xnor_train.export {args.checkpoint} {args.model}"
        + (f" --name {shlex.quote(meta['name'])}" if meta.get("name") else ""),
        f"python -m xnor_train.card {args.checkpoint} {args.model} --data {args.data}"
        + (f" --data-path {shlex.quote(args.data_path)}" if args.data_path else ""),
        "```",
        "",
    ]
    if args.notes:
        lines += [args.notes, ""]
    out = Path(args.out) if args.out else Path(args.model).with_suffix(".md")
    out.write_text("\n".join(lines).replace(str(Path.home()), "~"))
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
