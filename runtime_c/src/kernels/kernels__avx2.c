/*
 * kernels__avx2.c - x86-64 AVX2 + FMA kernels (compiled with -mavx2 -mfma -mpopcnt).
 *
 * Binary GEMM maths: with bit 1 = -1 and bit 0 = +1, the product of two signs
 * is -1 exactly where the bits differ, so for n real +-1 pairs
 * dot = n - 2*popcount(a XOR b). The kernel returns d = popcount(a XOR b)
 * summed over the k words; channel padding bits are 0 in both operands and
 * never count.
 *
 * Popcount of 256 bits (nibble table, Mula's method): split each byte into
 * two nibbles, look both up in a 16-entry table with VPSHUFB and add, giving
 * byte counts of at most 8 per byte per step.
 *
 * Layout and tiling: B (n rows of k words) is packed once into panels of 16
 * columns (nr = 16, kr = 1), panel[t][col], so one 256-bit load holds word t
 * of 8 output channels. Word t of an A row is broadcast and XORed
 * against it: each 32-bit lane is one output, k advances one word at a time
 * (no k tail, no horizontal sums). The byte counts would overflow after
 * 255/8 = 31 words, so every XE_AVX2_BLOCK words VPMADDUBSW + VPMADDWD fold
 * the 4 bytes of each lane into its 32-bit sum. Tile: XE_MR rows x 16 columns
 * = 2*XE_MR byte accumulators. About 8 vector ops per 256 pair-bits. Before
 * packed weights, every call transposed B into a 16 KiB stack panel (2-6% of
 * the kernel time at the executor's 32-row chunks).
 *
 * Measured on Zen 3 (docs/kernels.md), bgemm alone for the ResNet-18 layers:
 * this kernel 0.32-0.35 ms; scalar 64-bit POPCNT 4x4 tile (the popcnt table)
 * 0.64-0.71 ms; the same nibble method vectorised along k with a 2x4 tile and
 * horizontal sums 0.50-1.09 ms (poor at k = 18); Harley-Seal carry-save adders
 * over 4 words on this layout 0.31-0.47 ms (5-10% faster at k >= 72, 35%
 * slower at k = 18); byte-sliced panels with per-nibble XOR-popcount tables
 * (no XOR or nibble split per pair, 4 ops per 256 pair-bits) 0.34-0.40 ms
 * (bound by table broadcasts and byte extraction). So this one stays.
 *
 * Float GEMM: vectorised across output columns, each lane one output whose sum
 * runs t = 0..k-1 with one VFMADD per term, the same sequence of correctly
 * rounded fused multiply-adds as the reference's fmaf loop: bit-identical.
 * A 6x16 register tile (12 accumulators) amortises the B loads and A broadcasts;
 * a column tail (nc < 16) masks the last vector's loads and stores.
 */
#include <immintrin.h>

#include "kernels.h"

#define XE_INLINE static inline __attribute__((always_inline))
#define XE_AVX2_BLOCK 31

/* The binary-convolution passes of this set, defined after its table (end of file). */
static void pack_abs_avx2(size_t rows, size_t channels, const float *x, size_t ldx, const float *s,
                          const float *b, uint32_t *out, size_t ldo, float inv, float *amean);
static void epilogue_avx2(size_t n, const int32_t *pc, int32_t nreal, const float *scale,
                          const float *bias, const float *k, int relu, const xe_post_op *ops,
                          size_t nops, float *y);

XE_INLINE __m256i tail_mask(size_t words) {
    /* Lane i is enabled when i < words (words in 1..7). */
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)words), idx);
}

XE_INLINE __m256i popcnt_bytes(__m256i x, __m256i tbl, __m256i low4) {
    __m256i lo = _mm256_and_si256(x, low4);
    __m256i hi = _mm256_and_si256(_mm256_srli_epi16(x, 4), low4);
    return _mm256_add_epi8(_mm256_shuffle_epi8(tbl, lo), _mm256_shuffle_epi8(tbl, hi));
}

/* Panel width (nr) and row tile (mr). */
#define XE_NB 16
#define XE_MR 4 /* 2, 3, 4 and 6 rows measured within noise of each other */

