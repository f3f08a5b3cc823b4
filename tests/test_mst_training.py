"""The MST regulariser wired into train.py (issue 13) and --init-xnor, on tiny synthetic
data: the loss acts (lambda > 0 shortens the trees against lambda = 0), the options and
trees are recorded in the checkpoint and kept by --resume, and a model initialised from
an .xnor file computes the file's logits (C runtime)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import fake_mnist

torch = pytest.importorskip("torch")

from xnor_train import card, export, mst_reg, train  # noqa: E402
from xnor_train.export import export_model  # noqa: E402
from xnor_train.init_xnor import XnorInitError, init_from_xnor  # noqa: E402
from xnor_train.models import build_model  # noqa: E402


def _digits_args(data, run, variant: str, width: int = 16) -> list[str]:
    return [
        "--data", "mnist", "--data-path", str(data), "--arch", "digits", "--variant", variant,
        "--width", str(width), "--batch-size", "32", "--threads", "1", "--device", "cpu",
        "--out", str(run),
    ]  # fmt: skip


MST = ["--mst-chunk", "16", "--optimizer", "adam", "--lr", "1e-2", "--seed", "1"]


def _last(run):
    return torch.load(run / "last.pt", weights_only=False)


def test_lambda_shortens_the_trees_and_is_recorded(tmp_path, capsys):
    data = tmp_path / "mnist"
    fake_mnist(data, 256, 32)
    dist = {}
    for lam in (0.0, 3.0):
        run = tmp_path / f"lam{lam}"
        args = _digits_args(data, run, "xnor") + MST + ["--epochs", "3", "--mst-lambda", str(lam)]
        assert train.main(args + ["--mst-variant", "word"]) == 0
        ck = _last(run)
        dist[lam] = ck["history"][-1]["mst"]["mean_edge_k"]
        assert ck["mst"]["lambda"] == lam and ck["mst"]["variant"] == "word" and ck["mst"]["chunk"] == 16
        # What the log reports is what the checkpoint's weights give.
        model = build_model(ck["config"])
        model.load_state_dict(ck["model"])
        assert mst_reg.summarise(mst_reg.tree_distances(model, 16))["mean_edge_k"] == pytest.approx(dist[lam])
    assert dist[3.0] < 0.6 * dist[0.0], dist


def test_resume_keeps_options_and_frozen_trees(tmp_path, capsys):
    data = tmp_path / "mnist"
    fake_mnist(data, 128, 32)
    run = tmp_path / "run"
    args = _digits_args(data, run, "xnor") + MST + ["--mst-lambda", "1", "--mst-freeze-epochs", "2"]
    assert train.main(args + ["--epochs", "2"]) == 0  # epochs 1-2 of 2: frozen from epoch 1
    ck = _last(run)
    assert ck["mst"]["freeze_epochs"] == 2 and ck["mst_trees"]["frozen"]
    trees = ck["mst_trees"]["trees"]
    assert trees and all(len(c) == len(p) > 0 for c, p in trees.values())
    assert train.main(args + ["--epochs", "3", "--resume"]) == 0
    ck2 = _last(run)
    assert ck2["epoch"] == 3 and ck2["mst"] == ck["mst"]
    assert ck2["mst_trees"] == ck["mst_trees"]  # frozen trees survive the resume unchanged
    capsys.readouterr()
    bad = [a if a != "1" else "2" for a in args]  # another lambda
    assert train.main(bad + ["--epochs", "4", "--resume"]) == 2
    assert "MST options" in capsys.readouterr().out


def test_train_init_xnor_records_the_file(tmp_path, capsys):
    data = tmp_path / "mnist"
    fake_mnist(data, 128, 32)
    a = tmp_path / "a"
    assert train.main(_digits_args(data, a, "xnor") + ["--epochs", "1"]) == 0
    model = build_model(_last(a)["config"])
    model.load_state_dict(_last(a)["model"])
    export_model(model, (28, 28, 1), {"name": "a", "training": {"epochs": 1}}).save(tmp_path / "a.xnor")
    b = tmp_path / "b"
    extra = ["--epochs", "1", "--init-xnor", str(tmp_path / "a.xnor"), "--init-calib", "64"]
    assert train.main(_digits_args(data, b, "xnor") + extra + ["--mst-lambda", "0.5"]) == 0
    ck = _last(b)
    assert (
        ck["init"]["kind"] == "xnor" and ck["init"]["epochs"] == 1 and ck["init"]["calibration_images"] == 64
    )
    bx, md = tmp_path / "b.xnor", tmp_path / "b.md"
    assert export.main([str(b / "last.pt"), str(bx)]) == 0
    assert (
        card.main(
            [str(b / "last.pt"), str(bx), "--data", "mnist", "--data-path", str(data), "--out", str(md)]
        )
        == 0
    )
    text = md.read_text()
    assert "`a.xnor` (`--init-xnor`; 64 training images" in text
    assert "MST regulariser (docs/mst.md): lambda 0.5, variant bit" in text
    capsys.readouterr()
    assert train.main(_digits_args(data, b, "xnor") + extra + ["--resume"]) == 2
    assert "give one of them" in capsys.readouterr().out


def test_bad_mst_options_are_refused(tmp_path):
    data = tmp_path / "mnist"
    fake_mnist(data, 64, 16)
    base = _digits_args(data, tmp_path / "r", "xnor") + ["--epochs", "1"]
    for extra in (["--mst-variant", "nope"], ["--mst-lambda", "-1"]):
        with pytest.raises(SystemExit):
            train.parse_args(base + extra)


def _roundtrip(cfg: dict, tmp_path, seed: int = 0):
    """A random model exported to .xnor, a fresh model initialised from the file; both
    C-runtime and PyTorch logits on random inputs."""
    import xnor_edge

    torch.manual_seed(seed)
    src = build_model(cfg)
    for m in src.modules():  # non-trivial BN statistics, so folding and calibration matter
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.3, 0.3)
    s = cfg["input_size"]
    path = tmp_path / "m.xnor"
    export_model(src, (s, s, cfg["in_ch"]), {"name": "t"}).save(path)
    rng = np.random.default_rng(seed)
    calib = torch.from_numpy(rng.standard_normal((64, cfg["in_ch"], s, s)).astype(np.float32))
    dst = build_model(cfg)
    rec = init_from_xnor(dst, path, calib)
    x = rng.standard_normal((32, s, s, cfg["in_ch"])).astype(np.float32)
    rt = xnor_edge.load(str(path), num_threads=1)
    c = np.stack([np.asarray(rt.run(xi), dtype=np.float64).reshape(-1) for xi in x])
    with torch.no_grad():
        t = dst.eval()(torch.from_numpy(x).permute(0, 3, 1, 2)).double().numpy()
    return rec, c, t, dst


@pytest.mark.parametrize(
    "arch,size,width",
    [("vgg-small", 16, 8), ("resnet18", 32, 4), ("digits", 28, 8)],
)
def test_init_xnor_reproduces_the_file(tmp_path, arch, size, width):
    cfg = dict(arch=arch, variant="xnor", width=width, order="bacp", alpha_mode="mean", pad_mode="zero",
               in_ch=3 if arch != "digits" else 1, num_classes=10, input_size=size)  # fmt: skip
    rec, c, t, dst = _roundtrip(cfg, tmp_path)
    assert rec["calibrated_bns"] > 0 and rec["init"] is None
    assert (c.argmax(1) == t.argmax(1)).mean() >= 0.95
    assert np.median(np.abs(c - t)) <= 1e-3 * max(1.0, np.abs(c).max())
    # Every BN now carries its input's measured statistics, not the placeholders.
    bns = [m for m in dst.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert any(not torch.allclose(b.running_var, torch.full_like(b.running_var, 1 - b.eps)) for b in bns)


def test_init_xnor_reproduces_the_shipped_cifar_model(tmp_path):
    from pathlib import Path

    import xnor_edge

    path = Path(__file__).resolve().parents[1] / "models" / "cifar10-vggsmall-xnor.xnor"
    cfg = dict(arch="vgg-small", variant="xnor", width=64, order="bacp", alpha_mode="mean", pad_mode="zero",
               in_ch=3, num_classes=10, input_size=32)  # fmt: skip
    m = build_model(cfg)
    rng = np.random.default_rng(3)
    init_from_xnor(m, path, torch.from_numpy(rng.standard_normal((128, 3, 32, 32)).astype(np.float32)))
    x = rng.standard_normal((40, 32, 32, 3)).astype(np.float32)
    rt = xnor_edge.load(str(path), num_threads=1)
    c = np.stack([np.asarray(rt.run(xi), dtype=np.float64).reshape(-1) for xi in x])
    with torch.no_grad():
        t = m.eval()(torch.from_numpy(x).permute(0, 3, 1, 2)).double().numpy()
    assert (c.argmax(1) == t.argmax(1)).mean() >= 0.95
    assert np.median(np.abs(c - t)) < 1e-3


def test_init_xnor_reproduces_the_shipped_imagenette_resnet18(tmp_path):
    """The section 9.2 protocol's start: the shipped ResNet-18 (residual blocks, float 1x1
    shortcuts, alpha "mean" in the file) loaded with --alpha-mode learned and latent
    weights sign * 0.005 computes the file's C logits in eval mode."""
    from pathlib import Path

    import xnor_edge

    path = Path(__file__).resolve().parents[1] / "models" / "imagenette-resnet18-xnor.xnor"
    cfg = dict(arch="resnet18", variant="xnor", width=64, order="bacp", alpha_mode="learned", pad_mode="zero",
               in_ch=3, num_classes=10, input_size=96)  # fmt: skip
    m = build_model(cfg)
    rng = np.random.default_rng(5)
    rec = init_from_xnor(
        m, path, torch.from_numpy(rng.standard_normal((32, 3, 96, 96)).astype(np.float32)), 0.005
    )
    assert rec["calibrated_bns"] > 0 and rec["latent"] == 0.005
    convs = list(mst_reg.binary_convs(m))
    assert len(convs) == 16 and all(torch.all(c.weight.abs() == 0.005) for _, c in convs)
    x = rng.standard_normal((12, 96, 96, 3)).astype(np.float32)
    with xnor_edge.load(str(path), num_threads=1) as rt:
        c = np.stack([np.asarray(rt.run(xi), dtype=np.float64).reshape(-1) for xi in x])
    with torch.no_grad():
        t = m.eval()(torch.from_numpy(x).permute(0, 3, 1, 2)).double().numpy()
    # Measured: max difference 3.8e-6 (logits up to 3.6); one layer's signs negated: 1.97.
    assert np.abs(c - t).max() < 1e-3
    assert (c.argmax(1) == t.argmax(1)).all()


