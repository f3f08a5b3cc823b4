"""The README's embedding example runs as written (camera replaced by the sample video)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import xnor_edge

README = Path(__file__).resolve().parent.parent / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_embedding_example_runs_on_the_sample_video(capsys):
    if xnor_edge.default_model_path() is None:
        pytest.skip("no default model installed")
    (block,) = [b for b in _python_blocks() if "open_stream" in b]
    assert "source = 0" in block
    video = str(xnor_edge.sample_path("cat.avi"))
    exec(compile(block.replace("source = 0", f"source = {video!r}"), "README.md", "exec"), {})
    out = capsys.readouterr().out.splitlines()
    frames = [line for line in out if line.startswith("frame ")]
    assert len(frames) >= 10
    with xnor_edge.load(xnor_edge.default_model_path()) as model:
        labels = set(model.labels)
    assert all(line.split(": ", 1)[1].rsplit(" ", 1)[0] in labels for line in frames)
