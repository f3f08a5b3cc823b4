"""Exceptions of the xnor_edge package (pure Python, importable without the C library)."""

from __future__ import annotations


class ModelError(ValueError):
    """A model file (or bytes) could not be loaded; the message gives the C loader's reason."""

    def __init__(self, message: str, status: str = "") -> None:
        super().__init__(message)
        self.status = status


class RuntimeFailure(RuntimeError):
    """The C runtime reported a failure while running a model (status in ``.status``)."""

    def __init__(self, message: str, status: str = "") -> None:
        super().__init__(message)
        self.status = status


class ClosedError(RuntimeError):
    """The model or session was closed and cannot be used any more."""


class CameraError(RuntimeError):
    """A frame source cannot be opened, or stopped delivering frames."""
