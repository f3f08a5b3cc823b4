"""The training pipeline end to end on tiny synthetic data: IDX and image-folder loaders,
train -> checkpoint -> resume -> export -> evaluate, and clear errors for bad input."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import fake_mnist, write_idx

torch = pytest.importorskip("torch")

from xnor_train import card, evaluate, export, train  # noqa: E402
from xnor_train import data as xdata  # noqa: E402


def test_idx_reader_and_errors(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a.gz", arr)
    np.testing.assert_array_equal(xdata.read_idx(tmp_path / "a.gz"), arr)
    (tmp_path / "bad").write_bytes(b"\x00\x00\x0d\x01" + b"\x00" * 8)
    with pytest.raises(xdata.DataError, match="unsigned-byte"):
        xdata.read_idx(tmp_path / "bad")
    with pytest.raises(xdata.DataError, match="not found"):
        xdata.read_idx(tmp_path / "missing.gz")
    with pytest.raises(xdata.DataError, match="data directory not found"):
        xdata.load_dataset("mnist", str(tmp_path / "nowhere"))


def test_image_folder_decode_and_augment(tmp_path, monkeypatch):
    from PIL import Image

    monkeypatch.setenv("XNOR_EDGE_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(1)
    for split, n in (("train", 3), ("test", 2)):
        for cls in ("b_cls", "a_cls"):
            d = tmp_path / "set" / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(d / f"{i}.png")
    x, y, classes = xdata.load_image_folder_split(tmp_path / "set", "train", None)
    assert x.shape == (6, 32, 32, 3) and x.dtype == np.uint8
    assert classes == ["a_cls", "b_cls"] and sorted(y.tolist()) == [0, 0, 0, 1, 1, 1]
    x2, _, _ = xdata.load_image_folder_split(tmp_path / "set", "train", None)  # from the cache
    np.testing.assert_array_equal(x, x2)
    ds = xdata.Dataset("t", x, y, x, y, classes, [0.5] * 3, [0.25] * 3, "RGB", (32, 32), "crop_flip", 4)
    out = xdata.augment_batch(torch.from_numpy(x), ds, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == torch.uint8
    with pytest.raises(xdata.DataError, match="not found"):
        xdata.load_image_folder_split(tmp_path / "absent.tar.gz", "train", None)


def test_own_photo_folder_dataset(tmp_path, monkeypatch):
    from PIL import Image

    monkeypatch.setenv("XNOR_EDGE_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(2)
    for split, n in (("train", 2), ("val", 1)):
        for cls, hw in (("mug", (50, 70)), ("plant", (64, 40))):  # mixed sizes, like phone photos
            d = tmp_path / "photos" / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (*hw, 3), dtype=np.uint8)).save(d / f"{i}.jpg")
    ds = xdata.load_dataset("folder", str(tmp_path / "photos"), image_size=32)
    assert ds.labels == ["mug", "plant"] and ds.input_size == (32, 32)
    assert ds.x_test.shape == (2, 32, 32, 3) and ds.x_train.shape[0] == 4
    with pytest.raises(xdata.DataError, match="needs --data-path"):
        xdata.load_dataset("folder", None)


def test_evaluate_from_files_matches_decoded_set(tmp_path, monkeypatch, capsys):
    """PNG photos already at the stored size (no resize on either side): the package's
    own pipeline (Model.preprocess on each file) must reproduce the decoded test set's
    logits; --from-files with the reference backend is refused by name."""
    from PIL import Image

    monkeypatch.setenv("XNOR_EDGE_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(3)
    size = 16
    stored = round(size * 8 / 7)  # the folder loader keeps photos at 8/7 of the input size
    for split, n in (("train", 24), ("val", 12)):
        for ci, cls in enumerate(("dark", "light")):
            d = tmp_path / "photos" / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                img = rng.integers(0, 120, (stored, stored, 3)) + 120 * ci
                Image.fromarray(img.astype(np.uint8)).save(d / f"{i}.png")
    run, out = tmp_path / "run", tmp_path / "m.xnor"
    data = ["--data", "folder", "--data-path", str(tmp_path / "photos")]
    rc = train.main(
        data + ["--image-size", str(size), "--arch", "vgg-small", "--width", "8", "--epochs", "1",
                "--batch-size", "8", "--threads", "1", "--device", "cpu", "--out", str(run)]
    )  # fmt: skip
    assert rc == 0 and export.main([str(run / "last.pt"), str(out)]) == 0
    capsys.readouterr()
    res = []
    for extra in ([], ["--from-files"]):
        assert evaluate.main([str(out), *data, *extra]) == 0
        res.append(json.loads(capsys.readouterr().out.strip().splitlines()[-1]))
    assert res[0]["n"] == res[1]["n"] == 24 and res[1]["inputs"] == "files via Model.preprocess"
    assert res[0]["top1"] == res[1]["top1"]
    meta, ds, x, _ = evaluate.load_test_inputs(str(out), "folder", str(tmp_path / "photos"), None)
    from_files, _, _ = evaluate.run_files(str(out), ds, None, 1)
    decoded, _ = evaluate.run_all(evaluate.Runner(out), x)
    np.testing.assert_allclose(from_files, decoded, rtol=0, atol=1e-4)
    # The model card measures all of this itself and says so in its table.
    md, js = tmp_path / "m.md", tmp_path / "m.json"
    assert card.main([str(run / "last.pt"), str(out), *data, "--out", str(md), "--json", str(js)]) == 0
    got = json.loads(js.read_text())
    assert got["parity"]["n"] == 24 and round(got["top1_from_files"], 4) == res[1]["top1"]
    text = md.read_text()
    assert f"**{res[0]['top1'] * 100:.2f}%** (24 images)" in text and "through `Model.preprocess`" in text
    assert got["torch_float32_vs_float64"]["n"] == 24 and "PyTorch float32 vs PyTorch float64" in text
    # The card's export line rebuilds the measured file byte for byte (name included).
    line = next(ln for ln in text.splitlines() if "-m xnor_train.export" in ln)
    again = tmp_path / "again.xnor"
    argv = shlex.split(line.split("-m xnor_train.export", 1)[1].replace(str(out), str(again)))
    assert "--name" in argv and export.main(argv) == 0
    assert again.read_bytes() == out.read_bytes()
    files, y, classes = xdata.split_files(tmp_path / "photos", "val")
    assert classes == ["dark", "light"] and len(files) == 24 and y.tolist() == [0] * 12 + [1] * 12
    assert evaluate.main([str(out), *data, "--from-files", "--backend", "reference"]) == 2
    assert "use --backend c" in capsys.readouterr().err


def test_train_resume_export_evaluate(tmp_path, capsys):
    data = tmp_path / "mnist"
    fake_mnist(data)
    run = tmp_path / "run"
    common = [
        "--data",
        "mnist",
        "--data-path",
        str(data),
        "--arch",
        "digits",
        "--variant",
        "xnor",
        "--width",
        "16",
        "--batch-size",
        "32",
        "--lr",
        "3e-3",
        "--threads",
        "1",
        "--device",
        "cpu",
        "--out",
        str(run),
    ]
    assert train.main(common + ["--epochs", "2"]) == 0
    assert (run / "last.pt").exists() and (run / "best.pt").exists() and (run / "train.log").exists()
    assert train.main(common + ["--epochs", "3", "--resume"]) == 0
    hist = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in hist] == [1, 2, 3]
    assert hist[-1]["test_acc"] > 0.5, "the synthetic task is easy; training must learn it"

    out = tmp_path / "m.xnor"
    assert export.main([str(run / "last.pt"), str(out)]) == 0
    capsys.readouterr()
    assert (
        evaluate.main(
            [str(out), "--data", "mnist", "--data-path", str(data), "--backend", "reference", "--limit", "32"]
        )
        == 0
    )
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    ck = torch.load(run / "last.pt", weights_only=False)
    assert res["n"] == 32
    meta = evaluate.read_metadata(out)
    assert meta["labels"] == [str(i) for i in range(10)] and meta["variant"] == "xnor"
    assert meta["mean"] == [0.1307] and meta["training"]["epochs"] == 3
    assert ck["config"]["width"] == 16
    assert len(ck["commands"]) == 2 and "--resume" in ck["commands"][1]


def _digits_args(data: Path, run: Path, variant: str, width: int = 16) -> list[str]:
    return [
        "--data", "mnist", "--data-path", str(data), "--arch", "digits", "--variant", variant,
        "--width", str(width), "--batch-size", "32", "--threads", "1", "--device", "cpu",
        "--out", str(run),
    ]  # fmt: skip


def test_init_starts_an_xnor_run_from_a_bwn_run(tmp_path, capsys):
    data = tmp_path / "mnist"
    fake_mnist(data, 128, 32)
    bwn, xnor = tmp_path / "bwn", tmp_path / "xnor"
    assert train.main(_digits_args(data, bwn, "bwn") + ["--epochs", "1"]) == 0
    src = torch.load(bwn / "last.pt", weights_only=False)
    # With lr 0 the epoch changes no weight, so the checkpoint holds the BWN weights exactly
    # as --init loaded them; it also records the BWN run for the model card.
    assert (
        train.main(
            _digits_args(data, xnor, "xnor") + ["--epochs", "1", "--lr", "0", "--init", str(bwn / "last.pt")]
        )
        == 0
    )
    ck = torch.load(xnor / "last.pt", weights_only=False)
    assert ck["config"]["variant"] == "xnor" and ck["init"]["variant"] == "bwn"
    assert ck["init"]["commands"] == src["commands"] and ck["init"]["epochs"] == 1
    conv_keys = [k for k, v in src["model"].items() if k.endswith("weight") and v.dim() == 4]
    assert conv_keys
    for k in conv_keys:  # lr 0 (Adam) leaves the weights exactly where --init put them
        assert torch.equal(ck["model"][k], src["model"][k]), k
    # A different width is refused by name, and so is --init together with --resume.
    capsys.readouterr()
    rc = train.main(
        _digits_args(data, tmp_path / "w8", "xnor", width=8)
        + ["--epochs", "1", "--init", str(bwn / "last.pt")]
    )
    assert rc == 2 and "'width': (16, 8)" in capsys.readouterr().out
    rc = train.main(
        _digits_args(data, xnor, "xnor") + ["--epochs", "2", "--resume", "--init", str(bwn / "last.pt")]
    )
    assert rc == 2 and "give one of them" in capsys.readouterr().out
    rc = train.main(
        _digits_args(data, tmp_path / "x2", "xnor") + ["--epochs", "1", "--init", str(tmp_path / "nope.pt")]
    )
    assert rc == 2 and "no such checkpoint" in capsys.readouterr().out


def _card(run: Path, model: Path, data: Path, md: Path) -> int:
    """The model card of a run's last checkpoint and its exported file, on the fake MNIST."""
    return card.main(
        [str(run / "last.pt"), str(model), "--data", "mnist", "--data-path", str(data), "--out", str(md)]
    )


