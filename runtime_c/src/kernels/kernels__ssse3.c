/*
 * kernels__ssse3.c - x86 SSSE3 kernels, 128-bit registers (compiled with -mssse3),
 * for CPUs without AVX2: Core 2, Atom/Celeron/Pentium-class boards, and the
 * Nehalem to Ivy Bridge generations.
 *
 * Binary GEMM maths: with bit 1 = -1 and bit 0 = +1, the product of two signs
 * is -1 exactly where the bits differ, so for n real +-1 pairs
 * dot = n - 2*popcount(a XOR b). The kernel returns d = popcount(a XOR b)
 * summed over the k words; channel padding bits are 0 in both operands and
 * never count.
 *
 * Popcount of 128 bits (nibble table, Mula's method, as in kernels__avx2.c at
 * half the width): split each byte into two nibbles, look both up in a
 * 16-entry table with PSHUFB and add, giving byte counts of at most 8 per
 * byte per step.
 *
 * Layout and tiling: B is packed once into panels of XE_NB = 8 columns
 * (kr = 1), panel[t][col], so one 128-bit load holds word t of 4 output
 * channels. Word t of an A row is broadcast (MOVD + PSHUFD) and XORed against
 * it: each 32-bit lane is one output, k advances one word at a time (no k
 * tail, no horizontal sums). Byte accumulators: each step adds at most 8 to a
 * byte, so 31 steps reach at most 248 <= 255 and the 32nd could wrap (32 * 8 =
 * 256); every XE_SSSE3_BLOCK = 31 words PMADDUBSW + PMADDWD fold the 4 bytes of
 * each lane into its 32-bit sum (test_kernels.c checks 31, 248 and 249 words
 * with every bit differing). Tile: XE_MR = 4 rows x 8 columns = 8 byte
 * accumulators, 2 B vectors, the table and the nibble mask in the 16 XMM
 * registers; the 32-bit sums are touched once per block. About 8 vector ops
 * per 128 pair-bits. Tiles measured on this project's x86 machine (AMD EPYC,
 * CPUID family 23, one thread; docs/kernels.md): 4x8 and 6x8 within noise,
 * 2x8 about 5% slower, 2x16 and 3x16 about 15% slower.
 *
 * POPCNT is not used, so the set needs SSSE3 only: Core 2 and the pre-2013
 * Atoms have SSSE3 but no POPCNT, and would otherwise fall back to ref.
 *
 * Float GEMM: SSE has no fused multiply-add, and the contract is one
 * correctly rounded fused multiply-add per term (a MULPS + ADDPS pair rounds
 * twice and would differ from the reference in the last bit), so each term
 * uses libm fmaf: the shared xe_sgemm_1x8_fmaf (gemm_driver.c), one row against 8 columns, t
 * outermost, every output summed from 0.0f in ascending t.
 *
 * Sign pack: CMPLTPS + MOVMSKPS, 4 channels per compare.
 */
#if !defined(__SSSE3__)
#error "kernels__ssse3.c needs -mssse3 (runtime_c/CMakeLists.txt sets it for this file)"
#endif

#include <tmmintrin.h>

#include "kernels.h"

#define XE_INLINE static inline __attribute__((always_inline))
#define XE_SSSE3_BLOCK 31

/* Panel width (nr, a multiple of 4) and row tile (mr). */
#define XE_NB 8
#define XE_MR 4 /* 4x8 and 6x8 measured within noise; 2x8, 2x16 and 3x16 slower */
#define XE_NV (XE_NB / 4)

XE_INLINE __m128i popcnt_bytes(__m128i x, __m128i tbl, __m128i low4) {
    __m128i lo = _mm_and_si128(x, low4);
    __m128i hi = _mm_and_si128(_mm_srli_epi16(x, 4), low4);
    return _mm_add_epi8(_mm_shuffle_epi8(tbl, lo), _mm_shuffle_epi8(tbl, hi));
}

XE_INLINE __m128i fold_bytes(__m128i acc8) {
    /* Sum the 4 byte counts of each 32-bit lane (each < 256). */
    return _mm_madd_epi16(_mm_maddubs_epi16(acc8, _mm_set1_epi8(1)), _mm_set1_epi16(1));
}

