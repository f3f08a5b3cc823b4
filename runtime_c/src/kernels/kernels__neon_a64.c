/*
 * kernels__neon_a64.c - AArch64 Advanced SIMD kernels (NEON is baseline in ARMv8-A).
 *
 * Binary GEMM maths: with bit 1 = -1 and bit 0 = +1, the product of two signs
 * is -1 exactly where the bits differ, so for n real +-1 pairs
 * dot = n - 2*popcount(a XOR b). The kernel returns d = popcount(a XOR b)
 * summed over the k words; channel padding bits are 0 in both operands and
 * never count.
 *
 * Per 128-bit step (4 words) of one A row against the 8 columns of a packed
 * panel (the reduction of larq compute-engine's aarch64 kernels): 8 EOR,
 * 8 CNT (8-bit popcounts, <= 8 per byte), then a tree of 7 ADDP (pairwise
 * byte adds: <= 16, 32, 64) that leaves column s in bytes 2s and 2s + 1,
 * and one UADALP into a 16-bit accumulator whose lane s is output (row,
 * column s): <= 128 per lane per step. That is 3 operations per 128 binary
 * MACs, one accumulator register per 8 outputs, and an accumulator already
 * in output order (8 consecutive columns of one row: widened, it is stored
 * with two vector stores, no horizontal sums). A 16-bit lane holds 511
 * steps: every XE_A64_BLOCK steps (the last block also takes the k tail)
 * the lanes are widened and stored, or added to what an earlier block
 * stored. Tile: 4 rows x 8 columns = 4 accumulators + 8 panel registers +
 * 1 A register + temporaries. Packed panels (nr = 8, kr = 4) hold each
 * 4-word step of the 8 columns in 128 contiguous bytes (two LD1 of four
 * registers), k padded with zero words to a multiple of 4; A is not padded,
 * so its k tail (k % 4 words) is loaded into a zeroed vector and meets the
 * panel's zero words. A tail of 1 or 2 words (k = 18 for 64 channels x 3x3)
 * is half a step: two rows then share a register (tail_half), which halves
 * its EOR and CNT work.
 *
 * Float GEMM: vectorised across output columns; each lane is one output whose
 * sum runs t = 0..k-1 with one FMLA per term (fused, rounded once), the same
 * sequence as the reference's fmaf loop, hence bit-identical. Tile: 4 rows x
 * 16 columns = 16 accumulators. Column tails (nc < 16) use 4-column vectors,
 * then the scalar fmaf (FMADD).
 */
#include <arm_neon.h>
#include <math.h>

#include "kernels.h"

/* GCC's pre-allocation scheduler hoists all 32 EORs of a 4 x 8 step and then
 * spills the accumulators to the stack inside the loop (a load and a store
 * per row per step); without it the loop keeps every accumulator in a
 * register. The Pi 4/5 cores are out of order, and the post-allocation
 * scheduling pass still runs. Rows go through the tree in interleaved
 * pairs (xor_count8x2) so that an in-order core (Cortex-A53: Pi 3, Zero 2 W)
 * finds independent work between dependent operations: llvm-mca's A53 model
 * gives 0.0309 cycles per binary MAC, against 0.0470 one row at a time and
 * 0.0322 for the former 4x4 kernel. The k loop is unrolled by 2 for GCC
 * only: clang 14 honours the same pragma but spilled with it. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-schedule-insns")
#define XE_UNROLL_2 _Pragma("GCC unroll 2")
#else
#define XE_UNROLL_2
#endif

#define XE_INLINE static inline __attribute__((always_inline))
#define XE_A64_BLOCK 511

/* Words t..t+rem-1 (rem in 1..3) of p as a vector, upper lanes zero. */
XE_INLINE uint32x4_t load_tail(const uint32_t *p, size_t rem) {
    uint32x4_t v = vdupq_n_u32(0);
    v = vld1q_lane_u32(p, v, 0);
    if (rem > 1) v = vld1q_lane_u32(p + 1, v, 1);
    if (rem > 2) v = vld1q_lane_u32(p + 2, v, 2);
    return v;
}

/* One row's 16 bytes against the 8 columns of a panel step: EOR, CNT, then a
 * tree of ADDP so that bytes 2s and 2s + 1 hold column s (each <= 64). */