def test_init_chain_reaches_the_card(tmp_path, capsys):
    """bwn -> bwn (continued) -> xnor: each checkpoint records the whole chain and the
    card prints every stage's commands, also for a checkpoint that recorded only one level."""
    data = tmp_path / "mnist"
    fake_mnist(data, 128, 32)
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    assert train.main(_digits_args(data, a, "bwn") + ["--epochs", "1"]) == 0
    assert train.main(_digits_args(data, b, "bwn") + ["--epochs", "1", "--init", str(a / "last.pt")]) == 0
    assert train.main(_digits_args(data, c, "xnor") + ["--epochs", "1", "--init", str(b / "last.pt")]) == 0
    cka, ckb, ckc = (torch.load(r / "last.pt", weights_only=False) for r in (a, b, c))
    chain = card.init_chain(ckc)
    assert [r["commands"] for r in chain] == [ckb["commands"], cka["commands"]]
    old_style = dict(ckc, init={k: v for k, v in ckc["init"].items() if k != "init"})
    assert [r["commands"] for r in card.init_chain(old_style)] == [ckb["commands"], cka["commands"]]
    out = tmp_path / "c.xnor"
    assert export.main([str(c / "last.pt"), str(out)]) == 0
    md = tmp_path / "c.md"
    assert _card(c, out, data, md) == 0
    text = md.read_text()
    assert "It started (`--init`) from the weights of a bwn run" in text
    assert "That run, in turn, started (`--init`)" in text
    assert cka["commands"][0] in text and ckb["commands"][0] in text
    assert "plus the bwn run it started from" in text and "plus the bwn run that one started from" in text