XE_INLINE __m256i fold_bytes(__m256i acc8) {
    /* Sum the 4 byte counts of each 32-bit lane (each < 256). */
    return _mm256_madd_epi16(_mm256_maddubs_epi16(acc8, _mm256_set1_epi8(1)), _mm256_set1_epi16(1));
}

/* mr rows x one 16-column panel, kc words in segments of seglen words
 * segstride apart in each A row (the plain GEMM: seglen = kc). */
XE_INLINE void bgemm_tile_avx2(int mr, size_t ncols, size_t kc, size_t seglen, size_t segstride,
                               const uint32_t *a, size_t lda, const uint32_t *panel, int32_t *c,
                               size_t ldc) {
    const __m256i tbl = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2,
                                         1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    __m256i acc32[XE_MR][2];
    size_t t = 0, u = 0; /* u: word t's index within its segment, at a + t's offset */
    for (int r = 0; r < mr; r++) acc32[r][0] = acc32[r][1] = _mm256_setzero_si256();
    while (t < kc) {
        size_t end = kc - t > XE_AVX2_BLOCK ? t + XE_AVX2_BLOCK : kc;
        __m256i acc8[XE_MR][2];
        for (int r = 0; r < mr; r++) acc8[r][0] = acc8[r][1] = _mm256_setzero_si256();
        for (; t < end; t++, u++) {
            if (u == seglen) a += (ptrdiff_t)segstride - (ptrdiff_t)seglen, u = 0;
            const __m256i b0 = _mm256_loadu_si256((const __m256i *)(panel + t * XE_NB));
            const __m256i b1 = _mm256_loadu_si256((const __m256i *)(panel + t * XE_NB + 8));
            for (int r = 0; r < mr; r++) {
                const __m256i av = _mm256_set1_epi32((int)a[r * lda + t]);
                acc8[r][0] =
                    _mm256_add_epi8(acc8[r][0], popcnt_bytes(_mm256_xor_si256(av, b0), tbl, low4));
                acc8[r][1] =
                    _mm256_add_epi8(acc8[r][1], popcnt_bytes(_mm256_xor_si256(av, b1), tbl, low4));
            }
        }
        for (int r = 0; r < mr; r++) {
            acc32[r][0] = _mm256_add_epi32(acc32[r][0], fold_bytes(acc8[r][0]));
            acc32[r][1] = _mm256_add_epi32(acc32[r][1], fold_bytes(acc8[r][1]));
        }
    }
    for (int r = 0; r < mr; r++) {
        int32_t *cr = c + r * ldc;
        if (ncols == XE_NB) {
            _mm256_storeu_si256((__m256i *)cr, acc32[r][0]);
            _mm256_storeu_si256((__m256i *)(cr + 8), acc32[r][1]);
        } else {
            int32_t tmp[XE_NB];
            _mm256_storeu_si256((__m256i *)tmp, acc32[r][0]);
            _mm256_storeu_si256((__m256i *)(tmp + 8), acc32[r][1]);
            for (size_t s = 0; s < ncols; s++) cr[s] = tmp[s];
        }
    }
}

/* Consecutive panels of 16 columns, kw * 16 words each. */
XE_INLINE void bgemm_panels_avx2(int mr, size_t nc, size_t kw, size_t seglen, size_t segstride,
                                 const uint32_t *a, size_t lda, const uint32_t *w, int32_t *c,
                                 size_t ldc) {
    for (; nc > XE_NB; nc -= XE_NB, w += kw * XE_NB, c += XE_NB)
        bgemm_tile_avx2(mr, XE_NB, kw, seglen, segstride, a, lda, w, c, ldc);
    bgemm_tile_avx2(mr, nc, kw, seglen, segstride, a, lda, w, c, ldc);
}

static void bgemm_4x16_avx2(size_t nc, size_t kw, const uint32_t *a, size_t lda, const uint32_t *w,
                            int32_t *c, size_t ldc) {
    bgemm_panels_avx2(XE_MR, nc, kw, kw, 0, a, lda, w, c, ldc);
}

