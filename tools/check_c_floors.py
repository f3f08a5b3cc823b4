#!/usr/bin/env python3
"""Structural floors of the C runtime (issue 10), checked on runtime_c/src:

1. no function is longer than --max-lines lines (signature to closing brace);
2. no `case XE_OP_...` label outside the op's own file (op_*.c): the loader,
   the session and the API walk the op records (ops.h, ops.inc) instead.

Functions are found the way the house style (.clang-format) lays them out: a
definition starts at column 0 and its body closes with a `}` at column 0.
Exit status 1 lists every offence; run by ctest as `c_floors`.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

CASE_OP = re.compile(r"\bcase\s+XE_OP_[A-Z0-9_]+\s*:")


def strip_comments_and_strings(text: str) -> str:
    """Blanks comments and string/char literals, keeping line breaks."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(c + " " * (min(j, n) - i - 1) + (c if j < n else ""))
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def functions(text: str) -> list[tuple[str, int, int]]:
    """(name, first line, line count) of every function definition."""
    lines = strip_comments_and_strings(text).split("\n")
    found = []
    depth, start = 0, None
    for no, line in enumerate(lines, 1):
        if depth == 0 and start is None and line[:1] not in ("", " ", "\t", "#", "}"):
            start = no  # a top-level item begins at column 0
        before = depth
        depth += line.count("{") - line.count("}")
        if depth == 0 and start is not None and (before > 0 or ";" in line):
            head = " ".join(lines[start - 1 : no])
            brace = head.find("{")
            signature = head[:brace] if brace >= 0 else ""
            m = re.search(r"(\w+)\s*\([^;]*\)\s*$", signature)
            if m and "=" not in signature:  # not a declaration, table or struct
                found.append((m.group(1), start, no - start + 1))
            start = None
    return found


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "src", nargs="?", default=Path(__file__).resolve().parent.parent / "runtime_c" / "src", type=Path
    )
    ap.add_argument("--max-lines", type=int, default=120)
    args = ap.parse_args()
    bad = []
    files = sorted(p for p in args.src.rglob("*") if p.suffix in (".c", ".h", ".inc"))
    for path in files:
        text = path.read_text(encoding="utf-8")
        rel = path.relative_to(args.src)
        for name, first, count in functions(text):
            if count > args.max_lines:
                bad.append(f"{rel}:{first}: {name}() is {count} lines (limit {args.max_lines})")
        if not path.name.startswith("op_"):
            for no, line in enumerate(strip_comments_and_strings(text).split("\n"), 1):
                if CASE_OP.search(line):
                    bad.append(f"{rel}:{no}: per-op switch outside the op's file: {line.strip()}")
    for line in bad:
        print(line)
    print(f"c_floors: {len(files)} files, {len(bad)} offence(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