def test_eval_every_skips_test_passes_and_always_tests_the_last_epoch(tmp_path, monkeypatch, capsys):
    data = tmp_path / "mnist"
    fake_mnist(data, 64, 16)
    calls = []
    real = train.evaluate_torch
    monkeypatch.setattr(train, "evaluate_torch", lambda *a, **k: calls.append(1) or real(*a, **k))
    run = tmp_path / "run"
    assert train.main(_digits_args(data, run, "bwn") + ["--epochs", "2", "--eval-every", "2"]) == 0
    assert (
        train.main(_digits_args(data, run, "bwn") + ["--epochs", "5", "--eval-every", "2", "--resume"]) == 0
    )
    hist = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    tested = [h["epoch"] for h in hist if h["test_acc"] is not None]
    assert tested == [2, 4, 5] and len(calls) == 3  # every 2nd epoch, and the last
    assert "test skipped (--eval-every)" in (run / "train.log").read_text()
    best = torch.load(run / "best.pt", weights_only=False)
    assert best["epoch"] in tested and best["best_acc"] == max(h["test_acc"] for h in hist if h["test_acc"])
    # A run stopped after an untested epoch can still start another, and the card says
    # that stage's accuracy was not measured instead of failing on it.
    mid = tmp_path / "mid"
    assert (
        train.main(_digits_args(data, mid, "bwn") + ["--epochs", "3", "--eval-every", "2", "--subset", "32"])
        == 0
    )
    ck = torch.load(mid / "last.pt", weights_only=False)
    ck["epoch"], ck["test_acc"], ck["history"] = 1, None, ck["history"][:1]
    torch.save(ck, mid / "early.pt")
    nxt = tmp_path / "next"
    assert (
        train.main(_digits_args(data, nxt, "xnor") + ["--epochs", "1", "--init", str(mid / "early.pt")]) == 0
    )
    out, md = tmp_path / "n.xnor", tmp_path / "n.md"
    assert export.main([str(nxt / "last.pt"), str(out)]) == 0
    assert _card(nxt, out, data, md) == 0
    assert "(1 epochs, test top-1 not measured)" in md.read_text()
    capsys.readouterr()
    with pytest.raises(SystemExit):
        train.main(_digits_args(data, tmp_path / "bad", "bwn") + ["--eval-every", "0"])
    assert "--eval-every must be 1 or more" in capsys.readouterr().err