static void bgemm_1x16_avx2(size_t nc, size_t kw, const uint32_t *a, size_t lda, const uint32_t *w,
                            int32_t *c, size_t ldc) {
    bgemm_panels_avx2(1, nc, kw, kw, 0, a, lda, w, c, ldc);
}

static void bgemm_seg_4x16_avx2(size_t nc, size_t segs, size_t seglen, size_t segstride,
                                const uint32_t *a, size_t lda, const uint32_t *w, int32_t *c,
                                size_t ldc) {
    bgemm_panels_avx2(XE_MR, nc, segs * seglen, seglen, segstride, a, lda, w, c, ldc);
}

static void bgemm_seg_1x16_avx2(size_t nc, size_t segs, size_t seglen, size_t segstride,
                                const uint32_t *a, size_t lda, const uint32_t *w, int32_t *c,
                                size_t ldc) {
    bgemm_panels_avx2(1, nc, segs * seglen, seglen, segstride, a, lda, w, c, ldc);
}

/* panel[t][s] = b[s*ldb + t] for s < ncols, 0 for ncols <= s < 16, t < kc
 * (the layout of kernels.h for nr = 16, kr = 1). Full 8x8 blocks go through
 * an AVX2 transpose (the unpacked entry point packs on every call, where a
 * scalar transpose cost 12% of the kernel time); the edges are copied word by
 * word. */
static void pack_panel_avx2(size_t nr, size_t kr, size_t ncols, size_t kc, const uint32_t *b,
                            size_t ldb, uint32_t *panel) {
    (void)nr, (void)kr; /* 16 and 1, this set's geometry */
    size_t t8 = kc & ~(size_t)7;
    for (size_t s0 = 0; s0 < XE_NB; s0 += 8) {
        if (s0 + 8 <= ncols) {
            for (size_t t = 0; t < t8; t += 8) {
                const uint32_t *src = b + s0 * ldb + t;
                __m256i r0 = _mm256_loadu_si256((const __m256i *)(src + 0 * ldb));
                __m256i r1 = _mm256_loadu_si256((const __m256i *)(src + 1 * ldb));
                __m256i r2 = _mm256_loadu_si256((const __m256i *)(src + 2 * ldb));
                __m256i r3 = _mm256_loadu_si256((const __m256i *)(src + 3 * ldb));
                __m256i r4 = _mm256_loadu_si256((const __m256i *)(src + 4 * ldb));
                __m256i r5 = _mm256_loadu_si256((const __m256i *)(src + 5 * ldb));
                __m256i r6 = _mm256_loadu_si256((const __m256i *)(src + 6 * ldb));
                __m256i r7 = _mm256_loadu_si256((const __m256i *)(src + 7 * ldb));
                __m256i t0 = _mm256_unpacklo_epi32(r0, r1), t1 = _mm256_unpackhi_epi32(r0, r1);
                __m256i t2 = _mm256_unpacklo_epi32(r2, r3), t3 = _mm256_unpackhi_epi32(r2, r3);
                __m256i t4 = _mm256_unpacklo_epi32(r4, r5), t5 = _mm256_unpackhi_epi32(r4, r5);
                __m256i t6 = _mm256_unpacklo_epi32(r6, r7), t7 = _mm256_unpackhi_epi32(r6, r7);
                __m256i u0 = _mm256_unpacklo_epi64(t0, t2), u1 = _mm256_unpackhi_epi64(t0, t2);
                __m256i u2 = _mm256_unpacklo_epi64(t1, t3), u3 = _mm256_unpackhi_epi64(t1, t3);
                __m256i u4 = _mm256_unpacklo_epi64(t4, t6), u5 = _mm256_unpackhi_epi64(t4, t6);
                __m256i u6 = _mm256_unpacklo_epi64(t5, t7), u7 = _mm256_unpackhi_epi64(t5, t7);
                uint32_t *dst = panel + t * XE_NB + s0;
                _mm256_storeu_si256((__m256i *)(dst + 0 * XE_NB),
                                    _mm256_permute2x128_si256(u0, u4, 0x20));
                _mm256_storeu_si256((__m256i *)(dst + 1 * XE_NB),
                                    _mm256_permute2x128_si256(u1, u5, 0x20));
                _mm256_storeu_si256((__m256i *)(dst + 2 * XE_NB),
                                    _mm256_permute2x128_si256(u2, u6, 0x20));
                _mm256_storeu_si256((__m256i *)(dst + 3 * XE_NB),
                                    _mm256_permute2x128_si256(u3, u7, 0x20));
                _mm256_storeu_si256((__m256i *)(dst + 4 * XE_NB),
                                    _mm256_permute2x128_si256(u0, u4, 0x31));
                _mm256_storeu_si256((__m256i *)(dst + 5 * XE_NB),
                                    _mm256_permute2x128_si256(u1, u5, 0x31));
                _mm256_storeu_si256((__m256i *)(dst + 6 * XE_NB),
                                    _mm256_permute2x128_si256(u2, u6, 0x31));
                _mm256_storeu_si256((__m256i *)(dst + 7 * XE_NB),
                                    _mm256_permute2x128_si256(u3, u7, 0x31));
            }
            for (size_t s = s0; s < s0 + 8; s++)
                for (size_t t = t8; t < kc; t++) panel[t * XE_NB + s] = b[s * ldb + t];
        } else {
            for (size_t s = s0; s < s0 + 8; s++)
                for (size_t t = 0; t < kc; t++)
                    panel[t * XE_NB + s] = s < ncols ? b[s * ldb + t] : 0;
        }
    }
}