def test_init_xnor_refuses_a_file_that_does_not_fit(tmp_path):
    cfg = dict(arch="vgg-small", variant="xnor", width=8, order="bacp", alpha_mode="mean", pad_mode="zero",
               in_ch=3, num_classes=10, input_size=16)  # fmt: skip
    _roundtrip(cfg, tmp_path)
    wider = build_model(dict(cfg, width=16))
    with pytest.raises(XnorInitError, match="channels"):
        init_from_xnor(wider, tmp_path / "m.xnor")
    with pytest.raises(XnorInitError, match="no such file"):
        init_from_xnor(wider, tmp_path / "absent.xnor")
    (tmp_path / "junk.xnor").write_bytes(b"not a model")
    with pytest.raises(XnorInitError, match="junk.xnor"):
        init_from_xnor(wider, tmp_path / "junk.xnor")


def _float_state(ck: dict) -> dict:
    """Every parameter and buffer of a checkpoint except the binary layers' latent weights."""
    model = build_model(ck["config"])
    latent = {n + ".weight" for n, _ in mst_reg.binary_convs(model)}
    return {k: v for k, v in ck["model"].items() if k not in latent}, latent


def test_freeze_float_trains_only_the_latent_weights(tmp_path, capsys):
    data = tmp_path / "mnist"
    fake_mnist(data, 128, 32)
    a = tmp_path / "a"  # a start point with non-trivial BN statistics, affine and alpha
    base = _digits_args(data, a, "xnor") + ["--alpha-mode", "learned", "--lr", "1e-2", "--seed", "1"]
    assert train.main(base + ["--epochs", "1"]) == 0
    start = _last(a)
    runs = {}
    for frozen in (True, False):
        run = tmp_path / f"frozen{frozen}"
        args = [x if x != str(a) else str(run) for x in base]
        args += [
            "--epochs",
            "1",
            "--init",
            str(a / "last.pt"),
            "--mst-lambda",
            "0.5",
            "--mst-variant",
            "word",
        ]
        assert train.main(args + (["--freeze-float"] if frozen else [])) == 0
        runs[frozen] = _last(run)
    before, latent = _float_state(start)
    assert latent and len(before) > 3 * len(latent)  # BN weight/bias/statistics, alpha, biases, float convs
    after = _float_state(runs[True])[0]
    assert after.keys() == before.keys()
    for k in before:  # bit-unchanged: parameters and BN buffers (running statistics, counters)
        assert torch.equal(after[k], before[k]), k
    for k in latent:  # 4 steps of Adam at lr 1e-2 move every latent tensor
        assert not torch.equal(runs[True]["model"][k], start["model"][k]), k
    assert runs[True]["freeze_float"] is True and runs[True]["args"]["freeze_float"] is True
    # The optimiser holds only the latent weights.
    assert sum(len(g["params"]) for g in runs[True]["optimizer"]["param_groups"]) == len(latent)
    # Without the option the same run moves the float parameters and BN statistics (so the
    # comparison above can fail).
    moved = _float_state(runs[False])[0]
    assert any("running_mean" in k and not torch.equal(moved[k], before[k]) for k in before)
    assert any(k.endswith("alpha") and not torch.equal(moved[k], before[k]) for k in before)
    assert runs[False]["freeze_float"] is False
    # The card says so; a resume must keep the option.
    run = tmp_path / "frozenTrue"
    md = tmp_path / "c.md"
    assert export.main([str(run / "last.pt"), str(tmp_path / "c.xnor")]) == 0
    card_args = [str(run / "last.pt"), str(tmp_path / "c.xnor"), "--data", "mnist", "--data-path", str(data)]
    assert card.main(card_args + ["--out", str(md)]) == 0
    assert "(`--freeze-float`)" in md.read_text()
    capsys.readouterr()
    again = [x if x != str(a) else str(run) for x in base] + ["--mst-lambda", "0.5", "--mst-variant", "word"]
    assert train.main(again + ["--epochs", "2", "--resume"]) == 2
    assert "--freeze-float" in capsys.readouterr().out