def test_distill_loss_is_the_tempered_kl():
    s = torch.tensor([[2.0, -1.0, 0.5], [0.0, 3.0, -2.0]])
    t = torch.tensor([[1.0, 0.0, 0.0], [-1.0, 2.5, 1.0]])
    assert train.distill_loss(t.clone(), t, 3.0).item() == pytest.approx(0.0, abs=1e-7)
    for temp in (1.0, 4.0):
        q = torch.softmax(t / temp, 1)
        kl = (q * (q.log() - torch.log_softmax(s / temp, 1))).sum(1).mean() * temp**2
        assert train.distill_loss(s, t, temp).item() == pytest.approx(kl.item(), rel=1e-6)


def test_distill_trains_against_a_teacher_and_the_card_names_it(tmp_path, capsys):
    data = tmp_path / "mnist"
    fake_mnist(data, 64, 16)
    teacher = tmp_path / "teacher"
    assert train.main(_digits_args(data, teacher, "float") + ["--epochs", "1"]) == 0
    args = ["--epochs", "1", "--seed", "5"]
    plain, w0, w1 = tmp_path / "plain", tmp_path / "w0", tmp_path / "w1"
    assert train.main(_digits_args(data, plain, "bwn") + args) == 0
    tk = str(teacher / "last.pt")
    assert train.main(_digits_args(data, w0, "bwn") + args + ["--distill", tk, "--distill-weight", "0"]) == 0
    assert train.main(_digits_args(data, w1, "bwn") + args + ["--distill", tk, "--distill-weight", "1"]) == 0
    # Weight 0 is plain training exactly (the teacher's forward draws no random numbers);
    # weight 1 trains on the teacher's outputs alone, another loss.
    assert _first_epoch(w0)["loss"] == _first_epoch(plain)["loss"]
    assert _first_epoch(w1)["loss"] != _first_epoch(plain)["loss"]
    ck = torch.load(w1 / "last.pt", weights_only=False)
    tck = torch.load(teacher / "last.pt", weights_only=False)
    assert ck["teacher"]["variant"] == "float" and ck["teacher"]["commands"] == tck["commands"]
    out, md = tmp_path / "w1.xnor", tmp_path / "w1.md"
    assert export.main([str(w1 / "last.pt"), str(out)]) == 0
    assert _card(w1, out, data, md) == 0
    text = md.read_text()
    assert "knowledge distillation (`--distill`, weight 1.0, temperature 2.0) from a float digits" in text
    assert tck["commands"][0] in text
    # The float teacher's own card says it has no binary layers (no ratio to report).
    tout, tmd = tmp_path / "t.xnor", tmp_path / "t.md"
    assert export.main([str(teacher / "last.pt"), str(tout)]) == 0
    assert _card(teacher, tout, data, tmd) == 0
    assert "| binary layers | none (every layer is float) |" in tmd.read_text()
    # A teacher for other images, or none at all, is refused by name.
    other = tmp_path / "other"
    ok = train.main(_digits_args(data, other, "float") + ["--epochs", "1", "--subset", "32"]) == 0
    bad = torch.load(other / "last.pt", weights_only=False)
    bad["config"]["num_classes"] = 5
    torch.save(bad, other / "five.pt")
    capsys.readouterr()
    rc = train.main(_digits_args(data, tmp_path / "x", "bwn") + args + ["--distill", str(other / "five.pt")])
    assert ok and rc == 2 and "the teacher's num_classes is 5, this run's is 10" in capsys.readouterr().out
    bad = torch.load(other / "last.pt", weights_only=False)
    bad["config"]["width"] = 8  # a config its weights do not match
    torch.save(bad, other / "w8.pt")
    rc = train.main(_digits_args(data, tmp_path / "z", "bwn") + args + ["--distill", str(other / "w8.pt")])
    assert rc == 2 and "w8.pt: weights do not fit" in capsys.readouterr().out
    rc = train.main(
        _digits_args(data, tmp_path / "y", "bwn") + args + ["--distill", str(tmp_path / "none.pt")]
    )
    assert rc == 2 and "--distill" in capsys.readouterr().out