XE_INLINE uint8x16_t xor_count8(uint8x16_t a, const uint8x16_t b[8]) {
    uint8x16_t p[8];
    for (int s = 0; s < 8; s++) p[s] = vcntq_u8(veorq_u8(a, b[s]));
    const uint8x16_t q0 = vpaddq_u8(p[0], p[1]), q1 = vpaddq_u8(p[2], p[3]);
    const uint8x16_t q2 = vpaddq_u8(p[4], p[5]), q3 = vpaddq_u8(p[6], p[7]);
    return vpaddq_u8(vpaddq_u8(q0, q1), vpaddq_u8(q2, q3));
}

/* The 8 columns of one panel step (64 contiguous bytes per 4 columns). */
XE_INLINE void load_step(const uint32_t *w, uint8x16_t b[8]) {
    const uint8x16x4_t lo = vld1q_u8_x4((const uint8_t *)w);
    const uint8x16x4_t hi = vld1q_u8_x4((const uint8_t *)(w + 16));
    for (int s = 0; s < 4; s++) b[s] = lo.val[s], b[s + 4] = hi.val[s];
}

/* Two rows at once, interleaved: each dependent operation is 2 (tree) to 16
 * (EOR -> CNT) independent ones after its input, for in-order cores. */
XE_INLINE void xor_count8x2(uint8x16_t a0, uint8x16_t a1, const uint8x16_t b[8], uint8x16_t *r0,
                            uint8x16_t *r1) {
    uint8x16_t p[8], q[8];
    for (int s = 0; s < 8; s++) {
        p[s] = veorq_u8(a0, b[s]);
        q[s] = veorq_u8(a1, b[s]);
    }
    for (int s = 0; s < 8; s++) {
        p[s] = vcntq_u8(p[s]);
        q[s] = vcntq_u8(q[s]);
    }
    for (int s = 0; s < 4; s++) {
        p[s] = vpaddq_u8(p[2 * s], p[2 * s + 1]);
        q[s] = vpaddq_u8(q[2 * s], q[2 * s + 1]);
    }
    for (int s = 0; s < 2; s++) {
        p[s] = vpaddq_u8(p[2 * s], p[2 * s + 1]);
        q[s] = vpaddq_u8(q[2 * s], q[2 * s + 1]);
    }
    *r0 = vpaddq_u8(p[0], p[1]);
    *r1 = vpaddq_u8(q[0], q[1]);
}

/* Lane s of acc into c[s] for s < nc (first block: store, later: add). */
XE_INLINE void store_row(int32_t *c, uint16x8_t acc, size_t nc, int first) {
    uint32x4_t lo = vmovl_u16(vget_low_u16(acc)), hi = vmovl_high_u16(acc);
    if (nc == 8) {
        if (!first) {
            lo = vaddq_u32(lo, vreinterpretq_u32_s32(vld1q_s32(c)));
            hi = vaddq_u32(hi, vreinterpretq_u32_s32(vld1q_s32(c + 4)));
        }
        vst1q_s32(c, vreinterpretq_s32_u32(lo));
        vst1q_s32(c + 4, vreinterpretq_s32_u32(hi));
        return;
    }
    uint32_t t[8];
    vst1q_u32(t, lo);
    vst1q_u32(t + 4, hi);
    for (size_t s = 0; s < nc; s++) c[s] = (int32_t)(first ? t[s] : (uint32_t)c[s] + t[s]);
}

/* Words t..t+rem-1 (rem 1 or 2) of p in the low half, zeros above. */
XE_INLINE uint32x2_t load_half(const uint32_t *p, size_t rem) {
    return rem == 2 ? vld1_u32(p) : vset_lane_u32(p[0], vdup_n_u32(0), 0);
}

/* A k tail of rem <= 2 words (half a step): two rows share one register (row
 * r in bytes 0-7, row r + 1 in bytes 8-15) against each column's tail
 * replicated to both halves (LD1R; the panel's zero words fill the 64 bits),
 * so a 4-row tile takes 16 EOR + 16 CNT instead of 32 + 32. The ADDP tree
 * then leaves (column, row) pairs interleaved: after two levels and a UADDLP,
 * lane 2j + h of group g is column 4g + j of row r + h; UZP1/UZP2 of the two
 * groups give each row's 8 columns in lane order, added to its accumulator
 * (<= 64 more per lane, inside the block bound). */
