#!/usr/bin/env bash
# Emulated check that the xnor_edge Python package works on a Raspberry Pi CPU.
#
#   tools/arm_python_smoke.sh aarch64    # 64-bit Raspberry Pi OS / Debian arm64
#   tools/arm_python_smoke.sh armv7      # 32-bit Raspberry Pi OS / Debian armhf
#   tools/arm_python_smoke.sh aarch64 --wheel dist/xnor_edge-*-linux_aarch64.whl
#
# Without --wheel:
# 1. installs what is missing (debootstrap, qemu-user, the cross gcc, cmake);
# 2. creates, once, a minimal Debian bookworm root with python3, numpy, cffi,
#    ply, yaml, pil, pip, opencv and pytest (debootstrap --foreign, then dpkg-deb -x of every .deb:
#    no binfmt is needed), cached under ${XE_ARM_ROOT:-~/.cache/xnor-edge/arm-roots}/ARCH;
# 3. cross-compiles libxnor_edge.so with cmake/toolchains/, into build-arm-ARCH/;
# 4. assembles the package as a wheel would lay it out (xnor_edge/ with
#    libxnor_edge.so and include/xnor_edge.h) in a temporary directory;
# 5. runs tools/arm_smoke.py with the root's python3 under qemu-user on a Pi
#    CPU model: kernel_isa() must be neon-a64 / neon-a32, and a set of builder
#    models must match xnor_edge.reference and, bit for bit, the "ref" kernels.
# With --wheel WHEEL (a wheel of tools/build_pi_wheels.sh), steps 3-4 become
# what a Pi user does: a venv over the system's packages (Debian's numpy, cffi,
# pillow, yaml, opencv) and `pip install --no-deps WHEEL` into it; then step 5
# runs on the installed package, and step 6 runs `xnor-edge classify` on the
# shipped sample and a subset of tests/ against it ($XE_ARM_TESTS).
# Exits non-zero with a message on any failure. See docs/arm.md.
#
# Environment:
#   XE_ARM_ROOT        cache directory of the roots (default ~/.cache/xnor-edge/arm-roots)
#   XE_ARM_REBUILD=1   recreate the root even if the cached one is good
#   XE_DEBIAN_MIRROR   Debian mirror (default http://deb.debian.org/debian)
#   XE_QEMU_CPU        qemu -cpu model (default cortex-a53 = Pi 3 / Zero 2 W for
#                      aarch64, cortex-a7 = Pi 2 for armv7; "max" for qemu's default)
#   XE_JOBS            parallel build jobs (default 2)
#   XE_KEEP_TMP=1      keep the assembled package tree (its path is printed)
#   XE_ARM_TESTS       test files of tests/ to run with --wheel (default: see step 6)
#   XE_ARM_TESTS_K     their pytest -k selection (default: see step 6; empty: all)
set -euo pipefail

usage() { echo "usage: $0 aarch64|armv7 [--wheel WHEEL]" >&2; exit 2; }
WHEEL=
case $# in
  1) ;;
  3) [ "$2" = --wheel ] || usage; WHEEL=$(realpath "$3"); [ -f "$WHEEL" ] || { echo "no such wheel: $3" >&2; exit 2; } ;;
  *) usage ;;
esac
ARCH=$1
case "$ARCH" in
  aarch64)
    DEB_ARCH=arm64; TRIPLET=aarch64-linux-gnu; QEMU=qemu-aarch64; GCC_PKG=gcc-aarch64-linux-gnu
    TOOLCHAIN=cmake/toolchains/aarch64-linux-gnu.cmake; EXPECT_ISA=neon-a64; ELF_MACHINE=AArch64
    DEFAULT_CPU=cortex-a53 ;;
  armv7|armhf)
    ARCH=armv7
    DEB_ARCH=armhf; TRIPLET=arm-linux-gnueabihf; QEMU=qemu-arm; GCC_PKG=gcc-arm-linux-gnueabihf
    TOOLCHAIN=cmake/toolchains/armv7-linux-gnueabihf.cmake; EXPECT_ISA=neon-a32; ELF_MACHINE=ARM
    DEFAULT_CPU=cortex-a7 ;;
  *) usage ;;
