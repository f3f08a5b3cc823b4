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
 */
#include <math.h>
#include <string.h>

#include "kernels.h"

#define XE_INLINE static inline __attribute__((always_inline))

XE_INLINE uint64_t load64(const uint32_t *p) {
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* One MR x NR output tile (MR, NR <= 4 and compile-time constants at each call
 * site, so the compiler keeps acc[][] in registers). */
XE_INLINE void bgemm_tile_popcnt(int mr, int nr, size_t k, const uint32_t *a, size_t lda,
                                 const uint32_t *b, size_t ldb, int32_t *c, size_t ldc) {
    uint64_t acc[4][4] = {{0}};
    size_t t = 0;
    for (; t + 2 <= k; t += 2) {
        uint64_t av[4], bv[4];
        for (int r = 0; r < mr; r++) av[r] = load64(a + r * lda + t);
        for (int s = 0; s < nr; s++) bv[s] = load64(b + s * ldb + t);
        for (int r = 0; r < mr; r++)
            for (int s = 0; s < nr; s++) acc[r][s] += (uint64_t)__builtin_popcountll(av[r] ^ bv[s]);
    }
    if (t < k) {
        for (int r = 0; r < mr; r++)
            for (int s = 0; s < nr; s++)
                acc[r][s] += (uint64_t)__builtin_popcount(a[r * lda + t] ^ b[s * ldb + t]);
    }
    for (int r = 0; r < mr; r++)
        for (int s = 0; s < nr; s++) c[r * ldc + s] = (int32_t)acc[r][s];
}

static void bgemm_popcnt(size_t m, size_t n, size_t k, const uint32_t *a, size_t lda,
                         const uint32_t *b, size_t ldb, int32_t *c, size_t ldc) {
    size_t i = 0;
    for (; i + 4 <= m; i += 4) {
        size_t j = 0;
        for (; j + 4 <= n; j += 4)
            bgemm_tile_popcnt(4, 4, k, a + i * lda, lda, b + j * ldb, ldb, c + i * ldc + j, ldc);
        for (; j < n; j++)
            bgemm_tile_popcnt(4, 1, k, a + i * lda, lda, b + j * ldb, ldb, c + i * ldc + j, ldc);
    }
    for (; i < m; i++) {
        size_t j = 0;
        for (; j + 4 <= n; j += 4)
            bgemm_tile_popcnt(1, 4, k, a + i * lda, lda, b + j * ldb, ldb, c + i * ldc + j, ldc);
        for (; j < n; j++)
            bgemm_tile_popcnt(1, 1, k, a + i * lda, lda, b + j * ldb, ldb, c + i * ldc + j, ldc);
    }
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

/* Float GEMM. The x86-64 baseline has no FMA instruction, so each term uses
 * libm fmaf (correctly rounded, as the contract requires). The row of C is
 * the accumulator and t runs outermost, which streams B rows contiguously
 * while keeping every element's sum in ascending t order. */
static void sgemm_popcnt(size_t m, size_t n, size_t k, const float *a, size_t lda, const float *b,
                         size_t ldb, float *c, size_t ldc) {
    for (size_t i = 0; i < m; i++) {
        float *ci = c + i * ldc;
        for (size_t j = 0; j < n; j++) ci[j] = 0.0f;
        for (size_t t = 0; t < k; t++) {
            const float ait = a[i * lda + t];
            const float *bt = b + t * ldb;
            for (size_t j = 0; j < n; j++) ci[j] = fmaf(ait, bt[j], ci[j]);
        }
    }
}

const xe_kernels xe_kernels_popcnt = {"popcnt", bgemm_popcnt, pack_popcnt, sgemm_popcnt};
