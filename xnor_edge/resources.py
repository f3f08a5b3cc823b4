"""Files shipped inside the package: the models of models/ (the default among them)
and the sample media."""

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


def _model_dirs() -> list[Path]:
    dirs = [d / "models" for d in package_dirs()]
    if (_PKG_DIR.parent / "pyproject.toml").is_file():  # a source checkout: its models/
        dirs.append(_PKG_DIR.parent / "models")
    return dirs


def shipped_models() -> dict[str, Path]:
    """The models installed with the package (models/*.xnor), by name (the file stem;
    ``default`` is a copy of one of the others)."""
    found: dict[str, Path] = {}
    for d in _model_dirs():
        if d.is_dir():
            for p in sorted(d.glob("*.xnor")):
                found.setdefault(p.stem, p)
    return found


def model_path(name_or_path: str | Path) -> Path:
    """A model file: ``name_or_path`` itself when it is a file, else the shipped model of
    that name (``"cifar10-vggsmall-bwn"``; see :func:`shipped_models`)."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    shipped = shipped_models()
    hit = shipped.get(str(name_or_path)) or shipped.get(p.stem if p.suffix == ".xnor" else "")
    if hit is not None and p.parent == Path("."):
        return hit
    names = ", ".join(sorted(shipped)) or "none installed"
    raise FileNotFoundError(f"{name_or_path}: no such model file, nor a shipped model name ({names})")


def sample_path(name: str) -> Path:
    """A file of xnor_edge/samples/ (``cat.jpg``, ``cat.avi``)."""
    p = find(f"samples/{name}")
    if p is None:
        raise FileNotFoundError(f"sample {name!r} is not installed with the package")
    return p