/* Sign pack: VCMPPS with LT_OQ is false for NaN and for -0.0 < 0, exactly the
 * contract's x < 0; VMOVMSKPS gathers 8 lane results into 8 bits. */
static void pack_avx2(size_t rows, size_t channels, const float *x, size_t ldx, uint32_t *out,
                      size_t ldo) {
    const __m256 zero = _mm256_setzero_ps();
    size_t full = channels / 32, rem = channels % 32;
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * ldx;
        uint32_t *o = out + r * ldo;
        for (size_t w = 0; w < full; w++) {
            const float *p = xr + w * 32;
            uint32_t b0 =
                (uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(p), zero, _CMP_LT_OQ));
            uint32_t b1 = (uint32_t)_mm256_movemask_ps(
                _mm256_cmp_ps(_mm256_loadu_ps(p + 8), zero, _CMP_LT_OQ));
            uint32_t b2 = (uint32_t)_mm256_movemask_ps(
                _mm256_cmp_ps(_mm256_loadu_ps(p + 16), zero, _CMP_LT_OQ));
            uint32_t b3 = (uint32_t)_mm256_movemask_ps(
                _mm256_cmp_ps(_mm256_loadu_ps(p + 24), zero, _CMP_LT_OQ));
            o[w] = b0 | (b1 << 8) | (b2 << 16) | (b3 << 24);
        }
        if (rem) {
            uint32_t word = 0;
            for (unsigned bit = 0; bit < rem; bit++)
                word |= (uint32_t)(xr[full * 32 + bit] < 0.0f) << bit;
            o[full] = word;
        }
    }
}

/* One MR x (8*NV) tile of C, MR <= 6, NV <= 2; with masked, the last vector
 * covers only the columns enabled in cmask (loads and stores are masked). A's
 * terms come in segs segments of seglen, segstride apart (kernels.h; the plain
 * sgemm is one segment of k), and B's rows follow t. */
XE_INLINE void sgemm_tile_avx2(int mr, int nv, int masked, __m256i cmask, size_t segs,
                               size_t seglen, size_t segstride, const float *a, size_t lda,
                               const float *b, size_t ldb, float *c, size_t ldc) {
    __m256 acc[6][2];
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < nv; v++) acc[r][v] = _mm256_setzero_ps();
    for (size_t g = 0; g < segs; g++, a += segstride)
        for (size_t t = 0; t < seglen; t++, b += ldb) {
            __m256 bv[2];
            for (int v = 0; v < nv; v++)
                bv[v] = (masked && v == nv - 1) ? _mm256_maskload_ps(b + v * 8, cmask)
                                                : _mm256_loadu_ps(b + v * 8);
            for (int r = 0; r < mr; r++) {
                __m256 av = _mm256_broadcast_ss(a + r * lda + t);
                for (int v = 0; v < nv; v++) acc[r][v] = _mm256_fmadd_ps(av, bv[v], acc[r][v]);
            }
        }
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < nv; v++) {
            if (masked && v == nv - 1)
                _mm256_maskstore_ps(c + r * ldc + v * 8, cmask, acc[r][v]);
            else
                _mm256_storeu_ps(c + r * ldc + v * 8, acc[r][v]);
        }
}

