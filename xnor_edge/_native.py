"""The cffi binding: the only module that owns the FFI and the loaded library.

The cdef is the block between ``/* XE_CDEF_BEGIN */`` and ``/* XE_CDEF_END */``
of the installed public header (``xnor_edge/include/xnor_edge.h``), so the
declarations cannot drift from the C library; the build pre-parses it into
``_ffi.py`` (see ``_cdef.py``), which is used when its cdef text is the header's.
The library is opened in ABI mode (``ffi.dlopen``): it never links against
Python, so one build serves every Python version.

Search order for the library: the environment variable ``XE_LIBRARY`` (a path
to the shared library, for development), then the package directory. The
header is taken from the package, or from the source tree's
``runtime_c/include`` when running from a checkout.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from . import _cdef
from ._version import __version__
from .resources import package_dirs

# What this package was written against; checked against the loaded library.
# The library's major.minor must equal the package's (0.x minors may break the API).
# Both come from the header's XE_VERSION_* (see _version.py).
PACKAGE_VERSION = __version__
EXPECTED_FORMAT_VERSION = 1
EXPECTED_PACKING_VERSION = 1

_LIB_NAMES = {"linux": "libxnor_edge.so", "darwin": "libxnor_edge.dylib", "win32": "xnor_edge.dll"}
_PKG_DIR = Path(__file__).resolve().parent


def _find_header() -> Path:
    candidates = [d / "include" / "xnor_edge.h" for d in package_dirs()]
    candidates.append(_PKG_DIR.parent / "runtime_c" / "include" / "xnor_edge.h")
    for c in candidates:
        if c.is_file():
            return c
    raise ImportError(
        "xnor_edge: cannot find the public header xnor_edge.h (looked in "
        + ", ".join(str(c) for c in candidates)
        + "); reinstall the package"
    )


def _find_library() -> str:
    env = os.environ.get("XE_LIBRARY")
    if env:
        if not Path(env).is_file():
            raise ImportError(f"xnor_edge: XE_LIBRARY={env!r} is not a file")
        return env
    name = _LIB_NAMES.get(sys.platform, "libxnor_edge.so")
    candidates = [d / name for d in package_dirs()]
    for c in candidates:
        if c.is_file():
            return str(c)
    raise ImportError(
        f"xnor_edge: cannot find the C library {name} (looked in "
        + ", ".join(str(c) for c in candidates)
        + "); install the package with pip, or set XE_LIBRARY to a built library"
    )


def cdef_from_header(text: str) -> str:
    """The cffi cdef: the header's XE_CDEF block without XE_API and comments."""
    try:
        return _cdef.cdef_from_header(text)
    except _cdef.HeaderError as e:
        raise ImportError(f"xnor_edge: {e}") from None


def _make_ffi(cdef: str) -> tuple[Any, str]:
    """The FFI for ``cdef`` and where it came from: the pre-parsed ``_ffi`` module
    the build wrote when it matches, else cffi parsing the text now."""
    try:
        from . import _ffi

        if getattr(_ffi, "CDEF", None) == cdef:
            return _ffi.ffi, "pre-parsed"
    except ImportError:
        pass
    import cffi

    ffi = cffi.FFI()
    ffi.cdef(cdef)
    return ffi, "parsed at import"


def _load() -> tuple[Any, Any, str, str]:
    header = _find_header()
    ffi, how = _make_ffi(cdef_from_header(header.read_text(encoding="utf-8")))
    path = _find_library()
    try:
        lib = ffi.dlopen(path)
    except OSError as e:
        raise ImportError(f"xnor_edge: cannot load the C library {path}: {e}") from None
    try:
        version = int(lib.xe_version_number())
        fmt = int(lib.xe_format_version())
        packing = int(lib.xe_packing_version())
    except AttributeError as e:
        raise ImportError(f"xnor_edge: the C library {path} lacks a required symbol: {e}") from None
    problems = []
    want_major, want_minor = (int(v) for v in PACKAGE_VERSION.split(".")[:2])
    if (version // 10000, version // 100 % 100) != (want_major, want_minor):
        problems.append(
            f"library version {version // 10000}.{version // 100 % 100}.{version % 100}, "
            f"package {PACKAGE_VERSION}"
        )
    if fmt != EXPECTED_FORMAT_VERSION or fmt != lib.XE_FORMAT_VERSION:
        problems.append(f"format version {fmt}, expected {EXPECTED_FORMAT_VERSION}")
    if packing != EXPECTED_PACKING_VERSION or packing != lib.XE_PACKING_VERSION:
        problems.append(f"packing version {packing}, expected {EXPECTED_PACKING_VERSION}")
    if problems:
        raise ImportError(
            f"xnor_edge: the C library {path} does not match this package: " + "; ".join(problems)
        )
    return ffi, lib, path, how


ffi, lib, library_path, cdef_source = _load()
