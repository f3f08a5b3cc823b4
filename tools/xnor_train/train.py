"""Train a binary network (paper Algorithm 1: real weights kept, binarised forward).

    python -m xnor_train.train --data mnist --data-path DATA/mnist --arch digits \
        --variant xnor --epochs 10 --optimizer adam --lr 1e-3 --out RUN
    torchrun --nproc_per_node 2 -m xnor_train.train ...    # data-parallel, same arguments

Writes into --out: train.log, metrics.jsonl, last.pt (every epoch, for --resume)
and best.pt (best test top-1).  Runs on CPU or CUDA (--device).

Under torchrun (PyTorch's DistributedDataParallel: gloo on CPU, nccl on GPUs) every
process starts from the same seed and draws the same global batches; each trains on
its 1/N share of every batch (--batch-size is the total over the processes), gradients
are averaged, the test set is split between the processes, and only rank 0 writes the
log, the metrics and the checkpoints.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from .data import DataError, Dataset, augment_batch, load_dataset, normalise, subset_indices
from .models import ARCHS, VARIANTS, build_model
from .mst_reg import VARIANTS as VARIANTS_MST
from .mst_reg import MstRegularizer, lambda_ramp, mst_options, mst_record, summarise, tree_distances

DEFAULT_ARCH = {
    "mnist": "digits",
    "fashion-mnist": "digits",
    "cifar10": "vgg-small",
    "imagenette": "resnet18",
    "folder": "resnet18",
}


class Logger:
    """Prints and appends to the run's train.log; silent on ranks other than 0."""

    def __init__(self, path: Path, enabled: bool = True):
        self.f = open(path, "a", encoding="utf-8") if enabled else None

    def __call__(self, msg: str) -> None:
        if self.f is None:
            return
        line = f"[{time.strftime('%H:%M:%S')}] {msg}"
        print(line, flush=True)
        self.f.write(line + "\n")
        self.f.flush()


class RunError(Exception):
    """A run that cannot start or go on; main logs the message and exits with status 2."""


