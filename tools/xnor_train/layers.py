"""Binary layers as in XNOR-Net (Rastegari et al. 2016), matching the xnor-edge runtime.

Maths (the XNOR-Net paper, section 3; docs/format.md):

* ``sign(r)`` is +1 for r >= 0 and -1 for r < 0 (sign(0) = +1, the runtime's rule).
  Backward: straight-through estimator clipped at |r| <= 1, d sign/dr = 1{|r| <= 1}.
* Binary weights (eq. 6): ``W~ = alpha * sign(W)``, alpha = mean |W| per output filter.
  Backward (paper): dC/dW_i = dC/dW~_i * (1/n + alpha * 1{|W_i| <= 1}).
  Ablation: alpha as a learned per-filter parameter (W~ = alpha_p * sign_ste(W)).
* XNOR convolution: ``y = conv(sign(x), sign(W)) * alpha * K + bias`` where
  A = mean_c |x| and K = box_KHxKW(A) with zero padding, divisor KH*KW, same stride
  (``avg_pool2d(count_include_pad=True)``). K can be switched off (K = 1).
* Padding "zero": padded taps of sign(x) contribute 0 (PyTorch conv padding).
  Padding "one": the sign map is padded with +1 before a padding-free conv.

The exporter (export.py) maps these modules to the runtime's ops one to one.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def sign_pm1(x: torch.Tensor) -> torch.Tensor:
    """sign with sign(0) = +1, no gradient (exactly the runtime's binarisation)."""
    return torch.where(x < 0, torch.full_like(x, -1.0), torch.ones_like(x))


class SignSTE(torch.autograd.Function):
    """Forward sign (sign(0)=+1); backward STE clipped at |r| <= 1."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return sign_pm1(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 1).to(grad.dtype)


class ScaledSignWeight(torch.autograd.Function):
    """W~ = alpha * sign(W), alpha = mean|W| over all but dim 0 (eq. 6).

    Backward follows the paper: dC/dW = dC/dW~ * (1/n + alpha * 1{|W| <= 1}).
    """

    @staticmethod
    def forward(ctx, w):
        n = w[0].numel()
        alpha = w.abs().reshape(w.shape[0], -1).mean(dim=1)
        alpha_b = alpha.reshape(-1, *([1] * (w.dim() - 1)))
        ctx.save_for_backward(w, alpha_b)
        ctx.n = n
        return sign_pm1(w) * alpha_b

    @staticmethod
    def backward(ctx, grad):
        w, alpha_b = ctx.saved_tensors
        return grad * (1.0 / ctx.n + alpha_b * (w.abs() <= 1).to(grad.dtype))


def binary_sign(x: torch.Tensor) -> torch.Tensor:
    return SignSTE.apply(x)


def filter_alpha(w: torch.Tensor) -> torch.Tensor:
    """alpha = mean |W| per output filter (eq. 6), shape [OC]."""
    return w.detach().abs().reshape(w.shape[0], -1).mean(dim=1)


class BinConv2d(nn.Module):
    """Binary-weight (bwn) or XNOR convolution with the runtime's exact semantics.

    mode: "bwn" (float input, binary weights) or "xnor" (binary input and weights).
    use_k: XNOR only, multiply by the per-position input scale map K.
    pad_mode: "zero" or "one" (XNOR only; BWN always pads with zeros).
    alpha_mode: "mean" (eq. 6, not a parameter) or "learned" (per-filter parameter).
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int | tuple,
        stride: int = 1,
        padding: int = 0,
        mode: str = "xnor",
        use_k: bool = True,
        pad_mode: str = "zero",
        alpha_mode: str = "mean",
        bias: bool = True,
    ):
        super().__init__()
        if mode not in ("bwn", "xnor"):
            raise ValueError(f"BinConv2d mode must be 'bwn' or 'xnor', got {mode!r}")
        if pad_mode not in ("zero", "one"):
            raise ValueError(f"pad_mode must be 'zero' or 'one', got {pad_mode!r}")
        if alpha_mode not in ("mean", "learned"):
            raise ValueError(f"alpha_mode must be 'mean' or 'learned', got {alpha_mode!r}")
        if mode == "bwn" and pad_mode != "zero":
            raise ValueError("BWN convolutions pad with zeros only (the runtime's bwn_conv2d)")
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
        self.in_ch, self.out_ch = in_ch, out_ch
        self.kernel_size = (kh, kw)
        self.stride = stride
        self.padding = padding
        self.mode = mode
        self.use_k = bool(use_k) and mode == "xnor"
        self.pad_mode = pad_mode
        self.alpha_mode = alpha_mode
        w = torch.empty(out_ch, in_ch, kh, kw)
        nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu")
        self.weight = nn.Parameter(w)
        if alpha_mode == "learned":
            self.alpha = nn.Parameter(filter_alpha(w).clone())
        else:
            self.register_parameter("alpha", None)
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None

    def binary_weight(self) -> torch.Tensor:
        """W~ = alpha * sign(W) (alpha eq. 6 or learned)."""
        if self.alpha_mode == "learned":
            return SignSTE.apply(self.weight) * self.alpha.reshape(-1, 1, 1, 1)
        return ScaledSignWeight.apply(self.weight)

    def export_scale(self) -> torch.Tensor:
        """The per-filter scale the runtime multiplies the +-1 dot product by."""
        if self.alpha_mode == "learned":
            return self.alpha.detach().clone()
        return filter_alpha(self.weight)

    def k_map(self, x: torch.Tensor) -> torch.Tensor:
        a = x.abs().mean(dim=1, keepdim=True)
        return F.avg_pool2d(a, self.kernel_size, self.stride, self.padding, count_include_pad=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        wb = self.binary_weight()
        if self.mode == "bwn":
            y = F.conv2d(x, wb, None, self.stride, self.padding)
        else:
            s = binary_sign(x)
            if self.pad_mode == "one" and self.padding:
                p = self.padding
                s = F.pad(s, (p, p, p, p), value=1.0)
                y = F.conv2d(s, wb, None, self.stride, 0)
            else:
                y = F.conv2d(s, wb, None, self.stride, self.padding)
            if self.use_k:
                y = y * self.k_map(x)
        if self.bias is not None:
            y = y + self.bias.reshape(1, -1, 1, 1)
        return y

    def extra_repr(self) -> str:
        return (
            f"{self.in_ch}, {self.out_ch}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding}, mode={self.mode}, use_k={self.use_k}, "
            f"pad_mode={self.pad_mode}, alpha_mode={self.alpha_mode}"
        )


class BinLinear(nn.Module):
    """Binary fully connected layer over a flattened NCHW input (PyTorch 'chw' order).

    xnor: y = (sign(x) . sign(W)) * alpha * K + b, K = mean |x| over the whole input.
    bwn:  y = (x . sign(W)) * alpha + b.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        mode: str = "xnor",
        use_k: bool = True,
        alpha_mode: str = "mean",
        bias: bool = True,
    ):
        super().__init__()
        if mode not in ("bwn", "xnor"):
            raise ValueError(f"BinLinear mode must be 'bwn' or 'xnor', got {mode!r}")
        if alpha_mode not in ("mean", "learned"):
            raise ValueError(f"alpha_mode must be 'mean' or 'learned', got {alpha_mode!r}")
        self.in_features, self.out_features = in_features, out_features
        self.mode = mode
        self.use_k = bool(use_k) and mode == "xnor"
        self.alpha_mode = alpha_mode
        w = torch.empty(out_features, in_features)
        nn.init.kaiming_uniform_(w, a=5**0.5)
        self.weight = nn.Parameter(w)
        if alpha_mode == "learned":
            self.alpha = nn.Parameter(filter_alpha(w).clone())
        else:
            self.register_parameter("alpha", None)
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    def binary_weight(self) -> torch.Tensor:
        if self.alpha_mode == "learned":
            return SignSTE.apply(self.weight) * self.alpha.reshape(-1, 1)
        return ScaledSignWeight.apply(self.weight)

    def export_scale(self) -> torch.Tensor:
        if self.alpha_mode == "learned":
            return self.alpha.detach().clone()
        return filter_alpha(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        wb = self.binary_weight()
        if self.mode == "bwn":
            return F.linear(x, wb, self.bias)
        y = F.linear(binary_sign(x), wb)
        if self.use_k:
            y = y * x.abs().mean(dim=1, keepdim=True)
        if self.bias is not None:
            y = y + self.bias
        return y


class BinActiv(nn.Module):
    """sign with the clipped STE, as a module (runtime op ``sign``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return binary_sign(x)


class GlobalAvgPool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3), keepdim=True)


