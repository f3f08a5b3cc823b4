"""The MST regulariser (issue 13): pull each binary filter toward its tree parent.

Per binary convolution (``BinConv2d``, both modes), the tree is the plain minimum
spanning tree over the output channels' sign bits, built by ``xnor_edge.mst``
exactly as the exporter will build it (same file bit layout [KH][KW][CW], same
chunks of ``chunk`` channels, same depth bound), so the edges the loss shortens
are the edges the compressed model will store. Over the tree's edges (c, p), with
u = clamp(W, -1, 1) the clipped latent weights and s = mean |u| of the layer (no
gradient, so the term is scale-free and lambda means the same in every layer):

* variant "bit":  R_l = mean over edges and weights of |u_c - u_p| / s
  (an L1 pull: each weight is pulled toward the parent's, which flips the
  differing signs one by one; scattered bits buy compression, docs/mst.md);
* variant "word": R_l = mean over edges and (tap, 32-channel word) groups of
  ||u_c - u_p||_2 over the group / (sqrt(32) * s), a group lasso whose
  (sub)gradient has the same size for a nearly agreeing group as for a far one,
  so whole words are driven to agree (what a SIMD kernel is paid for: words
  touched). Both variants equal mean |u_c - u_p| / s when every difference has
  the same size, so one lambda scale serves both.

loss = lambda * sum over layers of R_l. Only the latent weights receive gradient
(the tree is built on detached signs). ``update_trees`` rebuilds the trees (call
it once per epoch, as the paper does); ``freeze`` keeps the current trees for a
final phase, so the tree the model converges to is the tree that is exported.
``lambda_ramp`` is a linear warm-up. train.py wires it in (``mst_options``:
--mst-lambda, --mst-variant, --mst-ramp-epochs, --mst-freeze-epochs, --mst-chunk,
--mst-max-depth, --mst-rebuild-steps); the options and the current trees go into
every checkpoint, so a --resume continues with the same trees (frozen or not).
"""

from __future__ import annotations

import argparse
import math
from typing import Iterator

import numpy as np
import torch
import torch.nn as nn

from xnor_edge import mst
from xnor_edge.builder import pack_signs

from .layers import BinConv2d

VARIANTS = ("bit", "word")


def packed_filters(weight: torch.Tensor) -> np.ndarray:
    """[OC, L] uint32 sign words of a [OC, IC, KH, KW] weight, in the model file's layout."""
    w = weight.detach().to("cpu", torch.float32).permute(0, 2, 3, 1).numpy()
    return pack_signs(w, axis=-1).reshape(w.shape[0], -1)


def binary_convs(model: nn.Module) -> Iterator[tuple[str, BinConv2d]]:
    for name, m in model.named_modules():
        if isinstance(m, BinConv2d):
            yield name, m


def lambda_ramp(epoch: float, lam: float, ramp_epochs: float, start_epoch: float = 0.0) -> float:
    """0 before ``start_epoch``, then linear up to ``lam`` over ``ramp_epochs``."""
    if epoch < start_epoch:
        return 0.0
    if ramp_epochs <= 0:
        return lam
    return lam * min(1.0, (epoch - start_epoch) / ramp_epochs)


def edge_penalty(
    weight: torch.Tensor, child: torch.Tensor, parent: torch.Tensor, variant: str
) -> torch.Tensor:
    """R_l for one layer (module docstring); zero when there are no edges."""
    if child.numel() == 0:
        return weight.sum() * 0.0
    u = weight.clamp(-1.0, 1.0)
    scale = u.detach().abs().mean().clamp_min(1e-12)
    diff = u[child] - u[parent]  # [E, IC, KH, KW]
    if variant == "bit":
        return diff.abs().mean() / scale
    if variant != "word":
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    e, ic, kh, kw = diff.shape
    cw = (ic + 31) // 32
    d = diff.permute(0, 2, 3, 1)
    if cw * 32 != ic:
        d = torch.nn.functional.pad(d, (0, cw * 32 - ic))
    sq = d.reshape(e, kh, kw, cw, 32).pow(2).sum(dim=-1)
    # The L2 norm with a zero (not NaN) gradient where a group already agrees.
    groups = torch.where(sq > 0, sq.clamp_min(1e-30).sqrt(), torch.zeros_like(sq))
    return groups.mean() / (math.sqrt(32.0) * scale)


