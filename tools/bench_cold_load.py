"""Cold model load: the first ``xnor_edge.load`` in a fresh process, library load included.

Each round starts one fresh Python process per variant, in shuffled order, and times inside it
(perf_counter) ``import xnor_edge`` and then the first ``xnor_edge.load(MODEL)`` (which loads
the C library through the binding, then reads, checks and prepares the model), then the first
``Model.session()``. Variants:

* ``pre-parsed``: the package as installed (cffi declarations pre-parsed by the build, _cdef.py);
* ``parse-at-import``: the same package with its pre-parsed module hidden, so the binding
  parses the header with pycparser as every load did before (the honest baseline).

Child processes run with bytecode caching on (PYTHONDONTWRITEBYTECODE removed from their
environment) after one discarded warm-up process per variant, as an installed package runs
(pip writes the .pyc files at install); without it every import recompiles the package's
sources, about 15 ms of every first load.

Medians over rounds, CPU printed. Issue 14's floor is 20 ms for the shipped ResNet-18:

    python3 tools/bench_cold_load.py --rounds 15
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys

from bench_peers import cpu_report

CHILD = r"""
import sys, time, json
HIDE = {hide!r}
if HIDE:
    class _Hide:
        def find_spec(self, name, path=None, target=None):
            if name == "xnor_edge._ffi":
                raise ImportError("hidden by bench_cold_load")
    sys.meta_path.insert(0, _Hide())
t0 = time.perf_counter()
import xnor_edge
t1 = time.perf_counter()
m = xnor_edge.load({model!r})
t2 = time.perf_counter()
s = m.session(1)
t3 = time.perf_counter()
from xnor_edge import _native
print(json.dumps({{"import": t1 - t0, "load": t2 - t1, "session": t3 - t2, "how": _native.cdef_source}}))
"""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="imagenette-resnet18-xnor", help="shipped model name or path")
    p.add_argument("--rounds", type=int, default=15)
    args = p.parse_args(argv)
    import xnor_edge

    model = str(xnor_edge.model_path(args.model))
    variants = {"pre-parsed": False, "parse-at-import": True}
    res: dict[str, dict[str, list[float]]] = {v: {"import": [], "load": [], "session": []} for v in variants}
    how: dict[str, set] = {v: set() for v in variants}
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

    def child(v: str) -> dict:
        code = CHILD.format(hide=variants[v], model=model)
        cmd = [sys.executable, "-c", code]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
        return json.loads(out.stdout.strip().splitlines()[-1])

    for v in variants:  # warm-up: writes the bytecode caches; discarded
        child(v)
    for _ in range(args.rounds):
        order = list(variants)
        random.shuffle(order)
        for v in order:
            r = child(v)
            how[v].add(r.pop("how"))
            for k, t in r.items():
                res[v][k].append(t * 1e3)
    cpu = cpu_report()
    simd = ", ".join(cpu["simd_flags"])
    print(f"CPU: {cpu['model']} ({cpu['cores']} cores; {simd}), load average {cpu['loadavg']}")
    print(f"model: {model}")
    print(f"{args.rounds} rounds, a fresh process per variant per round, shuffled; medians (ms)")
    print(f"{'variant':<18} {'binding':<18} {'import xnor_edge':>17} {'first load':>11} {'session(1)':>11}")
    for v in variants:
        med = {k: statistics.median(t) for k, t in res[v].items()}
        binding = "/".join(sorted(how[v]))
        print(f"{v:<18} {binding:<18} {med['import']:>17.1f} {med['load']:>11.1f} {med['session']:>11.1f}")
    a = statistics.median(res["parse-at-import"]["load"])
    b = statistics.median(res["pre-parsed"]["load"])
    print(f"first load, parse-at-import / pre-parsed: {a / b:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
