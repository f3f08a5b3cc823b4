"""The package version, written once: ``XE_VERSION_*`` in the C header, which CMake
(cmake/GetXnorEdgeVersion.cmake) and pyproject.toml (scikit-build-core's regex provider)
both read. The package reads the header it ships (or, in a checkout, the header it would bind
to): the same number its distribution metadata holds, without importlib.metadata, whose
scan of the installed distributions cost tens of milliseconds of every first import.
A package without a header falls back to the metadata."""

from __future__ import annotations

import re

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
    header = find("include/xnor_edge.h", "runtime_c/include/xnor_edge.h")
    if header:
        return header_version(header.read_text(encoding="utf-8"))
    from importlib import metadata

    try:
        return metadata.version("xnor-edge")
    except metadata.PackageNotFoundError:
        return "0+unknown"


__version__ = _version()
