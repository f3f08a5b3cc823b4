"""A model file is data from strangers: its text, sizes and numbers must not reach the
terminal raw, exhaust memory, crash the interpreter or turn into silent "nan" answers."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from conftest import tiny_classifier

import xnor_edge
from xnor_edge._text import safe_text
from xnor_edge.builder import GraphBuilder
from xnor_edge.errors import ModelError

HOSTILE = [
    "\x1b[2J\x1b[31mred alert",  # ANSI CSI: clear screen, colour
    "\x1b]0;owned\x07title",  # OSC window title, BEL-terminated
    "bell\x07\x07",
    "abc\u202edcba",  # right-to-left override
    "fine\nxnor-edge: error: forged line",  # a newline that forges an output line
]


def cli(*args):
    r = subprocess.run(
        [sys.executable, "-m", "xnor_edge", *map(str, args)], capture_output=True, text=True, timeout=120
    )
    return r.returncode, r.stdout, r.stderr


def _clean(text: str) -> None:
    for bad in ("\x1b", "\x07", "\u202e", "\r"):
        assert bad not in text, repr(text)


def test_safe_text_escapes_controls_and_bidi_keeps_the_rest():
    assert safe_text("tench") == "tench"
    assert safe_text("Grüße, 日本, café") == "Grüße, 日本, café"
    assert safe_text("a\x1b[31mb") == "a\\x1b[31mb"
    assert safe_text("x\ny\tz\x7f") == "x\\x0ay\\x09z\\x7f"
    assert safe_text("abc\u202edcba\u2066") == "abc\\u202edcba\\u2066"
    assert safe_text("a\u2028b") == "a\\u2028b"


def test_labels_and_names_with_terminal_escapes_are_escaped(tmp_path):
    labels = HOSTILE
    p = tmp_path / "hostile.xnor"
    p.write_bytes(tiny_classifier(n_classes=len(labels), labels=labels, name="\x1b]0;pwned\x07evil\nname"))
    rc, out, err = cli("classify", "--model", p, "--top-k", len(labels))
    assert rc == 0, err
    _clean(out)
    assert len(out.strip().splitlines()) == 1  # one image, one line: nothing forged
    assert "\\x1b[2J\\x1b[31mred alert" in out and "abc\\u202edcba" in out
    rc, out, err = cli("info", p)
    assert rc == 0, err
    _clean(out)
    assert out.splitlines()[0].startswith("model      \\x1b]0;pwned\\x07evil\\x0aname  (")
    # JSON keeps the labels exactly, escaped by JSON itself.
    rc, out, err = cli("classify", "--model", p, "--top-k", len(labels), "--json")
    assert rc == 0 and "\x1b" not in out
    assert sorted(t["label"] for t in json.loads(out)["top"]) == sorted(labels)


@pytest.mark.parametrize("resize", [20000, 60000, 0, -3, 2.5, True])
def test_absurd_resize_is_refused_at_load(tmp_path, resize):
    p = tmp_path / "resize.xnor"
    p.write_bytes(tiny_classifier(resize=resize))
    with pytest.raises(ModelError, match=r"metadata resize .* out of range: must be an int from 1 to 48"):
        xnor_edge.load(p)
    rc, out, err = cli("classify", "--model", p)
    assert rc == 1 and "Traceback" not in err and err.count("\n") == 1 and "metadata resize" in err


def _with_metadata(data: bytes, old: bytes, new: bytes) -> bytes:
    """Replaces the metadata JSON (same length) and fixes the CRC at the end of the file."""
    assert len(old) == len(new) and data.count(old) == 1
    buf = bytearray(data.replace(old, new))
    crc = zlib.crc32(bytes(buf[:-8])) & 0xFFFFFFFF
    buf[-8:-4] = struct.pack("<I", crc)
    return bytes(buf)


def test_deeply_nested_metadata_is_a_model_error(tmp_path):
    depth = 100_000
    nested = ("[" * depth + "]" * depth).encode()
    placeholder = json.dumps({"pad": "A" * (len(nested) - 11)}).encode()
    assert len(placeholder) == len(nested)
    g = GraphBuilder((2, 2, 1), json.loads(placeholder))
    g.dense(g.input, np.ones((2, 4)))
    p = tmp_path / "nested.xnor"
    p.write_bytes(_with_metadata(g.to_bytes(), placeholder, nested))
    with pytest.raises(ModelError, match="nested too deeply"):
        xnor_edge.load(p)
    rc, out, err = cli("info", p)
    assert rc == 1 and "Traceback" not in err and err.count("\n") == 1 and "nested too deeply" in err


def _overflowing_model() -> bytes:
    g = GraphBuilder((4, 4, 3), {"name": "huge", "labels": ["a", "b", "c"]})
    w = np.full((3, 48), 3e38)  # finite, but any sum of them overflows float32
    g.dense(g.input, w, np.zeros(3))
    return g.to_bytes()


def test_non_finite_output_is_an_error_not_nan_labels(tmp_path):
    p = tmp_path / "huge.xnor"
    p.write_bytes(_overflowing_model())
    try:
        m = xnor_edge.load(p)
    except ModelError:  # a loader that validates parameter ranges refuses it earlier: also fine
        return
    with m:
        with pytest.raises(RuntimeError, match="NaN or infinite"):
            m.run(np.ones((4, 4, 3), np.float32))
        with pytest.raises(RuntimeError, match="NaN or infinite"):
            m.classify(np.full((4, 4, 3), 200, np.uint8))
    rc, out, err = cli("classify", "--model", p)
    assert rc == 1 and "nan" not in out and "NaN or infinite" in err and "Traceback" not in err
