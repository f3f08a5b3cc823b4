/*
 * mst__ref.c - the MST child kernel's portable reference (kernels.h,
 * xe_mst_children_fn; maths in docs/mst.md section 1), and the choice of a
 * set's child kernel by name.
 *
 * Per child, per row: x = sum over its entries of popcount((a[j] & m) ^ v),
 * then d_child = d_parent + D - 2x. Plain C, one row and one entry at a time;
 * every other child kernel must give exactly these integers.
 */
#include "kernels.h"

void xe_mst_children_ref(size_t rows, size_t nchild, const xe_mst_child *child,
                         const xe_mst_entry *ent, const uint32_t *a, size_t lda, int32_t *pc,
                         size_t ldc, size_t out0, size_t pbase) {
    for (size_t r = 0; r < rows; r++) {
        const uint32_t *ar = a + r * lda;
        int32_t *pr = pc + r * ldc;
        for (size_t i = 0; i < nchild; i++) {
            const xe_mst_child *ch = &child[i];
            int32_t x = 0;
            for (uint32_t e = ch->e0; e < ch->e1; e++)
                x += xe_popcount32((ar[ent[e].j] & ent[e].m) ^ ent[e].v);
            pr[out0 + i] = pr[ch->ppos - pbase] + ch->d - 2 * x;
        }
    }
}

/* A whole chunk (kernels.h, xe_mst_chunk_fn): word t of row r read from its
 * segment, the roots' popcounts, then the children as the twin above. */
static uint32_t word_at(const uint32_t *ar, size_t t, size_t seglen, size_t segstride) {
    return ar[t / seglen * segstride + t % seglen];
}

void xe_mst_chunk_ref(size_t rows, const uint32_t *const *arow, size_t segs, size_t seglen,
                      size_t segstride, size_t nchunk, const xe_mst_chunk *chunk,
                      const xe_mst_entry *ent, int32_t *pc, size_t ldc, size_t cbase) {
    const size_t L = segs * seglen;
    for (size_t k = 0; k < nchunk; k++) {
        const xe_mst_chunk *ck = &chunk[k];
        const uint32_t *perm = ck->perm;
        for (size_t r = 0; r < rows; r++) {
            const uint32_t *ar = arow[r];
            int32_t *pr = pc + r * ldc + (ck->c0 - cbase); /* position i in column P(i) */
            for (size_t i = 0; i < ck->nroot; i++) {
                int32_t x = 0;
                for (size_t t = 0; t < L; t++)
                    x += xe_popcount32(word_at(ar, t, seglen, segstride) ^ ck->roots[i * L + t]);
                pr[perm ? perm[i] : i] = x;
            }
            for (size_t i = 0; i < ck->nchild; i++) {
                const xe_mst_child *ch = &ck->child[i];
                const size_t par = ch->ppos - ck->c0, me = ck->nroot + i;
                int32_t x = 0;
                for (uint32_t e = ch->e0; e < ch->e1; e++)
                    x += xe_popcount32((word_at(ar, ent[e].j, seglen, segstride) & ent[e].m) ^
                                       ent[e].v);
                pr[perm ? perm[me] : me] = pr[perm ? perm[par] : par] + ch->d - 2 * x;
            }
        }
    }
}

xe_mst_children_fn xe_mst_children_for(const xe_kernels *k) {
    return k && k->mst_children ? k->mst_children : xe_mst_children_ref;
}