/* MR rows against panels of 16 columns; the last (nc <= 16): two vectors,
 * one, or a masked rest. */
XE_INLINE void sgemm_cols_avx2(int mr, size_t nc, size_t segs, size_t seglen, size_t segstride,
                               const float *a, size_t lda, const float *b, size_t ldb, size_t bstep,
                               float *c, size_t ldc) {
    const __m256i none = _mm256_setzero_si256();
    for (; nc > 16; nc -= 16, b += bstep, c += 16)
        sgemm_tile_avx2(mr, 2, 0, none, segs, seglen, segstride, a, lda, b, ldb, c, ldc);
    if (nc == 16)
        sgemm_tile_avx2(mr, 2, 0, none, segs, seglen, segstride, a, lda, b, ldb, c, ldc);
    else if (nc > 8)
        sgemm_tile_avx2(mr, 2, 1, tail_mask(nc - 8), segs, seglen, segstride, a, lda, b, ldb, c,
                        ldc);
    else if (nc == 8)
        sgemm_tile_avx2(mr, 1, 0, none, segs, seglen, segstride, a, lda, b, ldb, c, ldc);
    else
        sgemm_tile_avx2(mr, 1, 1, tail_mask(nc), segs, seglen, segstride, a, lda, b, ldb, c, ldc);
}

#define XE_SGEMM_AVX2(MR)                                                                          \
    static void sgemm_##MR##x16_avx2(size_t nc, size_t k, const float *a, size_t lda,              \
                                     const float *b, size_t ldb, size_t bstep, float *c,           \
                                     size_t ldc) {                                                 \
        sgemm_cols_avx2(MR, nc, 1, k, 0, a, lda, b, ldb, bstep, c, ldc);                           \
    }                                                                                              \
    static void sgemm_seg_##MR##x16_avx2(size_t nc, size_t segs, size_t seglen, size_t segstride,  \
                                         const float *a, size_t lda, const float *b, size_t ldb,   \
                                         size_t bstep, float *c, size_t ldc) {                     \
        sgemm_cols_avx2(MR, nc, segs, seglen, segstride, a, lda, b, ldb, bstep, c, ldc);           \
    }
XE_SGEMM_AVX2(1)
XE_SGEMM_AVX2(2)
XE_SGEMM_AVX2(3)
XE_SGEMM_AVX2(4)
XE_SGEMM_AVX2(5)
XE_SGEMM_AVX2(6)

const xe_kernels xe_kernels_avx2 = {
    "avx2",
    {XE_MR,
     XE_NB,
     1,
     {bgemm_1x16_avx2, NULL, NULL, bgemm_4x16_avx2},
     pack_panel_avx2,
     {bgemm_seg_1x16_avx2, NULL, NULL, bgemm_seg_4x16_avx2}},
    {6,
     16,
     1,
     {sgemm_1x16_avx2, sgemm_2x16_avx2, sgemm_3x16_avx2, sgemm_4x16_avx2, sgemm_5x16_avx2,
      sgemm_6x16_avx2},
     xe_sgemm_pack_panel,
     {sgemm_seg_1x16_avx2, sgemm_seg_2x16_avx2, sgemm_seg_3x16_avx2, sgemm_seg_4x16_avx2,
      sgemm_seg_5x16_avx2, sgemm_seg_6x16_avx2}},
    pack_avx2,
    pack_abs_avx2,
    epilogue_avx2,
    xe_mst_children_avx2,
    NULL, /* mst_chunk: xe_bgemm on the roots, then mst_children */
};