XE_INLINE void tail_half(int mr, size_t rem, const uint32_t *a, size_t lda, const uint32_t *w,
                         uint16x8_t acc[4]) {
    uint8x16_t b[8];
    for (int s = 0; s < 8; s++)
        b[s] = vreinterpretq_u8_u64(vld1q_dup_u64((const uint64_t *)(w + 4 * s)));
    for (int r = 0; r < mr; r += 2) {
        const uint32x2_t hi = r + 1 < mr ? load_half(a + (r + 1) * lda, rem) : vdup_n_u32(0);
        const uint8x16_t av = vreinterpretq_u8_u32(vcombine_u32(load_half(a + r * lda, rem), hi));
        uint16x8_t g[2];
        for (int h = 0; h < 2; h++) {
            uint8x16_t p[4];
            for (int s = 0; s < 4; s++) p[s] = vcntq_u8(veorq_u8(av, b[4 * h + s]));
            g[h] = vpaddlq_u8(vpaddq_u8(vpaddq_u8(p[0], p[1]), vpaddq_u8(p[2], p[3])));
        }
        acc[r] = vaddq_u16(acc[r], vuzp1q_u16(g[0], g[1]));
        if (r + 1 < mr) acc[r + 1] = vaddq_u16(acc[r + 1], vuzp2q_u16(g[0], g[1]));
    }
}

/* One full 16-byte step of MR rows (A at a + r*lda) against a panel step. */
XE_INLINE void full_step(int mr, const uint32_t *a, size_t lda, const uint32_t *w,
                         uint16x8_t acc[4]) {
    uint8x16_t b[8];
    load_step(w, b);
    int r = 0;
    for (; r + 1 < mr; r += 2) {
        uint8x16_t t0, t1;
        xor_count8x2(vreinterpretq_u8_u32(vld1q_u32(a + r * lda)),
                     vreinterpretq_u8_u32(vld1q_u32(a + (r + 1) * lda)), b, &t0, &t1);
        acc[r] = vpadalq_u8(acc[r], t0);
        acc[r + 1] = vpadalq_u8(acc[r + 1], t1);
    }
    if (r < mr)
        acc[r] = vpadalq_u8(acc[r], xor_count8(vreinterpretq_u8_u32(vld1q_u32(a + r * lda)), b));
}

/* The k tail of rem = 1..3 words at a (rows lda apart) against the panel step
 * at w: a whole step with zeroed upper lanes (3 words) or half a step. */
XE_INLINE void tail_step(int mr, size_t rem, const uint32_t *a, size_t lda, const uint32_t *w,
                         uint16x8_t acc[4]) {
    if (rem > 2) {
        uint8x16_t b[8];
        load_step(w, b);
        for (int r = 0; r < mr; r++) {
            const uint8x16_t av = vreinterpretq_u8_u32(load_tail(a + r * lda, rem));
            acc[r] = vpadalq_u8(acc[r], xor_count8(av, b));
        }
    } else if (rem) {
        tail_half(mr, rem, a, lda, w, acc);
    }
}

/* MR <= 4 rows (a compile-time constant at each call) against one packed panel
 * of 8 columns; stores nc <= 8 columns. Blocks of at most XE_A64_BLOCK steps,
 * the last one also taking the k tail (<= 96 bits), so a 16-bit lane gains
 * at most 128 * 511 + 96 = 65504 per block; each block's lanes are widened
 * and stored (first block) or added to c (later blocks, k > 2047 words). */
XE_INLINE void bgemm_tile_a64(int mr, size_t nc, size_t kw, const uint32_t *a, size_t lda,
                              const uint32_t *w, int32_t *c, size_t ldc) {
    const size_t nvec = kw / 4, rem = kw % 4;
    size_t v = 0;
    int first = 1;
    do {
        const size_t end = nvec - v > XE_A64_BLOCK ? v + XE_A64_BLOCK : nvec;
        uint16x8_t acc[4];
        for (int r = 0; r < 4; r++) acc[r] = vdupq_n_u16(0);
        XE_UNROLL_2
        for (; v < end; v++) full_step(mr, a + v * 4, lda, w + v * 32, acc);
        if (end == nvec) tail_step(mr, rem, a + v * 4, lda, w + v * 32, acc);
        for (int r = 0; r < mr; r++) store_row(c + r * ldc, acc[r], nc, first);
        first = 0;
    } while (v < nvec);
}