@dataclass(frozen=True)
class Dist:
    """This process's place in a torchrun launch; rank 0 of 1 for a plain run."""

    rank: int = 0
    world: int = 1
    local_world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device_name: str) -> tuple[Dist, torch.device]:
    """The process group torchrun describes in the environment (WORLD_SIZE, RANK,
    LOCAL_RANK, MASTER_ADDR/PORT): gloo on CPU, nccl with one GPU per process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = pick_device(device_name)
    if world <= 1:
        return Dist(), device
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(rank, world, int(os.environ.get("LOCAL_WORLD_SIZE", world))), device


def _all_sum(dist: Dist, *values: float) -> list[float]:
    """Sums of the values over all processes (the values themselves for a plain run)."""
    if dist.world == 1:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64)
    torch.distributed.all_reduce(t)
    return t.tolist()


def _progress(total: int, desc: str, enabled: bool = True):
    """tqdm if installed, else a plain printer every ~10%; nothing when not enabled."""
    if not enabled:

        class Quiet:
            def set_postfix_str(self, s):
                pass

            def update(self, k=1):
                pass

            def close(self):
                pass

        return Quiet()
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
    model: nn.Module,
    ds: Dataset,
    device: torch.device,
    batch_size: int = 500,
    return_logits: bool = False,
    dist: Dist = Dist(),
):
    """Top-1 of the model in eval mode on the (centre-cropped) test set.

    Distributed (``dist.world`` > 1): every process tests rank 0's weights and batch-norm
    statistics on every world-th image and the counts are summed; logits are not gathered.
    """
    model.eval()
    x = torch.from_numpy(ds.x_test)
    y = torch.from_numpy(ds.y_test)
    if dist.world > 1:
        if return_logits:
            raise ValueError("evaluate_torch: return_logits needs a single process")
        for b in model.buffers():  # running statistics: rank 0's, as its checkpoint holds
            torch.distributed.broadcast(b, 0)
        x, y = x[dist.rank :: dist.world], y[dist.rank :: dist.world]
    correct, outs = 0, []
    for i in range(0, len(x), batch_size):
        xb = normalise(x[i : i + batch_size].to(device), ds.mean, ds.std)
        out = model(xb).float()
        correct += (out.argmax(1).cpu() == y[i : i + batch_size]).sum().item()
        if return_logits:
            outs.append(out.cpu())
    correct, n = _all_sum(dist, correct, len(x))
    acc = correct / n
    return (acc, torch.cat(outs).numpy()) if return_logits else acc


def make_optimizer(args, model):
    decay, no_decay = [], []
    for p in model.parameters():
        if not p.requires_grad:  # --freeze-float: not handed to the optimiser at all
            continue
        (no_decay if p.dim() <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if args.optimizer == "adam":
        return torch.optim.Adam(groups, lr=args.lr)
    return torch.optim.SGD(groups, lr=args.lr, momentum=0.9, nesterov=True)


def freeze_latent(model: nn.Module) -> list[str]:
    """--freeze-latent: the binary layers' latent weights (so every sign, and the MST
    coding of the file) stay as they are; everything else trains. Returns the names
    still trained."""
    from .layers import BinConv2d, BinLinear

    latent = {id(m.weight) for m in model.modules() if isinstance(m, (BinConv2d, BinLinear))}
    trained = []
    for name, p in model.named_parameters():
        p.requires_grad_(id(p) not in latent)
        if id(p) not in latent:
            trained.append(name)
    return trained


def freeze_float(model: nn.Module) -> list[str]:
    """--freeze-float: every parameter but the binary layers' latent weights (BinConv2d and
    BinLinear ``weight``) stops receiving gradient; returns the names still trained. Batch
    norm is kept in eval mode by ``set_train_mode`` (its running statistics never move)."""
    from .layers import BinConv2d, BinLinear

    latent = {id(m.weight) for m in model.modules() if isinstance(m, (BinConv2d, BinLinear))}
    trained = []
    for name, p in model.named_parameters():
        p.requires_grad_(id(p) in latent)
        if id(p) in latent:
            trained.append(name)
    return trained


def set_train_mode(model: nn.Module, frozen_float: bool) -> None:
    """Training mode, except, with --freeze-float, every batch norm stays in eval mode: it
    normalises with its running statistics and leaves them unchanged."""
    model.train()
    if frozen_float:
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()


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
    p.add_argument(
        "--data-path", default=None, help="the data set's folder or archive (see docs/training.md)"
    )
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
    p.add_argument(
        "--batch-size", type=int, default=128, help="total over all processes under torchrun (default 128)"
    )
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
    p.add_argument(
        "--init-xnor",
        default=None,
        metavar="MODEL.xnor",
        help="start from a shipped model file's weights (latent weights sign * alpha, float and BN "
        "layers from the file, BNs re-expressed with measured statistics; init_xnor.py)",
    )
    p.add_argument(
        "--init-calib",
        type=int,
        default=1024,
        metavar="N",
        help="--init-xnor: training images for the BN statistics (default 1024)",
    )
    p.add_argument(
        "--init-latent",
        type=float,
        default=None,
        metavar="V",
        help="--init-xnor with --alpha-mode learned: latent weights sign * V instead of sign * alpha "
        "(alpha is then the learned parameter, set from the file), so signs move in few steps",
    )
    p.add_argument(
        "--freeze-float",
        action="store_true",
        help="train only the binary layers' latent weights: every other parameter (float convs, "
        "classifier, batch-norm affine, learned alpha, biases) frozen and batch norm in eval mode "
        "(running statistics unchanged); for fine-tuning a shipped model (--init-xnor) with the "
        "MST regulariser, docs/mst.md section 9",
    )
    p.add_argument(
        "--freeze-latent",
        action="store_true",
        help="the opposite: keep the binary layers' latent weights (every sign) as they are and train "
        "everything else, e.g. to let batch norm, alpha and the float layers recover after an MST "
        "fine-tune without changing its coding",
    )
    mst_options(p)
    args = p.parse_args(argv)
    if args.freeze_float and args.freeze_latent:
        p.error("--freeze-float and --freeze-latent exclude each other")
    if args.mst_variant not in VARIANTS_MST:
        p.error(f"--mst-variant must be one of {VARIANTS_MST}")
    if min(args.mst_lambda, args.mst_ramp_epochs, args.mst_freeze_epochs, args.mst_skip_layers) < 0:
        p.error(
            "--mst-lambda, --mst-ramp-epochs, --mst-freeze-epochs and --mst-skip-layers must not be negative"
        )
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


@dataclass
class Loop:
    """What every epoch of a run shares."""

    args: argparse.Namespace
    ds: Dataset
    model: nn.Module  # the plain module: checkpoints and evaluation
    train_fwd: nn.Module  # what the training forward goes through (DDP, torch.compile)
    opt: torch.optim.Optimizer
    crit: nn.Module
    teacher: nn.Module | None
    device: torch.device
    dist: Dist
    log: Logger
    start_epoch: int
    cfg: dict
    state: dict  # start_state's: commands, init, best, wall, history
    teacher_info: dict | None
    out: Path
    mst: MstRegularizer | None = None

    @property
    def steps_per_epoch(self) -> int:
        return len(self.ds.x_train) // self.args.batch_size


def train_one_epoch(epoch: int, lp: Loop) -> tuple[float, float]:
    """One pass over the training set in the seeded order; returns (mean loss, top-1).

    Every process draws the same permutation and augmentation (one generator, seeded per
    epoch) for the whole batch and trains on its own slice of it."""
    args, ds, device = lp.args, lp.ds, lp.device
    xtr, ytr = torch.from_numpy(ds.x_train), torch.from_numpy(ds.y_train)
    gen = torch.Generator().manual_seed(args.seed * 1000 + epoch)
    steps, total_steps = lp.steps_per_epoch, lp.steps_per_epoch * args.epochs
    share = args.batch_size // lp.dist.world
    mine = slice(lp.dist.rank * share, (lp.dist.rank + 1) * share)
    set_train_mode(lp.model, args.freeze_float)
    perm = torch.randperm(len(xtr), generator=gen)
    bar = _progress(steps, f"epoch {epoch + 1}/{args.epochs}", lp.dist.main)
    tot_loss, tot_correct, seen = 0.0, 0, 0
    mst_epoch_start(epoch, lp)
    for i in range(steps):
        for g in lp.opt.param_groups:
            g["lr"] = args.lr * lr_factor(args, epoch * steps + i, total_steps, steps)
        idx = perm[i * args.batch_size : (i + 1) * args.batch_size]
        xb = augment_batch(xtr[idx], ds, gen)[mine].to(device, non_blocking=True)
        yb = ytr[idx][mine].to(device, non_blocking=True)
        try:
            xn = normalise(xb, ds.mean, ds.std)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.amp == "bf16"):
                logits = lp.train_fwd(xn)
                if lp.teacher is not None:
                    with torch.no_grad():
                        t_logits = lp.teacher(xn).float()
            logits = logits.float()
        except Exception as e:
            # torch.compile does its work on the first call; without a working C++
            # toolchain (or on an unsupported platform) that call fails.
            if not (args.compile and i == 0 and epoch == lp.start_epoch):
                raise
            first = (str(e).strip().splitlines() or [""])[0][:200]
            raise RunError(
                f"--compile failed on the first step ({type(e).__name__}: {first}); train without --compile"
            ) from None
        loss = lp.crit(logits, yb)
        if lp.teacher is not None:
            w = args.distill_weight
            loss = (1.0 - w) * loss + w * distill_loss(logits, t_logits, args.distill_temp)
        balanced = lp.mst is not None and args.mst_layer_norm
        if lp.mst is not None:
            if args.mst_rebuild_steps and i and i % args.mst_rebuild_steps == 0:
                lp.mst.update_trees()  # a no-op once frozen
            lam = lambda_ramp(epoch + i / steps, args.mst_lambda, args.mst_ramp_epochs)
            if not balanced:
                loss = loss + lp.mst.loss(lam)
        lp.opt.zero_grad(set_to_none=True)
        loss.backward()
        if balanced:  # the pull added per layer after the task gradient is known
            loss = loss.detach() + lp.mst.add_balanced_grad(lam).to(loss.device)
        lp.opt.step()
        tot_loss += loss.item() * len(yb)
        tot_correct += (logits.argmax(1) == yb).sum().item()
        seen += len(yb)
        bar.set_postfix_str(f"loss {tot_loss / seen:.4f} acc {tot_correct / seen:.4f}")
        bar.update(1)
    bar.close()
    tot_loss, tot_correct, seen = _all_sum(lp.dist, tot_loss, tot_correct, seen)
    return tot_loss / max(1, seen), tot_correct / max(1, seen)


def mst_epoch_start(epoch: int, lp: Loop) -> None:
    """Rebuilds the MST regulariser's trees (once per epoch), and freezes them at the start
    of the last --mst-freeze-epochs epochs (the trees a resume restores stay frozen)."""
    if lp.mst is None:
        return
    freeze = epoch >= lp.args.epochs - lp.args.mst_freeze_epochs
    if not lp.mst.frozen:
        lp.mst.update_trees()
        if freeze:
            lp.mst.freeze()
            lp.log(f"epoch {epoch + 1}: MST trees frozen for the last {lp.args.mst_freeze_epochs} epoch(s)")


def load_data(args) -> Dataset:
    try:
        ds = load_dataset(args.data, args.data_path, args.image_size)
    except DataError as e:
        raise RunError(str(e)) from None
    if args.subset:
        rng = np.random.default_rng(args.seed)
        idx = rng.permutation(len(ds.x_train))[: args.subset]
        ds.x_train, ds.y_train = ds.x_train[idx], ds.y_train[idx]
    if args.test_subset:
        idx = subset_indices(len(ds.x_test), args.test_subset)
        ds.x_test, ds.y_test = ds.x_test[idx], ds.y_test[idx]
    if args.batch_size > len(ds.x_train):  # an epoch would be 0 steps: an untrained model
        raise RunError(
            f"--batch-size {args.batch_size} is larger than the training set "
            f"({len(ds.x_train)} images): use at most {len(ds.x_train)}"
        )
    return ds


def start_state(args, model, opt, cfg: dict, last: Path, device, command: str, log: Logger) -> dict:
    """Where the run starts: afresh, from another run's weights (--init) or from its own
    last checkpoint (--resume)."""
    state = dict(start_epoch=0, best=0.0, wall=0.0, history=[], commands=[command], init=None)
    if sum(map(bool, (args.init, args.init_xnor, args.resume))) > 1:
        raise RunError("--init / --init-xnor start a run and --resume continues one; give one of them")
    if args.init:
        state["init"] = init = init_from(model, args.init, cfg)
        log(f"initialised from {args.init} ({init['variant']}, {init['epochs']} epochs)")
    if args.resume:
        if not last.exists():
            raise RunError(f"--resume given but {last} does not exist")
        ck = torch.load(last, map_location=device, weights_only=False)
        if ck["config"] != cfg:
            raise RunError(f"checkpoint config {ck['config']} differs from the arguments' {cfg}")
        if bool(ck.get("freeze_latent", False)) != args.freeze_latent:
            raise RunError(
                f"checkpoint --freeze-latent {bool(ck.get('freeze_latent', False))} differs from the "
                f"arguments' {args.freeze_latent}"
            )
        if bool(ck.get("freeze_float", False)) != args.freeze_float:
            raise RunError(
                f"checkpoint --freeze-float {bool(ck.get('freeze_float', False))} differs from the "
                f"arguments' {args.freeze_float}"
            )
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        # --epochs may change on resume: the schedule is recomputed for the new total.
        state.update(
            start_epoch=ck["epoch"],
            best=ck["best_acc"],
            wall=ck["wall_s"],
            history=ck["history"],
            init=ck.get("init"),
            commands=ck.get("commands", [ck["command"]]) + [command],
        )
        if ck.get("mst", mst_record(args)) != mst_record(args):
            raise RunError(
                f"checkpoint MST options {ck.get('mst')} differ from the arguments' {mst_record(args)}"
            )
        state["mst_trees"] = ck.get("mst_trees")
        log(f"resumed from {last} at epoch {state['start_epoch']}")
    return state


def init_xnor_state(args, model, ds: Dataset, device, state: dict, log: Logger) -> None:
    """--init-xnor: the shipped file's weights, BNs calibrated on --init-calib training images."""
    from .init_xnor import XnorInitError, init_from_xnor

    n = min(args.init_calib, len(ds.x_train))
    gen = torch.Generator().manual_seed(args.seed)
    idx = torch.randperm(len(ds.x_train), generator=gen)[:n]
    xb = augment_batch(torch.from_numpy(ds.x_train)[idx], ds, gen).to(device)
    calib = normalise(xb, ds.mean, ds.std)
    try:
        state["init"] = init_from_xnor(model, args.init_xnor, calib if n else None, args.init_latent)
    except XnorInitError as e:
        raise InitError(str(e)) from None
    log(f"initialised from {args.init_xnor} ({state['init']['calibrated_bns']} BNs calibrated on {n} images)")


