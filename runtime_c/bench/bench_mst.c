/*
 * bench_mst.c - an MST-coded binary conv layer against the same layer
 * uncompressed, for instruction counts under qemu (tools/qemu_icount.sh mst)
 * and timings on real hardware.
 *
 * The layer: float input 14x14x256, bconv2d 3x3, stride 1, zero padding 1,
 * 256 output channels, float output (no K, no ReLU): K = 2304 bits, L = 72
 * words per window, 196 output positions. The MST code: chunks of 64
 * channels (XE_CHUNK_OC, the tree builder's default), channel 0 of each chunk
 * its root, every other channel a child of a random earlier channel of its
 * chunk, differing from it in exactly D = round(dk * K) bits:
 *   bunched    the D bits fill ceil(D/32) random words (fewest words touched);
 *   scattered  the D bits are D random positions of the window (most words).
 * Parts:
 *   layer      xe_session_run of the whole layer (1 thread): sign-pack,
 *              im2col, popcounts, padding correction and epilogue;
 *   popcounts  the popcount stage alone, as the op calls it: per block of
 *              XE_CHUNK_ROWS (32) rows of random window words, xe_bgemm over
 *              the 256 filters (dense) or, per chunk, xe_bgemm over its root
 *              and the set's child kernel (mst), or the set's whole-chunk
 *              kernel where it has one (avx512; --no-chunk: the former).
 * Before timing, both forms run once and must agree exactly (dense and MST
 * outputs byte-equal, popcounts equal), else exit 1.
 *
 * Usage: bench_mst --isa NAME --mode dense|mst [--part layer|popcounts]
 *                  [--dk F] [--pattern bunched|scattered] [--reps N] [--ref-children]
 *                  [--no-chunk]
 * --ref-children (popcounts, mst) calls the portable reference twin instead
 * of the set's child kernel, to show what the set's own kernel gains. Where
 * the set has a whole-chunk kernel (kernels.h, mst_chunk: avx512) the op and
 * the popcounts part call it, on the unpacked root, instead of xe_bgemm and
 * the child kernel; --no-chunk keeps xe_bgemm and the child kernel.
 * With --reps N the work repeats exactly N times (after one warm-up), so the
 * instruction counts of N and 2N repetitions differ by N repetitions' work;
 * without it, a timing of 0.3 s or more is printed.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels.h"
#include "xe_test_model.h"

enum { H = 14, W = 14, IC = 256, OC = 256, KS = 3, CW = IC / 32, L = KS * KS * CW };
enum { K_BITS = L * 32, M = H * W, CHUNK = 64, ROWS = 32 };

static uint64_t rng = 88172645463325252ull;
static uint32_t rnd32(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 32);
}

static void *xalloc(size_t n) {
    void *p = calloc(n ? n : 1, 1);
    if (!p) {
        fprintf(stderr, "bench_mst: out of memory\n");
        exit(2);
    }
    return p;
}

/* Filters [OC][L], parents (0xFFFFFFFF: root); each child differs from its
 * parent in exactly D bits, laid out by pattern. */
