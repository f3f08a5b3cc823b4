/*
 * test_kernels_mst.c - every set's MST child kernel (kernels.h,
 * xe_mst_children_fn) against the portable reference, exact integer equality,
 * over random trees: rows 1..37 (block tails), windows of 1..600 words (over the
 * avx2 kernel's transpose limit), 1..300 children (over its column limit),
 * parents among roots and earlier children, 0..40 entries per child (over 31,
 * the byte-sum limit; all-ones entries that fill every byte), output and parent offsets (out0,
 * pbase) and padded leading dimensions.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

#define XE_TEST_RNG_SEED 0x9E3779B97F4A7C15ull
#include "xe_test_rng.h"

/* One random problem on set fn; returns 0 when it equals the reference. */
static int one_case(xe_mst_children_fn fn, size_t rows, size_t L, size_t nroot, size_t nchild,
                    size_t max_ent, int full) {
    const size_t pbase = rnd32() % 100, lead = rnd32() % 3, ncols = lead + nroot + nchild;
    const size_t lda = L + rnd32() % 4, ldc = ncols + rnd32() % 4, out0 = lead + nroot;
    xe_mst_child *child = malloc(nchild * sizeof *child);
    xe_mst_entry *ent = malloc((nchild * max_ent + 1) * sizeof *ent);
    uint32_t *a = malloc(rows * lda * sizeof *a);
    int32_t *want = malloc(rows * ldc * sizeof *want), *got = malloc(rows * ldc * sizeof *got);
    size_t ne = 0;
    for (size_t i = 0; i < rows * lda; i++) a[i] = full ? 0xFFFFFFFFu : rnd32();
    for (size_t i = 0; i < rows * ldc; i++) want[i] = got[i] = (int32_t)(rnd32() % 5000);
    for (size_t q = 0; q < nchild; q++) {
        const size_t k = full ? max_ent : max_ent ? rnd32() % (max_ent + 1) : 0;
        const size_t par = lead + rnd32() % (nroot + q); /* a root or an earlier child */
        child[q].ppos = (uint32_t)(par + pbase);
        child[q].d = (int32_t)(rnd32() % 3000);
        child[q].e0 = (uint32_t)ne;
        for (size_t e = 0; e < k; e++, ne++) {
            const uint32_t m = full ? 0xFFFFFFFFu : rnd32() | 1u << (rnd32() % 32);
            ent[ne] = (xe_mst_entry){(uint32_t)(rnd32() % L), m, full ? 0 : rnd32() & m};
        }
        child[q].e1 = (uint32_t)ne;
    }
    xe_mst_children_ref(rows, nchild, child, ent, a, lda, want, ldc, out0, pbase);
    fn(rows, nchild, child, ent, a, lda, got, ldc, out0, pbase);
    const int bad = memcmp(want, got, rows * ldc * sizeof *got) != 0;
    free(child);
    free(ent);
    free(a);
    free(want);
    free(got);
    return bad;
}

int main(void) {
    static const char *const sets[] = {
#define XE_KERNEL_SET(id, name, arch, features) name,
#include "kernel_sets.inc"
#undef XE_KERNEL_SET
    };
    static const size_t Ls[] = {1, 5, 18, 72, 512, 600};
    static const size_t kids[] = {1, 7, 63, 255, 300};
    int fails = 0, tested = 0;
    for (size_t s = 0; s < sizeof sets / sizeof sets[0]; s++) {
        const xe_kernels *k = xe_kernels_find(sets[s]);
        if (!k) continue;
        const xe_mst_children_fn fn = xe_mst_children_for(k);
        tested++;
        for (size_t li = 0; li < sizeof Ls / sizeof Ls[0]; li++)
            for (size_t ki = 0; ki < sizeof kids / sizeof kids[0]; ki++)
                for (size_t rows = 1; rows <= 37; rows += 3) {
                    const size_t nroot = 1 + rnd32() % 4, max_ent = (rnd32() % 2) ? 3 : 40;
                    if (one_case(fn, rows, Ls[li], nroot, kids[ki], max_ent, 0)) {
                        fprintf(stderr, "FAIL %s: rows %zu L %zu children %zu entries <= %zu\n",
                                sets[s], rows, Ls[li], kids[ki], max_ent);
                        fails++;
                    }
                }
        if (one_case(fn, 16, 9, 2, 5, 0, 0)) { /* children without entries: D only */
            fprintf(stderr, "FAIL %s: children without entries\n", sets[s]);
            fails++;
        }
        /* every entry counts 32 (8 per byte): the byte sums' limit, 31, 32, 62, 63 entries */
        for (size_t n = 30; n <= 64; n++)
            if (one_case(fn, 24, 40, 1, 3, n, 1)) {
                fprintf(stderr, "FAIL %s: %zu all-ones entries\n", sets[s], n);
                fails++;
            }
    }
    printf("mst child kernels: %d sets, %d failures\n", tested, fails);
    return fails != 0 || tested == 0;
}
