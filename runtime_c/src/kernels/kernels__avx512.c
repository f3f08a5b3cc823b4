/*
 * kernels__avx512.c - x86-64 AVX-512 kernels: F + BW + VL + VPOPCNTDQ, with FMA
 * (compiled with -mavx512f -mavx512bw -mavx512vl -mavx512vpopcntdq -mfma
 * -mpopcnt; Ice Lake and later Intel cores, AMD Zen 4 and later).
 *
 * Binary GEMM maths (as kernels__avx2.c): with bit 1 = -1 and bit 0 = +1,
 * dot = n - 2*popcount(a XOR b); the kernel returns d = popcount(a XOR b)
 * summed over the k words; channel padding bits are 0 in both operands.
 *
 * Popcount: VPOPCNTD counts the bits of each 32-bit lane of a 512-bit
 * register in one instruction, so there is no nibble table, no byte
 * accumulator and no flush: each lane adds at most 32 per word straight into
 * its 32-bit sum, which holds 32*k for k < 2^26 words (the kernels.h bound).
 *
 * Layout and tiling: B is packed into panels of 32 columns (nr = 32, kr = 1),
 * panel[t][col], so two 512-bit loads hold word t of 32 output channels. Word
 * t of an A row is broadcast and XORed against both: each 32-bit lane is one
 * output, k advances one word at a time (no k tail, no horizontal sums, no
 * padding of short windows: k = 18 words stays 18). Per word and row:
 * VPBROADCASTD (shared by the two vectors), 2 x (VPXORD, VPOPCNTD, VPADDD),
 * 3 ops per 512 pair-bits against the avx2 set's 8 per 256. Tile: 8 rows x 32
 * columns = 16 accumulators + 2 B vectors + the broadcast, within the 32 ZMM
 * registers (XE_MAX_MR is 8); a micro-kernel exists for every row count 1..8
 * so the last rows of a block take one call. The last panel's columns past nc
 * are computed on the packer's zero words and not stored (masked stores).
 *
 * Float GEMM: vectorised across output columns, each lane one output whose
 * sum runs t = 0..k-1 with one VFMADD per term, as the reference's fmaf loop:
 * bit-identical. Tile 8 x 32 (16 accumulators); the last panel's column tail
 * uses masked loads (which do not touch the masked-off columns, so an
 * unpacked B row is never read past column nc) and masked stores.
 *
 * Sign pack: VCMPPS LT_OQ into an opmask (false for NaN and for -0.0, exactly
 * the contract's x < 0), 16 channels per compare; the last word's tail loads
 * only its channels (masked, zero elsewhere, and 0.0 < 0 is false).
 */
#if !defined(__AVX512F__) || !defined(__AVX512BW__) || !defined(__AVX512VL__) ||                   \
    !defined(__AVX512VPOPCNTDQ__) || !defined(__FMA__)
#error "kernels__avx512.c needs -mavx512f -mavx512bw -mavx512vl -mavx512vpopcntdq -mfma"
#endif
#include <immintrin.h>

#include "kernels.h"
#include "transpose16__avx512.h"

#define XE_INLINE static inline __attribute__((always_inline))
/* The row loops are unrolled so the accumulators live in registers at -O2
 * too (GCC unrolls them itself only at -O3, CMake's Release). */
#define XE_UNROLL_ROWS _Pragma("GCC unroll 8")

/* Panel width (nr) and row tile (mr) of both GEMMs. */
#define XE_NB 32
#define XE_MR 8

/* Lanes [0, n) of a 16-lane vector, n clamped to 0..16. */
XE_INLINE __mmask16 lanes(size_t n) {
    return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u);
}

/* MR rows x one 32-column panel (ncols <= 32 of them stored), segs segments
 * of seglen words (A's word t of row r at a[r*lda + (t / seglen) * segstride
 * + t % seglen]; the plain GEMM is one segment). */