static void make_filters(uint32_t D, int bunched, uint32_t *w, uint32_t *parent) {
    for (uint32_t c = 0; c < OC; c++) {
        uint32_t *wc = w + (size_t)c * L;
        if (c % CHUNK == 0) {
            parent[c] = XTM_NONE;
            for (size_t j = 0; j < L; j++) wc[j] = rnd32();
            continue;
        }
        parent[c] = c - c % CHUNK + rnd32() % (c % CHUNK);
        uint32_t m[L] = {0}, words[L], span = K_BITS;
        if (bunched) { /* D bits among the 32*ceil(D/32) bits of random words */
            const uint32_t nw = (D + 31) / 32;
            for (uint32_t j = 0; j < L; j++) words[j] = j;
            for (uint32_t j = 0; j < nw; j++) {
                const uint32_t k = j + rnd32() % (L - j), t = words[j];
                words[j] = words[k];
                words[k] = t;
            }
            span = 32 * nw;
        }
        for (uint32_t n = 0; n < D;) {
            const uint32_t b = rnd32() % span, j = bunched ? words[b / 32] : b / 32;
            if (m[j] >> (b % 32) & 1u) continue;
            m[j] |= 1u << (b % 32);
            n++;
        }
        const uint32_t *wp = w + (size_t)parent[c] * L;
        for (size_t j = 0; j < L; j++) wc[j] = wp[j] ^ m[j];
    }
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- layer: both models through the public API ---- */

static xe_session *open_session(const uint8_t *file, size_t size, xe_model **m) {
    char err[256] = "";
    xe_session_options o;
    memset(&o, 0, sizeof o);
    o.num_threads = 1;
    xe_session *s = NULL;
    xe_status st = xe_model_load_memory(file, size, 0, m, err, sizeof err);
    if (st == XE_OK) st = xe_session_create(*m, &o, &s);
    if (st != XE_OK) {
        fprintf(stderr, "bench_mst: %s %s\n", xe_status_string(st), err);
        exit(1);
    }
    return s;
}

/* Returns the session of `mode` after checking both outputs agree; its model
 * in *keep and the file it reads in place (loaded without a copy) in *file. */
static xe_session *layer_setup(const uint32_t *w, const uint32_t *parent, int mst, xe_model **keep,
                               uint8_t **file, float **in_out) {
    static float scale[OC], bias[OC];
    for (int c = 0; c < OC; c++) {
        scale[c] = (float)(1 + rnd32() % 16) / 64.0f;
        bias[c] = (float)((int)(rnd32() % 33) - 16) / 8.0f;
    }
    uint32_t order[OC];
    for (uint32_t c = 0; c < OC; c++) order[c] = c;
    xtm td, tm;
    xtm_mst code;
    xtm_init(&td, H, W, IC);
    xtm_init(&tm, H, W, IC);
    const uint32_t p0 = xtm_param(&td, XTM_BITS, w, (uint64_t)OC * L);
    xtm_param(&td, XTM_F32, scale, OC);
    xtm_param(&td, XTM_F32, bias, OC);
    xtm_node(&td, XE_OP_BCONV2D, 0, 0, XTM_NONE, KS, KS, 1, 1, 1, 1, OC, p0, 3);
    xtm_mst_encode(w, OC, L, 1, CHUNK, CHUNK - 1, order, parent, &code);
    const uint32_t p1 = xtm_mst_params(&tm, &code, scale, bias, OC);
    xtm_node(&tm, XTM_OP_BCONV2D_MST, 0, 0, XTM_NONE, KS, KS, 1, 1, 1, 1, OC, p1, 7);
    size_t nd, nm;
    uint8_t *fd = xtm_write(&td, &nd), *fm = xtm_write(&tm, &nm);
    xe_model *md, *mm;
    xe_session *sd = open_session(fd, nd, &md), *sm = open_session(fm, nm, &mm);
    float *in = xalloc((size_t)M * IC * 4), *yd = xalloc((size_t)M * OC * 4);
    float *ym = xalloc((size_t)M * OC * 4);
    for (size_t i = 0; i < (size_t)M * IC; i++) in[i] = (float)((int)(rnd32() % 17) - 8) / 4.0f;
    if (xe_session_run(sd, in, (size_t)M * IC, yd, (size_t)M * OC) != XE_OK ||
        xe_session_run(sm, in, (size_t)M * IC, ym, (size_t)M * OC) != XE_OK ||
        memcmp(yd, ym, (size_t)M * OC * 4) != 0) {
        fprintf(stderr, "bench_mst: the MST layer's output differs from the dense layer's\n");
        exit(1);
    }
    free(yd);
    free(ym);
    xe_session_destroy(mst ? sd : sm);
    xe_model_destroy(mst ? md : mm);
    *keep = mst ? mm : md;
    *file = mst ? fm : fd;
    *in_out = in;
    free(mst ? fd : fm);
    xtm_mst_free(&code);
    xtm_free(&td);
    xtm_free(&tm);
    return mst ? sm : sd;
}

/* ---- popcounts: the kernels as the op calls them ---- */

typedef struct pop {
    const xe_kernels *k;
    uint32_t *a, *dense, *roots; /* window words [M][L]; packed filters; packed roots */
    const uint32_t *w;           /* the filters [OC][L], unpacked */
    const uint32_t *arow[M];     /* row r of a, for the whole-chunk kernel */
    xe_mst_chunk chunks[OC / CHUNK];
    xe_mst_child pos[OC];
    xe_mst_entry *ent;
    int32_t *pc; /* [ROWS][OC] */
} pop;

static void pop_dense(pop *p) {
    for (size_t r = 0; r < M; r += ROWS) {
        const size_t rows = M - r < ROWS ? M - r : ROWS;
        xe_bgemm(p->k, rows, 0, OC, L, p->a + r * L, L, p->dense, p->pc, OC);
    }
}

static int ref_children;

static int no_chunk;

static void pop_mst(pop *p) {
    const xe_mst_children_fn children =
        ref_children ? xe_mst_children_ref : xe_mst_children_for(p->k);
    const xe_mst_chunk_fn chunk = ref_children || no_chunk ? NULL : p->k->mst_chunk;
    const size_t pw = xe_bgemm_packed_words(p->k, 1, L);
    for (size_t r = 0; r < M; r += ROWS) {
        const size_t rows = M - r < ROWS ? M - r : ROWS;
        if (chunk) { /* as the op: the set's whole-chunk kernel, all chunks in one call */
            chunk(rows, p->arow + r, 1, L, 0, OC / CHUNK, p->chunks, p->ent, p->pc, OC, 0);
            continue;
        }
        for (size_t c0 = 0; c0 < OC; c0 += CHUNK) {
            xe_bgemm(p->k, rows, 0, 1, L, p->a + r * L, L, p->roots + c0 / CHUNK * pw, p->pc + c0,
                     OC);
            children(rows, CHUNK - 1, &p->pos[c0 + 1], p->ent, p->a + r * L, L, p->pc, OC, c0 + 1,
                     0);
        }
    }
}

static void pop_setup(pop *p, const uint32_t *w, const uint32_t *parent) {
    p->w = w;
    p->a = xalloc((size_t)M * L * 4);
    for (size_t i = 0; i < (size_t)M * L; i++) p->a[i] = rnd32();
    for (size_t r = 0; r < M; r++) p->arow[r] = p->a + r * L;
    p->dense = xalloc(xe_bgemm_packed_words(p->k, OC, L) * 4);
    xe_bgemm_pack(p->k, OC, L, w, L, p->dense);
    const size_t pw = xe_bgemm_packed_words(p->k, 1, L);
    p->roots = xalloc(OC / CHUNK * pw * 4);
    p->ent = xalloc((size_t)OC * L * sizeof *p->ent);
    uint32_t ne = 0;
    for (uint32_t c = 0; c < OC; c++) {
        if (parent[c] == XTM_NONE) {
            xe_bgemm_pack(p->k, 1, L, w + (size_t)c * L, L, p->roots + c / CHUNK * pw);
            continue;
        }
        const uint32_t *wc = w + (size_t)c * L, *wp = w + (size_t)parent[c] * L;
        p->pos[c] = (xe_mst_child){parent[c], 0, ne, ne};
        for (uint32_t j = 0; j < L; j++)
            if (wc[j] != wp[j]) {
                const uint32_t m = wc[j] ^ wp[j];
                p->ent[ne++] = (xe_mst_entry){j, m, wp[j] & m};
                p->pos[c].d += xe_popcount32(m);
            }
        p->pos[c].e1 = ne;
    }
    for (uint32_t j = 0; j < OC / CHUNK; j++) /* one root, then 63 children, in place */
        p->chunks[j] = (xe_mst_chunk){
            1, CHUNK - 1, w + (size_t)j * CHUNK * L, &p->pos[j * CHUNK + 1], NULL, j * CHUNK};
    p->pc = xalloc((size_t)ROWS * OC * 4);
    int32_t *want = xalloc((size_t)ROWS * OC * 4);
    const xe_mst_children_fn children = xe_mst_children_for(p->k);
    for (size_t r = 0; r < M; r += ROWS) { /* every row block: MST equals dense, both paths */
        const size_t rows = M - r < ROWS ? M - r : ROWS;
        xe_bgemm(p->k, rows, 0, OC, L, p->a + r * L, L, p->dense, want, OC);
        for (size_t c0 = 0; c0 < OC; c0 += CHUNK) {
            xe_bgemm(p->k, rows, 0, 1, L, p->a + r * L, L, p->roots + c0 / CHUNK * pw, p->pc + c0,
                     OC);
            children(rows, CHUNK - 1, &p->pos[c0 + 1], p->ent, p->a + r * L, L, p->pc, OC, c0 + 1,
                     0);
        }
        if (memcmp(want, p->pc, rows * OC * 4) != 0) {
            fprintf(stderr, "bench_mst: MST popcounts differ from dense ones\n");
            exit(1);
        }
        if (p->k->mst_chunk) {
            memset(p->pc, 0, rows * OC * 4);
            p->k->mst_chunk(rows, p->arow + r, 1, L, 0, OC / CHUNK, p->chunks, p->ent, p->pc, OC,
                            0);
        }
        if (p->k->mst_chunk && memcmp(want, p->pc, rows * OC * 4) != 0) {
            fprintf(stderr, "bench_mst: MST popcounts (chunk kernel) differ from dense ones\n");
            exit(1);
        }
    }
    free(want);
}

int main(int argc, char **argv) {
    const char *isa = "auto", *mode = "mst", *part = "layer", *pattern = "bunched";
    double dk = 0.05;
    long reps = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--isa") && i + 1 < argc)
            isa = argv[++i];
        else if (!strcmp(argv[i], "--mode") && i + 1 < argc)
            mode = argv[++i];
        else if (!strcmp(argv[i], "--part") && i + 1 < argc)
            part = argv[++i];
        else if (!strcmp(argv[i], "--pattern") && i + 1 < argc)
            pattern = argv[++i];
        else if (!strcmp(argv[i], "--dk") && i + 1 < argc)
            dk = atof(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atol(argv[++i]);
        else if (!strcmp(argv[i], "--ref-children"))
            ref_children = 1;
        else if (!strcmp(argv[i], "--no-chunk"))
            no_chunk = 1;
        else {
            fprintf(stderr,
                    "usage: %s --isa NAME --mode dense|mst [--part layer|popcounts] [--dk F] "
                    "[--pattern bunched|scattered] [--reps N] [--ref-children] [--no-chunk]\n",
                    argv[0]);
            return 2;
        }
    }
    const int mst = !strcmp(mode, "mst"), bunched = !strcmp(pattern, "bunched");
    const int layer = !strcmp(part, "layer");
    if ((!mst && strcmp(mode, "dense")) || (!layer && strcmp(part, "popcounts")) ||
        (!bunched && strcmp(pattern, "scattered")) || !(dk >= 0 && dk <= 1) ||
        xe_set_kernel_isa(isa) != XE_OK) {
        fprintf(stderr, "bench_mst: bad option or kernel set %s not available here\n", isa);
        return 2;
    }
    const xe_kernels *k = xe_kernels_active();
    const uint32_t D = (uint32_t)lround(dk * K_BITS);
    uint32_t *w = xalloc((size_t)OC * L * 4), parent[OC];
    make_filters(D, bunched, w, parent);
    size_t words = 0;
    for (uint32_t c = 0; c < OC; c++)
        for (size_t j = 0; parent[c] != XTM_NONE && j < L; j++)
            words += w[(size_t)c * L + j] != w[(size_t)parent[c] * L + j];
    xe_model *model = NULL;
    xe_session *s = NULL;
    uint8_t *file = NULL;
    float *in = NULL, *y = xalloc((size_t)M * OC * 4);
    pop p = {k,    NULL, NULL, NULL, NULL, {NULL}, {{0, 0, NULL, NULL, NULL, 0}}, {{0, 0, 0, 0}},
             NULL, NULL};
    if (layer)
        s = layer_setup(w, parent, mst, &model, &file, &in);
    else
        pop_setup(&p, w, parent);
#define WORK()                                                                                     \
    do {                                                                                           \
        if (layer)                                                                                 \
            xe_session_run(s, in, (size_t)M *IC, y, (size_t)M *OC);                                \
        else if (mst)                                                                              \
            pop_mst(&p);                                                                           \
        else                                                                                       \
            pop_dense(&p);                                                                         \
    } while (0)
    WORK(); /* warm-up */
    const double t0 = now_s();
    long n = 0;
    do {
        WORK();
        n++;
    } while (reps ? n < reps : now_s() - t0 < 0.3);
    const double ms = (now_s() - t0) * 1e3 / (double)n;
    printf("isa=%s%s part=%s mode=%s pattern=%s dk=%.3f D=%u words/child=%.2f reps=%ld ms=%.4f "
           "check=ok\n",
           k->name,
           ref_children               ? "+ref-children"
           : no_chunk && k->mst_chunk ? "+no-chunk"
                                      : "",
           part, mode, pattern, dk, D, (double)words / (OC - OC / CHUNK), n, ms);
    xe_session_destroy(s);
    xe_model_destroy(model);
    free(file);
    free(in);
    free(y);
    free(w);
    free(p.a);
    free(p.dense);
    free(p.roots);
    free(p.ent);
    free(p.pc);
    return 0;
}
