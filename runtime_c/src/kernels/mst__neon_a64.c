/*
 * mst__neon_a64.c - the MST child kernel of the neon-a64 set (kernels.h,
 * xe_mst_children_fn), the avx2 kernel's scheme at four rows: the block's window
 * words are transposed once into at[j][4] and the chunk's popcount columns into
 * pt[c][4], so each entry (j, m, v) is one 128-bit load, AND, XOR and CNT for
 * four rows, summed in bytes (at most 8 per entry: 31 entries fit a byte) and
 * widened once per child (UADDLP twice). Leftover rows, windows over AT_MAX
 * words and chunks over PT_MAX columns take the reference's scalar loop. Integer
 * maths, the reference's values exactly (runtime_c/tests/test_kernels_mst.c).
 */
#include <arm_neon.h>

#include "kernels.h"

#define AT_MAX 512 /* window words of the 4-row transpose (8 KiB on the stack) */
#define PT_MAX 256 /* popcount columns of the 4-row transpose (4 KiB) */

static void block4(size_t nchild, const xe_mst_child *child, const xe_mst_entry *ent,
                   const uint32_t *a, size_t lda, size_t L, int32_t *pc, size_t ldc, size_t out0,
                   size_t pbase, size_t cmin, uint32_t *at, int32_t *pt) {
    for (size_t j = 0; j < L; j++)
        for (size_t i = 0; i < 4; i++) at[j * 4 + i] = a[i * lda + j];
    for (size_t c = cmin; c < out0; c++)
        for (size_t i = 0; i < 4; i++) pt[(c - cmin) * 4 + i] = pc[i * ldc + c];
    for (size_t q = 0; q < nchild; q++) {
        const xe_mst_child *ch = &child[q];
        uint32x4_t acc = vdupq_n_u32(0);
        uint8x16_t bytes = vdupq_n_u8(0);
        unsigned n = 0;
        for (uint32_t e = ch->e0; e < ch->e1; e++) {
            const uint32x4_t w = vld1q_u32(at + ent[e].j * 4);
            const uint32x4_t x =
                veorq_u32(vandq_u32(w, vdupq_n_u32(ent[e].m)), vdupq_n_u32(ent[e].v));
            bytes = vaddq_u8(bytes, vcntq_u8(vreinterpretq_u8_u32(x)));
            if (++n == 31) {
                acc = vaddq_u32(acc, vpaddlq_u16(vpaddlq_u8(bytes)));
                bytes = vdupq_n_u8(0);
                n = 0;
            }
        }
        acc = vaddq_u32(acc, vpaddlq_u16(vpaddlq_u8(bytes)));
        const int32x4_t pv = vld1q_s32(pt + (ch->ppos - pbase - cmin) * 4);
        const int32x4_t x2 = vreinterpretq_s32_u32(vshlq_n_u32(acc, 1));
        vst1q_s32(pt + (out0 + q - cmin) * 4, vsubq_s32(vaddq_s32(pv, vdupq_n_s32(ch->d)), x2));
    }
    for (size_t q = 0; q < nchild; q++)
        for (size_t i = 0; i < 4; i++) pc[i * ldc + out0 + q] = pt[(out0 + q - cmin) * 4 + i];
}

void xe_mst_children_neon_a64(size_t rows, size_t nchild, const xe_mst_child *child,
                              const xe_mst_entry *ent, const uint32_t *a, size_t lda, int32_t *pc,
                              size_t ldc, size_t out0, size_t pbase) {
    size_t r = 0, cmin = out0, L = 0;
    for (size_t q = 0; q < nchild; q++) {
        const size_t pp = child[q].ppos - pbase;
        if (pp < cmin) cmin = pp;
        for (uint32_t e = child[q].e0; e < child[q].e1; e++)
            if (ent[e].j + (size_t)1 > L) L = ent[e].j + (size_t)1;
    }
    if (nchild && L <= AT_MAX && out0 + nchild - cmin <= PT_MAX) {
        uint32_t at[AT_MAX * 4] __attribute__((aligned(16)));
        int32_t pt[PT_MAX * 4] __attribute__((aligned(16)));
        for (; r + 4 <= rows; r += 4)
            block4(nchild, child, ent, a + r * lda, lda, L, pc + r * ldc, ldc, out0, pbase, cmin,
                   at, pt);
    }
    if (r < rows)
        xe_mst_children_ref(rows - r, nchild, child, ent, a + r * lda, lda, pc + r * ldc, ldc, out0,
                            pbase);
}
