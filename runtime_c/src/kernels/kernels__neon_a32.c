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
 * per byte), VADD.I8 into a byte accumulator: 3 operations per 128 binary
 * MACs, the fewest NEON allows (AArch64's pairwise-add tree, which
 * kernels__neon_a64.c uses, needs ADDP on Q registers; ARMv7's VPADD.I8 works
 * on D registers only, so folding columns would cost more operations than it
 * saves). A byte lane holds 255/8 = 31 steps, so every XE_A32_BLOCK steps
 * (the last block also takes the k tail) each row's 4 byte accumulators are
 * folded into one vector of its 4 column totals (VPADDL.U8, then VPADD.I16
 * across halves and columns), added to 32-bit sums and stored at the end
 * with one vector store. VPADAL.U8 into 16-bit lanes would need no blocks,
 * but GCC then copies every tied accumulator each iteration (8 VORRs per 30
 * instructions). ARMv7 has 16 Q registers, so the tile is 2 rows x 4
 * columns: 8 accumulators + 2 A + 2 B operands + 2 temporaries. One step
 * is 2 A loads and 2 B loads of 32 bytes (VLD1 of four D registers), all
 * post-incremented, + 24 operations + 2 loop instructions: 30 instructions,
 * 34 micro-ops, within Cortex-A72's 3 a cycle while its two NEON pipes take
 * the 24 operations in 12 cycles (llvm-mca, tools/neon_mca.py). Packed
 * panels (nr = 4, kr = 4) hold each 4-word step of the 4 columns in 64
 * contiguous bytes, k padded with zero words to a multiple of 4; A is not
 * padded, so its k tail (k % 4 words) is loaded lane by lane into a zeroed
 * vector and meets the panel's zero words.
 *
 * Float GEMM: vectorised across output columns; each lane is one output whose
 * sum runs t = 0..k-1 with one VFMA.F32 per term (VFPv4: fused, rounded
 * once), the same sequence as the reference's fmaf loop, hence bit-identical.
 * Tile: 4 rows x 8 columns = 8 accumulators. Column tails (nc < 8) use one
 * 4-column vector, then the scalar fmaf (VFMA.F32 on S registers).
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

/* Two columns of a panel step (32 bytes) with one VLD1 of four D registers,
 * p advanced past them: one load and one address micro-op where two VLD1 of
 * a Q register take two of each. GCC 12's arm_neon.h has no vld1q_u8_x2 for
 * AArch32, hence the asm (%h prints the register list); other compilers get
 * two loads. */
XE_INLINE uint8x16x2_t load2_post(const uint32_t **p) {
    uint8x16x2_t v;
#if defined(__GNUC__) && !defined(__clang__)
    __asm__("vld1.32 %h0, [%1]!" : "=w"(v), "+r"(*p) : "m"(*(const uint32_t(*)[8]) * p));
#else
    v.val[0] = vreinterpretq_u8_u32(vld1q_u32(*p));
    v.val[1] = vreinterpretq_u8_u32(vld1q_u32(*p + 4));
    *p += 8;
#endif
    return v;
}

/* The 4 byte accumulators of one row folded to one vector of 4 column totals
 * (lane s = column s): VPADDL.U8 (<= 510 per 16-bit lane), then pairwise adds
 * across the D halves and across columns (<= 4080), widened to 32 bits. With
 * a half-step tail (tail != NULL) the 8 bytes of tail[s] belonging to this
 * row are added pairwise into column s's 4 lanes first (VPADAL.U8, <= 16 a
 * lane more). */
XE_INLINE uint32x4_t fold_row(const uint8x16_t acc[4], const uint8x8_t *tail) {
    uint16x4_t h[4];
    for (int s = 0; s < 4; s++) {
        const uint16x8_t p = vpaddlq_u8(acc[s]);
        h[s] = vpadd_u16(vget_low_u16(p), vget_high_u16(p));
        if (tail) h[s] = vpadal_u8(h[s], tail[s]);
    }
    return vmovl_u16(vpadd_u16(vpadd_u16(h[0], h[1]), vpadd_u16(h[2], h[3])));
}

/* One 4-word step of MR rows against the panel's 4 columns at *w (advanced):
 * VEOR, VCNT.8 and, unless `first`, VADD.I8 into the byte accumulators; the
 * block's first step stores its counts instead (no zeroing, no add). */