def _first_epoch(run: Path) -> dict:
    """The first epoch's record in a run's metrics.jsonl."""
    return json.loads((run / "metrics.jsonl").read_text().splitlines()[0])


def test_compile_trains_the_plain_model(tmp_path):
    """--compile trains through torch.compile: the forward computes what the plain model
    computes (same loss with lr 0), the updates land in the plain model's parameters and
    the checkpoint holds plain keys that export packs."""
    data = tmp_path / "mnist"
    fake_mnist(data, 64, 16)
    args = ["--epochs", "1", "--seed", "3"]
    plain, comp = tmp_path / "plain", tmp_path / "comp"
    assert train.main(_digits_args(data, plain, "xnor") + args + ["--lr", "0"]) == 0
    from torch._dynamo.utils import counters

    counters.clear()
    assert train.main(_digits_args(data, comp, "xnor") + args + ["--lr", "0", "--compile"]) == 0
    assert counters["stats"]["unique_graphs"] >= 1  # the forward did go through dynamo

    assert _first_epoch(comp)["loss"] == pytest.approx(_first_epoch(plain)["loss"], rel=1e-5)
    moved = tmp_path / "moved"
    assert train.main(_digits_args(data, moved, "xnor") + args + ["--compile"]) == 0
    ck0 = torch.load(plain / "last.pt", weights_only=False)["model"]
    ck1 = torch.load(moved / "last.pt", weights_only=False)["model"]
    assert list(ck1) == list(ck0)  # no "_orig_mod." prefixes
    assert any(not torch.equal(ck0[k], ck1[k]) for k in ck0 if k.endswith("weight"))
    assert export.main([str(moved / "last.pt"), str(tmp_path / "m.xnor")]) == 0


def test_compile_failure_is_named(tmp_path, capsys, monkeypatch):
    """Where torch.compile cannot build (no C++ compiler), the run stops with a clear error
    on its first step instead of a traceback."""

    def broken_compile(model):
        def fwd(x):
            raise RuntimeError("Compiler: cc is not found.\nmore detail")

        return fwd

    monkeypatch.setattr(torch, "compile", broken_compile)
    data = tmp_path / "mnist"
    fake_mnist(data, 64, 16)
    rc = train.main(_digits_args(data, tmp_path / "run", "xnor") + ["--epochs", "1", "--compile"])
    out = capsys.readouterr().out
    assert rc == 2 and "--compile failed on the first step (RuntimeError: Compiler: cc is not found.)" in out
    assert "train without --compile" in out and not (tmp_path / "run" / "last.pt").exists()


