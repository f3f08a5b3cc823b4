"""The package version, written once: ``XE_VERSION_*`` in the C header, which CMake
(cmake/GetXnorEdgeVersion.cmake) and pyproject.toml (scikit-build-core's regex provider)
both read. An installed package reports its distribution's version; a package tree without
install metadata (a checkout on PYTHONPATH) reads the header it would bind to."""

from __future__ import annotations

import re
from importlib import metadata

from .resources import find


def header_version(text: str) -> str:
    """The version MAJOR.MINOR.PATCH from the header's XE_VERSION_* defines."""
    parts = []
    for part in ("MAJOR", "MINOR", "PATCH"):
        m = re.search(rf"#define\s+XE_VERSION_{part}\s+(\d+)", text)
        if not m:
            raise ImportError(f"xnor_edge: the header has no XE_VERSION_{part}")
        parts.append(m.group(1))
    return ".".join(parts)


def _version() -> str:
    try:
        return metadata.version("xnor-edge")
    except metadata.PackageNotFoundError:
        header = find("include/xnor_edge.h", "runtime_c/include/xnor_edge.h")
        return header_version(header.read_text(encoding="utf-8")) if header else "0+unknown"


__version__ = _version()
