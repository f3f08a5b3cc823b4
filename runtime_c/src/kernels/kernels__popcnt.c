/*
 * kernels__popcnt.c - x86-64 scalar kernels using the POPCNT instruction
 * (compiled with -mpopcnt).
 *
 * Binary GEMM maths: with bit 1 = -1 and bit 0 = +1 (docs/bitpacking.md), the
 * product of two signs is -1 exactly where the bits differ, so for n real
 * +-1 pairs dot = (n - d) - d = n - 2*d with d = popcount(a XOR b). The
 * kernels return d; the caller applies n - 2*d and the float epilogue.
 * Channel padding bits are 0 in both operands, so XOR keeps them 0 and they
 * never count. d <= 32*k fits int32 for k < 2^26 words (the loader bounds
 * windows below 2^31 bits).
 *
 * Tiling: a 4x4 block of outputs keeps 16 running sums in registers; each
 * 64-bit step loads 4 A words and 4 B words and does 16 XOR+POPCNT+ADD, so
 * loads are amortised 2:1 and the loop is bound by the integer ALUs (Zen 3
 * issues 4 POPCNT per cycle). Two adjacent 32-bit words are read as one
 * little-endian 64-bit word (memcpy, no alignment assumed): the popcount of
 * the pair is the sum of the two popcounts, so the result is unchanged.
 * Packed panels (nr = 4, kr = 2) hold the 2-word steps of the 4 columns
 * side by side; an odd last A word meets the panel's zero padding word.
 */
#include <string.h>

#include "kernels.h"

#define XE_INLINE static inline __attribute__((always_inline))

XE_INLINE uint64_t load64(const uint32_t *p) {
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* MR rows (a compile-time constant at each call, so acc[][] stays in
 * registers) against one packed panel; stores nc <= 4 columns. */
XE_INLINE void bgemm_tile_popcnt(int mr, size_t nc, size_t kw, const uint32_t *a, size_t lda,
                                 const uint32_t *w, int32_t *c, size_t ldc) {
    uint64_t acc[4][4] = {{0}};
    size_t t = 0;
    for (; t + 2 <= kw; t += 2, w += 8) {
        uint64_t av[4], bv[4];
        for (int r = 0; r < mr; r++) av[r] = load64(a + r * lda + t);
        for (int s = 0; s < 4; s++) bv[s] = load64(w + 2 * s);
        for (int r = 0; r < mr; r++)
            for (int s = 0; s < 4; s++) acc[r][s] += (uint64_t)__builtin_popcountll(av[r] ^ bv[s]);
    }
    if (t < kw) {
        for (int r = 0; r < mr; r++)
            for (int s = 0; s < 4; s++)
                acc[r][s] += (uint64_t)__builtin_popcount(a[r * lda + t] ^ w[2 * s]);
    }
    for (int r = 0; r < mr; r++) {
        if (nc == 4) { /* the full panel: constant bounds, unrolled stores */
            for (int s = 0; s < 4; s++) c[r * ldc + s] = (int32_t)acc[r][s];
        } else {
            for (size_t s = 0; s < nc; s++) c[r * ldc + s] = (int32_t)acc[r][s];
        }
    }
}

/* Consecutive panels of 4 columns, (kw rounded up to 2) * 4 words each. */
XE_INLINE void bgemm_panels_popcnt(int mr, size_t nc, size_t kw, const uint32_t *a, size_t lda,
                                   const uint32_t *w, int32_t *c, size_t ldc) {
    for (; nc > 4; nc -= 4, w += (kw + 1) / 2 * 8, c += 4)
        bgemm_tile_popcnt(mr, 4, kw, a, lda, w, c, ldc);
    bgemm_tile_popcnt(mr, nc, kw, a, lda, w, c, ldc);
}

static void bgemm_4x4_popcnt(size_t nc, size_t kw, const uint32_t *a, size_t lda, const uint32_t *w,
                             int32_t *c, size_t ldc) {
    bgemm_panels_popcnt(4, nc, kw, a, lda, w, c, ldc);
}

static void bgemm_1x4_popcnt(size_t nc, size_t kw, const uint32_t *a, size_t lda, const uint32_t *w,
                             int32_t *c, size_t ldc) {
    bgemm_panels_popcnt(1, nc, kw, a, lda, w, c, ldc);
}

/* Branch-free sign pack: (x < 0) is 0 or 1 and 0 for NaN and -0.0, as the contract says. */
static void pack_popcnt(size_t rows, size_t channels, const float *x, size_t ldx, uint32_t *out,
                        size_t ldo) {
    size_t full = channels / 32, rem = channels % 32;
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * ldx;
        uint32_t *o = out + r * ldo;
        for (size_t w = 0; w < full; w++) {
            uint32_t word = 0;
            for (unsigned bit = 0; bit < 32; bit++)
                word |= (uint32_t)(xr[w * 32 + bit] < 0.0f) << bit;
            o[w] = word;
        }
        if (rem) {
            uint32_t word = 0;
            for (unsigned bit = 0; bit < rem; bit++)
                word |= (uint32_t)(xr[full * 32 + bit] < 0.0f) << bit;
            o[full] = word;
        }
    }
}

const xe_kernels xe_kernels_popcnt = {
    "popcnt",
    {4, 4, 2, {bgemm_1x4_popcnt, NULL, NULL, bgemm_4x4_popcnt}, xe_bgemm_pack_panel, {NULL}},
    {1, 8, 1, {xe_sgemm_1x8_fmaf}, xe_sgemm_pack_panel, {NULL}}, /* no FMA: libm fmaf */
    pack_popcnt,
    NULL, /* pack_abs: the reference's */
    NULL, /* epilogue: the reference's */
    NULL, /* mst_children: the reference twin */
    NULL, /* mst_chunk: xe_bgemm on the roots, then mst_children */
};
