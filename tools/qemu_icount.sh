#!/bin/sh
# Instructions per binary MAC of the ARM kernel tables, counted under qemu-user
# with /work/shared/tools/qemu-icount.c (timings under emulation mean nothing;
# instruction counts repeat exactly).
#
# For each target (a64: neon-a64, a32: neon-a32) and each ResNet-18 layer of
# bench_layers, runs the bench with N and 2N repetitions and divides the
# difference by N * MACs, so start-up and data set-up cancel out. Reports the
# whole layer pipeline and bgemm alone.
#
# usage: tools/qemu_icount.sh [a64|a32|both] [N]
#        tools/qemu_icount.sh peer BIN [N]
#        tools/qemu_icount.sh mst [a64|a32|both] [N]
# Builds (if needed) build-k-a64 / build-k-a32 and the plugin in build-k-icount.
# peer: counts another engine's kernel the same way, for a side-by-side
# figure: BIN is an aarch64 or armv7 program run as `BIN LAYER REPS` (one warm-up call,
# then REPS calls of its GEMM on ResNet-18 layer LAYER = 0..3, the shapes of
# bench_layers) that prints `layer=SHAPE ... macs=MACS` and exits 0 only if its
# results are right (docs/arm.md: the harness for LCE's aarch64 kernel).
# mst: an MST-coded 14x14x256 3x3 binary conv layer against the same layer
# uncompressed (runtime_c/bench/bench_mst.c), at mean distances D/K of
# $XE_MST_DK (default 0.02 0.05 0.1 0.38) with the differences bunched in
# words and scattered: instructions per layer (1 thread) and per popcount
# stage, MST over dense, and the popcount stage with the reference twin as the
# child kernel (what the set's own kernel saves). docs/mst.md section 10.
set -eu
cd "$(dirname "$0")/.."
which_targets=${1:-both}
N=${2:-2}
[ "$which_targets" = peer ] && N=${3:-2}
if [ "$which_targets" = mst ]; then
    mst_targets=${2:-both}
    N=${3:-2}
fi
PLUGIN_SRC=${XE_ICOUNT_PLUGIN_SRC:-/work/shared/tools/qemu-icount.c}
mkdir -p build-k-icount
if [ ! -f build-k-icount/libicount.so ] || [ "$PLUGIN_SRC" -nt build-k-icount/libicount.so ]; then
    gcc -O2 -shared -fPIC -o build-k-icount/libicount.so "$PLUGIN_SRC"
fi
PLUGIN=$(pwd)/build-k-icount/libicount.so

count() { # qemu sysroot isa layer reps extra...
    q=$1; root=$2; bin=$3; isa=$4; layer=$5; reps=$6; shift 6
    "$q" -L "$root" -plugin "$PLUGIN" -d plugin "$bin" --isa "$isa" --layer "$layer" --reps "$reps" "$@" 2>&1 \
        | sed -n 's/^insns: //p'
}

run_target() { # name toolchain qemu sysroot isa
    name=$1; tc=$2; q=$3; root=$4; isa=$5
    dir=build-k-$name
    if [ ! -f "$dir/CMakeCache.txt" ]; then
        cmake -S . -B "$dir" -DCMAKE_TOOLCHAIN_FILE="cmake/toolchains/$tc.cmake" >"$dir.log" 2>&1 \
            || { cat "$dir.log"; exit 1; }
    fi
    cmake --build "$dir" --target bench_layers -j2 >"$dir.log" 2>&1 || { cat "$dir.log"; exit 1; }
    rm -f "$dir.log"
    bin=$dir/runtime_c/bench/bench_layers
    for part in layer bgemm; do
        extra=""
        [ "$part" = bgemm ] && extra="--bgemm-only"
        for layer in 0 1 2 3; do
            shape=$("$q" -L "$root" "$bin" --isa "$isa" --layer "$layer" --reps 1 $extra \
                | sed -n 's/.* layer=\([^ ]*\) .* macs=\([0-9]*\) .*/\1 \2/p')
            set -- $shape
            i1=$(count "$q" "$root" "$bin" "$isa" "$layer" "$N" $extra)
            i2=$(count "$q" "$root" "$bin" "$isa" "$layer" $((2 * N)) $extra)
            awk -v isa="$isa" -v part="$part" -v shape="$1" -v macs="$2" -v n="$N" -v i1="$i1" -v i2="$i2" \
                'BEGIN { d = (i2 - i1) / n; printf "%-9s %-5s %-16s insns/rep=%12.0f  insns/binary-MAC=%.5f  binary-MACs/insn=%.1f\n", isa, part, shape, d, d / macs, macs / d }'
        done
    done
}

