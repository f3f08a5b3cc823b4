/*
 * test_kernels_mst.c - every set's MST child kernel (kernels.h,
 * xe_mst_children_fn) and whole-chunk kernel (xe_mst_chunk_fn), exact
 * integer equality, in two parts.
 *
 * 1. The child kernel against the portable reference over random trees and
 *    pure chains (each child's parent the child before it): rows 1..37 (the
 *    16-, 8- and 4-row blocks' tails), windows of 1..600 words (over the vector
 *    kernels' transpose limit, 512), 1..300 children (over their column limit,
 *    256), parents among roots and earlier children, 0..40 entries per child
 *    (over 31, the byte-sum limit; all-ones entries that fill every byte),
 *    output and parent offsets (out0, pbase) and padded leading dimensions.
 *    1b. The reference twin xe_mst_chunk_ref and every set's chunk kernel
 *    against this file's own composition (chunk_battery).
 * 2. The op through the public API: a bconv2d_mst model (params written from
 *    docs/format.md by xe_test_model.h, trees built here, not by the tree
 *    builder) against the same filters as a plain bconv2d model, output bytes
 *    equal, on every kernel set this CPU runs and 1-4 threads. Trees: a pure
 *    chain of depth OC-1 (channel c's parent is c-1, one chunk), random trees
 *    (chunks of 64 and 16), D = 0 duplicates and D = K complements; OC 2, 33,
 *    37, 65, 70, 200 and 300 (a chain past the column limit); input channels
 *    40 (channel-padding bits) and 64; stride 1 and 2; zero and +1 padding;
 *    K on and off; ReLU; bit outputs (decoded by a 1x1 bconv2d so that every
 *    bit reaches the float output).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "xe_test_model.h"

#define XE_TEST_RNG_SEED 0x9E3779B97F4A7C15ull
#include "xe_test_rng.h"

/* One random problem on set fn; returns 0 when it equals the reference.
 * chain: child q's parent is child q-1 (child 0's a root), depth nchild. */
