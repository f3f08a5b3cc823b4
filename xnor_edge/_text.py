"""Text from model files (names, labels) made safe for a terminal.

A model file is data from strangers: its labels could hold ANSI escape
sequences (colours, cursor moves, an OSC window title), BEL, bidirectional
overrides that reorder what a reader sees, or newlines that forge whole
output lines. ``safe_text`` turns every such character into a visible
escape, so text output keeps one record per line and shows what the file
really holds. JSON output needs no help: ``json.dumps`` escapes control
characters (and non-ASCII) itself.
"""

from __future__ import annotations

import unicodedata

# Unicode format characters that change how surrounding text is displayed:
# bidirectional embeddings, overrides and isolates, and the marks.
_BIDI = {
    "\u061c",  # ARABIC LETTER MARK
    "\u200e",  # LEFT-TO-RIGHT MARK
    "\u200f",  # RIGHT-TO-LEFT MARK
    *(chr(c) for c in range(0x202A, 0x202F)),  # LRE, RLE, PDF, LRO, RLO
    *(chr(c) for c in range(0x2066, 0x206A)),  # LRI, RLI, FSI, PDI
}


def _escape(ch: str) -> str:
    o = ord(ch)
    if o < 0x100:
        return f"\\x{o:02x}"
    if o < 0x10000:
        return f"\\u{o:04x}"
    return f"\\U{o:08x}"


def safe_text(value: object) -> str:
    """``str(value)`` with control, bidi and other invisible format characters
    escaped as ``\\xNN`` / ``\\uNNNN`` (the escape character ESC included, so no
    terminal sequence survives). Printable text, accents and scripts pass as they are."""
    s = str(value)
    if s.isprintable() and not any(ch in _BIDI for ch in s):
        return s
    out = []
    for ch in s:
        if ch == " " or (ch.isprintable() and ch not in _BIDI):
            out.append(ch)
        elif unicodedata.category(ch) == "Zs":  # other spaces: shown as a plain space
            out.append(" ")
        else:
            out.append(_escape(ch))
    return "".join(out)