def _command(argv: list[str], dist: Dist) -> str:
    args = " ".join(shlex.quote(a) for a in argv)
    if dist.world == 1:
        return "python -m xnor_train.train " + args
    nodes = f"--nnodes {dist.world // dist.local_world} " if dist.world != dist.local_world else ""
    return f"torchrun {nodes}--nproc_per_node {dist.local_world} -m xnor_train.train " + args


def prepare(args, command: str, dist: Dist, device: torch.device, out: Path, log: Logger) -> Loop:
    """Data, model, optimiser, start state and teacher of a run; RunError/InitError if it
    cannot start."""
    if args.batch_size % dist.world:
        raise RunError(f"--batch-size {args.batch_size} (the total) must be a multiple of {dist.world}")
    ds = load_data(args)
    cfg = model_config(args, ds)
    model = build_model(cfg).to(device)
    if args.freeze_float:
        trained = freeze_float(model)
        if not trained:
            raise RunError(f"--freeze-float: the {cfg['variant']} model has no binary layers to train")
        log(f"--freeze-float: training only {len(trained)} latent weight tensors, batch norm in eval mode")
    if args.freeze_latent:
        trained = freeze_latent(model)
        log(f"--freeze-latent: binary latent weights fixed, training {len(trained)} other tensors")
    opt = make_optimizer(args, model)
    state = start_state(args, model, opt, cfg, out / "last.pt", device, command, log)
    if args.init_xnor:
        init_xnor_state(args, model, ds, device, state, log)
    mst = None
    if args.mst_lambda > 0:
        mst = MstRegularizer(
            model, args.mst_lambda, args.mst_variant, args.mst_chunk or None, args.mst_max_depth,
            args.mst_skip_layers,
        )  # fmt: skip
        if state.get("mst_trees"):
            mst.load_tree_state(state["mst_trees"])
        log(f"MST regulariser {mst_record(args)} on {len(mst.layers)} binary convolutions")
    teacher, teacher_info = None, None
    if args.distill:
        teacher, teacher_info = load_teacher(args.distill, cfg, ds, device)
        log(
            f"distilling from {args.distill} ({teacher_info['variant']} {teacher_info['arch']} width "
            f"{teacher_info['width']}), weight {args.distill_weight}, temperature {args.distill_temp}"
        )
    n_params = sum(p.numel() for p in model.parameters())
    log(f"command: {command}")
    log(f"data {ds.name}: {len(ds.x_train)} train / {len(ds.x_test)} test, {ds.source}")
    log(f"model {cfg} ({n_params} parameters) on {device}, threads {torch.get_num_threads()}, amp {args.amp}")
    fwd = model
    if dist.world > 1:
        share = args.batch_size // dist.world
        log(f"distributed: {dist.world} processes ({torch.distributed.get_backend()}), batch {share} each")
        fwd = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    # The compiled module shares its parameters with `model`; only the training forward
    # goes through it, so checkpoints and evaluation are those of the plain module.
    return Loop(
        args=args,
        ds=ds,
        model=model,
        train_fwd=torch.compile(fwd) if args.compile else fwd,
        opt=opt,
        crit=nn.CrossEntropyLoss(label_smoothing=args.label_smoothing),
        teacher=teacher,
        device=device,
        dist=dist,
        log=log,
        start_epoch=state["start_epoch"],
        cfg=cfg,
        state=state,
        teacher_info=teacher_info,
        out=out,
        mst=mst,
    )