XE_INLINE void bgemm_tile_avx512(int mr, size_t ncols, size_t segs, size_t seglen, size_t segstride,
                                 const uint32_t *a, size_t lda, const uint32_t *panel, int32_t *c,
                                 size_t ldc) {
    __m512i acc[XE_MR][2];
    XE_UNROLL_ROWS
    for (int r = 0; r < mr; r++) acc[r][0] = acc[r][1] = _mm512_setzero_si512();
    for (size_t g = 0; g < segs; g++, a += segstride, panel += seglen * XE_NB)
        for (size_t t = 0; t < seglen; t++) {
            const __m512i b0 = _mm512_loadu_si512((const void *)(panel + t * XE_NB));
            const __m512i b1 = _mm512_loadu_si512((const void *)(panel + t * XE_NB + 16));
            XE_UNROLL_ROWS
            for (int r = 0; r < mr; r++) {
                const __m512i av = _mm512_set1_epi32((int)a[r * lda + t]);
                acc[r][0] =
                    _mm512_add_epi32(acc[r][0], _mm512_popcnt_epi32(_mm512_xor_si512(av, b0)));
                acc[r][1] =
                    _mm512_add_epi32(acc[r][1], _mm512_popcnt_epi32(_mm512_xor_si512(av, b1)));
            }
        }
    if (ncols == XE_NB) {
        XE_UNROLL_ROWS
        for (int r = 0; r < mr; r++) {
            _mm512_storeu_si512((void *)(c + r * ldc), acc[r][0]);
            _mm512_storeu_si512((void *)(c + r * ldc + 16), acc[r][1]);
        }
    } else {
        const __mmask16 m0 = lanes(ncols), m1 = lanes(ncols > 16 ? ncols - 16 : 0);
        XE_UNROLL_ROWS
        for (int r = 0; r < mr; r++) {
            _mm512_mask_storeu_epi32(c + r * ldc, m0, acc[r][0]);
            _mm512_mask_storeu_epi32(c + r * ldc + 16, m1, acc[r][1]);
        }
    }
}

#define XE_BGEMM_AVX512(MR)                                                                        \
    static void bgemm_##MR##x32_avx512(size_t nc, size_t kw, const uint32_t *a, size_t lda,        \
                                       const uint32_t *w, int32_t *c, size_t ldc) {                \
        for (; nc > XE_NB; nc -= XE_NB, w += kw * XE_NB, c += XE_NB)                               \
            bgemm_tile_avx512(MR, XE_NB, 1, kw, 0, a, lda, w, c, ldc);                             \
        bgemm_tile_avx512(MR, nc, 1, kw, 0, a, lda, w, c, ldc);                                    \
    }                                                                                              \
    static void bgemm_seg_##MR##x32_avx512(size_t nc, size_t segs, size_t seglen,                  \
                                           size_t segstride, const uint32_t *a, size_t lda,        \
                                           const uint32_t *w, int32_t *c, size_t ldc) {            \
        const size_t kw = segs * seglen;                                                           \
        for (; nc > XE_NB; nc -= XE_NB, w += kw * XE_NB, c += XE_NB)                               \
            bgemm_tile_avx512(MR, XE_NB, segs, seglen, segstride, a, lda, w, c, ldc);              \
        bgemm_tile_avx512(MR, nc, segs, seglen, segstride, a, lda, w, c, ldc);                     \
    }
XE_BGEMM_AVX512(1)
XE_BGEMM_AVX512(2)
XE_BGEMM_AVX512(3)
XE_BGEMM_AVX512(4)
XE_BGEMM_AVX512(5)
XE_BGEMM_AVX512(6)
XE_BGEMM_AVX512(7)
XE_BGEMM_AVX512(8)

/* panel[t][s] = b[s*ldb + t] for s < ncols, 0 for ncols <= s < 32, t < kw
 * (kernels.h's layout for nr = 32, kr = 1): 16 x 16 blocks through
 * registers; masked loads read only words t < kw of columns s < ncols (the
 * other rows of a block are zero), and only rows t < kw are stored. */
