#!/usr/bin/env python3
"""Steady-state cycles of an AArch64 binary GEMM inner loop under llvm-mca.

Disassembles one function of an object file or executable (llvm-objdump),
finds its innermost loops (a backward branch whose range holds no other
backward branch and, if any such loop is straight-line, no other branch),
keeps the one with the most CNT instructions (the popcounts: each CNT of a
16-byte register is 128 binary MACs, of an 8-byte register 64), and runs
that loop body through llvm-mca for each CPU model.
Prints per CPU: instructions and binary MACs per iteration, cycles per
iteration (Total Cycles / Iterations over --iterations repetitions) and
cycles per binary MAC.

The loop is measured as written: the branch stays in (as a branch to the
loop's first instruction), memory is taken as L1 hits (llvm-mca models no
cache misses), and there is nothing outside the loop (tile set-up, k tail,
stores), so the figure is a lower bound for the kernel.

CPU models (LLVM 19): Raspberry Pi 4's Cortex-A72 is LLVM's `cortex-a72`,
which uses the Cortex-A57 scheduling model (LLVM has none of its own for
the A72). LLVM 19 maps `cortex-a76` to that A57 model too, so for the Pi 5's
Cortex-A76 this tool uses `neoverse-n1`, the server core built from the
A76 (the same pipelines), which has its own model. `--mcpu` overrides.
AArch32 (--arch a32, Thumb-2 objects of the armv7 build): LLVM models only
cortex-a72 (the same A57 model); there is no AArch32 model for the A76.

usage: tools/neon_mca.py FILE SYMBOL [--arch a64|a32] [--mcpu CPU ...] [--json] [--show]
  FILE: an aarch64 ELF object or executable; SYMBOL: the function (exact
  name, or a unique substring). Needs llvm-objdump and llvm-mca (Debian:
  llvm-19; older llvm-mca lacks the Neoverse N1 model), found as
  llvm-objdump-19 / llvm-mca-19, or set LLVM_BIN=/usr/lib/llvm-19/bin.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

# The Pi 4 and Pi 5 cores, as llvm-mca models them (see the docstring).
CPU_LABELS = {"cortex-a72": "Pi 4 (Cortex-A72)", "neoverse-n1": "Pi 5 (Cortex-A76)"}
COND = "eq|ne|cs|cc|hs|lo|mi|pl|vs|vc|hi|ls|ge|lt|gt|le"
ARCHS = {
    "a64": {
        "objdump_triple": "aarch64",
        "mca_triple": "aarch64",
        "branches": re.compile(r"^(b|b\.\w+|cbz|cbnz|tbz|tbnz)$"),
        "cnt": re.compile(r"^cnt$"),
        "fmla": re.compile(r"^(fmla|fmadd)$"),
        "comment": "//",
        "cpus": ["cortex-a72", "neoverse-n1"],
    },
    # Debian armhf compiles Thumb-2; LLVM models AArch32 only for cortex-a72.
    "a32": {
        "objdump_triple": "armv7",
        "mca_triple": "thumbv7-linux-gnueabihf",
        "branches": re.compile(rf"^(b(?:{COND})?(?:\.[wn])?|cbz|cbnz)$"),
        "cnt": re.compile(r"^vcnt\.8$"),
        "fmla": re.compile(r"^vfma\.f32$"),
        "comment": "@",
        "cpus": ["cortex-a72"],
    },
}
LINE = re.compile(r"^\s*([0-9a-f]+):\s+(\S+)\s*(.*)$")


def tool(name: str) -> str:
    """Path of an LLVM tool: $LLVM_BIN/name, name-19, or name."""
    base = os.environ.get("LLVM_BIN")
    if base:
        return os.path.join(base, name)
    for cand in (f"{name}-19", f"/usr/lib/llvm-19/bin/{name}", name):
        found = shutil.which(cand)
        if found:
            return found
    sys.exit(f"neon_mca: {name} not found (install llvm-19 or set LLVM_BIN)")


def disassemble(path: str, symbol: str, arch: dict) -> tuple[str, list[tuple[int, str, str]]]:
    """(function name, [(address, mnemonic, operands)]) of the one matching function."""
    out = subprocess.run(
        [tool("llvm-objdump"), "-d", "--no-show-raw-insn", f"--triple={arch['objdump_triple']}", path],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    funcs: dict[str, list[tuple[int, str, str]]] = {}
    cur = None
    for line in out.splitlines():
        head = re.match(r"^[0-9a-f]+ <(.+)>:$", line)
        if head:
            cur = head.group(1)
            funcs[cur] = []
            continue
        m = LINE.match(line)
        if cur is not None and m:
            ops = m.group(3).split(arch["comment"])[0].strip()
            funcs[cur].append((int(m.group(1), 16), m.group(2), ops))
    if symbol in funcs:
        return symbol, funcs[symbol]
    hits = [f for f in funcs if symbol in f]
    if len(hits) != 1:
        sys.exit(f"neon_mca: {len(hits)} functions match {symbol!r}: {hits[:8]}")
    return hits[0], funcs[hits[0]]


def target_of(ops: str) -> int | None:
    m = re.search(r"(?:^|,\s*)(?:0x)?([0-9a-f]+)\s+<", ops)
    return int(m.group(1), 16) if m else None


def innermost_loops(code: list[tuple[int, str, str]], arch: dict) -> list[tuple[int, int]]:
    """(first index, branch index) of each backward branch that encloses no other."""
    index = {addr: i for i, (addr, _, _) in enumerate(code)}
    loops = []
    for i, (addr, mnem, ops) in enumerate(code):
        if arch["branches"].match(mnem):
            t = target_of(ops)
            if t is not None and t <= addr and t in index:
                loops.append((index[t], i))
    inner = [
        (s, e) for s, e in loops if not any((s2, e2) != (s, e) and s <= s2 and e2 <= e for s2, e2 in loops)
    ]
    # Straight-line bodies only (no branch before the closing one), when there are any.
    straight = [(s, e) for s, e in inner if not any(arch["branches"].match(code[i][1]) for i in range(s, e))]
    return straight or inner


def macs_of(body: list[tuple[int, str, str]], arch: dict, ops_kind: str = "popcount") -> int:
    """popcount: binary MACs, 8 per byte popcounted by CNT (16 bytes: .16b or qN).
    fmla: float MACs, one per lane of a fused multiply-add (.4s/qN: 4, .2s/dN: 2)."""
    total = 0
    for _, mnem, ops in body:
        dst = ops.split(",")[0].strip()
        wide = dst.endswith((".16b", ".4s")) or dst.startswith("q")
        if ops_kind == "popcount" and arch["cnt"].match(mnem):
            total += 128 if wide else 64
        elif ops_kind == "fmla" and arch["fmla"].match(mnem):
            total += 4 if wide else (2 if dst.endswith(".2s") or dst.startswith("d") else 1)
    return total


def loop_asm(body: list[tuple[int, str, str]], start: int, arch: dict) -> str:
    lines = ["loop_top:"]
    for _, mnem, ops in body:
        t = target_of(ops) if arch["branches"].match(mnem) else None
        if t is not None:
            ops = re.sub(r"(?:0x)?[0-9a-f]+\s+<[^>]*>", "loop_top" if t == start else "loop_out", ops)
        lines.append(f"\t{mnem}\t{ops}")
    lines.append("loop_out:")
    return "\n".join(lines) + "\n"


def run_mca(asm: str, cpu: str, iterations: int, arch: dict) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".s", delete=False) as f:
        f.write(asm)
        path = f.name
    try:
        out = subprocess.run(
            [
                tool("llvm-mca"),
                f"-mtriple={arch['mca_triple']}",
                f"-mcpu={cpu}",
                f"-iterations={iterations}",
                path,
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    finally:
        os.unlink(path)

    def field(name: str) -> float:
        m = re.search(rf"^{name}:\s+([0-9.]+)", out, re.M)
        return float(m.group(1)) if m else float("nan")

    return {
        "cycles_per_iter": field("Total Cycles") / field("Iterations"),
        "block_rthroughput": field("Block RThroughput"),
        "ipc": field("IPC"),
    }


def analyse(
    path: str,
    symbol: str,
    cpus: list[str] | None = None,
    iterations: int = 1000,
    arch_name: str = "a64",
    ops_kind: str = "popcount",
) -> dict:
    """The inner loop of SYMBOL in PATH and its llvm-mca figures per CPU (see the module doc)."""
    arch = ARCHS[arch_name]
    cpus = cpus or arch["cpus"]
    name, code = disassemble(path, symbol, arch)
    loops = innermost_loops(code, arch)
    if not loops:
        sys.exit(f"neon_mca: no loop in {name}")
    s, e = max(
        loops,
        key=lambda le: (macs_of(code[le[0] : le[1] + 1], arch, ops_kind), -(le[1] - le[0])),
    )
    body = code[s : e + 1]
    macs = macs_of(body, arch, ops_kind)
    if macs == 0:
        sys.exit(f"neon_mca: no loop of {name} has a {'CNT' if ops_kind == 'popcount' else 'FMLA'}")
    asm = loop_asm(body, code[s][0], arch)
    res = {
        "file": path,
        "function": name,
        "loop": f"{code[s][0]:#x}-{code[e][0]:#x}",
        "instructions_per_iter": len(body),
        "macs_per_iter": macs,
        "ops": ops_kind,
        "asm": asm,
        "cpus": {},
    }
    for cpu in cpus:
        r = run_mca(asm, cpu, iterations, arch)
        r["cycles_per_mac"] = r["cycles_per_iter"] / macs
        r["macs_per_cycle"] = macs / r["cycles_per_iter"]
        res["cpus"][cpu] = r
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("file")
    ap.add_argument("symbol")
    ap.add_argument("--arch", choices=sorted(ARCHS), default="a64", help="a32: armv7 Thumb-2 code")
    ap.add_argument("--mcpu", nargs="+", help="default: cortex-a72 neoverse-n1 (a64), cortex-a72 (a32)")
    ap.add_argument("--iterations", type=int, default=1000)
    ap.add_argument("--ops", choices=["popcount", "fmla"], default="popcount", help="fmla: a float GEMM loop")
    ap.add_argument("--json", action="store_true", help="one JSON object")
    ap.add_argument("--show", action="store_true", help="print the loop's assembly")
    args = ap.parse_args()
    res = analyse(args.file, args.symbol, args.mcpu, args.iterations, args.arch, args.ops)
    kind = "binary-MAC" if args.ops == "popcount" else "float-MAC"
    if args.json:
        print(json.dumps(res, indent=1))
        return 0
    if args.show:
        print(res["asm"])
    print(
        f"{res['function']} loop {res['loop']}: {res['instructions_per_iter']} instructions, "
        f"{res['macs_per_iter']} {kind}s per iteration"
    )
    for cpu, r in res["cpus"].items():
        label = CPU_LABELS.get(cpu, cpu)
        print(
            f"  {cpu:12s} {label:20s} {r['cycles_per_iter']:7.2f} cycles/iter  "
            f"{r['cycles_per_mac']:.5f} cycles/{kind}  "
            f"{r['macs_per_cycle']:6.1f} {kind}s/cycle  IPC {r['ipc']:.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
