"""xnor-edge: real-time XNOR-Net binarised neural networks on CPUs.

    import xnor_edge
    model = xnor_edge.load("net.xnor")
    print(model.classify("cat.jpg", top_k=3))

The builder (``xnor_edge.builder``) and the reference interpreter
(``xnor_edge.reference``) are pure NumPy; everything that runs models loads
the C library on first use, so ``from xnor_edge.builder import GraphBuilder``
works on a machine without the compiled runtime.
"""

from __future__ import annotations

from typing import Any

from ._version import __version__
from .builder import GraphBuilder
from .errors import CameraError, ClosedError, ModelError, RuntimeFailure
from .resources import default_model_path, model_path, sample_path, shipped_models

_NATIVE = {
    "load",
    "Model",
    "Session",
    "kernel_isa",
    "available_isas",
    "set_kernel_isa",
    "library_version",
}

__all__ = [
    "CameraError",
    "ClosedError",
    "GraphBuilder",
    "Model",
    "ModelError",
    "RuntimeFailure",
    "Session",
    "__version__",
    "available_isas",
    "default_model_path",
    "kernel_isa",
    "library_version",
    "load",
    "model_path",
    "sample_path",
    "set_kernel_isa",
    "shipped_models",
]


def __getattr__(name: str) -> Any:
    if name in _NATIVE:
        from . import model

        return getattr(model, name)
    raise AttributeError(f"module 'xnor_edge' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