run_peer() { # bin (aarch64 or armv7 ELF: the emulator follows its e_machine)
    bin=$1
    case $(od -An -tx1 -j18 -N1 "$bin" | tr -d ' ') in
    b7) q=qemu-aarch64; root=/usr/aarch64-linux-gnu ;;
    28) q=qemu-arm; root=/usr/arm-linux-gnueabihf ;;
    *) echo "$bin: not an aarch64 or ARM executable"; exit 1 ;;
    esac
    for layer in 0 1 2 3; do
        shape=$("$q" -L "$root" "$bin" "$layer" 1 \
            | sed -n 's/.*layer=\([^ ]*\) .*macs=\([0-9]*\).*/\1 \2/p')
        [ -n "$shape" ] || { echo "$bin $layer 1 failed or printed no layer=/macs="; exit 1; }
        set -- $shape
        i1=$("$q" -L "$root" -plugin "$PLUGIN" -d plugin "$bin" "$layer" "$N" 2>&1 | sed -n 's/^insns: //p')
        i2=$("$q" -L "$root" -plugin "$PLUGIN" -d plugin "$bin" "$layer" $((2 * N)) 2>&1 | sed -n 's/^insns: //p')
        awk -v name="$(basename "$(dirname "$bin")")/$(basename "$bin")" -v shape="$1" -v macs="$2" -v n="$N" -v i1="$i1" -v i2="$i2" \
            'BEGIN { d = (i2 - i1) / n; printf "%-9s %-5s %-16s insns/rep=%12.0f  insns/binary-MAC=%.5f  binary-MACs/insn=%.1f\n", name, "peer", shape, d, d / macs, macs / d }'
    done
}

# Instructions of N repetitions of bench_mst's work: counts at 2N and N reps, differenced.
mst_count() { # qemu sysroot bin isa args...
    q=$1; root=$2; bin=$3; isa=$4; shift 4
    i1=$("$q" -L "$root" -plugin "$PLUGIN" -d plugin "$bin" --isa "$isa" --reps "$N" "$@" 2>&1 | sed -n 's/^insns: //p')
    i2=$("$q" -L "$root" -plugin "$PLUGIN" -d plugin "$bin" --isa "$isa" --reps $((2 * N)) "$@" 2>&1 | sed -n 's/^insns: //p')
    [ -n "$i1" ] && [ -n "$i2" ] || { echo "no count for $bin $isa $*" >&2; exit 1; }
    echo $(((i2 - i1) / N))
}

run_mst() { # name toolchain qemu sysroot isa
    name=$1; tc=$2; q=$3; root=$4; isa=$5
    dir=build-k-$name
    if [ ! -f "$dir/CMakeCache.txt" ]; then
        cmake -S . -B "$dir" -DCMAKE_TOOLCHAIN_FILE="cmake/toolchains/$tc.cmake" >"$dir.log" 2>&1 \
            || { cat "$dir.log"; exit 1; }
    fi
    cmake --build "$dir" --target bench_mst -j2 >"$dir.log" 2>&1 || { cat "$dir.log"; exit 1; }
    rm -f "$dir.log"
    bin=$dir/runtime_c/bench/bench_mst
    # the layer checks itself: MST output == dense output, else exit 1
    "$q" -L "$root" "$bin" --isa "$isa" --reps 1 >/dev/null || { echo "$bin: check failed"; exit 1; }
    printf '%-9s %-9s %-6s %5s %6s %13s %13s %7s %13s %13s %7s %13s %7s\n' isa pattern D/K D words \
        layer-mst layer-dense ratio pop-mst pop-dense ratio pop-refkid ratio
    dl=$(mst_count "$q" "$root" "$bin" "$isa" --mode dense --part layer)
    dp=$(mst_count "$q" "$root" "$bin" "$isa" --mode dense --part popcounts)
    for pattern in bunched scattered; do
        for dk in ${XE_MST_DK:-0.02 0.05 0.1 0.38}; do
            info=$("$q" -L "$root" "$bin" --isa "$isa" --reps 1 --part popcounts --dk "$dk" --pattern "$pattern")
            D=$(echo "$info" | sed -n 's/.* D=\([0-9]*\) .*/\1/p')
            words=$(echo "$info" | sed -n 's/.* words\/child=\([0-9.]*\) .*/\1/p')
            ml=$(mst_count "$q" "$root" "$bin" "$isa" --mode mst --part layer --dk "$dk" --pattern "$pattern")
            mp=$(mst_count "$q" "$root" "$bin" "$isa" --mode mst --part popcounts --dk "$dk" --pattern "$pattern")
            mr=$(mst_count "$q" "$root" "$bin" "$isa" --mode mst --part popcounts --dk "$dk" --pattern "$pattern" --ref-children)
            awk -v isa="$isa" -v pat="$pattern" -v dk="$dk" -v D="$D" -v w="$words" -v ml="$ml" -v dl="$dl" \
                -v mp="$mp" -v dp="$dp" -v mr="$mr" \
                'BEGIN { printf "%-9s %-9s %-6s %5d %6s %13d %13d %7.3f %13d %13d %7.3f %13d %7.3f\n", isa, pat, dk, D, w, ml, dl, ml / dl, mp, dp, mp / dp, mr, mr / dp }'
        done
    done
}

if [ "$which_targets" = mst ]; then
    case $mst_targets in
    a64 | both) run_mst a64 aarch64-linux-gnu qemu-aarch64 /usr/aarch64-linux-gnu neon-a64 ;;
    esac
    case $mst_targets in
    a32 | both) run_mst a32 armv7-linux-gnueabihf qemu-arm /usr/arm-linux-gnueabihf neon-a32 ;;
    esac
    exit 0
fi

if [ "$which_targets" = peer ]; then
    run_peer "${2:?usage: tools/qemu_icount.sh peer BIN [N]}"
    exit 0
fi
case $which_targets in
a64 | both) run_target a64 aarch64-linux-gnu qemu-aarch64 /usr/aarch64-linux-gnu neon-a64 ;;
esac
case $which_targets in
a32 | both) run_target a32 armv7-linux-gnueabihf qemu-arm /usr/arm-linux-gnueabihf neon-a32 ;;
esac