/* The segmented tile (im2col-free windows, kernels.h): each segment of seglen
 * words at a + g*segstride against its own run of panel steps (seglen
 * rounded up to 4 words, zero padded: xe_bgemm_pack_seg), full steps then a
 * 1-3 word tail as in the plain tile, all into the same 16-bit accumulators;
 * they are widened and stored (or added) before a segment would take a block
 * past XE_A64_BLOCK steps (each step, tail included, adds <= 128 per lane). */
XE_INLINE void bgemm_seg_tile_a64(int mr, size_t nc, size_t segs, size_t seglen, size_t segstride,
                                  const uint32_t *a, size_t lda, const uint32_t *w, int32_t *c,
                                  size_t ldc) {
    const size_t nvec = seglen / 4, rem = seglen % 4, steps = (seglen + 3) / 4;
    uint16x8_t acc[4];
    for (int r = 0; r < 4; r++) acc[r] = vdupq_n_u16(0);
    size_t used = 0;
    int first = 1;
    for (size_t g = 0; g < segs; g++, a += segstride, w += steps * 32) {
        if (used + steps > XE_A64_BLOCK) {
            for (int r = 0; r < mr; r++)
                store_row(c + r * ldc, acc[r], nc, first), acc[r] = vdupq_n_u16(0);
            first = 0, used = 0;
        }
        XE_UNROLL_2
        for (size_t v = 0; v < nvec; v++) full_step(mr, a + v * 4, lda, w + v * 32, acc);
        tail_step(mr, rem, a + nvec * 4, lda, w + nvec * 32, acc);
        used += steps;
    }
    for (int r = 0; r < mr; r++) store_row(c + r * ldc, acc[r], nc, first);
}

/* Consecutive panels of 8 columns, (kw rounded up to 4) * 8 words each. */
XE_INLINE void bgemm_panels_a64(int mr, size_t nc, size_t kw, const uint32_t *a, size_t lda,
                                const uint32_t *w, int32_t *c, size_t ldc) {
    for (; nc > 8; nc -= 8, w += (kw + 3) / 4 * 32, c += 8)
        bgemm_tile_a64(mr, 8, kw, a, lda, w, c, ldc);
    bgemm_tile_a64(mr, nc, kw, a, lda, w, c, ldc);
}

#define XE_BGEMM_A64(MR)                                                                           \
    static void bgemm_##MR##x8_a64(size_t nc, size_t kw, const uint32_t *a, size_t lda,            \
                                   const uint32_t *w, int32_t *c, size_t ldc) {                    \
        bgemm_panels_a64(MR, nc, kw, a, lda, w, c, ldc);                                           \
    }
XE_BGEMM_A64(1)
XE_BGEMM_A64(2)
XE_BGEMM_A64(3)
XE_BGEMM_A64(4)

/* Consecutive panels of 8 columns, segs * (seglen rounded up to 4) * 8 words each. */
#define XE_BGEMM_SEG_A64(MR)                                                                       \
    static void bgemm_seg_##MR##x8_a64(size_t nc, size_t segs, size_t seglen, size_t segstride,    \
                                       const uint32_t *a, size_t lda, const uint32_t *w,           \
                                       int32_t *c, size_t ldc) {                                   \
        const size_t step = segs * ((seglen + 3) / 4) * 32;                                        \
        for (; nc > 8; nc -= 8, w += step, c += 8)                                                 \
            bgemm_seg_tile_a64(MR, 8, segs, seglen, segstride, a, lda, w, c, ldc);                 \
        bgemm_seg_tile_a64(MR, nc, segs, seglen, segstride, a, lda, w, c, ldc);                    \
    }
XE_BGEMM_SEG_A64(1)
XE_BGEMM_SEG_A64(2)
XE_BGEMM_SEG_A64(3)
XE_BGEMM_SEG_A64(4)
/* Sign pack: FCMLT #0 is false for NaN and for -0.0, exactly the contract's
 * x < 0. Lane masks AND per-lane bit weights, ORed over the 8 groups of 4
 * channels of a word, then ADDV (the bits are disjoint, so add = or). */
