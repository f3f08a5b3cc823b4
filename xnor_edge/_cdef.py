"""The cffi declarations of the C library, taken from its public header.

The cdef is the block between ``/* XE_CDEF_BEGIN */`` and ``/* XE_CDEF_END */``
of ``xnor_edge.h``, so the binding cannot drift from the C library.

Parsing that block with pycparser costs about a quarter of a second per
process (importing pycparser, then parsing), which made the first
``xnor_edge.load`` cost far more than the C loader itself. So the package
build (CMakeLists.txt) runs this file as a script to write cffi's out-of-line
ABI module ``_ffi.py`` from the header: the parsed types as data, plus the
cdef text it came from. ``_native.py`` imports that module when that text is
the header's cdef, and parses the header itself otherwise (a checkout run
against ``XE_LIBRARY``, or a build without cffi). The texts are compared
whole: hashing them would import hashlib (OpenSSL), itself ~8 ms.

This module imports nothing outside the standard library at module level: the
build runs it by path, before the package exists.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path


class HeaderError(Exception):
    """The header has no cdef block."""


def cdef_from_header(text: str) -> str:
    """The cffi cdef: the header's XE_CDEF block without XE_API and comments."""
    m = re.search(r"/\*\s*XE_CDEF_BEGIN\s*\*/(.*?)/\*\s*XE_CDEF_END\s*\*/", text, re.S)
    if not m:
        raise HeaderError("the header has no XE_CDEF_BEGIN/XE_CDEF_END block")
    body = re.sub(r"/\*.*?\*/", " ", m.group(1), flags=re.S)
    body = re.sub(r"//[^\n]*", " ", body)
    return re.sub(r"\bXE_API\b", "", body)


def write_ffi_module(header: Path, out: Path) -> None:
    """Write cffi's out-of-line ABI module for the header's cdef to ``out``."""
    import cffi  # the build's dependency, not this module's

    cdef = cdef_from_header(header.read_text(encoding="utf-8"))
    builder = cffi.FFI()
    builder.cdef(cdef)
    builder.set_source("xnor_edge._ffi", None)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    builder.emit_python_code(str(tmp))
    text = tmp.read_text(encoding="utf-8")
    tmp.unlink()
    stamp = f"\n# The cdef text this module was generated from (_cdef.py).\nCDEF = {cdef!r}\n"
    out.write_text(text + stamp, encoding="utf-8")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python _cdef.py HEADER OUT.py")
    write_ffi_module(Path(sys.argv[1]), Path(sys.argv[2]))