class MstRegularizer:
    """lambda * sum over binary convs of R_l along each layer's current MST."""

    def __init__(
        self,
        model: nn.Module,
        lam: float,
        variant: str = "bit",
        chunk: int | None = 64,
        max_depth: int | None = None,
        skip_layers: int = 0,
    ) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        self.model = model
        self.lam = float(lam)
        self.variant = variant
        self.chunk = chunk
        self.max_depth = max_depth
        self.frozen = False
        # --mst-skip-layers: the first binary convolutions (small, and the most sensitive
        # to a pull: docs/mst.md section 9) carry no penalty
        self.layers = list(binary_convs(model))[skip_layers:]
        self.trees: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.update_trees(force=True)

    def update_trees(self, force: bool = False) -> None:
        """Rebuilds every layer's tree from the current signs (not when frozen)."""
        if self.frozen and not force:
            return
        encoding = "words" if self.variant == "word" else "bits"
        for name, m in self.layers:
            tree = mst.build_tree(
                packed_filters(m.weight), encoding, self.chunk, self.max_depth, forest=False
            )
            child = np.flatnonzero(tree.parent >= 0)
            dev = m.weight.device
            self.trees[name] = (
                torch.as_tensor(child, dtype=torch.long, device=dev),
                torch.as_tensor(tree.parent[child], dtype=torch.long, device=dev),
            )

    def freeze(self) -> None:
        self.frozen = True

    def loss(self, lam: float | None = None) -> torch.Tensor:
        lam = self.lam if lam is None else lam
        total = None
        for name, m in self.layers:
            child, parent = self.trees[name]
            r = edge_penalty(m.weight, child, parent, self.variant)
            total = r if total is None else total + r
        if total is None:
            return torch.zeros(())
        return lam * total

    def add_balanced_grad(self, lam: float) -> torch.Tensor:
        """--mst-layer-norm: after the task loss's backward, adds to every layer's latent
        weight gradient lam * (mean |task grad| / mean |grad R_l|) * grad R_l, so that in every
        layer the pull's mean size is lam times the task gradient's on this batch (docs/mst.md
        section 9: with one lambda the first binary layer's pull was 6x its task gradient and
        the last's 0.4x). A layer without a task gradient (none yet, or all zero) gets none.
        Returns the weighted penalty lam * sum scale_l * R_l (detached, for the log)."""
        total = torch.zeros(())
        if lam == 0:
            return total
        for name, m in self.layers:
            child, parent = self.trees[name]
            w = m.weight
            if w.grad is None or child.numel() == 0:
                continue
            task = w.grad.abs().mean()
            r = edge_penalty(w, child, parent, self.variant)
            (g,) = torch.autograd.grad(r, w)
            pull = g.abs().mean()
            if task == 0 or pull == 0:
                continue
            scale = (task / pull).detach()
            w.grad.add_(g, alpha=float(lam * scale))
            total = total + (lam * scale * r).detach().cpu()
        return total

    def state(self) -> dict:
        """What a checkpoint and a model card record about the regulariser."""
        return {
            "lambda": self.lam,
            "variant": self.variant,
            "chunk": self.chunk,
            "max_depth": self.max_depth,
            "frozen": self.frozen,
        }

    def tree_state(self) -> dict:
        """The current trees (child, parent index lists per layer) and the frozen flag,
        for a checkpoint; ``load_tree_state`` restores them."""
        trees = {n: (c.cpu().tolist(), p.cpu().tolist()) for n, (c, p) in self.trees.items()}
        return {"frozen": self.frozen, "trees": trees}

    def load_tree_state(self, st: dict) -> None:
        names = {n for n, _ in self.layers}
        if set(st["trees"]) != names:
            raise ValueError(
                f"checkpoint trees are for layers {sorted(st['trees'])}, model has {sorted(names)}"
            )
        for name, m in self.layers:
            c, p = st["trees"][name]
            oc = m.weight.shape[0]
            if any(not 0 <= v < oc for v in list(c) + list(p)) or len(c) != len(p):
                raise ValueError(f"checkpoint tree of {name} has indices outside 0..{oc - 1}")
            dev = m.weight.device
            self.trees[name] = (
                torch.as_tensor(c, dtype=torch.long, device=dev),
                torch.as_tensor(p, dtype=torch.long, device=dev),
            )
        self.frozen = bool(st["frozen"])


