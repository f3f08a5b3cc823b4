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

#define XE_MST_POPCOUNT(v) xe_popcount32(v)
#include "mst_scalar.h"

void xe_mst_children_ref(size_t rows, size_t nchild, const xe_mst_child *child,
                         const xe_mst_entry *ent, const uint32_t *a, size_t lda, int32_t *pc,
                         size_t ldc, size_t out0, size_t pbase) {
    xe_mst_children_scalar(rows, nchild, child, ent, a, lda, pc, ldc, out0, pbase);
}

/* A whole chunk (kernels.h, xe_mst_chunk_fn): word t of row r read from its
 * segment, the roots' popcounts, then the children as the twin above. */
void xe_mst_chunk_ref(size_t rows, const uint32_t *const *arow, size_t segs, size_t seglen,
                      size_t segstride, size_t nchunk, const xe_mst_chunk *chunk,
                      const xe_mst_entry *ent, int32_t *pc, size_t ldc, size_t cbase) {
    xe_mst_chunk_scalar(rows, arow, segs, seglen, segstride, nchunk, chunk, ent, pc, ldc, cbase);
}

xe_mst_children_fn xe_mst_children_for(const xe_kernels *k) {
    return k && k->mst_children ? k->mst_children : xe_mst_children_ref;
}