class Flatten(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


class Residual(nn.Module):
    """y = relu?(body(x) + shortcut(x)); shortcut is identity or a projection (type B)."""

    def __init__(self, body: nn.Module, shortcut: nn.Module | None = None, relu: bool = False):
        super().__init__()
        self.body = body
        self.shortcut = shortcut if shortcut is not None else nn.Identity()
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x) + self.shortcut(x)
        return F.relu(y) if self.relu else y


def binary_block(
    in_ch: int,
    out_ch: int,
    kernel: int,
    stride: int = 1,
    padding: int = 0,
    variant: str = "xnor",
    order: str = "bacp",
    relu: bool = True,
    pool: nn.Module | None = None,
    pad_mode: str = "zero",
    alpha_mode: str = "mean",
) -> list[nn.Module]:
    """One binary block as a list of modules.

    order "bacp": BatchNorm -> BinActiv -> BinConv -> [ReLU] -> [Pool]  (paper's choice)
    order "cbap": BinConv -> BatchNorm -> BinActiv -> [Pool]: pooling acts on binary
    values (the usual order, which the paper's Table 3b finds worse); for bwn/float the
    activation is a ReLU.
    variant "float" uses a real conv in the same position (the full-precision counterpart).
    """
    if variant == "float":
        conv: nn.Module = nn.Conv2d(in_ch, out_ch, kernel, stride, padding, bias=True)
    else:
        mode = "bwn" if variant == "bwn" else "xnor"
        conv = BinConv2d(
            in_ch,
            out_ch,
            kernel,
            stride,
            padding,
            mode=mode,
            use_k=(variant == "xnor"),
            pad_mode=pad_mode if mode == "xnor" else "zero",
            alpha_mode=alpha_mode,
        )
    mods: list[nn.Module] = []
    if order == "bacp":
        mods += [nn.BatchNorm2d(in_ch), conv]
        if relu:
            mods.append(nn.ReLU())
        if pool is not None:
            mods.append(pool)
    elif order == "cbap":
        mods += [conv, nn.BatchNorm2d(out_ch)]
        if variant == "xnor":
            mods.append(BinActiv())
        elif relu:
            mods.append(nn.ReLU())
        if pool is not None:
            mods.append(pool)
    else:
        raise ValueError(f"block order must be 'bacp' or 'cbap', got {order!r}")
    return mods