def test_freeze_float_refuses_a_model_without_binary_layers(tmp_path, capsys):
    data = tmp_path / "mnist"
    fake_mnist(data, 64, 16)
    args = _digits_args(data, tmp_path / "f", "float") + ["--epochs", "1", "--freeze-float"]
    assert train.main(args) == 2
    assert "no binary layers" in capsys.readouterr().out


def test_layer_norm_scales_each_layers_pull_to_its_task_gradient(tmp_path):
    torch.manual_seed(0)
    cfg = dict(arch="vgg-small", variant="xnor", width=8, order="bacp", alpha_mode="learned", pad_mode="zero",
               in_ch=3, num_classes=10, input_size=16)  # fmt: skip
    model = build_model(cfg)
    reg = mst_reg.MstRegularizer(model, 0.5, "word", chunk=8)
    layers = reg.layers
    assert len(layers) >= 3
    # Task gradients of very different sizes per layer; the first layer has none.
    task = {}
    for k, (name, m) in enumerate(layers[1:], start=1):
        m.weight.grad = torch.randn_like(m.weight) * 10.0**-k
        task[name] = m.weight.grad.clone()
    total = reg.add_balanced_grad(0.5)
    assert layers[0][1].weight.grad is None  # no task gradient: no pull either
    for name, m in layers[1:]:
        added = m.weight.grad - task[name]
        assert added.abs().max() > 0
        # The pull's mean size is lambda x the task gradient's, whatever the layer's scale.
        assert added.abs().mean().item() == pytest.approx(0.5 * task[name].abs().mean().item(), rel=1e-4)
        # ... in the direction of R_l's gradient.
        child, parent = reg.trees[name]
        (g,) = torch.autograd.grad(mst_reg.edge_penalty(m.weight, child, parent, "word"), m.weight)
        assert torch.allclose(added / added.abs().mean(), g / g.abs().mean(), atol=1e-5)
    assert total.item() > 0
    assert reg.add_balanced_grad(0.0).item() == 0.0