def save_checkpoint(lp: Loop, rec: dict, wall: float, best_acc: float, best_too: bool) -> None:
    """The epoch's metrics line, last.pt (replaced atomically) and, if it is the best,
    best.pt; rank 0 only."""
    if not lp.dist.main:
        return
    ck = dict(
        model=lp.model.state_dict(),
        optimizer=lp.opt.state_dict(),
        epoch=rec["epoch"],
        config=lp.cfg,
        data=data_info(lp.ds),
        command=lp.state["commands"][-1],
        commands=lp.state["commands"],
        init=lp.state["init"],
        teacher=lp.teacher_info,
        args=vars(lp.args),
        best_acc=best_acc,
        test_acc=rec["test_acc"],
        wall_s=wall,
        history=lp.state["history"],
        device=str(lp.device),
        world_size=lp.dist.world,
        torch_version=torch.__version__,
        date=time.strftime("%Y-%m-%d"),
        freeze_float=bool(lp.args.freeze_float),
        freeze_latent=bool(lp.args.freeze_latent),
        mst=mst_record(lp.args),
        mst_trees=lp.mst.tree_state() if lp.mst is not None else None,
    )
    with open(lp.out / "metrics.jsonl", "a") as f:
        f.write(json.dumps(rec) + "\n")
    tmp = lp.out / "last.pt.tmp"
    torch.save(ck, tmp)
    os.replace(tmp, lp.out / "last.pt")
    if best_too:
        torch.save(ck, lp.out / "best.pt")


