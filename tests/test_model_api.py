"""The friendly API: input checks, lifetime, errors, threads, classify, info."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from conftest import tiny_classifier

import xnor_edge
from xnor_edge import ModelError


@pytest.fixture
def restore_kernel_isa():
    yield
    xnor_edge.set_kernel_isa("auto")


@pytest.fixture
def model(tiny_model_path):
    with xnor_edge.load(tiny_model_path) as m:
        yield m


def test_properties(model):
    assert model.input_shape == (12, 12, 3) and model.output_shape == (1, 1, 4)
    assert model.name == "tiny" and model.labels == ["label0", "label1", "label2", "label3"]
    assert model.uses_k and model.color_order == "RGB"
    assert model.kernel_isa in xnor_edge.available_isas()
    assert isinstance(model.metadata, dict)


def test_run_zero_copy_and_conversions(model, rng):
    x = rng.normal(size=(12, 12, 3)).astype(np.float32)
    y = model.run(x)
    assert y.dtype == np.float32 and y.shape == (1, 1, 4)
    np.testing.assert_array_equal(model.run(x.astype(np.float64)), y)  # cast to float32
    xf = np.asfortranarray(x)
    np.testing.assert_array_equal(model.run(xf), y)  # non-contiguous is copied
    ro = x.copy()
    ro.setflags(write=False)
    np.testing.assert_array_equal(model.run(ro), y)  # read-only input is fine
    assert model.run(np.zeros((12, 12, 3), np.uint8)).shape == (1, 1, 4)
    assert model.run(np.stack([x, x])).shape == (2, 1, 1, 4)


@pytest.mark.parametrize(
    "x,exc,match",
    [
        (
            np.zeros((12, 12), np.float32),
            ValueError,
            r"expected \(12, 12, 3\).*got|\(12, 12\) does not match",
        ),
        (np.zeros((12, 11, 3), np.float32), ValueError, "does not match"),
        (np.zeros((1, 2, 12, 12, 3), np.float32), ValueError, "does not match"),
        (np.zeros((12, 12, 3), np.complex64), TypeError, "real numeric"),
        (np.array([["a"]]), TypeError, "real numeric"),
    ],
)
def test_run_rejects_bad_input(model, x, exc, match):
    with pytest.raises(exc, match=match):
        model.run(x)


def test_closed_model_raises(tiny_model_path):
    m = xnor_edge.load(tiny_model_path)
    s = m.session()
    m.close()
    m.close()  # idempotent
    assert m.closed
    with pytest.raises(xnor_edge.ClosedError):
        m.run(np.zeros((12, 12, 3), np.float32))
    with pytest.raises(xnor_edge.ClosedError):
        s.run(np.zeros((12, 12, 3), np.float32))
    with pytest.raises(xnor_edge.ClosedError):
        m.info()
    with pytest.raises(xnor_edge.ClosedError):
        m.session()


def test_load_errors_name_the_problem(tmp_path):
    data = bytearray(tiny_classifier())
    with pytest.raises(ModelError, match="no such file"):
        xnor_edge.load(tmp_path / "missing.xnor")
    p = tmp_path / "crc.xnor"
    bad = bytearray(data)
    bad[300] ^= 0x55
    p.write_bytes(bad)
    with pytest.raises(ModelError, match=r"(?i)crc|checksum") as ei:
        xnor_edge.load(p)
    assert str(p) in str(ei.value)
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match=r"(?i)truncat|size"):
        xnor_edge.load(p)
    p.write_bytes(b"PNG not a model at all" * 10)
    with pytest.raises(ModelError, match=r"(?i)magic|not an xnor-edge"):
        xnor_edge.load(p)
    with pytest.raises(ModelError):
        xnor_edge.load(b"")
    assert issubclass(ModelError, ValueError)


def test_sessions_in_parallel_threads_agree(model, rng):
    xs = rng.normal(size=(8, 12, 12, 3)).astype(np.float32)
    want = model.run(xs)
    results: dict[int, np.ndarray] = {}
    errors = []

    def work(i: int) -> None:
        try:
            with model.session(num_threads=1 + i % 2) as s:
                results[i] = np.stack([s.run(x) for _ in range(5) for x in xs])[-8:]
            results[100 + i] = np.stack([model.run(x) for x in xs])  # per-thread implicit session
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for r in results.values():
        np.testing.assert_array_equal(r, want)


def test_multithreaded_session_is_bit_identical(model, rng):
    xs = rng.normal(size=(4, 12, 12, 3)).astype(np.float32)
    with model.session(1) as s1, model.session(3) as s3:
        np.testing.assert_array_equal(s1.run(xs), s3.run(xs))


def test_timing(model, rng):
    model.run(rng.normal(size=(12, 12, 3)).astype(np.float32))
    t = model.last_timing()
    assert len(t.node_ns) == 7 and t.c_ns > 0 and t.call_ns >= t.c_ns


def test_info(model):
    info = model.info()
    assert info["kernel_isa"] == xnor_edge.kernel_isa()
    ops = [layer["op"] for layer in info["layers"]]
    assert ops == ["conv2d", "batchnorm", "bconv2d", "maxpool", "bconv2d", "global_avgpool", "dense"]
    assert info["layers"][2]["flags"] == ["relu", "use_k"]
    assert info["layers"][2]["binary_params"] == 16 * 8 * 9
    assert info["binary_params"] == 16 * 8 * 9 + 16 * 16 * 9
    assert info["macs"] > info["binary_macs"] > 0


def test_classify_preprocessing(tmp_path):
    """classify == run on the documented preprocessing of a BGR frame."""
    data = tiny_classifier(mean=[0.5, 0.4, 0.3], std=[0.2, 0.25, 0.3], color_order="RGB", resize=14)
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, size=(20, 30, 3), dtype=np.uint8)  # BGR
    with xnor_edge.load(data) as m:
        import cv2

        rgb = frame[:, :, ::-1]
        r = cv2.resize(np.ascontiguousarray(rgb), (21, 14), interpolation=cv2.INTER_AREA)
        crop = r[1:13, 4:16]
        x = (crop / 255.0 - np.array([0.5, 0.4, 0.3])) / np.array([0.2, 0.25, 0.3])
        np.testing.assert_allclose(m.preprocess(frame), x, rtol=1e-5, atol=1e-5)
        logits = m.run(x.astype(np.float32)).ravel().astype(np.float64)
        p = np.exp(logits - logits.max())
        p /= p.sum()
        top = m.classify(frame, top_k=2)
        assert [label for label, _ in top] == [m.labels[i] for i in np.argsort(-p)[:2]]
        assert top[0][1] == pytest.approx(p.max(), rel=1e-5)
        assert m.classify(np.ascontiguousarray(rgb), color_order="RGB") == m.classify(frame)
        from PIL import Image

        assert m.classify(Image.fromarray(np.ascontiguousarray(rgb)), top_k=2) == top
        img_path = tmp_path / "f.png"
        cv2.imwrite(str(img_path), frame)
        assert m.classify(str(img_path), top_k=2) == top
        assert len(m.classify(frame, top_k=100)) == 4
        with pytest.raises(ValueError, match="cannot read image"):
            (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
            m.classify(tmp_path / "bad.jpg")
        with pytest.raises(ValueError, match="top_k"):
            m.classify(frame, top_k=0)


def test_softmax_model_is_not_softmaxed_twice(rng):
    from xnor_edge import GraphBuilder

    g = GraphBuilder((4, 4, 3), {"labels": ["a", "b"]})
    g.softmax(g.dense(g.input, rng.normal(size=(2, 48))))
    with xnor_edge.load(g.to_bytes()) as m:
        x = rng.integers(0, 255, (4, 4, 3), dtype=np.uint8)
        probs = m.run(m.preprocess(x)).ravel()
        top = dict(m.classify(x, top_k=2))
        assert top["a"] == pytest.approx(probs[0], rel=1e-6)


def test_set_kernel_isa_rejects_unknown():
    with pytest.raises(ValueError, match="kernel set 'sse9'"):
        xnor_edge.set_kernel_isa("sse9")


def test_one_version_source_read_by_pyproject_cmake_package_and_library(tmp_path):
    """The version is written once, as XE_VERSION_* in the header; pyproject.toml (the
    regex provider), CMake's project(), the installed metadata, the package and the
    library all read it, and none of the others spells it out."""
    import importlib.metadata
    import re
    import shutil
    import subprocess
    from pathlib import Path

    from scikit_build_core.metadata.regex import dynamic_metadata

    root = Path(__file__).resolve().parent.parent
    header = (root / "runtime_c" / "include" / "xnor_edge.h").read_text()
    want = ".".join(
        re.search(rf"#define XE_VERSION_{k} (\d+)", header)[1] for k in ("MAJOR", "MINOR", "PATCH")
    )
    assert xnor_edge.__version__ == xnor_edge.library_version() == want
    assert importlib.metadata.version("xnor-edge") == want
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    assert pyproject["project"]["dynamic"] == ["version"] and "version" not in pyproject["project"]
    settings = dict(pyproject["tool"]["scikit-build"]["metadata"]["version"])
    assert settings.pop("provider") == "scikit_build_core.metadata.regex"
    assert settings["input"] == "runtime_c/include/xnor_edge.h"
    settings["input"] = str(root / settings["input"])
    assert dynamic_metadata("version", settings) == want
    for path in ("pyproject.toml", "CMakeLists.txt", "xnor_edge/_version.py", "xnor_edge/_native.py"):
        assert want not in (root / path).read_text(), path
    if shutil.which("cmake"):
        script = tmp_path / "v.cmake"
        script.write_text(
            f"include({root / 'cmake' / 'GetXnorEdgeVersion.cmake'})\n"
            f"get_xnor_edge_version({root / 'runtime_c' / 'include' / 'xnor_edge.h'} V)\n"
            "message(NOTICE ${V})\n"
        )
        r = subprocess.run(["cmake", "-P", str(script)], capture_output=True, text=True, check=True)
        assert r.stderr.strip() == want
    assert "VERSION ${XE_VERSION}" in (root / "CMakeLists.txt").read_text()


def test_flag_names_are_the_headers():
    """Flag names and op codes come from the binding (the header), not from copies."""
    import re
    from pathlib import Path

    from xnor_edge import _bindings as nb
    from xnor_edge import _native
    from xnor_edge import model as model_module

    header = _native._find_header().read_text()  # the header the binding read (checkout or wheel)
    defined = {int(v): n.lower() for n, v in re.findall(r"#define XE_FLAG_(\w+) (\d+)", header)}
    assert len(defined) >= 4
    for bit, name in defined.items():
        assert nb.flag_names(bit) == [name]
    assert nb.flag_names(sum(defined)) == [defined[b] for b in sorted(defined)]
    source = Path(model_module.__file__).read_text()
    assert not re.search(r"^(FLAG|OP)_\w+ = \d+", source, flags=re.M)


def test_a_session_keeps_its_kernel_set(restore_kernel_isa):
    """The kernel set is fixed when a session is created: set_kernel_isa changes only later
    sessions, and session(kernel_isa=...) picks one explicitly with the same results."""
    path = xnor_edge.model_path("mnist-digits-xnor")
    with xnor_edge.load(path) as m:
        x = np.random.default_rng(3).standard_normal(m.input_shape).astype(np.float32)
        best = xnor_edge.available_isas()[-1]
        xnor_edge.set_kernel_isa(best)
        before = m.session(1)
        xnor_edge.set_kernel_isa("ref")
        after = m.session(1)
        assert before.kernel_isa == best and after.kernel_isa == "ref"
        for isa in xnor_edge.available_isas():
            s = m.session(1, kernel_isa=isa)
            assert s.kernel_isa == isa
            assert np.array_equal(s.run(x).view(np.uint32), before.run(x).view(np.uint32))
        with pytest.raises(ValueError, match="not available on this CPU"):
            m.session(1, kernel_isa="no-such-set")
