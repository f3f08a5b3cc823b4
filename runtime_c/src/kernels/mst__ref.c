/*
 * mst__ref.c - the MST child kernel's portable reference (kernels.h,
 * xe_mst_children_fn; maths in docs/mst.md section 1), and the choice of a
 * set's child kernel by name.
 *
 * Per child, per row: x = sum over its entries of popcount((a[j] & m) ^ v),
 * then d_child = d_parent + D - 2x. Plain C, one row and one entry at a time;
 * every other child kernel must give exactly these integers.
 */
#include <string.h>

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

#if XE_ARCH_X86
void xe_mst_children_avx2(size_t rows, size_t nchild, const xe_mst_child *child,
                          const xe_mst_entry *ent, const uint32_t *a, size_t lda, int32_t *pc,
                          size_t ldc, size_t out0, size_t pbase);
#endif
#if XE_ARCH_AARCH64
void xe_mst_children_neon_a64(size_t rows, size_t nchild, const xe_mst_child *child,
                              const xe_mst_entry *ent, const uint32_t *a, size_t lda, int32_t *pc,
                              size_t ldc, size_t out0, size_t pbase);
#endif

xe_mst_children_fn xe_mst_children_for(const xe_kernels *k) {
#if XE_ARCH_X86
    /* avx512 CPUs run the avx2 child kernel (AVX2 + POPCNT are a subset). */
    if (k && (strcmp(k->name, "avx2") == 0 || strcmp(k->name, "avx512") == 0))
        return xe_mst_children_avx2;
#endif
#if XE_ARCH_AARCH64
    if (k && strcmp(k->name, "neon-a64") == 0) return xe_mst_children_neon_a64;
#endif
    (void)k;
    return xe_mst_children_ref;
}
