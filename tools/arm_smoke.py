"""Smoke test of the xnor_edge Python package on an (emulated) ARM CPU.

Run by tools/arm_python_smoke.sh inside a Debian root under qemu-user, with
PYTHONPATH pointing at a package tree that holds the cross-built
libxnor_edge.so. Needs only numpy and cffi (no OpenCV, no pytest):

    python3 arm_smoke.py --expect-isa neon-a64 [--expect-pkg-dir DIR]

Every model is built with xnor_edge.builder on fixed inputs and checked
1. against xnor_edge.reference (float64 NumPy) within a tolerance, and
2. bit for bit against the same model run with the "ref" kernel set.
Exits 1 on any failure, with one line per failed check.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
import traceback

import numpy as np

# Single-op models read the model input directly (exact float32 values on
# both sides), so no sign can flip between float32 and float64: tight.
RTOL = 2e-5
# The chained net binarises computed values: a value within float32 rounding
# of zero may flip a sign, so compare loosely (as tests/test_runtime_parity.py).
RTOL_CHAIN = 1e-3


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--expect-isa", required=True, help="kernel set auto-detection must pick")
    ap.add_argument("--expect-pkg-dir", help="xnor_edge must be imported from this directory")
    args = ap.parse_args()
    t0 = time.perf_counter()
    print(f"python {platform.python_version()} on {platform.machine()}, numpy {np.__version__}")

    try:
        import xnor_edge
        from xnor_edge import _native
    except ModuleNotFoundError as e:
        if e.name == "cv2":
            print(
                "FAIL: importing xnor_edge imports cv2 (OpenCV) at import time; OpenCV is not "
                "available here: report to the lead (the package should import cv2 lazily)"
            )
        else:
            print(f"FAIL: import xnor_edge: {e}")
        traceback.print_exc()
        return 1
    except ImportError as e:
        print(f"FAIL: import xnor_edge: {e}")
        traceback.print_exc()
        return 1
    from xnor_edge.builder import GraphBuilder
    from xnor_edge.reference import ReferenceModel

    print(f"xnor_edge {xnor_edge.__version__} from {xnor_edge.__file__}")
    print(f"library {_native.library_path} (version {xnor_edge.library_version()})")
    failures: list[str] = []

    def fail(msg: str) -> None:
        failures.append(msg)
        print(f"FAIL: {msg}")

    if args.expect_pkg_dir:
        import os

        want = os.path.realpath(args.expect_pkg_dir)
        for what, p in (("package", xnor_edge.__file__), ("library", _native.library_path)):
            if not os.path.realpath(p).startswith(want + os.sep):
                fail(f"{what} {p} is not from the package tree under test {want}")
    if "cv2" in sys.modules:
        fail("importing xnor_edge loaded cv2")

    isa = xnor_edge.kernel_isa()
    avail = xnor_edge.available_isas()
    print(f"kernel_isa() = {isa}   available_isas() = {avail}")
    if isa != args.expect_isa:
        fail(f"kernel_isa() is {isa!r}, expected {args.expect_isa!r} (available: {avail})")
    if "ref" not in avail:
        fail(f"'ref' is not in available_isas() {avail}")
    if args.expect_isa not in avail:
        fail(f"{args.expect_isa!r} is not in available_isas() {avail}")
    if failures:  # no point in running models on the wrong kernels
        return report(failures, t0)

    cases = build_cases(GraphBuilder)
    print(f"{len(cases)} models, each vs reference (float64) and vs the 'ref' kernels bit for bit")
    for name, data, x, rtol in cases:
        try:
            check_case(xnor_edge, ReferenceModel, name, data, x, rtol, args.expect_isa, fail)
        except Exception as e:  # noqa: BLE001 - report and go on with the other cases
            fail(f"{name}: {type(e).__name__}: {e}")
            traceback.print_exc()

    # Threads: a 2-thread session must give the same bits as a 1-thread one.
    name, data, x, _ = cases[-1]
    try:
        xnor_edge.set_kernel_isa(args.expect_isa)
        with xnor_edge.load(data, num_threads=1) as m1, xnor_edge.load(data, num_threads=2) as m2:
            a, b = m1.run(x), m2.run(x)
            top = m2.postprocess(b[0], top_k=2)
        same = np.array_equal(a.view(np.uint32), b.view(np.uint32))
        print(f"  {'ok' if same else 'FAIL':4} {name}: 2 threads == 1 thread; top-2 {top}")
        if not same:
            fail(f"{name}: num_threads=2 differs from num_threads=1")
    except Exception as e:  # noqa: BLE001
        fail(f"threads: {type(e).__name__}: {e}")
        traceback.print_exc()
    finally:
        xnor_edge.set_kernel_isa("auto")
    check_shipped_models(xnor_edge, args.expect_isa, fail)
    if xnor_edge.kernel_isa() != args.expect_isa:
        fail(f"set_kernel_isa('auto') gave {xnor_edge.kernel_isa()!r}, expected {args.expect_isa!r}")
    return report(failures, t0)


def check_shipped_models(xe, isa, fail) -> None:
    """The trained models shipped in the package load from it by name and give the same
    bits with the optimised kernels as with the portable ones, on a fixed input."""
    shipped = xe.shipped_models()
    print(f"{len(shipped)} shipped models: {', '.join(sorted(shipped)) or 'none'}")
    for name, path in sorted(shipped.items()):
        try:
            outs = {}
            for k in (isa, "ref"):
                xe.set_kernel_isa(k)
                with xe.load(xe.model_path(name)) as m:
                    x = np.random.default_rng(7).standard_normal(m.input_shape).astype(np.float32)
                    t = time.perf_counter()
                    outs[k] = m.run(x)
                    ms = (time.perf_counter() - t) * 1e3
                    top = m.postprocess(outs[k], top_k=1)
                print(f"       {name} [{k}]: top-1 {top} ({ms:.0f} ms)")
            same = np.array_equal(outs[isa].view(np.uint32), outs["ref"].view(np.uint32))
            print(f"  {'ok' if same else 'FAIL':4} {name} ({path.name}): {isa} == ref bit for bit")
            if not same:
                fail(f"shipped model {name}: {isa} kernels differ from ref")
        except Exception as e:  # noqa: BLE001 - report and go on with the other models
            fail(f"shipped model {name}: {type(e).__name__}: {e}")
            traceback.print_exc()
        finally:
            xe.set_kernel_isa("auto")


def check_case(xe, ReferenceModel, name, data, x, rtol, isa, fail) -> None:
    ref = ReferenceModel(data)
    want = np.stack([ref.run(xi) for xi in x])
    outs = {}
    for k in (isa, "ref"):
        xe.set_kernel_isa(k)
        if xe.kernel_isa() != k:
            fail(f"{name}: set_kernel_isa({k!r}) left kernel_isa() = {xe.kernel_isa()!r}")
        with xe.load(data) as m:
            outs[k] = m.run(x)
    xe.set_kernel_isa(isa)
    got = outs[isa]
    ok = True
    if got.dtype != np.float32 or got.shape != want.shape:
        fail(f"{name}: output {got.dtype} {got.shape}, reference {want.shape}")
        return
    if not np.all(np.isfinite(got)):
        fail(f"{name}: non-finite outputs")
        ok = False
    # as numpy.testing.assert_allclose(got, want, rtol, atol=rtol * max(1, max|want|))
    atol = rtol * max(1.0, float(np.abs(want).max()))
    diff = np.abs(got - want)
    err = float(diff.max())
    bad = int(np.count_nonzero(diff > atol + rtol * np.abs(want)))
    if bad:
        ok = False
        fail(f"{name}: {bad}/{got.size} outputs off the reference (max |err| {err:.3g}, rtol {rtol:g})")
    if want.shape[-3:-1] == (1, 1) and not np.array_equal(got.argmax(-1), want.argmax(-1)):
        ok = False
        fail(f"{name}: top class differs from the reference")
    bits_equal = np.array_equal(got.view(np.uint32), outs["ref"].view(np.uint32))
    if not bits_equal:
        ok = False
        ndiff = int(np.count_nonzero(got.view(np.uint32) != outs["ref"].view(np.uint32)))
        fail(f"{name}: {isa} and ref kernels differ in {ndiff}/{got.size} outputs (must be bit-exact)")
    print(
        f"  {'ok' if ok else 'FAIL':4} {name:50} out {str(got.shape[1:]):13} "
        f"max|err| {err:.2e}  bits==ref {bits_equal}"
    )


def build_cases(GraphBuilder):
    """(name, model bytes, input batch (N, H, W, C) float32, rtol) with fixed seeds."""
    rng = np.random.default_rng(20240601)
    cases = []

    def w(*shape):
        return rng.normal(size=shape)

    def add(name, g, batch=2, rtol=RTOL):
        x = rng.normal(size=(batch, *g.input.shape)).astype(np.float32)
        cases.append((name, g.to_bytes(), x, rtol))

    # conv2d (float): square and non-square kernels, strides, padding, relu
    g = GraphBuilder((9, 10, 3))
    g.conv2d(g.input, w(6, 3, 3, 3), w(6), stride=1, padding=1, relu=True)
    add("conv2d 3x3 s1 p1 relu", g)
    g = GraphBuilder((9, 10, 5))
    g.conv2d(g.input, w(7, 5, 3, 5), w(7), stride=(2, 1), padding=(1, 2))
    add("conv2d 3x5 s(2,1) p(1,2)", g)

    # bwn_conv2d: channel counts below, at and above one 32-bit word
    for c in (3, 33):
        g = GraphBuilder((8, 9, c))
        g.bwn_conv2d(g.input, w(5, c, 3, 3), rng.uniform(0.1, 1, 5), w(5), stride=2, padding=1, relu=c == 3)
        add(f"bwn_conv2d c={c} 3x3 s2 p1", g)

    # bconv2d on float input: both pad modes, with and without K; word tails
    for c in (3, 33, 70):
        for pad_mode in ("zero", "one"):
            for use_k in (False, True):
                g = GraphBuilder((7, 9, c))
                s = rng.uniform(0.1, 1, 9)
                g.bconv2d(
                    g.input, w(9, c, 3, 3), s, w(9), padding=1, pad_mode=pad_mode, use_k=use_k, relu=use_k
                )
                add(f"bconv2d c={c} pad={pad_mode} K={use_k}", g)

    # bconv2d on bits input (sign first), stride (1, 2), 40 filters
    for pad_mode in ("zero", "one"):
        g = GraphBuilder((8, 7, 65))
        b = g.sign(g.input)
        g.bconv2d(b, w(40, 65, 3, 3), rng.uniform(0.1, 1, 40), w(40), (1, 2), 1, pad_mode)
        add(f"sign + bconv2d(bits) c=65 pad={pad_mode}", g)

    # bits chain: bconv out_bits (thresholds away from 0) -> bits maxpool -> bconv
    for pad_mode in ("zero", "one"):
        oc = 35
        g = GraphBuilder((9, 9, 6))
        scale = rng.uniform(0.5, 1, oc)
        bias = scale * (rng.integers(-3, 4, oc) + 0.5)  # dot * scale + bias never near 0
        b = g.bconv2d(g.input, w(oc, 6, 3, 3), scale, bias, padding=1, pad_mode=pad_mode, out_bits=True)
        b = g.maxpool(b, 3, stride=2, padding=1)
        g.bconv2d(b, w(8, oc, 3, 3), rng.uniform(0.1, 1, 8), w(8), padding=1, pad_mode=pad_mode)
        add(f"bconv2d(out_bits) + maxpool(bits) pad={pad_mode}", g)

    # float maxpool
    g = GraphBuilder((9, 8, 5))
    g.maxpool(g.input, 3, 2, 1)
    add("maxpool 3x3 s2 p1", g)
    g = GraphBuilder((8, 8, 17))
    g.maxpool(g.input, 2)
    add("maxpool 2x2", g)

    # dense + softmax
    g = GraphBuilder((4, 3, 5))
    d = g.dense(g.input, w(7, 60), w(7), input_order="chw")
    g.softmax(d)
    add("dense(chw) + softmax", g)
    g = GraphBuilder((1, 1, 37))
    g.dense(g.input, w(11, 37), w(11), relu=True)
    add("dense 37->11 relu", g)

    # A whole small XNOR net with every op above; last, also used for threads.
    labels = [f"class{i}" for i in range(10)]
    g = GraphBuilder((16, 16, 3), {"name": "arm-smoke", "labels": labels})
    x = g.conv2d(g.input, w(16, 3, 3, 3), w(16) * 0.1, padding=1, relu=True)
    x = g.bconv2d(x, w(32, 16, 3, 3), rng.uniform(0.1, 1, 32), w(32), padding=1, use_k=True, relu=True)
    x = g.maxpool(x, 2)
    x = g.bconv2d(x, w(40, 32, 3, 3), rng.uniform(0.1, 1, 40), w(40), padding=1, pad_mode="one", relu=True)
    x = g.maxpool(x, 2)
    x = g.bwn_conv2d(x, w(24, 40, 3, 3), rng.uniform(0.05, 0.2, 24), w(24), padding=1, relu=True)
    x = g.maxpool(x, 2)
    x = g.dense(x, w(10, 2 * 2 * 24) * 0.1, w(10), input_order="chw")
    g.softmax(x)
    add("net conv,bconv K,bconv one,bwn,pool,dense,softmax", g, batch=4, rtol=RTOL_CHAIN)
    return cases


def report(failures: list[str], t0: float) -> int:
    dt = time.perf_counter() - t0
    if failures:
        print(f"\nARM SMOKE FAILED ({len(failures)} problem(s), {dt:.1f} s):")
        for f in failures:
            print(f"  - {f}")
        return 1
    print(f"\nARM SMOKE PASSED ({dt:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