def main(argv=None) -> int:
    args = parse_args(argv)
    dist, device = init_distributed(args.device)
    command = _command(list(sys.argv[1:] if argv is None else argv), dist)
    out = Path(args.out).expanduser()
    if dist.main:
        out.mkdir(parents=True, exist_ok=True)
    log = Logger(out / "train.log", enabled=dist.main)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    try:
        lp = prepare(args, command, dist, device, out, log)
        best, wall, history = lp.state["best"], lp.state["wall"], lp.state["history"]
        for epoch in range(lp.start_epoch, args.epochs):
            t0 = time.time()
            loss, train_acc = train_one_epoch(epoch, lp)
            train_s = time.time() - t0
            evaluated = (epoch + 1) % args.eval_every == 0 or epoch + 1 == args.epochs
            acc = evaluate_torch(lp.model, lp.ds, device, dist=dist) if evaluated else None
            wall += time.time() - t0
            rec = dict(epoch=epoch + 1, loss=loss, train_acc=train_acc, test_acc=acc,
                       lr=lp.opt.param_groups[0]["lr"], epoch_s=round(time.time() - t0, 1),
                       train_s=round(train_s, 1), wall_s=round(wall, 1))  # fmt: skip
            chunk = args.mst_chunk or None
            rec["mst"] = summarise(tree_distances(lp.model, chunk, args.mst_max_depth))
            history.append(rec)
            test_msg = f"test top-1 {acc:.4f}" if evaluated else "test skipped (--eval-every)"
            log(
                f"epoch {epoch + 1}/{args.epochs} loss {loss:.4f} train {train_acc:.4f} "
                f"{test_msg} ({rec['epoch_s']}s, total {wall / 60:.1f} min); MST mean D/K "
                f"{rec['mst']['mean_edge_k'] or 0:.4f}, words differing {rec['mst']['words_ratio'] or 0:.3f}"
            )
            improved = evaluated and acc >= best
            save_checkpoint(lp, rec, wall, max(best, acc) if evaluated else best, improved)
            best = acc if improved else best
        log(f"done: best test top-1 {best:.4f}, wall {wall / 60:.1f} min")
        return 0
    except (RunError, InitError) as e:
        log(f"error: {e}")
        return 2
    finally:
        if dist.world > 1:
            torch.distributed.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
