#!/usr/bin/env bash
# Release wheels for the Raspberry Pi, cross-built on a Debian/Ubuntu x86-64 PC.
#
#   tools/build_pi_wheels.sh [aarch64] [armv7]     # default: both, into dist/
#
# Each wheel holds the C library cross-compiled with cmake/toolchains/ (NEON
# kernels picked at run time), the header, the model zoo and the samples:
#   xnor_edge-VERSION-py3-none-linux_aarch64.whl   64-bit Raspberry Pi OS (Pi 3, 4, 5, Zero 2 W)
#   xnor_edge-VERSION-py3-none-linux_armv7l.whl    32-bit Raspberry Pi OS (Pi 2 and later)
# py3-none: the library is dlopened through cffi's ABI mode and never links
# against Python (pyproject.toml, wheel.py-api), so one wheel serves every
# Python 3 on the Pi. The platform tag is set with _PYTHON_HOST_PLATFORM, which
# scikit-build-core reads when it names the wheel; this script then checks the
# tag and that the library inside is an ELF file for the right machine.
# tools/arm_python_smoke.sh ARCH --wheel WHEEL installs one into an emulated
# Debian bookworm root and runs it there (.ci/run does both).
#
# Environment:
#   XE_DIST      output directory (default dist/)
#   PYTHON       the Python that runs pip (default python3); with
#                scikit-build-core installed it builds without build isolation
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIST=${XE_DIST:-$REPO/dist}
PYTHON=${PYTHON:-python3}
ARCHS=("$@")
[ ${#ARCHS[@]} -gt 0 ] || ARCHS=(aarch64 armv7)

die() { echo "[pi-wheels] FAIL: $*" >&2; exit 1; }
mkdir -p "$DIST"
isolation=()
"$PYTHON" -c "import scikit_build_core" 2>/dev/null && isolation=(--no-build-isolation)

for arch in "${ARCHS[@]}"; do
  case "$arch" in
    aarch64) plat=linux-aarch64; tag=linux_aarch64; triplet=aarch64-linux-gnu; elf=AArch64
             toolchain=cmake/toolchains/aarch64-linux-gnu.cmake ;;
    armv7|armv7l) arch=armv7; plat=linux-armv7l; tag=linux_armv7l; triplet=arm-linux-gnueabihf; elf=ARM
             toolchain=cmake/toolchains/armv7-linux-gnueabihf.cmake ;;
    *) die "unknown architecture '$arch' (aarch64 or armv7)" ;;
  esac
  command -v "$triplet-gcc" >/dev/null ||
    die "$triplet-gcc not found: apt-get install gcc-$triplet"
  t0=$(date +%s)
  out=$(mktemp -d)
  # A build directory per architecture: a host build (or the other board's) in
  # the default one would be reused by CMake with the wrong compiler.
  if ! _PYTHON_HOST_PLATFORM=$plat "$PYTHON" -m pip wheel "$REPO" --no-deps "${isolation[@]}" -q -w "$out" \
       --config-settings=cmake.args="-DCMAKE_TOOLCHAIN_FILE=$REPO/$toolchain" \
       --config-settings=build-dir="$REPO/build-wheel/$arch" >"$out/pip.log" 2>&1; then
    tail -30 "$out/pip.log" >&2
    die "pip wheel for $arch failed"
  fi
  whl=$(find "$out" -name "xnor_edge-*-py3-none-$tag.whl" -print -quit)
  [ -n "$whl" ] || die "no py3-none-$tag wheel was built (got: $(ls "$out"))"
  lib=$(mktemp -d)
  "$PYTHON" -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract('xnor_edge/libxnor_edge.so', sys.argv[2])" \
    "$whl" "$lib" || die "$whl holds no xnor_edge/libxnor_edge.so"
  machine=$("$triplet-readelf" -h "$lib/xnor_edge/libxnor_edge.so" | awk -F: '/Machine:/ { gsub(/^ +/, "", $2); print $2 }')
  case "$machine" in *"$elf"*) ;; *) die "the library in $whl is for '$machine', not $elf" ;; esac
  rm -rf "$lib"
  mv -f "$whl" "$DIST/"
  rm -rf "$out"
  echo "[pi-wheels] $DIST/$(basename "$whl") ($machine library, $(( $(date +%s) - t0 )) s)"
done