def test_amp_bf16_trains_in_bfloat16_and_keeps_float32_weights(tmp_path, monkeypatch):
    """--amp bf16: the training convolutions (float and binary) run in bfloat16, the loss is
    that of the float32 forward to bfloat16's precision, and weights, checkpoint and export
    stay float32."""
    from xnor_train import layers

    data = tmp_path / "mnist"
    fake_mnist(data, 64, 16)
    args = ["--epochs", "1", "--seed", "3"]
    seen: dict[str, set] = {"nn.Conv2d": set(), "F.conv2d": set()}

    def record(module, inputs, output):
        if module.training and isinstance(module, torch.nn.Conv2d):
            seen["nn.Conv2d"].add(output.dtype)

    real_conv2d = layers.F.conv2d

    def conv2d(*a, **k):  # every convolution, BinConv2d's included
        y = real_conv2d(*a, **k)
        if torch.is_grad_enabled():
            seen["F.conv2d"].add(y.dtype)
        return y

    plain, amp = tmp_path / "plain", tmp_path / "amp"
    assert train.main(_digits_args(data, plain, "xnor") + args + ["--lr", "0"]) == 0
    handle = torch.nn.modules.module.register_module_forward_hook(record)
    monkeypatch.setattr(layers.F, "conv2d", conv2d)
    try:
        assert train.main(_digits_args(data, amp, "xnor") + args + ["--lr", "0", "--amp", "bf16"]) == 0
    finally:
        handle.remove()
        monkeypatch.undo()
    assert seen == {"nn.Conv2d": {torch.bfloat16}, "F.conv2d": {torch.bfloat16}}

    # bfloat16 keeps 8 bits of mantissa: the same loss to about 1%, not bit for bit.
    assert _first_epoch(amp)["loss"] == pytest.approx(_first_epoch(plain)["loss"], rel=2e-2)
    assert _first_epoch(amp)["loss"] != _first_epoch(plain)["loss"]
    moved = tmp_path / "moved"
    assert train.main(_digits_args(data, moved, "bwn") + args + ["--amp", "bf16"]) == 0
    ck = torch.load(moved / "last.pt", weights_only=False)
    assert ck["args"]["amp"] == "bf16"
    assert {v.dtype for v in ck["model"].values() if v.is_floating_point()} == {torch.float32}
    assert export.main([str(moved / "last.pt"), str(tmp_path / "m.xnor")]) == 0


def test_train_reports_missing_data(tmp_path, capsys):
    rc = train.main(
        [
            "--data",
            "mnist",
            "--data-path",
            str(tmp_path / "none"),
            "--epochs",
            "1",
            "--out",
            str(tmp_path / "run"),
        ]
    )
    assert rc == 2
    assert "data directory not found" in capsys.readouterr().out


def test_resume_without_checkpoint_is_an_error(tmp_path, capsys):
    data = tmp_path / "mnist"
    fake_mnist(data, 64, 16)
    rc = train.main(
        [
            "--data",
            "mnist",
            "--data-path",
            str(data),
            "--epochs",
            "1",
            "--batch-size",
            "16",
            "--resume",
            "--out",
            str(tmp_path / "run"),
        ]
    )
    assert rc == 2 and "does not exist" in capsys.readouterr().out


def test_onnx_export_of_float_counterpart(tmp_path):
    onnx = pytest.importorskip("onnx")
    data = tmp_path / "mnist"
    fake_mnist(data, 64, 16)
    run = tmp_path / "run"
    assert (
        train.main(
            [
                "--data",
                "mnist",
                "--data-path",
                str(data),
                "--width",
                "8",
                "--epochs",
                "1",
                "--batch-size",
                "16",
                "--threads",
                "1",
                "--out",
                str(run),
            ]
        )
        == 0
    )
    out = tmp_path / "m.onnx"
    assert export.main([str(run / "last.pt"), str(out), "--onnx"]) == 0
    m = onnx.load(str(out))
    assert m.graph.input[0].name == "input" and not any(n.op_type == "Sign" for n in m.graph.node)