static int one_case(xe_mst_children_fn fn, size_t rows, size_t L, size_t nroot, size_t nchild,
                    size_t max_ent, int full, int chain) {
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
        /* a root or an earlier child */
        const size_t par =
            chain ? (q ? out0 + q - 1 : lead + rnd32() % nroot) : lead + rnd32() % (nroot + q);
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

/* One random whole-chunk problem (kernels.h, xe_mst_chunk_fn) on fn: nchunk
 * chunks side by side in the columns (chunk k with nroot or, if 0, 1-9 roots,
 * and nchild children), the window in segs segments of seglen words
 * segstride apart (segs 1: plain rows), the rows at scrambled addresses;
 * returns 0 when it equals this test's own composition: the rows gathered,
 * the roots' popcounts by a plain loop, the children by xe_mst_children_ref
 * in position order, then each position moved to its column perm[i] (or i). */
static int one_chunk_case(xe_mst_chunk_fn fn, size_t rows, size_t segs, size_t seglen,
                          size_t nchunk, size_t nroot, size_t nchild, size_t max_ent, int use_perm,
                          int chain) {
    const size_t L = segs * seglen, segstride = seglen + rnd32() % 5, lead = rnd32() % 3;
    const size_t cbase = rnd32() % 100, lda = (segs - 1) * segstride + seglen + rnd32() % 4;
    xe_mst_chunk ck[4];
    size_t nr[4], np[4], ncols = lead, ne = 0;
    for (size_t k = 0; k < nchunk; k++) {
        nr[k] = nroot ? nroot : 1 + rnd32() % 9;
        np[k] = nr[k] + nchild;
        ncols += np[k];
    }
    const size_t ldc = ncols + rnd32() % 4;
    xe_mst_child *child = malloc((nchunk * nchild + 1) * sizeof *child);
    xe_mst_entry *ent = malloc((nchunk * nchild * max_ent + 1) * sizeof *ent);
    uint32_t *a = malloc((rows * lda + 1) * sizeof *a), *g = malloc((rows * L + 1) * sizeof *g);
    uint32_t *roots = malloc((nchunk * 9 * L + 1) * sizeof *roots);
    uint32_t *perm = malloc((nchunk * (9 + nchild) + 1) * 4);
    int32_t *want = malloc(rows * ldc * sizeof *want), *got = malloc(rows * ldc * sizeof *got);
    int32_t *pos = malloc((rows * (9 + nchild) + 1) * sizeof *pos);
    const uint32_t **arow = malloc(rows * sizeof *arow);
    for (size_t i = 0; i < rows * lda; i++) a[i] = rnd32();
    for (size_t i = 0; i < nchunk * 9 * L; i++) roots[i] = rnd32();
    for (size_t i = 0; i < rows * ldc; i++) want[i] = got[i] = (int32_t)(rnd32() % 5000);
    for (size_t r = 0; r < rows; r++) /* the rows in a scrambled order of the slots */
        arow[r] = a + (rows - 1 - (r + rows / 2) % rows) * lda;
    for (size_t r = 0; r < rows; r++)
        for (size_t t = 0; t < L; t++) g[r * L + t] = arow[r][t / seglen * segstride + t % seglen];
    for (size_t k = 0, col = lead; k < nchunk; col += np[k], k++) {
        uint32_t *pk = perm + k * (9 + nchild);
        xe_mst_child *chk = child + k * nchild;
        ck[k] = (xe_mst_chunk){(uint32_t)nr[k],      (uint32_t)nchild, roots + k * 9 * L, chk,
                               use_perm ? pk : NULL, cbase + col};
        for (size_t i = 0; i < np[k]; i++) pk[i] = (uint32_t)i;
        for (size_t i = np[k]; use_perm && i > 1; i--) {
            const size_t q = rnd32() % i;
            const uint32_t t = pk[i - 1];
            pk[i - 1] = pk[q];
            pk[q] = t;
        }
        for (size_t q = 0; q < nchild; q++) {
            const size_t n = max_ent ? rnd32() % (max_ent + 1) : 0;
            const size_t par = chain && q ? nr[k] + q - 1 : rnd32() % (nr[k] + q);
            chk[q] = (xe_mst_child){(uint32_t)(ck[k].c0 + par), (int32_t)(rnd32() % 3000),
                                    (uint32_t)ne, 0};
            for (size_t e = 0; e < n; e++, ne++) {
                const uint32_t m = rnd32() | 1u << (rnd32() % 32);
                ent[ne] = (xe_mst_entry){(uint32_t)(rnd32() % L), m, rnd32() & m};
            }
            chk[q].e1 = (uint32_t)ne;
        }
        for (size_t r = 0; r < rows; r++)
            for (size_t i = 0; i < nr[k]; i++) {
                int32_t x = 0;
                for (size_t t = 0; t < L; t++)
                    x += xe_popcount32(g[r * L + t] ^ ck[k].roots[i * L + t]);
                pos[r * np[k] + i] = x;
            }
        /* children in position order: parent positions ppos - c0 */
        xe_mst_children_ref(rows, nchild, chk, ent, g, L, pos, np[k], nr[k], ck[k].c0);
        for (size_t r = 0; r < rows; r++)
            for (size_t i = 0; i < np[k]; i++) want[r * ldc + col + pk[i]] = pos[r * np[k] + i];
    }
    fn(rows, arow, segs, seglen, segstride, nchunk, ck, ent, got, ldc, cbase);
    const int bad = memcmp(want, got, rows * ldc * sizeof *got) != 0;
    free(child);
    free(ent);
    free(a);
    free(g);
    free(roots);
    free(perm);
    free(want);
    free(got);
    free(pos);
    free(arow);
    return bad;
}

static const char *const g_sets[] = {
#define XE_KERNEL_SET(id, name, arch, features) name,
#include "kernel_sets.inc"
#undef XE_KERNEL_SET
};
#define N_SETS (sizeof g_sets / sizeof g_sets[0])

/* Part 1: every runnable set's kernel against the reference. */
static void kernel_battery(int *tested) {
    static const size_t Ls[] = {1, 5, 18, 72, 512, 600};
    static const size_t kids[] = {1, 7, 63, 255, 300};
    for (size_t s = 0; s < N_SETS; s++) {
        const xe_kernels *k = xe_kernels_find(g_sets[s]);
        if (!k) continue;
        const xe_mst_children_fn fn = xe_mst_children_for(k);
        (*tested)++;
        for (int chain = 0; chain < 2; chain++)
            for (size_t li = 0; li < sizeof Ls / sizeof Ls[0]; li++)
                for (size_t ki = 0; ki < sizeof kids / sizeof kids[0]; ki++)
                    for (size_t rows = 1; rows <= 37; rows += 3) {
                        const size_t nroot = 1 + rnd32() % 4, max_ent = (rnd32() % 2) ? 3 : 40;
                        CHECK(!one_case(fn, rows, Ls[li], nroot, kids[ki], max_ent, 0, chain),
                              "%s: rows %zu L %zu children %zu entries <= %zu %s", g_sets[s], rows,
                              Ls[li], kids[ki], max_ent, chain ? "chain" : "random tree");
                    }
        /* children without entries: D only */
        CHECK(!one_case(fn, 16, 9, 2, 5, 0, 0, 0), "%s: children without entries", g_sets[s]);
        CHECK(!one_case(fn, 16, 9, 1, 200, 0, 0, 1), "%s: chain without entries", g_sets[s]);
        /* every entry counts 32 (8 per byte): the byte sums' limit, 31, 32, 62, 63 entries */
        for (size_t n = 30; n <= 64; n++) {
            CHECK(!one_case(fn, 24, 40, 1, 3, n, 1, 0), "%s: %zu all-ones entries", g_sets[s], n);
            CHECK(!one_case(fn, 13, 40, 1, 9, n, 1, 1), "%s: chain, %zu all-ones entries",
                  g_sets[s], n);
        }
    }
}

/* Part 1b: the reference twin and every set's whole-chunk kernel against
 * this test's composition: rows 1..37 (16- and 32-row blocks and their
 * tails), windows of 1..600 words (over the avx512 transpose limits, 256 and
 * 512) in one or three segments, 1..4 chunks a call, 1..9 roots a chunk (over
 * a root group), 0..250 children a chunk (with the roots over the column
 * limits, 128 and 256), chains and random trees, with and without a
 * permutation. */
static void chunk_battery(int *tested) {
    static const size_t Ls[] = {1, 5, 18, 72, 256, 300, 512, 600};
    static const size_t kids[] = {0, 1, 7, 63, 120, 250};
    for (size_t s = 0; s <= N_SETS; s++) {
        const xe_kernels *k = s < N_SETS ? xe_kernels_find(g_sets[s]) : NULL;
        const char *name = s < N_SETS ? g_sets[s] : "reference twin";
        const xe_mst_chunk_fn fn = s < N_SETS ? (k ? k->mst_chunk : NULL) : xe_mst_chunk_ref;
        if (!fn) continue;
        (*tested)++;
        for (int chain = 0; chain < 2; chain++)
            for (size_t li = 0; li < sizeof Ls / sizeof Ls[0]; li++)
                for (size_t ki = 0; ki < sizeof kids / sizeof kids[0]; ki++)
                    for (size_t rows = 1; rows <= 37; rows += 4) {
                        const size_t nchunk = 1 + rnd32() % 4, max_ent = (rnd32() % 2) ? 3 : 40;
                        const size_t segs = (Ls[li] % 3 == 0 && rnd32() % 2) ? 3 : 1;
                        const int use_perm = (int)(rnd32() % 2);
                        CHECK(!one_chunk_case(fn, rows, segs, Ls[li] / segs, nchunk, 0, kids[ki],
                                              max_ent, use_perm, chain),
                              "%s chunk: rows %zu L %zu (%zu segments) %zu chunks of 1-9 roots, "
                              "%zu children, entries <= %zu %s%s",
                              name, rows, Ls[li], segs, nchunk, kids[ki], max_ent,
                              chain ? "chain" : "random tree", use_perm ? ", permuted" : "");
                    }
    }
}

/* ---- Part 2: the op against bconv2d ---- */

enum { TREE_CHAIN, TREE_RANDOM, TREE_DUP, TREE_COMPL };
static const char *const tree_names[] = {"chain", "random", "D=0", "D=K"};

/* Blocks of one model (freed together). */
typedef struct blocks {
    void *p[16];
    int n;
} blocks;

static void *blk(blocks *b, size_t bytes) {
    void *p = calloc(bytes ? bytes : 1, 1);
    if (!p || b->n == 16) {
        fprintf(stderr, "test_kernels_mst: out of memory\n");
        exit(2);
    }
    return b->p[b->n++] = p;
}

static void blk_free(blocks *b) {
    while (b->n) free(b->p[--b->n]);
}

/* Filters [oc][L] (L = 9*cw) along a tree of `kind`, with its order,
 * parents, chunk and depth bound. Channel-padding bits stay 0. */
typedef struct tree {
    uint32_t *w, *order, *parent, chunk, max_depth;
} tree;

static uint32_t real_bits(uint32_t ic, size_t j) {
    const uint32_t cw = (ic + 31) / 32;
    return (j % cw == cw - 1 && ic % 32) ? (1u << (ic % 32)) - 1 : 0xFFFFFFFFu;
}

static tree make_tree(blocks *b, int kind, uint32_t oc, uint32_t ic, size_t L) {
    tree t = {blk(b, oc * L * 4), blk(b, oc * 4), blk(b, oc * 4), oc, 0};
    uint32_t *depth = blk(b, oc * 4);
    if (kind != TREE_CHAIN) t.chunk = (rnd32() % 2) ? 64 : 16;
    for (uint32_t c0 = 0; c0 < oc; c0 += t.chunk) {
        const uint32_t n = oc - c0 < t.chunk ? oc - c0 : t.chunk;
        for (uint32_t q = 0; q < n; q++) t.order[c0 + q] = c0 + q;
        for (uint32_t q = n; kind != TREE_CHAIN && q > 1; q--) {
            const uint32_t j = rnd32() % q, tmp = t.order[c0 + q - 1];
            t.order[c0 + q - 1] = t.order[c0 + j];
            t.order[c0 + j] = tmp;
        }
        for (uint32_t q = 0; q < n; q++) {
            const uint32_t c = t.order[c0 + q];
            const int root = q == 0 || (kind == TREE_RANDOM && rnd32() % 8 == 0);
            uint32_t *wc = t.w + (size_t)c * L;
            t.parent[c] = root ? XTM_NONE : kind == TREE_CHAIN ? c - 1 : t.order[c0 + rnd32() % q];
            depth[c] = root ? 0 : depth[t.parent[c]] + 1;
            if (depth[c] > t.max_depth) t.max_depth = depth[c];
            if (root) {
                for (size_t j = 0; j < L; j++) wc[j] = rnd32() & real_bits(ic, j);
                continue;
            }
            const uint32_t *wp = t.w + (size_t)t.parent[c] * L;
            for (size_t j = 0; j < L; j++) {
                const uint32_t real = real_bits(ic, j);
                uint32_t m = rnd32() & rnd32() & rnd32() & real; /* sparse, most words touched */
                if (rnd32() % 3 == 0) m = 0;                     /* untouched words */
                if (rnd32() % 16 == 0) m = rnd32() & real;       /* dense words */
                wc[j] = wp[j] ^ (kind == TREE_DUP ? 0 : kind == TREE_COMPL ? real : m);
            }
        }
    }
    return t;
}

/* bits (h, w, C) -> float (h, w, C+1): output j is bit j's sign times 1
 * (a 1x1 bconv2d whose filter j has only bit j set), as in test_ops.c. */
static uint32_t add_decode(xtm *t, blocks *b, uint32_t in) {
    const uint32_t c = t->values[in].c, cw = (c + 31) / 32, oc = c + 1;
    uint32_t *w = blk(b, (size_t)oc * cw * 4);
    for (uint32_t j = 0; j < c; j++) w[(size_t)j * cw + j / 32] = 1u << (j % 32);
    float *sc = blk(b, oc * 4), *bias = blk(b, oc * 4);
    for (uint32_t j = 0; j < oc; j++) sc[j] = 1.0f;
    const uint32_t p0 = xtm_param(t, XTM_BITS, w, (uint64_t)oc * cw);
    xtm_param(t, XTM_F32, sc, oc);
    xtm_param(t, XTM_F32, bias, oc);
    return xtm_node(t, XE_OP_BCONV2D, 0, in, XTM_NONE, 1, 1, 1, 1, 0, 0, oc, p0, 3);
}

/* Runs a model file with set `isa` and `threads`; returns the status. */
static xe_status run_file(const uint8_t *file, size_t size, const char *isa, uint32_t threads,
                          const float *in, size_t in_n, float *out, size_t out_n) {
    xe_model *m = NULL;
    char err[256] = "";
    xe_status st = xe_model_load_memory(file, size, 0, &m, err, sizeof err);
    if (st != XE_OK) printf("load: %s\n", err);
    xe_session_options o;
    memset(&o, 0, sizeof o);
    o.num_threads = threads;
    xe_session *s = NULL;
    if (st == XE_OK) st = xe_set_kernel_isa(isa);
    if (st == XE_OK) st = xe_session_create(m, &o, &s);
    if (st == XE_OK) st = xe_session_run(s, in, in_n, out, out_n);
    xe_session_destroy(s);
    xe_model_destroy(m);
    return st;
}

/* One layer as bconv2d and as bconv2d_mst (encoding enc): every set and 1-4
 * threads give the bconv2d output of the reference set, byte for byte. */
static void op_case(int kind, uint32_t oc, uint32_t ic, uint32_t s, uint32_t flags, uint32_t enc) {
    const uint32_t h = 9, w = 7, k = 3, p = 1, cw = (ic + 31) / 32;
    const size_t L = (size_t)k * k * cw;
    blocks b = {{0}, 0};
    const tree tr = make_tree(&b, kind, oc, ic, L);
    float *scale = blk(&b, oc * 4), *bias = blk(&b, oc * 4);
    for (uint32_t c = 0; c < oc; c++) { /* dot*scale + bias never 0: no OUT_BITS tie */
        scale[c] = (float)((int)(rnd32() % 16) + 1) / 8.0f * ((rnd32() % 5) ? 1.f : -1.f);
        bias[c] = (float)(2 * (int)(rnd32() % 33) - 33) / 8.0f;
    }
    xtm dense, mst;
    xtm_mst code;
    xtm_init(&dense, h, w, ic);
    xtm_init(&mst, h, w, ic);
    uint32_t p0 = xtm_param(&dense, XTM_BITS, tr.w, oc * L);
    xtm_param(&dense, XTM_F32, scale, oc);
    xtm_param(&dense, XTM_F32, bias, oc);
    uint32_t vd = xtm_node(&dense, XE_OP_BCONV2D, flags, 0, XTM_NONE, k, k, s, s, p, p, oc, p0, 3);
    xtm_mst_encode(tr.w, oc, L, enc, tr.chunk, tr.max_depth, tr.order, tr.parent, &code);
    p0 = xtm_mst_params(&mst, &code, scale, bias, oc);
    uint32_t vm =
        xtm_node(&mst, XTM_OP_BCONV2D_MST, flags, 0, XTM_NONE, k, k, s, s, p, p, oc, p0, 7);
    if (flags & XE_FLAG_OUT_BITS) {
        vd = add_decode(&dense, &b, vd);
        vm = add_decode(&mst, &b, vm);
    }
    const size_t in_n = (size_t)h * w * ic;
    const size_t out_n = (size_t)dense.values[vd].h * dense.values[vd].w * dense.values[vd].c;
    float *in = blk(&b, in_n * 4), *want = blk(&b, out_n * 4), *got = blk(&b, out_n * 4);
    for (size_t i = 0; i < in_n; i++) in[i] = (float)((int)(rnd32() % 17) - 8) / 4.0f;
    size_t nd, nm;
    uint8_t *fd = xtm_write(&dense, &nd), *fm = xtm_write(&mst, &nm);
    char name[160];
    snprintf(name, sizeof name,
             "bconv2d_mst tree=%s oc=%u ic=%u chunk=%u depth=%u s=%u flags=%u enc=%u",
             tree_names[kind], oc, ic, tr.chunk, tr.max_depth, s, flags, enc);
    xe_status st = run_file(fd, nd, "ref", 1, in, in_n, want, out_n);
    CHECK(st == XE_OK, "%s: bconv2d [ref]: %s", name, xe_status_string(st));
    for (size_t si = 0; st == XE_OK && si < N_SETS; si++) {
        if (!xe_kernels_find(g_sets[si])) continue; /* not built or not this CPU */
        for (uint32_t threads = 1; threads <= 4; threads++) {
            memset(got, 0xA5, out_n * 4);
            const xe_status sm = run_file(fm, nm, g_sets[si], threads, in, in_n, got, out_n);
            CHECK(sm == XE_OK, "%s [%s, %u threads]: %s", name, g_sets[si], threads,
                  xe_status_string(sm));
            CHECK(sm != XE_OK || !memcmp(want, got, out_n * 4),
                  "%s [%s, %u threads]: output differs from bconv2d's", name, g_sets[si], threads);
        }
    }
    xe_set_kernel_isa("auto");
    free(fd);
    free(fm);
    xtm_mst_free(&code);
    xtm_free(&dense);
    xtm_free(&mst);
    blk_free(&b);
}

static void op_battery(void) {
    static const uint32_t ocs[] = {2, 33, 37, 65, 70, 200, 300};
    /* stride, flags: zero padding, +1 padding, K, ReLU, bit outputs */
    static const uint32_t modes[][2] = {
        {1, 0},
        {2, XE_FLAG_PAD_ONE},
        {1, XE_FLAG_USE_K | XE_FLAG_RELU},
        {2, XE_FLAG_USE_K | XE_FLAG_PAD_ONE},
        {1, XE_FLAG_OUT_BITS},
        {2, XE_FLAG_OUT_BITS | XE_FLAG_PAD_ONE},
    };
    int n = 0;
    for (int kind = TREE_CHAIN; kind <= TREE_COMPL; kind++)
        for (size_t oi = 0; oi < sizeof ocs / sizeof ocs[0]; oi++)
            for (size_t mi = 0; mi < sizeof modes / sizeof modes[0]; mi++, n++)
                op_case(kind, ocs[oi], (n % 3) ? 40 : 64, modes[mi][0], modes[mi][1],
                        1 + (uint32_t)(n % 2));
}

int main(void) {
    int tested = 0;
    kernel_battery(&tested);
    int chunk_tested = 0;
    chunk_battery(&chunk_tested);
    const int kernel_fails = g_fail;
    op_battery();
    printf(
        "mst child kernels: %d sets, whole-chunk kernels: %d (with the reference twin), %d kernel "
        "failures, %d op failures\n",
        tested, chunk_tested, kernel_fails, g_fail - kernel_fails);
    return g_fail != 0 || tested == 0 || chunk_tested == 0;
}
