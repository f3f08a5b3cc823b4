"""Trainer layers (STE, alpha, K, padding) and export parity: PyTorch eval vs the runtime.

Every model here is small and built in well under a second; it is exported with the
public builder and run by the C runtime (``xnor_edge.load``) and by the NumPy float64
reference interpreter.  Logits must agree within ATOL + RTOL * max|logit| and top-1
must be identical.  Skipped when torch is not installed (CI installs it); the C
backend is skipped when the native library cannot be loaded.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from xnor_train.export import ExportError, export_model  # noqa: E402
from xnor_train.layers import (  # noqa: E402
    BinActiv,
    BinConv2d,
    BinLinear,
    Flatten,
    GlobalAvgPool,
    Residual,
    ScaledSignWeight,
    SignSTE,
)
from xnor_train.models import XnorNet, build_model  # noqa: E402

# float32 runtime vs float64 torch: differences come from summation order only.
ATOL, RTOL = 1e-4, 1e-4


def _c_backend_available() -> str | None:
    try:
        import xnor_edge

        xnor_edge.load  # noqa: B018 - triggers loading the native library
        from xnor_edge import model as _m  # noqa: F401

        return None
    except Exception as e:  # any failure to load the native library
        return f"C runtime not available: {e}"


def _randomise_bn(model: nn.Module, gen: torch.Generator) -> None:
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=gen) * 0.3)
            m.running_var.copy_(torch.rand(c, generator=gen) * 1.5 + 0.5)
            m.weight.data.copy_(torch.randn(c, generator=gen) * 0.5 + 1.0)
            m.bias.data.copy_(torch.randn(c, generator=gen) * 0.3)
        if isinstance(m, (BinConv2d, BinLinear, nn.Conv2d, nn.Linear)) and m.bias is not None:
            m.bias.data.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)


def _net(mods: list[nn.Module]) -> XnorNet:
    return XnorNet(mods, {"arch": "test"})


def net_conv_mix():
    return _net(
        [
            nn.Conv2d(5, 8, 3, 1, 1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.MaxPool2d(3, 2, 1),
            nn.BatchNorm2d(8),
            BinConv2d(8, 40, 3, 1, 1, mode="xnor", use_k=True, pad_mode="zero"),
            nn.ReLU(),
            nn.BatchNorm2d(40),
            BinConv2d(40, 16, 3, 2, 1, mode="xnor", use_k=False, pad_mode="one"),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.AvgPool2d(3, 2, 1),
            nn.BatchNorm2d(16),
            BinConv2d(16, 12, 3, 1, 1, mode="xnor", use_k=True, pad_mode="one"),
            nn.BatchNorm2d(12),
            BinConv2d(12, 33, 3, 2, 1, mode="bwn"),
            nn.ReLU(),
            Flatten(),
            nn.Linear(33, 7),
        ]
    )


def net_dense_mix():
    return _net(
        [
            nn.Conv2d(5, 6, 3, 2, 0),
            nn.ReLU(),
            Flatten(),
            BinLinear(6 * 5 * 4, 50, mode="xnor", use_k=True),
            nn.ReLU(),
            BinLinear(50, 40, mode="bwn"),
            BinLinear(40, 30, mode="xnor", use_k=False, alpha_mode="learned"),
            nn.ReLU(),
            nn.Linear(30, 4),
        ]
    )


def net_residual():
    def block(cin, cout, stride, pad_mode):
        body = nn.Sequential(
            nn.BatchNorm2d(cin),
            BinConv2d(cin, cout, 3, stride, 1, "xnor", True, pad_mode),
            nn.ReLU(),
            nn.BatchNorm2d(cout),
            BinConv2d(cout, cout, 3, 1, 1, "bwn"),
            nn.BatchNorm2d(cout),
        )
        sc = (
            None
            if stride == 1 and cin == cout
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, 0, bias=False), nn.BatchNorm2d(cout))
        )
        return Residual(body, sc, relu=stride == 1)

    return _net(
        [
            nn.Conv2d(5, 16, 3, 1, 1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            block(16, 16, 1, "zero"),
            block(16, 24, 2, "one"),
            nn.ReLU(),
            GlobalAvgPool(),
            Flatten(),
            nn.Linear(24, 5),
        ]
    )


def net_cbap_bits():
    # C-B-A-P: binary activations, max-pool on bits, then an XNOR conv on a bits input.
    return _net(
        [
            nn.Conv2d(5, 16, 3, 1, 1),
            nn.BatchNorm2d(16),
            BinActiv(),
            nn.MaxPool2d(2),
            BinConv2d(16, 36, 3, 1, 1, mode="xnor", use_k=False, pad_mode="zero"),
            nn.BatchNorm2d(36),
            BinActiv(),
            nn.MaxPool2d(2, 2, 1),
            BinConv2d(36, 20, 3, 1, 1, mode="xnor", use_k=False, pad_mode="one"),
            nn.BatchNorm2d(20),
            nn.ReLU(),
            GlobalAvgPool(),
            Flatten(),
            nn.Linear(20, 6),
        ]
    )


CASES = {
    "conv_mix": (net_conv_mix, (12, 10, 5)),
    "dense_mix": (net_dense_mix, (12, 10, 5)),
    "residual": (net_residual, (9, 11, 5)),
    "cbap_bits": (net_cbap_bits, (12, 12, 5)),
    "digits_xnor": (lambda: build_model(dict(arch="digits", variant="xnor", width=16)), (28, 28, 1)),
    "digits_bwn_learned_alpha": (
        lambda: build_model(dict(arch="digits", variant="bwn", width=16, alpha_mode="learned")),
        (28, 28, 1),
    ),
    "vgg_small_xnor_nok_pad_one": (
        lambda: build_model(dict(arch="vgg-small", variant="xnor-nok", width=8, pad_mode="one")),
        (32, 32, 3),
    ),
    "vgg_small_float": (lambda: build_model(dict(arch="vgg-small", variant="float", width=8)), (32, 32, 3)),
    "resnet18_xnor": (
        lambda: build_model(dict(arch="resnet18", variant="xnor", width=8, input_size=64)),
        (64, 64, 3),
    ),
}


def _quick_train(model: nn.Module, shape, gen: torch.Generator, steps: int = 3) -> None:
    """A few Adam steps on random data so exported weights are trained, not just initialised."""
    h, w, c = shape
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        x = torch.randn(8, c, h, w, generator=gen)
        loss = model(x).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def _build(name: str, seed: int = 0):
    factory, shape = CASES[name]
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = factory()
    _quick_train(model, shape, gen)
    _randomise_bn(model, gen)
    model.eval()
    x = torch.randn(6, *shape, generator=gen).numpy().astype(np.float32)  # NHWC
    with torch.no_grad():
        ref = model.double()(torch.from_numpy(x).double().permute(0, 3, 1, 2)).reshape(len(x), -1).numpy()
    model.float()
    return model, shape, x, ref


def _check(out: np.ndarray, ref: np.ndarray) -> None:
    out = out.reshape(ref.shape).astype(np.float64)
    tol = ATOL + RTOL * np.abs(ref).max()
    assert np.abs(out - ref).max() <= tol, f"max |diff| {np.abs(out - ref).max():.3g} > {tol:.3g}"
    assert (out.argmax(1) == ref.argmax(1)).all()


@pytest.mark.parametrize("name", sorted(CASES))
def test_export_matches_reference(name, tmp_path):
    from xnor_edge.reference import ReferenceModel

    model, shape, x, ref = _build(name)
    path = tmp_path / f"{name}.xnor"
    export_model(model, shape, {"name": name}).save(path)
    rm = ReferenceModel.from_file(path)
    _check(np.stack([rm.run(xi) for xi in x]), ref)


@pytest.mark.parametrize("name", sorted(CASES))
def test_export_matches_c_runtime(name, tmp_path):
    why = _c_backend_available()
    if why:
        pytest.skip(why)
    import xnor_edge

    model, shape, x, ref = _build(name)
    path = tmp_path / f"{name}.xnor"
    export_model(model, shape, {"name": name}).save(path)
    m = xnor_edge.load(str(path))
    _check(np.stack([np.asarray(m.run(xi)) for xi in x]), ref)


# ------------------------------------------------------------------ layer unit tests


def test_sign_zero_is_plus_one_and_ste_clips():
    x = torch.tensor([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 1.0001, 3.0], requires_grad=True)
    y = SignSTE.apply(x)
    assert y.tolist() == [-1, -1, -1, 1, 1, 1, 1, 1]
    y.backward(torch.arange(1.0, 9.0))
    assert x.grad.tolist() == [0, 2, 3, 4, 5, 6, 0, 0]


def test_scaled_sign_weight_alpha_and_gradient():
    gen = torch.Generator().manual_seed(1)
    w = (torch.randn(4, 3, 3, 3, generator=gen) * 0.9).requires_grad_()
    wb = ScaledSignWeight.apply(w)
    alpha = w.detach().abs().mean(dim=(1, 2, 3))
    expect = torch.where(w.detach() < 0, -1.0, 1.0) * alpha[:, None, None, None]
    torch.testing.assert_close(wb, expect)
    g = torch.randn(4, 3, 3, 3, generator=gen)
    wb.backward(g)
    n = 27
    mask = (w.detach().abs() <= 1).float()
    torch.testing.assert_close(w.grad, g * (1.0 / n + alpha[:, None, None, None] * mask))
    assert (w.detach().abs() > 1).any(), "the test must exercise the clipped branch"


def test_learned_alpha_gets_gradient():
    conv = BinConv2d(3, 4, 3, 1, 1, mode="bwn", alpha_mode="learned")
    conv(torch.randn(2, 3, 5, 5)).sum().backward()
    assert conv.alpha.grad is not None and conv.alpha.grad.abs().sum() > 0
    torch.testing.assert_close(conv.export_scale(), conv.alpha.detach())


def test_k_map_and_padding_modes_by_hand():
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(1, 3, 5, 4, generator=gen)
    x[0, :, 0, 0] = 0.0  # sign(0) = +1
    for pad_mode in ("zero", "one"):
        for use_k in (False, True):
            conv = BinConv2d(3, 2, 3, 2, 1, mode="xnor", use_k=use_k, pad_mode=pad_mode, bias=False)
            y = conv(x).detach().numpy()[0]
            w = conv.weight.detach().numpy()
            b = np.where(w < 0, -1.0, 1.0)
            alpha = np.abs(w).reshape(2, -1).mean(1)
            s = np.where(x.numpy()[0] < 0, -1.0, 1.0)
            sp = np.pad(s, ((0, 0), (1, 1), (1, 1)), constant_values=1.0 if pad_mode == "one" else 0.0)
            a = np.pad(np.abs(x.numpy()[0]).mean(0), 1)
            for oc in range(2):
                for i in range(3):
                    for j in range(2):
                        dot = (sp[:, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3] * b[oc]).sum()
                        k = a[2 * i : 2 * i + 3, 2 * j : 2 * j + 3].sum() / 9 if use_k else 1.0
                        assert abs(y[oc, i, j] - dot * alpha[oc] * k) < 1e-5


def test_bwn_conv_equals_float_conv_with_binarised_weights():
    conv = BinConv2d(4, 6, 3, 1, 1, mode="bwn", bias=False)
    x = torch.randn(2, 4, 7, 7)
    w = conv.weight.detach()
    wb = torch.where(w < 0, -1.0, 1.0) * w.abs().mean(dim=(1, 2, 3), keepdim=True)
    torch.testing.assert_close(conv(x), F.conv2d(x, wb, padding=1))


def test_export_rejects_unsupported_module():
    net = _net([nn.Conv2d(3, 4, 3), nn.Sigmoid(), GlobalAvgPool(), Flatten(), nn.Linear(4, 2)])
    with pytest.raises(ExportError, match="Sigmoid"):
        export_model(net.eval(), (8, 8, 3))


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="pad_mode"):
        BinConv2d(3, 4, 3, pad_mode="two")
    with pytest.raises(ValueError, match="variant"):
        build_model(dict(arch="digits", variant="ternary"))