def test_layer_norm_option_is_recorded_and_acts(tmp_path):
    data = tmp_path / "mnist"
    fake_mnist(data, 256, 32)
    run = tmp_path / "ln"
    args = (
        _digits_args(data, run, "xnor")
        + MST
        + ["--epochs", "3", "--mst-lambda", "3", "--mst-variant", "word"]
    )
    assert train.main(args + ["--mst-layer-norm"]) == 0
    ck = _last(run)
    assert ck["mst"]["layer_norm"] is True
    first = ck["history"][0]["mst"]["mean_edge_k"]
    assert ck["history"][-1]["mst"]["mean_edge_k"] < 0.8 * first, ck["history"]
    # Without the option the record is as before (older checkpoints still resume).
    assert "layer_norm" not in mst_reg.mst_record(train.parse_args(args))


def test_skip_layers_leaves_the_first_convolutions_unpenalised():
    torch.manual_seed(0)
    cfg = dict(arch="vgg-small", variant="xnor", width=8, order="bacp", alpha_mode="learned", pad_mode="zero",
               in_ch=3, num_classes=10, input_size=16)  # fmt: skip
    model = build_model(cfg)
    every = [n for n, _ in mst_reg.binary_convs(model)]
    reg = mst_reg.MstRegularizer(model, 1.0, "word", chunk=8, skip_layers=2)
    assert [n for n, _ in reg.layers] == every[2:] and set(reg.trees) == set(every[2:])
    reg.loss().backward()
    convs = dict(mst_reg.binary_convs(model))
    assert all(convs[n].weight.grad is None for n in every[:2])
    assert all(convs[n].weight.grad.abs().sum() > 0 for n in every[2:])
    args = train.parse_args(
        ["--data", "cifar10", "--out", "x", "--mst-lambda", "1", "--mst-skip-layers", "2"]
    )
    assert mst_reg.mst_record(args)["skip_layers"] == 2
    with pytest.raises(SystemExit):
        train.parse_args(["--data", "cifar10", "--out", "x", "--mst-skip-layers", "-1"])


def test_freeze_latent_keeps_every_sign_and_trains_the_rest(tmp_path, capsys):
    data = tmp_path / "mnist"
    fake_mnist(data, 128, 32)
    a, b = tmp_path / "a", tmp_path / "b"
    base = _digits_args(data, a, "xnor") + ["--alpha-mode", "learned", "--lr", "1e-2", "--seed", "1"]
    assert train.main(base + ["--epochs", "1"]) == 0
    args = [x if x != str(a) else str(b) for x in base] + ["--epochs", "1", "--init", str(a / "last.pt")]
    assert train.main(args + ["--freeze-latent"]) == 0
    start, end = _last(a), _last(b)
    before, latent = _float_state(start)
    after = _float_state(end)[0]
    for k in latent:
        assert torch.equal(end["model"][k], start["model"][k]), k
    assert any(k.endswith("alpha") and not torch.equal(after[k], before[k]) for k in before)
    assert any("running_mean" in k and not torch.equal(after[k], before[k]) for k in before)
    assert end["freeze_latent"] is True and end["freeze_float"] is False
    with pytest.raises(SystemExit):
        train.parse_args(args + ["--freeze-latent", "--freeze-float"])