static void pack_panel_avx512(size_t nr, size_t kr, size_t ncols, size_t kw, const uint32_t *b,
                              size_t ldb, uint32_t *panel) {
    (void)nr, (void)kr; /* 32 and 1, this set's geometry */
    for (size_t s0 = 0; s0 < XE_NB; s0 += 16)
        for (size_t t0 = 0; t0 < kw; t0 += 16) {
            const size_t kb = kw - t0 < 16 ? kw - t0 : 16;
            const __mmask16 m = lanes(kb);
            __m512i r[16];
            for (size_t i = 0; i < 16; i++)
                r[i] = s0 + i < ncols ? _mm512_maskz_loadu_epi32(m, b + (s0 + i) * ldb + t0)
                                      : _mm512_setzero_si512();
            transpose16(r);
            for (size_t u = 0; u < kb; u++)
                _mm512_storeu_si512((void *)(panel + (t0 + u) * XE_NB + s0), r[u]);
        }
}

/* Sign pack, 32 channels (two compares) per word. */
static void pack_avx512(size_t rows, size_t channels, const float *x, size_t ldx, uint32_t *out,
                        size_t ldo) {
    const __m512 zero = _mm512_setzero_ps();
    const size_t full = channels / 32, rem = channels % 32;
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * ldx;
        uint32_t *o = out + r * ldo;
        for (size_t w = 0; w < full; w++) {
            const float *p = xr + w * 32;
            const uint32_t lo = _mm512_cmp_ps_mask(_mm512_loadu_ps(p), zero, _CMP_LT_OQ);
            const uint32_t hi = _mm512_cmp_ps_mask(_mm512_loadu_ps(p + 16), zero, _CMP_LT_OQ);
            o[w] = lo | hi << 16;
        }
        if (rem) {
            const float *p = xr + full * 32;
            const __mmask16 m0 = lanes(rem), m1 = lanes(rem > 16 ? rem - 16 : 0);
            const uint32_t lo =
                _mm512_mask_cmp_ps_mask(m0, _mm512_maskz_loadu_ps(m0, p), zero, _CMP_LT_OQ);
            const uint32_t hi =
                _mm512_mask_cmp_ps_mask(m1, _mm512_maskz_loadu_ps(m1, p + 16), zero, _CMP_LT_OQ);
            o[full] = lo | hi << 16;
        }
    }
}

/* One MR x 32 tile of C; m0/m1 enable the columns of each 16-column half
 * (loads and stores are masked unless full). A's terms come in segs segments
 * of seglen, segstride apart (kernels.h; the plain sgemm is one segment of
 * k), and B's rows follow t. */
XE_INLINE void sgemm_tile_avx512(int mr, int full, __mmask16 m0, __mmask16 m1, size_t segs,
                                 size_t seglen, size_t segstride, const float *a, size_t lda,
                                 const float *b, size_t ldb, float *c, size_t ldc) {
    __m512 acc[XE_MR][2];
    XE_UNROLL_ROWS
    for (int r = 0; r < mr; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (size_t g = 0; g < segs; g++, a += segstride)
        for (size_t t = 0; t < seglen; t++, b += ldb) {
            const __m512 b0 = full ? _mm512_loadu_ps(b) : _mm512_maskz_loadu_ps(m0, b);
            const __m512 b1 = full ? _mm512_loadu_ps(b + 16) : _mm512_maskz_loadu_ps(m1, b + 16);
            XE_UNROLL_ROWS
            for (int r = 0; r < mr; r++) {
                const __m512 av = _mm512_set1_ps(a[r * lda + t]);
                acc[r][0] = _mm512_fmadd_ps(av, b0, acc[r][0]);
                acc[r][1] = _mm512_fmadd_ps(av, b1, acc[r][1]);
            }
        }
    XE_UNROLL_ROWS
    for (int r = 0; r < mr; r++) {
        if (full) {
            _mm512_storeu_ps(c + r * ldc, acc[r][0]);
            _mm512_storeu_ps(c + r * ldc + 16, acc[r][1]);
        } else {
            _mm512_mask_storeu_ps(c + r * ldc, m0, acc[r][0]);
            _mm512_mask_storeu_ps(c + r * ldc + 16, m1, acc[r][1]);
        }
    }
}

/* MR rows against panels of 32 columns (the last masked), A in segments. */
XE_INLINE void sgemm_cols_avx512(int mr, size_t nc, size_t segs, size_t seglen, size_t segstride,
                                 const float *a, size_t lda, const float *b, size_t ldb,
                                 size_t bstep, float *c, size_t ldc) {
    for (; nc > XE_NB; nc -= XE_NB, b += bstep, c += XE_NB)
        sgemm_tile_avx512(mr, 1, 0xFFFF, 0xFFFF, segs, seglen, segstride, a, lda, b, ldb, c, ldc);
    if (nc == XE_NB)
        sgemm_tile_avx512(mr, 1, 0xFFFF, 0xFFFF, segs, seglen, segstride, a, lda, b, ldb, c, ldc);
    else
        sgemm_tile_avx512(mr, 0, lanes(nc), lanes(nc > 16 ? nc - 16 : 0), segs, seglen, segstride,
                          a, lda, b, ldb, c, ldc);
}

#define XE_SGEMM_AVX512(MR)                                                                        \
    static void sgemm_##MR##x32_avx512(size_t nc, size_t k, const float *a, size_t lda,            \
                                       const float *b, size_t ldb, size_t bstep, float *c,         \
                                       size_t ldc) {                                               \
        sgemm_cols_avx512(MR, nc, 1, k, 0, a, lda, b, ldb, bstep, c, ldc);                         \
    }                                                                                              \
    static void sgemm_seg_##MR##x32_avx512(                                                        \
        size_t nc, size_t segs, size_t seglen, size_t segstride, const float *a, size_t lda,       \
        const float *b, size_t ldb, size_t bstep, float *c, size_t ldc) {                          \
        sgemm_cols_avx512(MR, nc, segs, seglen, segstride, a, lda, b, ldb, bstep, c, ldc);         \
    }