XE_INLINE void bgemm_tile_ssse3(int mr, size_t ncols, size_t kc, const uint32_t *a, size_t lda,
                                const uint32_t *panel, int32_t *c, size_t ldc) {
    const __m128i tbl = _mm_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m128i low4 = _mm_set1_epi8(0x0f);
    __m128i acc32[XE_MR][XE_NV];
    size_t t = 0;
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < XE_NV; v++) acc32[r][v] = _mm_setzero_si128();
    while (t < kc) {
        size_t end = kc - t > XE_SSSE3_BLOCK ? t + XE_SSSE3_BLOCK : kc;
        __m128i acc8[XE_MR][XE_NV];
        for (int r = 0; r < mr; r++)
            for (int v = 0; v < XE_NV; v++) acc8[r][v] = _mm_setzero_si128();
        for (; t < end; t++) {
            __m128i bv[XE_NV];
            for (int v = 0; v < XE_NV; v++)
                bv[v] = _mm_loadu_si128((const __m128i *)(panel + t * XE_NB + 4 * v));
            for (int r = 0; r < mr; r++) {
                const __m128i av = _mm_set1_epi32((int)a[r * lda + t]);
                for (int v = 0; v < XE_NV; v++)
                    acc8[r][v] =
                        _mm_add_epi8(acc8[r][v], popcnt_bytes(_mm_xor_si128(av, bv[v]), tbl, low4));
            }
        }
        for (int r = 0; r < mr; r++)
            for (int v = 0; v < XE_NV; v++)
                acc32[r][v] = _mm_add_epi32(acc32[r][v], fold_bytes(acc8[r][v]));
    }
    for (int r = 0; r < mr; r++) {
        int32_t *cr = c + r * ldc;
        if (ncols == XE_NB) {
            for (int v = 0; v < XE_NV; v++) _mm_storeu_si128((__m128i *)(cr + 4 * v), acc32[r][v]);
        } else {
            int32_t tmp[XE_NB];
            for (int v = 0; v < XE_NV; v++) _mm_storeu_si128((__m128i *)(tmp + 4 * v), acc32[r][v]);
            for (size_t s = 0; s < ncols; s++) cr[s] = tmp[s];
        }
    }
}

/* Consecutive panels of XE_NB columns, kw * XE_NB words each. */
XE_INLINE void bgemm_panels_ssse3(int mr, size_t nc, size_t kw, const uint32_t *a, size_t lda,
                                  const uint32_t *w, int32_t *c, size_t ldc) {
    for (; nc > XE_NB; nc -= XE_NB, w += kw * XE_NB, c += XE_NB)
        bgemm_tile_ssse3(mr, XE_NB, kw, a, lda, w, c, ldc);
    bgemm_tile_ssse3(mr, nc, kw, a, lda, w, c, ldc);
}

static void bgemm_mr_ssse3(size_t nc, size_t kw, const uint32_t *a, size_t lda, const uint32_t *w,
                           int32_t *c, size_t ldc) {
    bgemm_panels_ssse3(XE_MR, nc, kw, a, lda, w, c, ldc);
}

static void bgemm_1_ssse3(size_t nc, size_t kw, const uint32_t *a, size_t lda, const uint32_t *w,
                          int32_t *c, size_t ldc) {
    bgemm_panels_ssse3(1, nc, kw, a, lda, w, c, ldc);
}

/* Sign pack: CMPLTPS is false for NaN and for -0.0 < 0, exactly the
 * contract's x < 0; MOVMSKPS gathers 4 lane results into 4 bits. */
static void pack_ssse3(size_t rows, size_t channels, const float *x, size_t ldx, uint32_t *out,
                       size_t ldo) {
    const __m128 zero = _mm_setzero_ps();
    size_t full = channels / 32, rem = channels % 32;
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * ldx;
        uint32_t *o = out + r * ldo;
        for (size_t w = 0; w < full; w++) {
            const float *p = xr + w * 32;
            uint32_t word = 0;
            for (unsigned q = 0; q < 8; q++)
                word |= (uint32_t)_mm_movemask_ps(_mm_cmplt_ps(_mm_loadu_ps(p + 4 * q), zero))
                        << (4 * q);
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

const xe_kernels xe_kernels_ssse3 = {
    "ssse3",
    {XE_MR,
     XE_NB,
     1,
     {[0] = bgemm_1_ssse3, [XE_MR - 1] = bgemm_mr_ssse3},
     xe_bgemm_pack_panel,
     {NULL}},
    {1, 8, 1, {xe_sgemm_1x8_fmaf}, xe_sgemm_pack_panel, {NULL}}, /* no FMA: libm fmaf */
    pack_ssse3,
    NULL, /* pack_abs: the reference's */
    NULL, /* epilogue: the reference's */
    NULL, /* mst_children: the reference twin */
    NULL, /* mst_chunk: xe_bgemm on the roots, then mst_children */
};