XE_INLINE void step_a32(int mr, int first, const uint32_t **ap, const uint32_t **w,
                        uint8x16_t acc8[2][4]) {
    uint8x16_t av[2];
    for (int r = 0; r < mr; r++) {
        av[r] = vreinterpretq_u8_u32(vld1q_u32(ap[r]));
        ap[r] += 4;
    }
    for (int h = 0; h < 2; h++) {
        const uint8x16x2_t bv = load2_post(w);
        for (int s = 0; s < 2; s++)
            for (int r = 0; r < mr; r++) {
                const uint8x16_t c = vcntq_u8(veorq_u8(av[r], bv.val[s]));
                acc8[r][2 * h + s] = first ? c : vaddq_u8(acc8[r][2 * h + s], c);
            }
    }
}

/* MR rows (<= 2, a compile-time constant at each call) against one packed
 * panel; stores nc <= 4 columns. Pointers advance by post-increment loads
 * (VLD1 [rN]!), which keeps the step at 6 loads + 24 operations + 2 loop
 * instructions: Cortex-A72 decodes 3 instructions a cycle, so address
 * arithmetic in the loop would cost cycles. A k tail of 1-2 words with two
 * rows is half a step: both rows' words in one register (row 0 low, row 1
 * high), each column's first two words loaded into both halves (VLD1.64
 * dup), 4 x (VEOR, VCNT) and the bytes folded per row (fold_row): 8
 * operations where two rows of a full tail step take 24 (the 56x56x64 layer,
 * k = 18 words, has one such tail per tile). */
XE_INLINE void bgemm_tile_a32(int mr, size_t nc, size_t k, const uint32_t *a, size_t lda,
                              const uint32_t *w, int32_t *c, size_t ldc) {
    uint32x4_t sum[2] = {vdupq_n_u32(0), vdupq_n_u32(0)};
    const uint32_t *ap[2] = {a, a + lda};
    size_t nvec = k / 4, rem = k % 4, v = 0;
    const int half_tail = mr == 2 && rem > 0 && rem <= 2;
    /* Blocks of at most XE_A32_BLOCK steps; the last block also takes the tail,
     * so a block adds at most 8 * (XE_A32_BLOCK + 1) <= 255 to a byte lane. */
    do {
        size_t n = nvec - v > XE_A32_BLOCK ? XE_A32_BLOCK : nvec - v;
        uint8x16_t acc8[2][4];
        v += n;
        if (n > 0) {
            step_a32(mr, 1, ap, &w, acc8);
            n--;
        } else {
            for (int r = 0; r < mr; r++)
                for (int s = 0; s < 4; s++) acc8[r][s] = vdupq_n_u8(0);
        }
        for (; n > 0; n--) step_a32(mr, 0, ap, &w, acc8);
        uint8x8_t tail[2][4];
        const int last = v == nvec && rem;
        if (last && half_tail) {
            uint32x2_t lo = vdup_n_u32(0), hi = vdup_n_u32(0);
            lo = vld1_lane_u32(ap[0], lo, 0);
            hi = vld1_lane_u32(ap[1], hi, 0);
            if (rem > 1) {
                lo = vld1_lane_u32(ap[0] + 1, lo, 1);
                hi = vld1_lane_u32(ap[1] + 1, hi, 1);
            }
            const uint8x16_t pair = vreinterpretq_u8_u32(vcombine_u32(lo, hi));
            for (int s = 0; s < 4; s++) {
                const uint8x16_t bv = vreinterpretq_u8_u64(
                    vld1q_dup_u64((const uint64_t *)(const void *)(w + s * 4)));
                const uint8x16_t t = vcntq_u8(veorq_u8(pair, bv));
                tail[0][s] = vget_low_u8(t);
                tail[1][s] = vget_high_u8(t);
            }
        } else if (last) {
            uint8x16_t av[2];
            for (int r = 0; r < mr; r++) av[r] = vreinterpretq_u8_u32(load_tail(ap[r], rem));
            for (int s = 0; s < 4; s++) {
                uint8x16_t bv = vreinterpretq_u8_u32(vld1q_u32(w + s * 4));
                for (int r = 0; r < mr; r++)
                    acc8[r][s] = vaddq_u8(acc8[r][s], vcntq_u8(veorq_u8(av[r], bv)));
            }
        }
        for (int r = 0; r < mr; r++)
            sum[r] = vaddq_u32(sum[r], fold_row(acc8[r], last && half_tail ? tail[r] : NULL));
    } while (v < nvec);
    for (int r = 0; r < mr; r++) {
        if (nc == 4) { /* the full panel: one vector store */
            vst1q_s32(c + r * ldc, vreinterpretq_s32_u32(sum[r]));
        } else {
            uint32_t t[4];
            vst1q_u32(t, sum[r]);
            for (size_t s = 0; s < nc; s++) c[r * ldc + s] = (int32_t)t[s];
        }
    }
}

