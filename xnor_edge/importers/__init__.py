"""Importers of models trained elsewhere (``xnor-edge import``).

Each importer needs its source format's parser, an optional extra: ONNX needs
``pip install 'xnor-edge[import]'`` (the ``onnx`` package), imported only when
an import runs. A ``.tflite`` file (Larq Compute Engine's converter) needs the
``tflite`` package, which the same extra installs.
"""

from __future__ import annotations

from typing import Any


def run_import(args: Any) -> int:
    """``xnor-edge import``: a TFLite flatbuffer (by its file identifier or suffix) or ONNX."""
    from . import tflite_import

    if tflite_import.is_tflite(args.model) or str(args.model).lower().endswith(".tflite"):
        return tflite_import.run_cli(args)
    from . import onnx_import

    return onnx_import.run_cli(args)