def mst_options(p: argparse.ArgumentParser) -> None:
    """train.py's regulariser options (recorded in the checkpoint by ``mst_record``)."""
    g = p.add_argument_group("MST regulariser (issue 13, docs/mst.md section 8)")
    g.add_argument("--mst-lambda", type=float, default=0.0, help="lambda (0: off; trees still measured)")
    g.add_argument("--mst-variant", default="bit", help="bit (L1 per weight) or word (group lasso per word)")
    g.add_argument(
        "--mst-ramp-epochs", type=float, default=0.0, help="linear lambda warm-up over N epochs (default 0)"
    )
    g.add_argument(
        "--mst-freeze-epochs",
        type=int,
        default=0,
        help="the last N epochs keep the trees built at their start (default 0)",
    )
    g.add_argument(
        "--mst-chunk",
        type=int,
        default=64,
        help="output-channel chunk of the trees, as the exporter (xnor-edge compress) builds them; 0: "
        "one tree per layer (default 64)",
    )
    g.add_argument("--mst-max-depth", type=int, default=None, help="tree depth bound (default none)")
    g.add_argument(
        "--mst-skip-layers",
        type=int,
        default=0,
        metavar="N",
        help="no penalty on the first N binary convolutions (default 0)",
    )
    g.add_argument(
        "--mst-layer-norm",
        action="store_true",
        help="balance the pull per layer: each layer's penalty gradient rescaled to lambda times the "
        "mean size of its task-loss gradient on the batch (instead of one lambda for R_l as defined)",
    )
    g.add_argument(
        "--mst-rebuild-steps",
        type=int,
        default=0,
        help="also rebuild the trees every N steps within an epoch (default 0: once per epoch)",
    )


def mst_record(args: argparse.Namespace) -> dict:
    """The regulariser options of a run (checkpoint key ``mst``; a resume must match)."""
    return {
        "lambda": float(args.mst_lambda),
        "variant": args.mst_variant,
        "ramp_epochs": float(args.mst_ramp_epochs),
        "freeze_epochs": int(args.mst_freeze_epochs),
        "chunk": int(args.mst_chunk),
        "max_depth": args.mst_max_depth,
        "rebuild_steps": int(args.mst_rebuild_steps),
        # only when on, so the checkpoints written before the option still --resume
        **({"layer_norm": True} if getattr(args, "mst_layer_norm", False) else {}),
        **({"skip_layers": int(args.mst_skip_layers)} if getattr(args, "mst_skip_layers", 0) else {}),
    }


def summarise(dist: dict) -> dict:
    """Layer means of ``tree_distances`` (what the epoch log and metrics record)."""
    if not dist:
        return {"mean_edge_k": None, "ops_ratio": None, "words_ratio": None}
    return {
        k: float(np.mean([v[k] for v in dist.values()])) for k in ("mean_edge_k", "ops_ratio", "words_ratio")
    }


def tree_distances(model: nn.Module, chunk: int | None = 64, max_depth: int | None = None) -> dict:
    """Per binary conv: the current plain MST's mean edge / K (bits tree) and the
    words-touched ratio of the differing-words tree (what the exporter would get)."""
    out = {}
    for name, m in binary_convs(model):
        fw = packed_filters(m.weight)
        oc, ic, kh, kw = m.weight.shape
        k_bits = ic * kh * kw
        bits = mst.tree_stats(fw, mst.build_tree(fw, "bits", chunk, max_depth, forest=False), k_bits)
        words = mst.tree_stats(fw, mst.build_tree(fw, "words", chunk, max_depth, forest=False), k_bits)
        out[name] = {
            "mean_edge_k": bits["mean_edge_k"],
            "ops_ratio": bits["ops_ratio"],
            "words_ratio": words["words_ratio"],
        }
    return out
