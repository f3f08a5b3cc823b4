"""Architectures, each in variants float / bwn / xnor / xnor-nok.

All models are ``XnorNet``: a flat ``nn.Sequential`` of modules the exporter
knows (float Conv2d, BinConv2d, BatchNorm2d, ReLU, MaxPool2d, AvgPool2d,
GlobalAvgPool, Flatten, Linear, BinLinear, BinActiv, Residual), plus the
config that rebuilds it.  First and last layers are full precision.

* ``digits``: 28x28 grey (MNIST / Fashion-MNIST); float conv 5x5, two binary
  3x3 blocks, a binary "fully connected" 3x3 conv over the 3x3 map, float classifier.
* ``vgg-small``: 32x32 CIFAR-size VGG-small (widths w, w, 2w, 2w, 4w, 4w; the
  published VGG-small is w=128), float first conv and float classifier.
* ``resnet18``: ResNet-18 layout (2-2-2-2 basic blocks, widths w..8w, w=64 is
  ResNet-18) with binary 3x3 convolutions, float stem, float 1x1 projection
  shortcuts (type B) and a float classifier, for 96-224 px inputs.
"""

from __future__ import annotations

import torch.nn as nn

from .layers import Flatten, GlobalAvgPool, Residual, binary_block

VARIANTS = ("float", "bwn", "xnor", "xnor-nok")
ARCHS = ("digits", "vgg-small", "resnet18")


def _block_variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    return "xnor" if variant.startswith("xnor") else variant


class XnorNet(nn.Module):
    def __init__(self, features: list[nn.Module], config: dict):
        super().__init__()
        self.features = nn.Sequential(*features)
        self.config = dict(config)

    def forward(self, x):
        return self.features(x)


def _blocks_kwargs(variant: str, order: str, alpha_mode: str, pad_mode: str) -> dict:
    return dict(variant=_block_variant(variant), order=order, alpha_mode=alpha_mode, pad_mode=pad_mode)


def _net(
    arch: str,
    features: list[nn.Module],
    variant: str,
    width: int,
    order: str,
    alpha_mode: str,
    pad_mode: str,
    in_ch: int,
    num_classes: int,
    input_size: int,
) -> XnorNet:
    """The XnorNet with the config that rebuilds it (build_model); xnor-nok turns K off."""
    cfg = dict(
        arch=arch,
        variant=variant,
        width=width,
        order=order,
        alpha_mode=alpha_mode,
        pad_mode=pad_mode,
        in_ch=in_ch,
        num_classes=num_classes,
        input_size=input_size,
    )
    model = XnorNet(features, cfg)
    if variant == "xnor-nok":
        for m in model.modules():
            if hasattr(m, "use_k"):
                m.use_k = False
    return model