/* Consecutive panels of 4 columns, (kw rounded up to 4) * 4 words each. */
XE_INLINE void bgemm_panels_a32(int mr, size_t nc, size_t kw, const uint32_t *a, size_t lda,
                                const uint32_t *w, int32_t *c, size_t ldc) {
    for (; nc > 4; nc -= 4, w += (kw + 3) / 4 * 16, c += 4)
        bgemm_tile_a32(mr, 4, kw, a, lda, w, c, ldc);
    bgemm_tile_a32(mr, nc, kw, a, lda, w, c, ldc);
}

static void bgemm_2x4_a32(size_t nc, size_t kw, const uint32_t *a, size_t lda, const uint32_t *w,
                          int32_t *c, size_t ldc) {
    bgemm_panels_a32(2, nc, kw, a, lda, w, c, ldc);
}

static void bgemm_1x4_a32(size_t nc, size_t kw, const uint32_t *a, size_t lda, const uint32_t *w,
                          int32_t *c, size_t ldc) {
    bgemm_panels_a32(1, nc, kw, a, lda, w, c, ldc);
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

/* MR rows against panels of 8 columns; the last (nc <= 8): a 4-column
 * vector, then scalar columns. */
XE_INLINE void sgemm_cols_a32(int mr, size_t nc, size_t k, const float *a, size_t lda,
                              const float *b, size_t ldb, size_t bstep, float *c, size_t ldc) {
    for (; nc > 8; nc -= 8, b += bstep, c += 8) sgemm_tile_a32(mr, 2, k, a, lda, b, ldb, c, ldc);
    if (nc == 8) {
        sgemm_tile_a32(mr, 2, k, a, lda, b, ldb, c, ldc);
        return;
    }
    if (nc >= 4) sgemm_tile_a32(mr, 1, k, a, lda, b, ldb, c, ldc);
    for (size_t j = nc / 4 * 4; j < nc; j++)
        for (int r = 0; r < mr; r++) {
            float acc = 0.0f;
            for (size_t t = 0; t < k; t++) acc = fmaf(a[r * lda + t], b[t * ldb + j], acc);
            c[r * ldc + j] = acc;
        }
}

#define XE_SGEMM_A32(MR)                                                                           \
    static void sgemm_##MR##x8_a32(size_t nc, size_t k, const float *a, size_t lda,                \
                                   const float *b, size_t ldb, size_t bstep, float *c,             \
                                   size_t ldc) {                                                   \
        sgemm_cols_a32(MR, nc, k, a, lda, b, ldb, bstep, c, ldc);                                  \
    }
XE_SGEMM_A32(1)
XE_SGEMM_A32(2)
XE_SGEMM_A32(3)
XE_SGEMM_A32(4)

const xe_kernels xe_kernels_neon_a32 = {
    "neon-a32",
    {2, 4, 4, {bgemm_1x4_a32, bgemm_2x4_a32}, xe_bgemm_pack_panel, {NULL}}, /* kr 4: no segmented
                                                                               kernels */
    {4,
     8,
     1,
     {sgemm_1x8_a32, sgemm_2x8_a32, sgemm_3x8_a32, sgemm_4x8_a32},
     xe_sgemm_pack_panel,
     {NULL}},
    pack_neon_a32,
    NULL, /* pack_abs: the reference's (no NEON version yet) */
    NULL, /* epilogue: the reference's */
    xe_mst_children_neon_a32,
    NULL, /* mst_chunk: xe_bgemm on the roots, then mst_children */
};