XE_SGEMM_AVX512(1)
XE_SGEMM_AVX512(2)
XE_SGEMM_AVX512(3)
XE_SGEMM_AVX512(4)
XE_SGEMM_AVX512(5)
XE_SGEMM_AVX512(6)
XE_SGEMM_AVX512(7)
XE_SGEMM_AVX512(8)

/* ==== Binary-convolution input and output passes (not GEMM; kernels.h) ====
 *
 * pack_abs: the A map must be each pixel's channels summed in ascending order
 * (the reference's float additions), so lanes run across 16 pixels: each
 * group of 16 channels of 16 rows is loaded (masked past the channels),
 * sign-packed (VCMPPS LT_OQ into an opmask), made absolute (fabsf: clear the
 * sign bit), transposed 16x16 (transpose16) and added channel by channel into
 * one accumulator per 16 pixels. With an affine prologue t = x * s + b is one
 * multiply then one add (the file is compiled with -ffp-contract=off). Rows
 * past the last of a block are computed again from the last and not stored. */
static void pack_abs_rows16(size_t rows, size_t channels, const float *x, size_t ldx,
                            const float *s, const float *b, uint32_t *out, size_t ldo, float inv,
                            float *amean) {
    const size_t words = (channels + 31) / 32;
    const __m512i sign = _mm512_set1_epi32((int)0x80000000u);
    __m512 acc = _mm512_setzero_ps();
    for (size_t w = 0; w < words; w++) {
        uint32_t word[16] = {0};
        for (size_t g = 0; g < 2 && w * 32 + g * 16 < channels; g++) {
            const size_t c0 = w * 32 + g * 16, nc = channels - c0 < 16 ? channels - c0 : 16;
            const __mmask16 m = lanes(nc);
            __m512 sv = _mm512_setzero_ps(), bv = _mm512_setzero_ps();
            __m512i t[16];
            if (s) sv = _mm512_maskz_loadu_ps(m, s + c0), bv = _mm512_maskz_loadu_ps(m, b + c0);
            for (size_t j = 0; j < 16; j++) {
                const float *xj = x + (j < rows ? j : rows - 1) * ldx + c0;
                __m512 v = _mm512_maskz_loadu_ps(m, xj);
                if (s) v = _mm512_add_ps(_mm512_mul_ps(v, sv), bv);
                word[j] |= (uint32_t)_mm512_mask_cmp_ps_mask(m, v, _mm512_setzero_ps(), _CMP_LT_OQ)
                           << (16 * g);
                t[j] = _mm512_maskz_andnot_epi32(m, sign, _mm512_castps_si512(v));
            }
            transpose16(t);
            for (size_t c = 0; c < nc; c++) acc = _mm512_add_ps(acc, _mm512_castsi512_ps(t[c]));
        }
        for (size_t j = 0; j < rows; j++) out[j * ldo + w] = word[j];
    }
    _mm512_mask_storeu_ps(amean, lanes(rows), _mm512_mul_ps(acc, _mm512_set1_ps(inv)));
}