def digits_net(
    variant: str = "xnor",
    width: int = 64,
    order: str = "bacp",
    alpha_mode: str = "mean",
    pad_mode: str = "zero",
    in_ch: int = 1,
    num_classes: int = 10,
    input_size: int = 28,
) -> XnorNet:
    if input_size != 28:
        raise ValueError("the digits net is laid out for 28x28 inputs")
    kw = _blocks_kwargs(variant, order, alpha_mode, pad_mode)
    w = width
    f: list[nn.Module] = [
        nn.Conv2d(in_ch, w // 2, 5, 1, 2),
        nn.BatchNorm2d(w // 2),
        nn.ReLU(),
        nn.MaxPool2d(2),
    ]  # 14x14
    f += binary_block(w // 2, w, 3, 1, 1, pool=nn.MaxPool2d(2), **kw)  # 7x7
    f += binary_block(w, 2 * w, 3, 1, 1, pool=nn.MaxPool2d(2), **kw)  # 3x3
    f += binary_block(2 * w, 4 * w, 3, 1, 0, **kw)  # 1x1 (FC)
    if order == "bacp":
        f += [nn.BatchNorm2d(4 * w)]
    f += [Flatten(), nn.Linear(4 * w, num_classes)]
    return _net("digits", f, variant, width, order, alpha_mode, pad_mode, in_ch, num_classes, input_size)


def vgg_small(
    variant: str = "xnor",
    width: int = 64,
    order: str = "bacp",
    alpha_mode: str = "mean",
    pad_mode: str = "zero",
    in_ch: int = 3,
    num_classes: int = 10,
    input_size: int = 32,
) -> XnorNet:
    if input_size % 8:
        raise ValueError("vgg-small needs an input size divisible by 8")
    kw = _blocks_kwargs(variant, order, alpha_mode, pad_mode)
    w = width
    f: list[nn.Module] = [nn.Conv2d(in_ch, w, 3, 1, 1), nn.BatchNorm2d(w), nn.ReLU()]
    f += binary_block(w, w, 3, 1, 1, pool=nn.MaxPool2d(2), **kw)
    f += binary_block(w, 2 * w, 3, 1, 1, **kw)
    f += binary_block(2 * w, 2 * w, 3, 1, 1, pool=nn.MaxPool2d(2), **kw)
    f += binary_block(2 * w, 4 * w, 3, 1, 1, **kw)
    f += binary_block(4 * w, 4 * w, 3, 1, 1, pool=nn.MaxPool2d(2), **kw)
    s = input_size // 8
    if order == "bacp":
        f += [nn.BatchNorm2d(4 * w)]
    f += [Flatten(), nn.Linear(4 * w * s * s, num_classes)]
    return _net("vgg-small", f, variant, width, order, alpha_mode, pad_mode, in_ch, num_classes, input_size)


def _basic_block(cin: int, cout: int, stride: int, kw: dict) -> Residual:
    body = binary_block(
        cin,
        cout,
        3,
        stride,
        1,
        order="bacp",
        relu=True,
        variant=kw["variant"],
        alpha_mode=kw["alpha_mode"],
        pad_mode=kw["pad_mode"],
    )
    body += binary_block(
        cout,
        cout,
        3,
        1,
        1,
        order="bacp",
        relu=False,
        variant=kw["variant"],
        alpha_mode=kw["alpha_mode"],
        pad_mode=kw["pad_mode"],
    )
    body += [nn.BatchNorm2d(cout)]
    shortcut = None
    if stride != 1 or cin != cout:
        shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, 0, bias=False), nn.BatchNorm2d(cout))
    return Residual(nn.Sequential(*body), shortcut, relu=False)


def resnet18(
    variant: str = "xnor",
    width: int = 64,
    order: str = "bacp",
    alpha_mode: str = "mean",
    pad_mode: str = "zero",
    in_ch: int = 3,
    num_classes: int = 10,
    input_size: int = 128,
) -> XnorNet:
    if order != "bacp":
        raise ValueError("resnet18 is built with B-A-C-P blocks only")
    kw = _blocks_kwargs(variant, order, alpha_mode, pad_mode)
    w = width
    f: list[nn.Module] = [
        nn.Conv2d(in_ch, w, 7, 2, 3, bias=False),
        nn.BatchNorm2d(w),
        nn.ReLU(),
        nn.MaxPool2d(3, 2, 1),
    ]
    cin = w
    for i, cout in enumerate((w, 2 * w, 4 * w, 8 * w)):
        f.append(_basic_block(cin, cout, 1 if i == 0 else 2, kw))
        f.append(_basic_block(cout, cout, 1, kw))
        cin = cout
    f += [nn.ReLU(), GlobalAvgPool(), Flatten(), nn.Linear(cin, num_classes)]
    return _net("resnet18", f, variant, width, order, alpha_mode, pad_mode, in_ch, num_classes, input_size)


BUILDERS = {"digits": digits_net, "vgg-small": vgg_small, "resnet18": resnet18}


def build_model(config: dict) -> XnorNet:
    cfg = dict(config)
    arch = cfg.pop("arch")
    if arch not in BUILDERS:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    return BUILDERS[arch](**cfg)
