/*
 * mst_scalar.h - the MST kernels' plain loops (kernels.h: xe_mst_children_fn,
 * xe_mst_chunk_fn; maths in docs/mst.md section 1), one row and one entry at a
 * time, for the reference twins (mst__ref.c) and the scalar fallbacks of SIMD
 * sets. The including file defines XE_MST_POPCOUNT(v) first: the portable
 * xe_popcount32 in the reference, the hardware instruction where the file is
 * compiled for it. Every child kernel must give exactly these integers.
 */
#ifndef XE_MST_SCALAR_H
#define XE_MST_SCALAR_H

#include "kernels.h"

#ifndef XE_MST_POPCOUNT
#error "define XE_MST_POPCOUNT(v) before including mst_scalar.h"
#endif

/* Per child, per row: x = sum over its entries of popcount((a[j] & m) ^ v),
 * then d_child = d_parent + D - 2x. */
static inline void xe_mst_children_scalar(size_t rows, size_t nchild, const xe_mst_child *child,
                                          const xe_mst_entry *ent, const uint32_t *a, size_t lda,
                                          int32_t *pc, size_t ldc, size_t out0, size_t pbase) {
    for (size_t r = 0; r < rows; r++) {
        const uint32_t *ar = a + r * lda;
        int32_t *pr = pc + r * ldc;
        for (size_t i = 0; i < nchild; i++) {
            const xe_mst_child *ch = &child[i];
            int32_t x = 0;
            for (uint32_t e = ch->e0; e < ch->e1; e++)
                x += XE_MST_POPCOUNT((ar[ent[e].j] & ent[e].m) ^ ent[e].v);
            pr[out0 + i] = pr[ch->ppos - pbase] + ch->d - 2 * x;
        }
    }
}

/* A whole chunk: word t of row r read from its segment, the roots'
 * popcounts, then the children as above; position i lands in column P(i). */
static inline void xe_mst_chunk_scalar(size_t rows, const uint32_t *const *arow, size_t segs,
                                       size_t seglen, size_t segstride, size_t nchunk,
                                       const xe_mst_chunk *chunk, const xe_mst_entry *ent,
                                       int32_t *pc, size_t ldc, size_t cbase) {
    const size_t L = segs * seglen;
    for (size_t k = 0; k < nchunk; k++) {
        const xe_mst_chunk *ck = &chunk[k];
        const uint32_t *perm = ck->perm;
        for (size_t r = 0; r < rows; r++) {
            const uint32_t *ar = arow[r];
            int32_t *pr = pc + r * ldc + (ck->c0 - cbase);
            for (size_t i = 0; i < ck->nroot; i++) {
                const uint32_t *w = ck->roots + i * L;
                int32_t x = 0;
                for (size_t g = 0, t = 0; g < segs; g++)
                    for (size_t u = 0; u < seglen; u++, t++)
                        x += XE_MST_POPCOUNT(ar[g * segstride + u] ^ w[t]);
                pr[perm ? perm[i] : i] = x;
            }
            for (size_t i = 0; i < ck->nchild; i++) {
                const xe_mst_child *ch = &ck->child[i];
                const size_t par = ch->ppos - ck->c0, me = ck->nroot + i;
                int32_t x = 0;
                for (uint32_t e = ch->e0; e < ch->e1; e++) {
                    const size_t j = ent[e].j;
                    x += XE_MST_POPCOUNT((ar[j / seglen * segstride + j % seglen] & ent[e].m) ^
                                         ent[e].v);
                }
                pr[perm ? perm[me] : me] = pr[perm ? perm[par] : par] + ch->d - 2 * x;
            }
        }
    }
}

#endif