esac

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SUITE=bookworm
MIRROR=${XE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# pip, opencv and pytest: a wheel is installed and used as on Raspberry Pi OS (--wheel).
PY_PKGS=python3,python3-numpy,python3-cffi,python3-ply,python3-yaml,python3-pil,python3-pip,python3-opencv,python3-pytest
ROOT_BASE=${XE_ARM_ROOT:-${HOME:-/root}/.cache/xnor-edge/arm-roots}
ROOT=$ROOT_BASE/$ARCH
# Changing any of these invalidates a cached root.
ROOT_KEY="xe-arm-root v1 $SUITE $DEB_ARCH minbase $PY_PKGS"
BUILD=$REPO/build-arm-$ARCH
JOBS=${XE_JOBS:-2}
QEMU_CPU=${XE_QEMU_CPU:-$DEFAULT_CPU}
QEMU_CPU_ARGS=()
[ "$QEMU_CPU" = max ] || QEMU_CPU_ARGS=(-cpu "$QEMU_CPU")

SUDO=
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "arm-smoke: FAIL: run as root (apt-get, debootstrap)" >&2; exit 1; }
  SUDO=sudo
fi

say() { echo "[arm-smoke $ARCH] $*"; }
die() { echo "[arm-smoke $ARCH] FAIL: $*" >&2; exit 1; }
now() { date +%s.%N; }
T_ALL=$(now)
TIMES=()
T_STEP=
step_begin() { T_STEP=$(now); say "== $1"; }
step_end() {
  local dt
  dt=$(awk -v a="$T_STEP" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
  TIMES+=("$(printf '%-48s %6s s' "$1" "$dt")")
  say "   $1: ${dt} s"
}

# ---------------------------------------------------------------- 1. tools
step_begin "1. host tools"
need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
[ -f /usr/share/keyrings/debian-archive-keyring.gpg ] || need+=(debian-archive-keyring)
command -v "$QEMU" >/dev/null || need+=(qemu-user)
command -v "$TRIPLET-gcc" >/dev/null || need+=("$GCC_PKG")
command -v cmake >/dev/null || need+=(cmake)
command -v make >/dev/null || command -v ninja >/dev/null || need+=(make)
command -v dpkg-deb >/dev/null || die "dpkg-deb not found: this script needs a Debian/Ubuntu host"
command -v flock >/dev/null || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
  say "installing: ${need[*]}"
  apt_install() {
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      -o DPkg::Lock::Timeout=300 "${need[@]}"
  }
  if ! apt_install >/tmp/xe-arm-apt.log 2>&1; then
    $SUDO apt-get update -q -o DPkg::Lock::Timeout=300 >>/tmp/xe-arm-apt.log 2>&1 || true
    apt_install >>/tmp/xe-arm-apt.log 2>&1 || { tail -20 /tmp/xe-arm-apt.log >&2; die "apt-get install ${need[*]} failed"; }
  fi
fi
say "$($QEMU --version | head -1); $($TRIPLET-gcc --version | head -1); $(cmake --version | head -1)"
step_end "1. host tools"

# ----------------------------------------------------------------- 2. root
step_begin "2. Debian $SUITE $DEB_ARCH root"
mkdir -p "$ROOT_BASE"
exec 9>"$ROOT_BASE/$ARCH.lock"
flock 9  # one builder per root; other runs for this ARCH wait here

root_python() {  # ROOT's python3 (or the venv's, once made) under qemu, with a clean environment
  env -i PATH=/usr/bin:/bin HOME=/root LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1 PYTHONNOUSERSITE=1 \
    "${EXTRA_ENV[@]}" "$QEMU" "${QEMU_CPU_ARGS[@]}" -L "$1" "${PY[0]:-$1/usr/bin/python3}" "${@:2}"
}
PY=()
EXTRA_ENV=()
PY_CHECK='import sys, numpy, cffi, ply, yaml, PIL.Image, pip, pytest; print("python", sys.version.split()[0], "numpy", numpy.__version__, "cffi", cffi.__version__)'

if [ "${XE_ARM_REBUILD:-0}" != 1 ] && [ -f "$ROOT/.xe-arm-root" ] &&
   [ "$(cat "$ROOT/.xe-arm-root")" = "$ROOT_KEY" ]; then
  say "cached root $ROOT"
else
  if [ -e "$ROOT" ]; then
    # Only ever delete a directory this script made.
    [ -f "$ROOT/.xe-arm-root" ] || [ -d "$ROOT/debootstrap" ] ||
      die "$ROOT exists and is not a root made by this script; move it away"
    say "removing stale root $ROOT"
    $SUDO rm -rf "$ROOT"
  fi
  TMP_ROOT=$ROOT.partial
  LOG=$ROOT_BASE/$ARCH.debootstrap.log
  $SUDO rm -rf "$TMP_ROOT"
  say "debootstrap --foreign $SUITE $DEB_ARCH from $MIRROR (log: $LOG)"
  # --foreign: download everything, unpack the essential set, stop before the
  # second stage (which would run target binaries: needs binfmt). Unmerged /usr
  # so that extracting the remaining .debs over it cannot replace symlinked dirs.
  if ! $SUDO debootstrap --arch="$DEB_ARCH" --foreign --variant=minbase --no-merged-usr \
       --include="$PY_PKGS" "$SUITE" "$TMP_ROOT" "$MIRROR" >"$LOG" 2>&1; then
    tail -20 "$LOG" >&2
    die "debootstrap failed (full log: $LOG)"
  fi
  T_X=$(now)
  # The first stage unpacked the "required" set; unpack the rest ("base":
  # the --include packages and their dependencies), or every .deb if
  # debootstrap's bookkeeping is not there.
  dbs=$TMP_ROOT/debootstrap
  debs=()
  if [ -s "$dbs/base" ] && [ -s "$dbs/debpaths" ]; then
    mapfile -t debs < <(awk 'NR == FNR { for (i = 1; i <= NF; i++) want[$i] = 1; next }
                             ($1 in want) { print $2 }' "$dbs/base" "$dbs/debpaths")
    [ "${#debs[@]}" = "$(wc -w <"$dbs/base")" ] || die "debootstrap/debpaths lacks packages of debootstrap/base"
    debs=("${debs[@]/#/$TMP_ROOT}")
  else
    debs=("$TMP_ROOT"/var/cache/apt/archives/*.deb)
  fi
  for deb in "${debs[@]}"; do
    $SUDO dpkg-deb -x "$deb" "$TMP_ROOT" || die "dpkg-deb -x $deb failed"
  done
  say "unpacked ${#debs[@]} .debs in $(awk -v a="$T_X" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }') s"
  # Maintainer scripts never ran: do what matters of them by hand.
  # numpy links libblas.so.3 / liblapack.so.3, which update-alternatives provides.
  libdir=$TMP_ROOT/usr/lib/$TRIPLET
  for lib in libblas.so.3 liblapack.so.3; do
    if [ ! -e "$libdir/$lib" ]; then
      cand=$(cd "$libdir" && find . -mindepth 2 -maxdepth 2 -name "$lib" | sort | head -1)
      cand=${cand#./}
      [ -n "$cand" ] || die "no $lib in the root (numpy needs it)"
      $SUDO ln -sfn "$cand" "$libdir/$lib"
    fi
  done
  $SUDO rm -f "$TMP_ROOT"/var/cache/apt/archives/*.deb
  out=$(root_python "$TMP_ROOT" -c "$PY_CHECK" 2>&1) || { echo "$out" >&2; die "python3 in the new root does not work"; }
  say "$out"
  echo "$ROOT_KEY" | $SUDO tee "$TMP_ROOT/.xe-arm-root" >/dev/null
  $SUDO mv "$TMP_ROOT" "$ROOT"
  say "root ready: $ROOT ($(du -sh "$ROOT" 2>/dev/null | cut -f1))"
fi
step_end "2. Debian $SUITE $DEB_ARCH root"

PKG=$(mktemp -d "${TMPDIR:-/tmp}/xe-arm-smoke-$ARCH.XXXXXX")
cleanup() { if [ "${XE_KEEP_TMP:-0}" = 1 ]; then echo "[arm-smoke $ARCH] kept $PKG"; else rm -rf "$PKG"; fi; }
trap cleanup EXIT
PY=("$ROOT/usr/bin/python3")

if [ -z "$WHEEL" ]; then
# ---------------------------------------------------------------- 3. build
step_begin "3. cross-compile libxnor_edge.so"
[ -f "$REPO/$TOOLCHAIN" ] || die "toolchain file $TOOLCHAIN is missing"
mkdir -p "$BUILD"
cmake -S "$REPO" -B "$BUILD" -DCMAKE_TOOLCHAIN_FILE="$REPO/$TOOLCHAIN" -DCMAKE_BUILD_TYPE=Release \
  -DXE_BUILD_TESTS=OFF -DXE_BUILD_BENCH=OFF -DXE_BUILD_FUZZ=OFF >"$BUILD/xe-configure.log" 2>&1 ||
  { tail -30 "$BUILD/xe-configure.log" >&2; die "cmake configure failed (log: $BUILD/xe-configure.log)"; }
grep -q "kernels for" "$BUILD/xe-configure.log" && say "$(grep -o 'xnor-edge: kernels for .*' "$BUILD/xe-configure.log")"
cmake --build "$BUILD" --target xnor_edge -j "$JOBS" >"$BUILD/xe-build.log" 2>&1 ||
  { tail -40 "$BUILD/xe-build.log" >&2; die "cross build failed (log: $BUILD/xe-build.log)"; }
SO=$(find "$BUILD" -name libxnor_edge.so -print -quit)
[ -n "$SO" ] || die "no libxnor_edge.so under $BUILD"
machine=$("$TRIPLET-readelf" -h "$SO" | awk -F: '/Machine:/ { gsub(/^ +/, "", $2); print $2 }')
case "$machine" in *"$ELF_MACHINE"*) ;; *) die "$SO is for '$machine', not $ELF_MACHINE" ;; esac
say "$SO: $machine, $(stat -L -c %s "$SO") bytes"
step_end "3. cross-compile libxnor_edge.so"

# ------------------------------------------------------------- 4. package
step_begin "4. assemble the package tree"
cp -r "$REPO/xnor_edge" "$PKG/xnor_edge"
# Drop anything host-built that a checkout may hold; put the ARM build where
# an installed wheel has it (CMakeLists.txt, SKBUILD install rules).
find "$PKG/xnor_edge" \( -name __pycache__ -o -name '*.so' -o -name '*.so.*' -o -name '*.dylib' \
  -o -name '*.dll' -o -name '*.pyc' \) -prune -exec rm -rf {} +
rm -rf "$PKG/xnor_edge/include"
mkdir -p "$PKG/xnor_edge/include"
cp -L "$SO" "$PKG/xnor_edge/libxnor_edge.so"
cp "$REPO/runtime_c/include/xnor_edge.h" "$PKG/xnor_edge/include/xnor_edge.h"
if compgen -G "$REPO/models/*.xnor" >/dev/null; then  # the zoo, as a wheel installs it
  mkdir -p "$PKG/xnor_edge/models" && cp "$REPO"/models/*.xnor "$PKG/xnor_edge/models/"
fi
cp "$REPO/tools/arm_smoke.py" "$PKG/arm_smoke.py"
say "package tree $PKG"
step_end "4. assemble the package tree"

EXTRA_ENV=(PYTHONPATH="$PKG")
PKG_DIR=$PKG/xnor_edge
else
# -------------------------------------------------- 3-4. pip install the wheel
step_begin "3. pip install $(basename "$WHEEL") in a venv"
case "$(basename "$WHEEL")" in
  *-py3-none-linux_aarch64.whl) [ "$ARCH" = aarch64 ] || die "$WHEEL is not an $ARCH wheel" ;;
  *-py3-none-linux_armv7l.whl) [ "$ARCH" = armv7 ] || die "$WHEEL is not an $ARCH wheel" ;;
  *) die "$WHEEL: not a py3-none-linux_aarch64/armv7l wheel" ;;
esac
# As on Raspberry Pi OS: numpy, cffi, pillow, yaml and opencv from apt, seen
# through --system-site-packages; --copies since the emulated python cannot
# exec a symlink to a path that resolves on the host.
VENV=$PKG/venv
root_python "$ROOT" -m venv --system-site-packages --without-pip --copies "$VENV" ||
  die "python3 -m venv failed in the root"
PY=("$VENV/bin/python3")
EXTRA_ENV=(PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1)
root_python "$ROOT" -m pip install -q --no-deps "$WHEEL" || die "pip install $WHEEL failed"
EXTRA_ENV=()
PKG_DIR=$(root_python "$ROOT" -c 'import os, sysconfig; print(os.path.join(sysconfig.get_paths()["platlib"], "xnor_edge"))')
case "$PKG_DIR" in "$VENV"/*) ;; *) die "the venv's site-packages $PKG_DIR is not inside $VENV" ;; esac
[ -f "$PKG_DIR/libxnor_edge.so" ] || die "pip installed no $PKG_DIR/libxnor_edge.so"
say "installed into $PKG_DIR"
cp "$REPO/tools/arm_smoke.py" "$PKG/arm_smoke.py"
# Without binfmt the emulated python cannot start itself again (tests run the CLI with
# sys.executable): a host script that does it through qemu stands in as the executable
# (qemu -0 makes it argv[0], so sys.executable names it in every generation).
cat >"$VENV/bin/python3-qemu" <<EOF
#!/bin/sh
exec $QEMU ${QEMU_CPU_ARGS[*]} -0 "\$0" -L "$ROOT" "$VENV/bin/python3" "\$@"
EOF
chmod +x "$VENV/bin/python3-qemu"
step_end "3. pip install $(basename "$WHEEL") in a venv"
fi

# ----------------------------------------------------------------- 5. run
step_begin "5. smoke test under $QEMU -cpu $QEMU_CPU"
rc=0
(cd "$PKG" && root_python "$ROOT" "$PKG/arm_smoke.py" --expect-isa "$EXPECT_ISA" \
   --expect-pkg-dir "$PKG_DIR") || rc=$?
step_end "5. smoke test under $QEMU -cpu $QEMU_CPU"

# ------------------------------------------------ 6. the CLI and tests (wheel)
if [ -n "$WHEEL" ] && [ "$rc" = 0 ]; then
  step_begin "6. xnor-edge classify and tests/ on the installed wheel"
  venv_python() {
    (cd "$PKG" && env -i PATH=/usr/bin:/bin HOME=/root LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1 \
      PYTHONNOUSERSITE=1 "$VENV/bin/python3-qemu" "$@")
  }
  cli() { venv_python "$VENV/bin/xnor-edge" "$@"; }
  out=$(cli classify --model cifar10-vggsmall-bwn 2>&1) || { echo "$out" >&2; die "xnor-edge classify failed"; }
  echo "    $out"
  case "$out" in *"cat.jpg: cat "*) ;; *) die "xnor-edge classify --model cifar10-vggsmall-bwn did not answer cat" ;; esac
  out=$(cli info 2>&1 | grep '^kernels') || die "xnor-edge info failed"
  echo "    $out"
  case "$out" in *"kernels    $EXPECT_ISA "*) ;; *) die "xnor-edge info does not report $EXPECT_ISA" ;; esac
  # The tests run from a copy of tests/ (no xnor_edge/ beside it): the package comes from the venv.
  cp -r "$REPO/tests" "$PKG/tests"
  find "$PKG/tests" -name __pycache__ -prune -exec rm -rf {} +
  # Those that concern the Pi, chosen to keep this step near two minutes (each CLI call
  # a test makes starts an emulated python): the Model API, the Pi camera, image
  # decoding, kernel selection and hostile files.
  read -r -a tests <<<"${XE_ARM_TESTS:-tests/test_model_api.py tests/test_picamera.py tests/test_real_input.py tests/test_hostile_models.py}"
  # The version-source test reads the checkout (pyproject, CMake, scikit-build-core): not a Pi's.
  keep=${XE_ARM_TESTS_K-(model_api and not one_version_source) or picam or exif or 16bit or tiny or shipped_names or xe_kernels or safe_text or non_finite}
  venv_python -m pytest -q -p no:cacheprovider -x ${keep:+-k "$keep"} "${tests[@]}" || rc=$?
  step_end "6. xnor-edge classify and tests/ on the installed wheel"
fi

echo
say "timings:"
for t in "${TIMES[@]}"; do echo "    $t"; done
printf '    %-48s %6s s\n' "total" "$(awk -v a="$T_ALL" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')"
[ "$rc" = 0 ] || die "the smoke test failed on $ARCH (exit $rc): see the FAIL lines above"
say "PASSED: xnor_edge works on $ARCH ($EXPECT_ISA kernels) under qemu"