/* pack_abs_rows16 for a full block of 16 rows and whole 16-channel groups
 * (every layer of the shipped models): no lane masks, no row clamps, each
 * word's two halves straight from the opmasks; `affine` is a constant at each
 * call, so the compiler emits one loop with the prologue and one without. The
 * channel sums keep the reference's order (one accumulator lane per pixel). */
/* One 16-row block's 16-channel group of pack_abs_full: the sign bits into
 * word[] (low or high half), |t| transposed and added to acc channel by channel. */
XE_INLINE __m512 pack_abs_group16(const float *x, size_t ldx, __m512 sv, __m512 bv, int affine,
                                  int hi, uint32_t word[16], __m512 acc) {
    const __m512i sign = _mm512_set1_epi32((int)0x80000000u);
    __m512i t[16];
    for (size_t j = 0; j < 16; j++) {
        __m512 v = _mm512_loadu_ps(x + j * ldx);
        if (affine) v = _mm512_add_ps(_mm512_mul_ps(v, sv), bv);
        const uint32_t m = (uint32_t)_mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LT_OQ);
        word[j] = hi ? word[j] | m << 16 : m;
        t[j] = _mm512_andnot_si512(sign, _mm512_castps_si512(v));
    }
    transpose16(t);
    for (size_t c = 0; c < 16; c++) acc = _mm512_add_ps(acc, _mm512_castsi512_ps(t[c]));
    return acc;
}

/* pack_abs_rows16 for nb (1 or 2) full blocks of 16 rows and whole 16-channel
 * groups (every layer of the shipped models): no lane masks or row clamps;
 * two blocks give two independent chains of adds (each keeps the reference's
 * channel order in its lanes). `affine` and `nb` are constants at each call. */
XE_INLINE void pack_abs_full(size_t channels, const float *x, size_t ldx, const float *s,
                             const float *b, uint32_t *out, size_t ldo, float inv, float *amean,
                             int affine, int nb) {
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    uint32_t w0[16] = {0}, w1[16] = {0};
    for (size_t c0 = 0; c0 < channels; c0 += 16) {
        __m512 sv = _mm512_setzero_ps(), bv = _mm512_setzero_ps();
        if (affine) sv = _mm512_loadu_ps(s + c0), bv = _mm512_loadu_ps(b + c0);
        const int hi = (c0 / 16) & 1; /* the upper half of a word */
        acc0 = pack_abs_group16(x + c0, ldx, sv, bv, affine, hi, w0, acc0);
        if (nb == 2) acc1 = pack_abs_group16(x + 16 * ldx + c0, ldx, sv, bv, affine, hi, w1, acc1);
        if (hi || c0 + 16 == channels) {
            for (size_t j = 0; j < 16; j++) out[j * ldo + c0 / 32] = w0[j];
            if (nb == 2)
                for (size_t j = 0; j < 16; j++) out[(16 + j) * ldo + c0 / 32] = w1[j];
        }
    }
    const __m512 iv = _mm512_set1_ps(inv);
    _mm512_storeu_ps(amean, _mm512_mul_ps(acc0, iv));
    if (nb == 2) _mm512_storeu_ps(amean + 16, _mm512_mul_ps(acc1, iv));
}

static void pack_abs_avx512(size_t rows, size_t channels, const float *x, size_t ldx,
                            const float *s, const float *b, uint32_t *out, size_t ldo, float inv,
                            float *amean) {
    if (!amean && !s) {
        pack_avx512(rows, channels, x, ldx, out, ldo);
        return;
    }
    if (!amean) { /* not on any hot path */
        xe_pack_abs_ref(rows, channels, x, ldx, s, b, out, ldo, inv, NULL);
        return;
    }
    size_t r = 0;
    if (channels % 16 == 0) {
        for (int nb; r + 16 <= rows; r += 16u * (unsigned)nb) {
            nb = rows - r >= 32 ? 2 : 1;
            if (s)
                pack_abs_full(channels, x + r * ldx, ldx, s, b, out + r * ldo, ldo, inv, amean + r,
                              1, nb);
            else
                pack_abs_full(channels, x + r * ldx, ldx, s, b, out + r * ldo, ldo, inv, amean + r,
                              0, nb);
        }
    }
    for (; r < rows; r += 16)
        pack_abs_rows16(rows - r < 16 ? rows - r : 16, channels, x + r * ldx, ldx, s, b,
                        out + r * ldo, ldo, inv, amean + r);
}

