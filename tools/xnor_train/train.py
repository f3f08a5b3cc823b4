"""Train a binary network (paper Algorithm 1: real weights kept, binarised forward).

    PYTHONPATH=tools python -m xnor_train.train --data mnist --arch digits --variant xnor \
        --epochs 10 --optimizer adam --lr 1e-3 --out ~/.cache/xnor-edge/runs/mnist-xnor

Writes into --out: train.log, metrics.jsonl, last.pt (every epoch, for --resume)
and best.pt (best test top-1).  Runs on CPU or CUDA (--device).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from .data import DataError, Dataset, augment_batch, load_dataset, normalise, subset_indices
from .models import ARCHS, VARIANTS, build_model

DEFAULT_ARCH = {
    "mnist": "digits",
    "fashion-mnist": "digits",
    "cifar10": "vgg-small",
    "imagenette": "resnet18",
    "folder": "resnet18",
}


class Logger:
    def __init__(self, path: Path):
        self.f = open(path, "a", encoding="utf-8")

    def __call__(self, msg: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {msg}"
        print(line, flush=True)
        self.f.write(line + "\n")
        self.f.flush()


def _progress(total: int, desc: str):
    """tqdm if installed, else a plain printer every ~10%."""
    try:
        from tqdm import tqdm

        if sys.stderr.isatty():
            return tqdm(total=total, desc=desc, leave=False)
    except ImportError:
        pass

    class Plain:
        def __init__(self):
            self.n, self.step, self.t0, self.post = 0, max(1, total // 10), time.time(), ""

        def set_postfix_str(self, s):
            self.post = s

        def update(self, k=1):
            self.n += k
            if self.n % self.step == 0 or self.n == total:
                print(f"  {desc} {self.n}/{total} {self.post} ({time.time() - self.t0:.0f}s)", flush=True)

        def close(self):
            pass

    return Plain()


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda requested but torch.cuda.is_available() is False")
    return torch.device(name)


@torch.no_grad()
def evaluate_torch(
    model: nn.Module, ds: Dataset, device: torch.device, batch_size: int = 500, return_logits: bool = False
):
    """Top-1 of the model in eval mode on the (centre-cropped) test set."""
    model.eval()
    x = torch.from_numpy(ds.x_test)
    y = torch.from_numpy(ds.y_test)
    correct, outs = 0, []
    for i in range(0, len(x), batch_size):
        xb = normalise(x[i : i + batch_size].to(device), ds.mean, ds.std)
        out = model(xb).float()
        correct += (out.argmax(1).cpu() == y[i : i + batch_size]).sum().item()
        if return_logits:
            outs.append(out.cpu())
    acc = correct / len(x)
    return (acc, torch.cat(outs).numpy()) if return_logits else acc


def make_optimizer(args, model):
    decay, no_decay = [], []
    for p in model.parameters():
        (no_decay if p.dim() <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if args.optimizer == "adam":
        return torch.optim.Adam(groups, lr=args.lr)
    return torch.optim.SGD(groups, lr=args.lr, momentum=0.9, nesterov=True)


def lr_factor(args, step: int, total_steps: int, steps_per_epoch: int) -> float:
    warm = args.warmup_epochs * steps_per_epoch
    if warm and step < warm:
        return (step + 1) / warm
    if args.schedule == "cosine":
        t = (step - warm) / max(1, total_steps - warm)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
    return 0.1 ** ((step // steps_per_epoch) // args.step_epochs)


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m xnor_train.train", description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, choices=sorted(DEFAULT_ARCH))
    p.add_argument("--data-path", default=None, help="data folder/archive (default ../shared/data/...)")
    p.add_argument("--arch", choices=ARCHS, default=None, help="default depends on --data")
    p.add_argument("--variant", choices=VARIANTS, default="xnor")
    p.add_argument("--width", type=int, default=None, help="base channel width")
    p.add_argument("--order", choices=("bacp", "cbap"), default="bacp")
    p.add_argument("--alpha-mode", choices=("mean", "learned"), default="mean")
    p.add_argument("--pad-mode", choices=("zero", "one"), default="zero")
    p.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="crop size for imagenette (default 128) and folder (default 96)",
    )
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--optimizer", choices=("sgd", "adam"), default="adam")
    p.add_argument("--lr", type=float, default=None, help="default 1e-3 adam, 0.1 sgd")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--schedule", choices=("cosine", "step"), default="cosine")
    p.add_argument("--step-epochs", type=int, default=4, help="step schedule: x0.1 every N epochs")
    p.add_argument("--warmup-epochs", type=int, default=0)
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--device", choices=("cpu", "cuda", "auto"), default="auto")
    p.add_argument(
        "--compile",
        action="store_true",
        help="train through torch.compile (fuses the sign/K element-wise work: 1.25x faster steps "
        "for xnor on CPU, none for bwn; tools/bench_train_step.py); evaluation and checkpoints "
        "use the plain model",
    )
    p.add_argument(
        "--amp",
        choices=("none", "bf16"),
        default="none",
        help="bf16: run the training forward and backward under bfloat16 autocast (about 2x faster "
        "steps on CPUs with AMX or AVX512-BF16, and on CUDA); weights, optimiser, evaluation and "
        "checkpoints stay float32",
    )
    p.add_argument("--subset", type=int, default=None, help="use only N training images (smoke runs)")
    p.add_argument(
        "--test-subset",
        type=int,
        default=None,
        help="evaluate on N test images (seeded random subset, as evaluate --limit)",
    )
    p.add_argument(
        "--distill",
        default=None,
        metavar="CKPT",
        help="knowledge distillation: a trained run's checkpoint (e.g. the float network) whose "
        "softened outputs the student learns to match, as well as the labels; the teacher only "
        "runs forward, in eval mode",
    )
    p.add_argument(
        "--distill-weight",
        type=float,
        default=0.5,
        help="loss = (1 - w) * cross-entropy(labels) + w * T^2 * KL(teacher || student) (default 0.5)",
    )
    p.add_argument("--distill-temp", type=float, default=2.0, help="softmax temperature T (default 2)")
    p.add_argument(
        "--eval-every",
        type=int,
        default=1,
        metavar="N",
        help="evaluate on the test set after every N-th epoch and after the last (default 1); the "
        "test pass of a CIFAR-size run costs about a quarter of its epoch on 2 CPU cores",
    )
    p.add_argument("--out", required=True, help="run directory (log, metrics, checkpoints)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument(
        "--init",
        default=None,
        metavar="CKPT",
        help="start from this checkpoint's weights (same architecture and width; the variant may "
        "differ, e.g. a bwn or float run to start an xnor run); optimiser and schedule start afresh",
    )
    args = p.parse_args(argv)
    if not 0.0 <= args.distill_weight <= 1.0:
        p.error(f"--distill-weight must be within [0, 1], not {args.distill_weight}")
    if args.distill_temp <= 0:
        p.error(f"--distill-temp must be positive, not {args.distill_temp}")
    if args.eval_every < 1:
        p.error(f"--eval-every must be 1 or more, not {args.eval_every}")
    if args.batch_size < 1:
        p.error(f"--batch-size must be 1 or more, not {args.batch_size}")
    args.arch = args.arch or DEFAULT_ARCH[args.data]
    if args.lr is None:
        args.lr = 1e-3 if args.optimizer == "adam" else 0.1
    return args


def model_config(args, ds: Dataset) -> dict:
    width = args.width or {"digits": 64, "vgg-small": 64, "resnet18": 64}[args.arch]
    return dict(
        arch=args.arch,
        variant=args.variant,
        width=width,
        order=args.order,
        alpha_mode=args.alpha_mode,
        pad_mode=args.pad_mode,
        in_ch=ds.channels,
        num_classes=len(ds.labels),
        input_size=ds.input_size[0],
    )


def data_info(ds: Dataset) -> dict:
    info = dict(
        name=ds.name,
        labels=ds.labels,
        mean=ds.mean,
        std=ds.std,
        color_order=ds.color_order,
        input_size=list(ds.input_size),
        source=ds.source,
        n_train=len(ds.x_train),
        n_test=len(ds.x_test),
    )
    if ds.resize:
        info["resize"] = ds.resize
    return info


class InitError(ValueError):
    """--init or --distill names a checkpoint that cannot serve this run."""


def init_from(model: nn.Module, path: str, cfg: dict) -> dict:
    """Load another run's weights into ``model``; returns what the card records of that run.

    Only the variant may differ (binary and float layers keep their weights under the
    same names); anything else, or a parameter the model lacks, is an error.
    """
    src = Path(path).expanduser()
    if not src.is_file():
        raise InitError(f"--init {path}: no such checkpoint")
    ck = torch.load(src, map_location="cpu", weights_only=False)
    other = {k: v for k, v in ck["config"].items() if k != "variant"}
    mine = {k: v for k, v in cfg.items() if k != "variant"}
    if other != mine:
        diff = {k: (other.get(k), mine.get(k)) for k in set(other) | set(mine) if other.get(k) != mine.get(k)}
        raise InitError(f"--init {path}: its model differs from this run's in {diff} (checkpoint, this run)")
    try:
        model.load_state_dict(ck["model"])
    except RuntimeError as e:
        raise InitError(f"--init {path}: weights do not fit: {str(e).splitlines()[0]}") from e
    # init: the run that one started from, if any, so the card can print the whole chain
    return dict(_run_record(path, ck), init=ck.get("init"))


def _run_record(path: str, ck: dict) -> dict:
    """What a checkpoint that serves another run (--init, --distill) leaves in that run's
    checkpoint for its model card: how it was trained and how well it did."""
    return dict(
        path=str(path),
        variant=ck["config"]["variant"],
        commands=ck.get("commands", [ck.get("command")]),
        epochs=ck.get("epoch"),
        wall_s=ck.get("wall_s", 0.0),
        test_acc=ck.get("test_acc"),
    )


def load_teacher(path: str, cfg: dict, ds: Dataset, device: torch.device) -> tuple[nn.Module, dict]:
    """The --distill teacher, in eval mode with gradients off, and what the card records of it.

    It must read the same images (input size, channels, classes, normalisation) as the
    student; its architecture, width and variant are free."""
    src = Path(path).expanduser()
    if not src.is_file():
        raise InitError(f"--distill {path}: no such checkpoint")
    ck = torch.load(src, map_location="cpu", weights_only=False)
    tcfg = ck.get("config", {})
    for k in ("in_ch", "num_classes", "input_size"):
        if tcfg.get(k) != cfg[k]:
            raise InitError(f"--distill {path}: the teacher's {k} is {tcfg.get(k)}, this run's is {cfg[k]}")
    td = ck.get("data", {})
    if list(td.get("labels") or []) != list(ds.labels):
        raise InitError(
            f"--distill {path}: the teacher's labels {td.get('labels')} are not this data set's {ds.labels}"
        )
    if [list(td.get("mean") or []), list(td.get("std") or [])] != [list(ds.mean), list(ds.std)]:
        raise InitError(
            f"--distill {path}: the teacher normalises with mean {td.get('mean')} std {td.get('std')}, "
            f"this data set with mean {list(ds.mean)} std {list(ds.std)}"
        )
    teacher = build_model(tcfg)
    try:
        teacher.load_state_dict(ck["model"])
    except RuntimeError as e:
        raise InitError(f"--distill {path}: weights do not fit: {str(e).splitlines()[0]}") from e
    teacher.to(device).eval().requires_grad_(False)
    return teacher, dict(_run_record(path, ck), arch=tcfg["arch"], width=tcfg["width"])


def distill_loss(student: torch.Tensor, teacher: torch.Tensor, temp: float) -> torch.Tensor:
    """T^2 * KL(softmax(teacher/T) || softmax(student/T)), averaged over the batch (Hinton et
    al.; the T^2 keeps its gradient on the scale of the cross-entropy's)."""
    log_p = torch.log_softmax(student / temp, dim=1)
    log_q = torch.log_softmax(teacher / temp, dim=1)
    return torch.nn.functional.kl_div(log_p, log_q, reduction="batchmean", log_target=True) * temp * temp


def main(argv=None) -> int:
    args = parse_args(argv)
    out = Path(args.out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    log = Logger(out / "train.log")
    command = "python -m xnor_train.train " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    try:
        ds = load_dataset(args.data, args.data_path, args.image_size)
    except DataError as e:
        log(f"error: {e}")
        return 2
    if args.subset:
        rng = np.random.default_rng(args.seed)
        idx = rng.permutation(len(ds.x_train))[: args.subset]
        ds.x_train, ds.y_train = ds.x_train[idx], ds.y_train[idx]
    if args.test_subset:
        idx = subset_indices(len(ds.x_test), args.test_subset)
        ds.x_test, ds.y_test = ds.x_test[idx], ds.y_test[idx]
    if args.batch_size > len(ds.x_train):  # an epoch would be 0 steps: an untrained model
        log(
            f"error: --batch-size {args.batch_size} is larger than the training set "
            f"({len(ds.x_train)} images): use at most {len(ds.x_train)}"
        )
        return 2

    cfg = model_config(args, ds)
    model = build_model(cfg).to(device)
    opt = make_optimizer(args, model)
    crit = nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)
    start_epoch, best, wall, history, commands, init = 0, 0.0, 0.0, [], [command], None
    last = out / "last.pt"
    if args.init and args.resume:
        log("error: --init starts a run and --resume continues one; give one of them")
        return 2
    if args.init:
        try:
            init = init_from(model, args.init, cfg)
        except InitError as e:
            log(f"error: {e}")
            return 2
        log(f"initialised from {args.init} ({init['variant']}, {init['epochs']} epochs)")
    if args.resume:
        if not last.exists():
            log(f"error: --resume given but {last} does not exist")
            return 2
        ck = torch.load(last, map_location=device, weights_only=False)
        if ck["config"] != cfg:
            log(f"error: checkpoint config {ck['config']} differs from the arguments' {cfg}")
            return 2
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        start_epoch, best, wall, history = ck["epoch"], ck["best_acc"], ck["wall_s"], ck["history"]
        init = ck.get("init")
        # --epochs may change on resume: the schedule is recomputed for the new total.
        commands = ck.get("commands", [ck["command"]]) + [command]
        log(f"resumed from {last} at epoch {start_epoch}")
    teacher, teacher_info = None, None
    if args.distill:
        try:
            teacher, teacher_info = load_teacher(args.distill, cfg, ds, device)
        except InitError as e:
            log(f"error: {e}")
            return 2
        log(
            f"distilling from {args.distill} ({teacher_info['variant']} {teacher_info['arch']} width "
            f"{teacher_info['width']}), weight {args.distill_weight}, temperature {args.distill_temp}"
        )
    n_params = sum(p.numel() for p in model.parameters())
    log(f"command: {command}")
    log(f"data {ds.name}: {len(ds.x_train)} train / {len(ds.x_test)} test, {ds.source}")
    log(f"model {cfg} ({n_params} parameters) on {device}, threads {torch.get_num_threads()}, amp {args.amp}")

    # The compiled module shares its parameters with `model`; only the training forward
    # goes through it, so checkpoints and evaluation are those of the plain module.
    train_fwd = torch.compile(model) if args.compile else model
    xtr = torch.from_numpy(ds.x_train)
    ytr = torch.from_numpy(ds.y_train)
    n = len(xtr)
    steps_per_epoch = n // args.batch_size
    total_steps = steps_per_epoch * args.epochs
    gen = torch.Generator().manual_seed(args.seed)
    for epoch in range(start_epoch, args.epochs):
        gen.manual_seed(args.seed * 1000 + epoch)
        model.train()
        t0 = time.time()
        perm = torch.randperm(n, generator=gen)
        bar = _progress(steps_per_epoch, f"epoch {epoch + 1}/{args.epochs}")
        tot_loss, tot_correct, seen = 0.0, 0, 0
        for i in range(steps_per_epoch):
            step = epoch * steps_per_epoch + i
            for g in opt.param_groups:
                g["lr"] = args.lr * lr_factor(args, step, total_steps, steps_per_epoch)
            idx = perm[i * args.batch_size : (i + 1) * args.batch_size]
            xb = augment_batch(xtr[idx], ds, gen).to(device, non_blocking=True)
            yb = ytr[idx].to(device, non_blocking=True)
            try:
                xn = normalise(xb, ds.mean, ds.std)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.amp == "bf16"):
                    logits = train_fwd(xn)
                    if teacher is not None:
                        with torch.no_grad():
                            t_logits = teacher(xn).float()
                logits = logits.float()
            except Exception as e:
                # torch.compile does its work on the first call; without a working C++
                # toolchain (or on an unsupported platform) that call fails.
                if not (args.compile and i == 0 and epoch == start_epoch):
                    raise
                first = (str(e).strip().splitlines() or [""])[0][:200]
                log(
                    f"error: --compile failed on the first step ({type(e).__name__}: {first}); "
                    "train without --compile"
                )
                return 2
            loss = crit(logits, yb)
            if teacher is not None:
                w = args.distill_weight
                loss = (1.0 - w) * loss + w * distill_loss(logits, t_logits, args.distill_temp)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            tot_loss += loss.item() * len(yb)
            tot_correct += (logits.argmax(1) == yb).sum().item()
            seen += len(yb)
            bar.set_postfix_str(f"loss {tot_loss / seen:.4f} acc {tot_correct / seen:.4f}")
            bar.update(1)
        bar.close()
        train_s = time.time() - t0
        evaluated = (epoch + 1) % args.eval_every == 0 or epoch + 1 == args.epochs
        acc = evaluate_torch(model, ds, device) if evaluated else None
        wall += time.time() - t0
        rec = dict(
            epoch=epoch + 1,
            loss=tot_loss / max(1, seen),
            train_acc=tot_correct / max(1, seen),
            test_acc=acc,
            lr=opt.param_groups[0]["lr"],
            epoch_s=round(time.time() - t0, 1),
            train_s=round(train_s, 1),
            wall_s=round(wall, 1),
        )
        history.append(rec)
        with open(out / "metrics.jsonl", "a") as f:
            f.write(json.dumps(rec) + "\n")
        test_msg = f"test top-1 {acc:.4f}" if evaluated else "test skipped (--eval-every)"
        log(
            f"epoch {epoch + 1}/{args.epochs} loss {rec['loss']:.4f} train {rec['train_acc']:.4f} "
            f"{test_msg} ({rec['epoch_s']}s, total {wall / 60:.1f} min)"
        )
        ck = dict(
            model=model.state_dict(),
            optimizer=opt.state_dict(),
            epoch=epoch + 1,
            config=cfg,
            data=data_info(ds),
            command=command,
            commands=commands,
            init=init,
            teacher=teacher_info,
            args=vars(args),
            best_acc=max(best, acc) if evaluated else best,
            test_acc=acc,
            wall_s=wall,
            history=history,
            device=str(device),
            torch_version=torch.__version__,
            date=time.strftime("%Y-%m-%d"),
        )
        tmp = out / "last.pt.tmp"
        torch.save(ck, tmp)
        os.replace(tmp, last)
        if evaluated and acc >= best:
            best = acc
            torch.save(ck, out / "best.pt")
    log(f"done: best test top-1 {best:.4f}, wall {wall / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
