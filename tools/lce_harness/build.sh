#!/bin/sh
# Builds a harness around larq compute-engine's (LCE) aarch64 8x4 binary GEMM
# micro-kernel, outside this tree, to count and model it side by side with
# ours (docs/arm.md, "Measuring the ARM kernels"). Nothing of LCE is copied
# into this repository: the kernel header is read from an LCE checkout, and
# the few LCE/ruy headers it includes are replaced by the stand-ins written
# below (struct layouts only; the kernel static_asserts their offsets).
#
# usage: tools/lce_harness/build.sh LCE_CHECKOUT OUT_DIR [a64|a32]
#   a64 (default): LCE's aarch64 BinaryKernelNeon8x4; a32: its armv7
#   BinaryKernelNeon4x4 (kernels_arm32.h), Thumb-2 like Debian armhf.
#   -> OUT_DIR/harness (`harness LAYER REPS`, for tools/qemu_icount.sh peer)
#      OUT_DIR/lce_kernel.o (for tools/neon_mca.py OUT_DIR/lce_kernel.o lce_bgemm_float [--arch a32])
# Needs clang (the kernel is C++ with inline asm; no ARM libstdc++ is
# needed: a four-header std stand-in is enough) and the cross gcc.
set -eu
lce=$(cd "$1" && pwd)
out=$2
arch=${3:-a64}
here=$(cd "$(dirname "$0")" && pwd)
case $arch in
a64) hdr="$lce/larq_compute_engine/core/bgemm/kernels_aarch64.h"; neon_def="#define RUY_PLATFORM_NEON_64 1"
     target="--target=aarch64-linux-gnu"; sysinc=/usr/aarch64-linux-gnu/include; cc=aarch64-linux-gnu-gcc ;;
a32) hdr="$lce/larq_compute_engine/core/bgemm/kernels_arm32.h"
     neon_def="#define RUY_PLATFORM_NEON 1
#define RUY_PLATFORM_NEON_32 1"
     target="--target=armv7a-linux-gnueabihf -mthumb -mfpu=neon -mfloat-abi=hard"
     sysinc=/usr/arm-linux-gnueabihf/include; cc=arm-linux-gnueabihf-gcc ;;
*) echo "arch must be a64 or a32"; exit 1 ;;
esac
[ -f "$hdr" ] || { echo "no $hdr (pass the root of an LCE checkout)"; exit 1; }
mkdir -p "$out/inc/larq_compute_engine/core/bgemm" "$out/inc/ruy/profiler" "$out/std"
cp "$hdr" "$out/inc/larq_compute_engine/core/bgemm/"
cat >"$out/inc/ruy/profiler/instrumentation.h" <<H
#pragma once
namespace ruy { namespace profiler { struct ScopeLabel { explicit ScopeLabel(const char *) {} }; } }
$neon_def
#define RUY_OPT(x) 1
#define RUY_STR_UNEXPANDED(s) #s
#define RUY_STR(s) RUY_STR_UNEXPANDED(s)
H
cat >"$out/inc/larq_compute_engine/core/types.h" <<'H'
#pragma once
#include <cstdint>
using TBitpacked = std::int32_t;
H
cat >"$out/inc/larq_compute_engine/core/bgemm/kernels_common.h" <<'H'
#pragma once
#include <cstddef>
#include <cstdint>
#include <limits>
#include <type_traits>
#include "larq_compute_engine/core/types.h"
#include "ruy/profiler/instrumentation.h"
namespace ruy {}
template <typename T> struct OutputTransform {
  std::int32_t clamp_min = std::numeric_limits<std::int32_t>::lowest();
  std::int32_t clamp_max = std::numeric_limits<std::int32_t>::max();
  const float *multiplier = nullptr;
  const float *bias = nullptr;
};
template <> struct OutputTransform<TBitpacked> { const std::int32_t *thresholds = nullptr; };
template <typename DstScalar, int LhsCols, int RhsCols> struct BinaryKernelParams {
  const TBitpacked *lhs_base_ptr;
  const TBitpacked *rhs_base_ptr;
  DstScalar *dst_base_ptr;
  std::int32_t start_row, start_col, last_row, last_col, dst_rows, dst_cols;
  std::int32_t lhs_stride, rhs_stride, dst_stride, depth;
  OutputTransform<DstScalar> output_transform;
  DstScalar dst_tmp_buf[LhsCols * RhsCols];
};
H
cat >"$out/std/cstdint" <<'H'
#pragma once
#include <stdint.h>
namespace std { using ::int8_t; using ::int16_t; using ::int32_t; using ::int64_t; using ::uint8_t; using ::uint32_t; }
H
cat >"$out/std/cstddef" <<'H'
#pragma once
#include <stddef.h>
namespace std { using ::size_t; }
H
cat >"$out/std/limits" <<'H'
#pragma once
#include <stdint.h>
namespace std { template <typename T> struct numeric_limits;
template <> struct numeric_limits<int32_t> { static constexpr int32_t lowest() { return INT32_MIN; } static constexpr int32_t max() { return INT32_MAX; } }; }
H
cat >"$out/std/type_traits" <<'H'
#pragma once
namespace std { template <typename A, typename B> struct is_same { static constexpr bool value = false; };
template <typename A> struct is_same<A, A> { static constexpr bool value = true; }; }
H
# shellcheck disable=SC2086
clang++ $target -O3 -std=c++17 -nostdinc++ -isystem "$out/std" \
    -isystem "$sysinc" -fno-exceptions -fno-rtti -I"$out/inc" \
    -c "$here/lce_kernel.cc" -o "$out/lce_kernel.o"
"$cc" -O2 -o "$out/harness" "$here/harness.c" "$out/lce_kernel.o"
echo "built $out/harness and $out/lce_kernel.o from $(cd "$lce" && git rev-parse --short HEAD 2>/dev/null || echo "$lce")"