/* ==== Binary-convolution input and output passes (not GEMM; kernels.h) ====
 *
 * pack_abs: the A map must be each pixel's channels summed in ascending order
 * (the reference's float additions), so lanes run across 8 pixels, not across
 * channels: each group of 8 channels of 8 pixels is loaded as rows, sign-packed
 * (VCMPPS LT_OQ + VMOVMSKPS, as pack_avx2), made absolute (clear the sign bit:
 * fabsf), transposed 8x8 and added channel by channel into one accumulator per
 * 8 pixels. Two blocks of 8 pixels run interleaved so that the two chains of
 * dependent additions overlap. Calls without an A map but with an affine
 * prologue (not on any hot path) go to the reference. */

XE_INLINE void transpose8_ps(__m256 r[8]) {
    const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
    r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    r[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
    r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
    r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
    r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

/* Channels [c0, c0 + nc) (nc in 1..8) of 8 rows (row j at x + rj[j] * ldx):
 * ORs their sign bits into word[j] at `shift`, and leaves |t| transposed in
 * t[ch][pixel], lanes of channels past nc zero. */
XE_INLINE void pack_abs_group8(const float *x, size_t ldx, const size_t rj[8], const float *s,
                               const float *b, size_t c0, size_t nc, unsigned shift,
                               uint32_t word[8], __m256 t[8]) {
    const __m256i m = nc == 8 ? _mm256_set1_epi32(-1) : tail_mask(nc);
    const __m256 zero = _mm256_setzero_ps(), sign = _mm256_set1_ps(-0.0f);
    const uint32_t keep = (1u << nc) - 1u;
    __m256 sv = zero, bv = zero;
    if (s) sv = _mm256_maskload_ps(s + c0, m), bv = _mm256_maskload_ps(b + c0, m);
    for (int j = 0; j < 8; j++) {
        const float *xj = x + rj[j] * ldx + c0;
        __m256 v = nc == 8 ? _mm256_loadu_ps(xj) : _mm256_maskload_ps(xj, m);
        if (s) v = _mm256_add_ps(_mm256_mul_ps(v, sv), bv);
        const uint32_t bits = (uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(v, zero, _CMP_LT_OQ));
        word[j] |= (bits & keep) << shift;
        t[j] = _mm256_andnot_ps(sign, v);
        if (nc < 8) t[j] = _mm256_and_ps(t[j], _mm256_castsi256_ps(m));
    }
    transpose8_ps(t);
}

/* rows (1..16) rows: two blocks of 8, their addition chains interleaved;
 * rows past the last are computed again from the last and not stored. */
static void pack_abs_rows16(size_t rows, size_t channels, const float *x, size_t ldx,
                            const float *s, const float *b, uint32_t *out, size_t ldo, float inv,
                            float *amean) {
    const size_t words = (channels + 31) / 32;
    size_t ra[8], rb[8];
    for (size_t j = 0; j < 8; j++) {
        ra[j] = j < rows ? j : rows - 1;
        rb[j] = j + 8 < rows ? j + 8 : rows - 1;
    }
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    for (size_t w = 0; w < words; w++) {
        uint32_t wa[8] = {0}, wb[8] = {0};
        for (unsigned g = 0; g < 4 && w * 32 + g * 8 < channels; g++) {
            const size_t c0 = w * 32 + g * 8, nc = channels - c0 < 8 ? channels - c0 : 8;
            __m256 ta[8], tb[8];
            if (nc == 8) { /* constant nc: no masks, the additions unrolled */
                pack_abs_group8(x, ldx, ra, s, b, c0, 8, g * 8, wa, ta);
                pack_abs_group8(x, ldx, rb, s, b, c0, 8, g * 8, wb, tb);
                for (size_t c = 0; c < 8; c++) {
                    acc0 = _mm256_add_ps(acc0, ta[c]);
                    acc1 = _mm256_add_ps(acc1, tb[c]);
                }
                continue;
            }
            pack_abs_group8(x, ldx, ra, s, b, c0, nc, g * 8, wa, ta);
            pack_abs_group8(x, ldx, rb, s, b, c0, nc, g * 8, wb, tb);
            for (size_t c = 0; c < nc; c++) {
                acc0 = _mm256_add_ps(acc0, ta[c]);
                acc1 = _mm256_add_ps(acc1, tb[c]);
            }
        }
        for (size_t j = 0; j < rows && j < 8; j++) out[j * ldo + w] = wa[j];
        for (size_t j = 8; j < rows; j++) out[j * ldo + w] = wb[j - 8];
    }
    const __m256 iv = _mm256_set1_ps(inv);
    float a[16];
    _mm256_storeu_ps(a, _mm256_mul_ps(acc0, iv));
    _mm256_storeu_ps(a + 8, _mm256_mul_ps(acc1, iv));
    for (size_t j = 0; j < rows; j++) amean[j] = a[j];
}

static void pack_abs_avx2(size_t rows, size_t channels, const float *x, size_t ldx, const float *s,
                          const float *b, uint32_t *out, size_t ldo, float inv, float *amean) {
    if (!amean && !s) {
        pack_avx2(rows, channels, x, ldx, out, ldo);
        return;
    }
    if (!amean) {
        xe_pack_abs_ref(rows, channels, x, ldx, s, b, out, ldo, inv, NULL);
        return;
    }
    for (size_t r = 0; r < rows; r += 16)
        pack_abs_rows16(rows - r < 16 ? rows - r : 16, channels, x + r * ldx, ldx, s, b,
                        out + r * ldo, ldo, inv, amean + r);
}

/* Epilogue: 8 columns per vector, each step the reference's rounded operation
 * (VCVTDQ2PS rounds to nearest as the C conversion; ReLU clears the lanes
 * where y < 0 with LT_OQ, so NaN and -0.0 pass as in `y < 0 ? 0 : y`; the
 * file is compiled with -ffp-contract=off, so multiply-then-add stays two
 * roundings). The column tail goes to the reference. */
XE_INLINE __m256 relu_ps(__m256 v) {
    return _mm256_andnot_ps(_mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_LT_OQ), v);
}

static void epilogue_avx2(size_t n, const int32_t *pc, int32_t nreal, const float *scale,
                          const float *bias, const float *k, int relu, const xe_post_op *ops,
                          size_t nops, float *y) {
    const __m256i nr = _mm256_set1_epi32(nreal);
    const __m256 kv = _mm256_set1_ps(k ? *k : 1.0f);
    size_t o = 0;
    for (; o + 8 <= n; o += 8) {
        const __m256i p = _mm256_loadu_si256((const __m256i *)(pc + o));
        __m256 v = _mm256_cvtepi32_ps(_mm256_sub_epi32(nr, _mm256_add_epi32(p, p)));
        v = _mm256_mul_ps(v, _mm256_loadu_ps(scale + o));
        if (k) v = _mm256_mul_ps(v, kv);
        v = _mm256_add_ps(v, _mm256_loadu_ps(bias + o));
        if (relu) v = relu_ps(v);
        for (size_t i = 0; i < nops; i++) {
            const xe_post_op *op = &ops[i];
            const __m256 a = _mm256_loadu_ps(op->a + o);
            if (op->kind == XE_POST_AFFINE)
                v = _mm256_add_ps(_mm256_mul_ps(v, a), _mm256_loadu_ps(op->b + o));
            else if (op->kind == XE_POST_ADD)
                v = _mm256_add_ps(v, a);
            else
                v = _mm256_add_ps(a, v);
            if (op->relu) v = relu_ps(v);
        }
        _mm256_storeu_ps(y + o, v);
    }
    if (o < n) {
        xe_post_op rest[XE_MAX_POST_OPS];
        for (size_t i = 0; i < nops; i++) {
            rest[i] = ops[i];
            rest[i].a = ops[i].a + o;
            rest[i].b = ops[i].b ? ops[i].b + o : NULL;
        }
        xe_epilogue_ref(n - o, pc + o, nreal, scale + o, bias + o, k, relu, rest, nops, y + o);
    }
}
