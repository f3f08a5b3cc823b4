/*
 * kernels__neon_a32.c - ARMv7-A NEON + VFPv4 kernels (32-bit Raspberry Pi OS),
 * compiled with -mfpu=neon-vfpv4 -mfloat-abi=hard; used only when
 * getauxval(AT_HWCAP) reports NEON and VFPv4.
 *
 * Binary GEMM maths: with bit 1 = -1 and bit 0 = +1, the product of two signs
 * is -1 exactly where the bits differ, so for n real +-1 pairs
 * dot = n - 2*popcount(a XOR b). The kernel returns d = popcount(a XOR b)
 * summed over the k words; channel padding bits are 0 in both operands and
 * never count.
 *
 * Per 128 bits (4 words) of one output: VEOR, VCNT.8 (8-bit popcounts, <= 8
 * per byte), VADD.I8 into a byte accumulator. A byte lane holds 255/8 = 31
 * steps, so every XE_A32_BLOCK steps (the last block also takes the k tail)
 * the lanes are summed into 32-bit totals (VPADDL.U8, VPADDL.U16, VADD,
 * VPADD). VPADAL.U8 into 16-bit lanes would need no blocks, but GCC then
 * copies every tied accumulator each iteration (8 VORRs per 30 instructions);
 * the three-operand VADD keeps the loop at 6 loads + 8 x 3 operations for
 * 1024 binary MACs. ARMv7 has 16 Q registers, so the tile is 2 rows x 4
 * columns: 8 accumulators + 2 A + 1 B operands. The k tail (k % 4 words) is
 * loaded lane by lane into zeroed vectors, so nothing is read past the
 * arguments.
 *
 * Float GEMM: vectorised across output columns; each lane is one output whose
 * sum runs t = 0..k-1 with one VFMA.F32 per term (VFPv4: fused, rounded
 * once), the same sequence as the reference's fmaf loop, hence bit-identical.
 * Tile: 4 rows x 8 columns = 8 accumulators. Column tails use the scalar
 * fmaf (VFMA.F32 on S registers).
 */
#if !defined(__ARM_NEON) || !defined(__ARM_FEATURE_FMA)
#error "kernels__neon_a32.c needs -mfpu=neon-vfpv4 -mfloat-abi=hard"
#endif
#include <arm_neon.h>
#include <math.h>

#include "kernels.h"

#define XE_INLINE static inline __attribute__((always_inline))
#define XE_A32_BLOCK 30

/* Words t..t+rem-1 (rem in 1..3) of p as a vector, upper lanes zero. */
XE_INLINE uint32x4_t load_tail(const uint32_t *p, size_t rem) {
    uint32x4_t v = vdupq_n_u32(0);
    v = vld1q_lane_u32(p, v, 0);
    if (rem > 1) v = vld1q_lane_u32(p + 1, v, 1);
    if (rem > 2) v = vld1q_lane_u32(p + 2, v, 2);
    return v;
}

XE_INLINE uint32_t hsum_u32(uint32x4_t v) {
    uint32x2_t s = vadd_u32(vget_low_u32(v), vget_high_u32(v));
    return vget_lane_u32(vpadd_u32(s, s), 0);
}

XE_INLINE uint32_t hsum_u16(uint16x8_t v) { return hsum_u32(vpaddlq_u16(v)); }

/* One MR x NR output tile (MR <= 2, NR <= 4, compile-time constants at each call). */
XE_INLINE void bgemm_tile_a32(int mr, int nr, size_t k, const uint32_t *a, size_t lda,
                              const uint32_t *b, size_t ldb, int32_t *c, size_t ldc) {
    uint32_t sum[2][4] = {{0}};
    size_t nvec = k / 4, rem = k % 4, v = 0;
    /* Blocks of at most XE_A32_BLOCK steps; the last block also takes the tail,
     * so a block adds at most 8 * (XE_A32_BLOCK + 1) <= 255 to a byte lane. */
    do {
        size_t end = nvec - v > XE_A32_BLOCK ? v + XE_A32_BLOCK : nvec;
        uint8x16_t acc8[2][4];
        for (int r = 0; r < mr; r++)
            for (int s = 0; s < nr; s++) acc8[r][s] = vdupq_n_u8(0);
        for (; v < end; v++) {
            uint8x16_t av[2];
            for (int r = 0; r < mr; r++)
                av[r] = vreinterpretq_u8_u32(vld1q_u32(a + r * lda + v * 4));
            for (int s = 0; s < nr; s++) {
                const uint8x16_t bv = vreinterpretq_u8_u32(vld1q_u32(b + s * ldb + v * 4));
                for (int r = 0; r < mr; r++)
                    acc8[r][s] = vaddq_u8(acc8[r][s], vcntq_u8(veorq_u8(av[r], bv)));
            }
        }
        if (end == nvec && rem) {
            uint8x16_t av[2];
            for (int r = 0; r < mr; r++)
                av[r] = vreinterpretq_u8_u32(load_tail(a + r * lda + nvec * 4, rem));
            for (int s = 0; s < nr; s++) {
                uint8x16_t bv = vreinterpretq_u8_u32(load_tail(b + s * ldb + nvec * 4, rem));
                for (int r = 0; r < mr; r++)
                    acc8[r][s] = vaddq_u8(acc8[r][s], vcntq_u8(veorq_u8(av[r], bv)));
            }
        }
        for (int r = 0; r < mr; r++)
            for (int s = 0; s < nr; s++) sum[r][s] += hsum_u16(vpaddlq_u8(acc8[r][s]));
    } while (v < nvec);
    for (int r = 0; r < mr; r++)
        for (int s = 0; s < nr; s++) c[r * ldc + s] = (int32_t)sum[r][s];
}