static void pack_neon_a64(size_t rows, size_t channels, const float *x, size_t ldx, uint32_t *out,
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
                uint32x4_t neg = vcltzq_f32(vld1q_f32(p + 4 * g));
                bits = vorrq_u32(bits, vandq_u32(neg, vshlq_u32(weights, vdupq_n_s32(4 * g))));
            }
            o[w] = vaddvq_u32(bits);
        }
        if (rem) {
            uint32_t word = 0;
            for (unsigned bit = 0; bit < rem; bit++)
                word |= (uint32_t)(xr[full * 32 + bit] < 0.0f) << bit;
            o[full] = word;
        }
    }
}

/* One MR x (4*NV) tile of C, MR <= 4, NV <= 4. */
XE_INLINE void sgemm_tile_a64(int mr, int nv, size_t k, const float *a, size_t lda, const float *b,
                              size_t ldb, float *c, size_t ldc) {
    float32x4_t acc[4][4];
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < nv; v++) acc[r][v] = vdupq_n_f32(0.0f);
    for (size_t t = 0; t < k; t++) {
        float32x4_t bv[4];
        for (int v = 0; v < nv; v++) bv[v] = vld1q_f32(b + t * ldb + 4 * v);
        for (int r = 0; r < mr; r++) {
            const float ar = a[r * lda + t];
            for (int v = 0; v < nv; v++) acc[r][v] = vfmaq_n_f32(acc[r][v], bv[v], ar);
        }
    }
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < nv; v++) vst1q_f32(c + r * ldc + 4 * v, acc[r][v]);
}

/* MR rows against panels of 16 columns; the last (nc <= 16): 4-column
 * vectors, then scalar columns. */
XE_INLINE void sgemm_cols_a64(int mr, size_t nc, size_t k, const float *a, size_t lda,
                              const float *b, size_t ldb, size_t bstep, float *c, size_t ldc) {
    for (; nc > 16; nc -= 16, b += bstep, c += 16) sgemm_tile_a64(mr, 4, k, a, lda, b, ldb, c, ldc);
    switch (nc / 4) {
    case 4:
        sgemm_tile_a64(mr, 4, k, a, lda, b, ldb, c, ldc);
        return;
    case 3:
        sgemm_tile_a64(mr, 3, k, a, lda, b, ldb, c, ldc);
        break;
    case 2:
        sgemm_tile_a64(mr, 2, k, a, lda, b, ldb, c, ldc);
        break;
    case 1:
        sgemm_tile_a64(mr, 1, k, a, lda, b, ldb, c, ldc);
        break;
    default:
        break;
    }
    for (size_t j = nc / 4 * 4; j < nc; j++)
        for (int r = 0; r < mr; r++) {
            float acc = 0.0f;
            for (size_t t = 0; t < k; t++) acc = fmaf(a[r * lda + t], b[t * ldb + j], acc);
            c[r * ldc + j] = acc;
        }
}

#define XE_SGEMM_A64(MR)                                                                           \
    static void sgemm_##MR##x16_a64(size_t nc, size_t k, const float *a, size_t lda,               \
                                    const float *b, size_t ldb, size_t bstep, float *c,            \
                                    size_t ldc) {                                                  \
        sgemm_cols_a64(MR, nc, k, a, lda, b, ldb, bstep, c, ldc);                                  \
    }
XE_SGEMM_A64(1)
XE_SGEMM_A64(2)
XE_SGEMM_A64(3)
XE_SGEMM_A64(4)

const xe_kernels xe_kernels_neon_a64 = {
    "neon-a64",
    {4,
     8,
     4,
     {bgemm_1x8_a64, bgemm_2x8_a64, bgemm_3x8_a64, bgemm_4x8_a64},
     xe_bgemm_pack_panel,
     {bgemm_seg_1x8_a64, bgemm_seg_2x8_a64, bgemm_seg_3x8_a64, bgemm_seg_4x8_a64}},
    {4,
     16,
     1,
     {sgemm_1x16_a64, sgemm_2x16_a64, sgemm_3x16_a64, sgemm_4x16_a64},
     xe_sgemm_pack_panel,
     {NULL}},
    pack_neon_a64,
    NULL, /* pack_abs: the reference's (no NEON version yet) */
    NULL, /* epilogue: the reference's */
    xe_mst_children_neon_a64,
    NULL, /* mst_chunk: xe_bgemm on the roots, then mst_children */
};
