/*
 * mst__avx2.c - the MST child kernel of the avx2 set (kernels.h,
 * xe_mst_children_fn), compiled with -mavx2 -mfma -mpopcnt like kernels__avx2.c.
 *
 * The entries of a child touch scattered words of the window, so the work is a
 * gather: a vector over rows needs VPGATHERDD (slow on Zen 1/2) and a vector
 * over entries needs one too. What pays here is the POPCNT instruction (the
 * reference's __builtin_popcount without -mpopcnt is a bit-twiddling sequence)
 * and blocking: four rows share each entry's (j, m, v) load, with four
 * independent sums, so the loop is bound by loads and POPCNT. Integer maths,
 * the reference's values exactly (tests/test_mst_runtime.py, every set).
 */
#include "kernels.h"

#define XE_INLINE static inline __attribute__((always_inline))

XE_INLINE int32_t child_x(const xe_mst_entry *e, const xe_mst_entry *end, const uint32_t *ar) {
    int32_t x = 0;
    for (; e < end; e++) x += __builtin_popcount((ar[e->j] & e->m) ^ e->v);
    return x;
}

void xe_mst_children_avx2(size_t rows, size_t nchild, const xe_mst_child *child,
                          const xe_mst_entry *ent, const uint32_t *a, size_t lda, int32_t *pc,
                          size_t ldc, size_t out0, size_t pbase) {
    size_t r = 0;
    for (; r + 4 <= rows; r += 4) {
        const uint32_t *a0 = a + r * lda, *a1 = a0 + lda, *a2 = a1 + lda, *a3 = a2 + lda;
        int32_t *p0 = pc + r * ldc, *p1 = p0 + ldc, *p2 = p1 + ldc, *p3 = p2 + ldc;
        for (size_t i = 0; i < nchild; i++) {
            const xe_mst_child *ch = &child[i];
            int32_t x0 = 0, x1 = 0, x2 = 0, x3 = 0;
            for (const xe_mst_entry *e = ent + ch->e0, *end = ent + ch->e1; e < end; e++) {
                const uint32_t j = e->j, m = e->m, v = e->v;
                x0 += __builtin_popcount((a0[j] & m) ^ v);
                x1 += __builtin_popcount((a1[j] & m) ^ v);
                x2 += __builtin_popcount((a2[j] & m) ^ v);
                x3 += __builtin_popcount((a3[j] & m) ^ v);
            }
            const size_t pp = ch->ppos - pbase, o = out0 + i;
            p0[o] = p0[pp] + ch->d - 2 * x0;
            p1[o] = p1[pp] + ch->d - 2 * x1;
            p2[o] = p2[pp] + ch->d - 2 * x2;
            p3[o] = p3[pp] + ch->d - 2 * x3;
        }
    }
    for (; r < rows; r++) {
        const uint32_t *ar = a + r * lda;
        int32_t *pr = pc + r * ldc;
        for (size_t i = 0; i < nchild; i++) {
            const xe_mst_child *ch = &child[i];
            pr[out0 + i] =
                pr[ch->ppos - pbase] + ch->d - 2 * child_x(ent + ch->e0, ent + ch->e1, ar);
        }
    }
}