def _clean_env(tmp_path: Path) -> dict:
    """The environment of a user's shell: no PYTHONPATH, started outside the checkout."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["HOME"] = str(tmp_path)
    return env


def test_training_tools_are_an_installed_package(tmp_path, capsys):
    """xnor_train is installed with the package: `python -m xnor_train.<tool>` and the
    console scripts work from any directory without PYTHONPATH, nothing adds to sys.path,
    and no data set has a default location: a missing --data-path is named."""
    root = Path(__file__).resolve().parents[1]
    insert = "sys.path." + "insert"  # (spelled apart so that this file passes its own check)
    for f in [*root.joinpath("tests").rglob("*.py"), *root.joinpath("tools").rglob("*.py")]:
        text = f.read_text()
        assert insert not in text and "sys.path." + "append" not in text, f
    for tool in ("train", "export", "evaluate", "parity", "card"):
        r = subprocess.run(
            [sys.executable, "-m", f"xnor_train.{tool}", "--help"],
            cwd=tmp_path, env=_clean_env(tmp_path), capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert r.returncode == 0 and "usage:" in r.stdout, r.stderr
        assert (Path(sys.executable).parent / f"xnor-edge-{tool}").exists()
    for name in xdata.DATASETS:
        with pytest.raises(xdata.DataError, match=f"--data {name} needs --data-path"):
            xdata.load_dataset(name, None)
    rc = train.main(["--data", "mnist", "--epochs", "1", "--out", str(tmp_path / "run")])
    out = capsys.readouterr().out
    assert rc == 2 and "--data mnist needs --data-path: the folder holding train-images" in out


def _torchrun(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess:
    r = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *argv],
        cwd=tmp_path, env=_clean_env(tmp_path), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    return r


def _history(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_torchrun_two_processes_train_like_one(tmp_path):
    """Distributed data parallel on two CPU processes (gloo): the same seed and total batch
    reach the accuracy of one process within noise, and only rank 0 wrote the log, the
    metrics and the checkpoints. Each process normalises its half of a batch with its own
    batch statistics, so the runs are close, not equal; with batch-independent batch norm
    the two processes compute the single process's steps (same loss to float rounding)."""
    data = tmp_path / "mnist"
    fake_mnist(data, 256, 64)
    args = ["--epochs", "6", "--lr", "3e-3", "--seed", "7"]
    one, two = tmp_path / "one", tmp_path / "two"
    assert train.main(_digits_args(data, one, "xnor") + args) == 0
    r = _torchrun(tmp_path, "-m", "xnor_train.train", *_digits_args(data, two, "xnor"), *args)
    assert sorted(p.name for p in two.iterdir()) == ["best.pt", "last.pt", "metrics.jsonl", "train.log"]
    log = (two / "train.log").read_text()
    assert log.count("epoch 1/6 ") == 1 and log.count("done: best") == 1
    assert "distributed: 2 processes (gloo), batch 16 each" in log
    assert r.stdout.count("] epoch 1/6 loss") == 1  # rank 1 prints nothing either
    h1, h2 = _history(one), _history(two)
    assert [h["epoch"] for h in h2] == [1, 2, 3, 4, 5, 6]
    assert h1[-1]["test_acc"] >= 0.9 and abs(h2[-1]["test_acc"] - h1[-1]["test_acc"]) <= 0.1, (h1, h2)
    ck = torch.load(two / "last.pt", weights_only=False)
    assert ck["world_size"] == 2
    assert ck["command"].startswith("torchrun --nproc_per_node 2 -m xnor_train.train ")
    assert list(ck["model"]) == list(torch.load(one / "last.pt", weights_only=False)["model"])
    assert export.main([str(two / "last.pt"), str(tmp_path / "two.xnor")]) == 0

    # Batch norm on running statistics (batch-independent): one epoch on two processes is
    # the single process's epoch, its mean loss equal up to float summation order.
    script = tmp_path / "fixed_bn_train.py"
    script.write_text(
        "import sys\n"
        "import torch.nn.functional as F\n"
        "from torch.nn.modules.batchnorm import _BatchNorm\n"
        "from xnor_train import train\n"
        "def forward(self, x):\n"
        "    return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0,"
        " self.eps)\n"
        "_BatchNorm.forward = forward\n"
        "sys.exit(train.main())\n"
    )
    fixed = ["--epochs", "1", "--lr", "3e-3", "--seed", "7"]
    p1 = subprocess.run(
        [sys.executable, str(script), *_digits_args(data, tmp_path / "f1", "xnor"), *fixed],
        cwd=tmp_path, env=_clean_env(tmp_path), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert p1.returncode == 0, p1.stderr[-3000:]
    _torchrun(tmp_path, str(script), *_digits_args(data, tmp_path / "f2", "xnor"), *fixed)
    (f1,), (f2,) = _history(tmp_path / "f1"), _history(tmp_path / "f2")
    assert f2["loss"] == pytest.approx(f1["loss"], rel=1e-3)
