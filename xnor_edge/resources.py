"""Files shipped inside the package: the default model and the sample media."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

_PKG_DIR = Path(__file__).resolve().parent


def package_dirs() -> list[Path]:
    """Directories holding package files: the package itself and, for an
    editable install, the install tree that scikit-build-core maps onto it."""
    dirs = [_PKG_DIR]
    try:
        root = importlib.resources.files(__package__ or "xnor_edge")
        for p in getattr(root, "paths", None) or [root]:
            p = Path(str(p))
            if p not in dirs:
                dirs.append(p)
    except (ModuleNotFoundError, TypeError, ValueError):
        pass
    return dirs


def find(relpath: str, source_tree_path: str | None = None) -> Path | None:
    """The first existing ``<package dir>/relpath``; then, in a source checkout,
    ``<repo>/source_tree_path``."""
    for d in package_dirs():
        p = d / relpath
        if p.is_file():
            return p
    if source_tree_path:
        p = _PKG_DIR.parent / source_tree_path
        if p.is_file():
            return p
    return None


def default_model_path() -> Path | None:
    """The shipped default model (installed from models/default.xnor), or None."""
    return find("models/default.xnor", "models/default.xnor")


def sample_path(name: str) -> Path:
    """A file of xnor_edge/samples/ (``cat.jpg``, ``cat.avi``)."""
    p = find(f"samples/{name}")
    if p is None:
        raise FileNotFoundError(f"sample {name!r} is not installed with the package")
    return p