static void bgemm_neon_a32(size_t m, size_t n, size_t k, const uint32_t *a, size_t lda,
                           const uint32_t *b, size_t ldb, int32_t *c, size_t ldc) {
    size_t i = 0;
    for (; i + 2 <= m; i += 2) {
        size_t j = 0;
        for (; j + 4 <= n; j += 4)
            bgemm_tile_a32(2, 4, k, a + i * lda, lda, b + j * ldb, ldb, c + i * ldc + j, ldc);
        for (; j < n; j++)
            bgemm_tile_a32(2, 1, k, a + i * lda, lda, b + j * ldb, ldb, c + i * ldc + j, ldc);
    }
    for (; i < m; i++) {
        size_t j = 0;
        for (; j + 4 <= n; j += 4)
            bgemm_tile_a32(1, 4, k, a + i * lda, lda, b + j * ldb, ldb, c + i * ldc + j, ldc);
        for (; j < n; j++)
            bgemm_tile_a32(1, 1, k, a + i * lda, lda, b + j * ldb, ldb, c + i * ldc + j, ldc);
    }
}

/* Sign pack: VCLT.F32 against 0 is false for NaN and for -0.0, exactly the contract's
 * x < 0. Lane masks AND per-lane bit weights, ORed over the 8 groups of 4
 * channels of a word, then pairwise adds (the bits are disjoint, so add = or). */
static void pack_neon_a32(size_t rows, size_t channels, const float *x, size_t ldx, uint32_t *out,
                          size_t ldo) {
    static const uint32_t w0[4] = {1u << 0, 1u << 1, 1u << 2, 1u << 3};
    const uint32x4_t weights = vld1q_u32(w0);
    size_t full = channels / 32, rem = channels % 32;
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * ldx;
        uint32_t *o = out + r * ldo;
        for (size_t w = 0; w < full; w++) {
            const float *p = xr + w * 32;
            uint32x4_t bits = vdupq_n_u32(0);
            for (int g = 0; g < 8; g++) {
                uint32x4_t neg = vcltq_f32(vld1q_f32(p + 4 * g), vdupq_n_f32(0.0f));
                bits = vorrq_u32(bits, vandq_u32(neg, vshlq_u32(weights, vdupq_n_s32(4 * g))));
            }
            o[w] = hsum_u32(bits);
        }
        if (rem) {
            uint32_t word = 0;
            for (unsigned bit = 0; bit < rem; bit++)
                word |= (uint32_t)(xr[full * 32 + bit] < 0.0f) << bit;
            o[full] = word;
        }
    }
}

/* One MR x (4*NV) tile of C, MR <= 4, NV <= 2. */
XE_INLINE void sgemm_tile_a32(int mr, int nv, size_t k, const float *a, size_t lda, const float *b,
                              size_t ldb, float *c, size_t ldc) {
    float32x4_t acc[4][2];
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < nv; v++) acc[r][v] = vdupq_n_f32(0.0f);
    for (size_t t = 0; t < k; t++) {
        float32x4_t bv[2];
        for (int v = 0; v < nv; v++) bv[v] = vld1q_f32(b + t * ldb + 4 * v);
        for (int r = 0; r < mr; r++) {
            const float32x4_t ar = vdupq_n_f32(a[r * lda + t]);
            for (int v = 0; v < nv; v++) acc[r][v] = vfmaq_f32(acc[r][v], bv[v], ar);
        }
    }
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < nv; v++) vst1q_f32(c + r * ldc + 4 * v, acc[r][v]);
}

XE_INLINE void sgemm_rows_a32(int mr, size_t n, size_t k, const float *a, size_t lda,
                              const float *b, size_t ldb, float *c, size_t ldc) {
    size_t j = 0;
    for (; j + 8 <= n; j += 8) sgemm_tile_a32(mr, 2, k, a, lda, b + j, ldb, c + j, ldc);
    for (; j + 4 <= n; j += 4) sgemm_tile_a32(mr, 1, k, a, lda, b + j, ldb, c + j, ldc);
    for (; j < n; j++)
        for (int r = 0; r < mr; r++) {
            float acc = 0.0f;
            for (size_t t = 0; t < k; t++) acc = fmaf(a[r * lda + t], b[t * ldb + j], acc);
            c[r * ldc + j] = acc;
        }
}

static void sgemm_neon_a32(size_t m, size_t n, size_t k, const float *a, size_t lda, const float *b,
                           size_t ldb, float *c, size_t ldc) {
    size_t i = 0;
    for (; i + 4 <= m; i += 4) sgemm_rows_a32(4, n, k, a + i * lda, lda, b, ldb, c + i * ldc, ldc);
    switch (m - i) {
    case 3:
        sgemm_rows_a32(3, n, k, a + i * lda, lda, b, ldb, c + i * ldc, ldc);
        break;
    case 2:
        sgemm_rows_a32(2, n, k, a + i * lda, lda, b, ldb, c + i * ldc, ldc);
        break;
    case 1:
        sgemm_rows_a32(1, n, k, a + i * lda, lda, b, ldb, c + i * ldc, ldc);
        break;
    default:
        break;
    }
}

const xe_kernels xe_kernels_neon_a32 = {"neon-a32", bgemm_neon_a32, pack_neon_a32, sgemm_neon_a32};