/* Epilogue: 16 columns per vector, the last masked; each step the reference's
 * rounded operation (VCVTDQ2PS rounds to nearest as the C conversion; ReLU
 * zeroes the lanes where y < 0 with LT_OQ, so NaN and -0.0 pass as in
 * `y < 0 ? 0 : y`). */
XE_INLINE __m512 relu512(__m512 v) {
    return _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LT_OQ),
                              _mm512_setzero_ps());
}

static void epilogue_avx512(size_t n, const int32_t *pc, int32_t nreal, const float *scale,
                            const float *bias, const float *k, int relu, const xe_post_op *ops,
                            size_t nops, float *y) {
    const __m512i nr = _mm512_set1_epi32(nreal);
    const __m512 kv = _mm512_set1_ps(k ? *k : 1.0f);
    for (size_t o = 0; o < n; o += 16) {
        const __mmask16 m = lanes(n - o);
        const __m512i p = _mm512_maskz_loadu_epi32(m, pc + o);
        __m512 v = _mm512_cvtepi32_ps(_mm512_sub_epi32(nr, _mm512_add_epi32(p, p)));
        v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, scale + o));
        if (k) v = _mm512_mul_ps(v, kv);
        v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, bias + o));
        if (relu) v = relu512(v);
        for (size_t i = 0; i < nops; i++) {
            const xe_post_op *op = &ops[i];
            const __m512 a = _mm512_maskz_loadu_ps(m, op->a + o);
            if (op->kind == XE_POST_AFFINE)
                v = _mm512_add_ps(_mm512_mul_ps(v, a), _mm512_maskz_loadu_ps(m, op->b + o));
            else if (op->kind == XE_POST_ADD)
                v = _mm512_add_ps(v, a);
            else
                v = _mm512_add_ps(a, v);
            if (op->relu) v = relu512(v);
        }
        _mm512_mask_storeu_ps(y + o, m, v);
    }
}

const xe_kernels xe_kernels_avx512 = {
    "avx512",
    {XE_MR,
     XE_NB,
     1,
     {bgemm_1x32_avx512, bgemm_2x32_avx512, bgemm_3x32_avx512, bgemm_4x32_avx512, bgemm_5x32_avx512,
      bgemm_6x32_avx512, bgemm_7x32_avx512, bgemm_8x32_avx512},
     pack_panel_avx512,
     {bgemm_seg_1x32_avx512, bgemm_seg_2x32_avx512, bgemm_seg_3x32_avx512, bgemm_seg_4x32_avx512,
      bgemm_seg_5x32_avx512, bgemm_seg_6x32_avx512, bgemm_seg_7x32_avx512, bgemm_seg_8x32_avx512}},
    {XE_MR,
     XE_NB,
     1,
     {sgemm_1x32_avx512, sgemm_2x32_avx512, sgemm_3x32_avx512, sgemm_4x32_avx512, sgemm_5x32_avx512,
      sgemm_6x32_avx512, sgemm_7x32_avx512, sgemm_8x32_avx512},
     xe_sgemm_pack_panel,
     {sgemm_seg_1x32_avx512, sgemm_seg_2x32_avx512, sgemm_seg_3x32_avx512, sgemm_seg_4x32_avx512,
      sgemm_seg_5x32_avx512, sgemm_seg_6x32_avx512, sgemm_seg_7x32_avx512, sgemm_seg_8x32_avx512}},
    pack_avx512,
    pack_abs_avx512,
    epilogue_avx512,
    xe_mst_children_avx512, /* mst__avx512.c */
    xe_mst_chunk_avx512,
};
