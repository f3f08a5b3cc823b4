/*
 * bench_layers.c - single-threaded kernel-level timing of whole binary
 * ResNet-18 layers (3x3, stride 1, +1 padding of 1), per kernel table.
 *
 * One layer, float HWC input x (H x W x C) to float output (H x W x OC):
 *   1. sign-pack x along channels          kt->pack     -> [H*W][CW] words
 *   2. K map: A = mean_c |x|, K = 3x3 box of A (zero padded, divisor 9)
 *   3. im2col of the packed words, padded taps = zero words (+1)
 *                                                        -> [H*W][9*CW]
 *   4. d = popcount(cols XOR weights)       xe_bgemm     -> [H*W][OC] int32
 *      (weights packed once by xe_bgemm_pack, outside the timing)
 *   5. epilogue y = (n - 2*d) * alpha[oc] * K[p] + bias[oc], n = 9*C
 * MACs = H*W*OC*9*C (binary multiply-accumulates). Reported per layer and
 * table: median and minimum ms of the whole layer (or of bgemm alone with
 * --bgemm-only), median ms of each stage, GMAC/s from the median. The
 * check= field (an XOR of sampled popcounts) must agree across tables.
 *
 * Usage: bench_layers [--isa NAME[,NAME...]] [--layer I] [--reps N] [--bgemm-only]
 *                     [--chunk-rows R] [--sgemm] [--unpacked]
 * --chunk-rows R calls bgemm on R output pixels at a time, as the executor
 * does to split work across threads. --sgemm times the float GEMM (packed B)
 * on the float layers' shapes instead. --unpacked times the transitional
 * unpacked entry points (kt->bgemm, kt->sgemm: B packed on every call), which
 * the op files use until they keep packed weights.
 * With --reps the exact repetition count is used (after one warm-up), which
 * makes instruction counts under qemu differentiable (tools/qemu_icount.sh);
 * otherwise each measurement repeats for at least 0.3 s.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels.h"

typedef struct {
    int h, w, c, oc;
} layer_shape;

static const layer_shape layers[] = {
    {56, 56, 64, 64}, {28, 28, 128, 128}, {14, 14, 256, 256}, {7, 7, 512, 512}};
#define N_LAYERS ((int)(sizeof layers / sizeof layers[0]))
enum { ST_PACK, ST_KMAP, ST_IM2COL, ST_BGEMM, ST_EPI, N_STAGES };
static const char *const stage_names[N_STAGES] = {"pack", "kmap", "im2col", "bgemm", "epilogue"};

typedef struct {
    layer_shape s;
    size_t cw, kw, m; /* words per pixel, words per im2col row, output pixels */
    float *x, *absmean, *kmap, *alpha, *bias, *y;
    uint32_t *packed, *cols, *wbits, *wpacked; /* wpacked: wbits in the set's layout */
    int32_t *d;
} layer_bufs;

/* Rows per bgemm call: all of them by default; the executor calls in chunks. */
static size_t chunk_rows = (size_t)-1;
static int unpacked;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t rng = 88172645463325252ull;
static uint32_t rnd32(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 32);
}
static float rndf(void) { return (float)(rnd32() >> 8) / 8388608.0f - 1.0f; }

static void *xalloc(size_t n) {
    void *p = calloc(n ? n : 1, 1);
    if (!p) {
        fprintf(stderr, "bench_layers: out of memory\n");
        exit(2);
    }
    return p;
}

static void layer_init(const xe_kernels *kt, layer_bufs *L, layer_shape s) {
    size_t hw = (size_t)s.h * s.w;
    L->s = s;
    L->cw = ((size_t)s.c + 31) / 32;
    L->kw = 9 * L->cw;
    L->m = hw;
    L->x = xalloc(hw * s.c * sizeof(float));
    L->absmean = xalloc(hw * sizeof(float));
    L->kmap = xalloc(hw * sizeof(float));
    L->alpha = xalloc((size_t)s.oc * sizeof(float));
    L->bias = xalloc((size_t)s.oc * sizeof(float));
    L->y = xalloc(hw * s.oc * sizeof(float));
    L->packed = xalloc(hw * L->cw * 4);
    L->cols = xalloc(hw * L->kw * 4);
    L->wbits = xalloc((size_t)s.oc * L->kw * 4);
    L->d = xalloc(hw * s.oc * 4);
    for (size_t i = 0; i < hw * s.c; i++) L->x[i] = rndf();
    for (int o = 0; o < s.oc; o++) {
        L->alpha[o] = 0.01f + 0.001f * (float)(o % 7);
        L->bias[o] = 0.1f * rndf();
        for (size_t t = 0; t < 9; t++)
            for (size_t w = 0; w < L->cw; w++) {
                uint32_t v = rnd32();
                size_t real = (size_t)s.c - w * 32; /* channel padding bits stay 0 */
                if (real < 32) v &= ((uint32_t)1 << real) - 1;
                L->wbits[(size_t)o * L->kw + t * L->cw + w] = v;
            }
    }
    L->wpacked = xalloc(xe_bgemm_packed_words(kt, (size_t)s.oc, L->kw) * 4);
    xe_bgemm_pack(kt, (size_t)s.oc, L->kw, L->wbits, L->kw, L->wpacked);
}

static void layer_free(layer_bufs *L) {
    free(L->x), free(L->absmean), free(L->kmap), free(L->alpha), free(L->bias), free(L->y);
    free(L->packed), free(L->cols), free(L->wbits), free(L->wpacked), free(L->d);
}

static void stage_kmap(layer_bufs *L) {
    const int H = L->s.h, W = L->s.w, C = L->s.c;
    for (size_t p = 0; p < L->m; p++) {
        const float *xp = L->x + p * C;
        /* 8 partial sums (a fixed order, so the compiler may vectorise it). */
        float part[8] = {0}, sum = 0.0f;
        int c = 0;
        for (; c + 8 <= C; c += 8)
            for (int l = 0; l < 8; l++) part[l] += fabsf(xp[c + l]);
        for (; c < C; c++) part[0] += fabsf(xp[c]);
        for (int l = 0; l < 8; l++) sum += part[l];
        L->absmean[p] = sum / (float)C;
    }
    for (int oy = 0; oy < H; oy++)
        for (int ox = 0; ox < W; ox++) {
            float sum = 0.0f;
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++) {
                    int iy = oy + dy, ix = ox + dx;
                    if (iy >= 0 && iy < H && ix >= 0 && ix < W) sum += L->absmean[iy * W + ix];
                }
            L->kmap[oy * W + ox] = sum * (1.0f / 9.0f);
        }
}

static void stage_im2col(layer_bufs *L) {
    const int H = L->s.h, W = L->s.w;
    const size_t cw = L->cw;
    for (int oy = 0; oy < H; oy++)
        for (int ox = 0; ox < W; ox++) {
            uint32_t *row = L->cols + ((size_t)oy * W + ox) * L->kw;
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++, row += cw) {
                    int iy = oy + dy, ix = ox + dx;
                    int inside = iy >= 0 && iy < H && ix >= 0 && ix < W;
                    const uint32_t *src = inside ? L->packed + ((size_t)iy * W + ix) * cw : NULL;
                    /* a few words per tap: an inline loop beats a memcpy call */
                    for (size_t w = 0; w < cw; w++) row[w] = inside ? src[w] : 0;
                }
        }
}

static void stage_epilogue(layer_bufs *L) {
    const int OC = L->s.oc;
    const int32_t n = 9 * L->s.c;
    for (size_t p = 0; p < L->m; p++) {
        const int32_t *dp = L->d + p * OC;
        float *yp = L->y + p * OC;
        const float kp = L->kmap[p];
        for (int o = 0; o < OC; o++)
            yp[o] = (float)(n - 2 * dp[o]) * (L->alpha[o] * kp) + L->bias[o];
    }
}

/* One whole layer; adds each stage's seconds to t[]. */
static void run_layer(const xe_kernels *kt, layer_bufs *L, double *t, int bgemm_only) {
    double t0 = now_s(), t1;
    if (!bgemm_only) {
        kt->pack(L->m, (size_t)L->s.c, L->x, (size_t)L->s.c, L->packed, L->cw);
        t1 = now_s(), t[ST_PACK] += t1 - t0, t0 = t1;
        stage_kmap(L);
        t1 = now_s(), t[ST_KMAP] += t1 - t0, t0 = t1;
        stage_im2col(L);
        t1 = now_s(), t[ST_IM2COL] += t1 - t0, t0 = t1;
    }
    for (size_t r0 = 0; r0 < L->m; r0 += chunk_rows) {
        size_t rows = L->m - r0 < chunk_rows ? L->m - r0 : chunk_rows;
        if (unpacked)
            xe_bgemm_unpacked(kt, rows, (size_t)L->s.oc, L->kw, L->cols + r0 * L->kw, L->kw,
                              L->wbits, L->kw, L->d + r0 * (size_t)L->s.oc, (size_t)L->s.oc);
        else
            xe_bgemm(kt, rows, 0, (size_t)L->s.oc, L->kw, L->cols + r0 * L->kw, L->kw, L->wpacked,
                     L->d + r0 * (size_t)L->s.oc, (size_t)L->s.oc);
    }
    t1 = now_s(), t[ST_BGEMM] += t1 - t0, t0 = t1;
    if (!bgemm_only) {
        stage_epilogue(L);
        t1 = now_s(), t[ST_EPI] += t1 - t0;
    }
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median_of(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

static void bench_one(const xe_kernels *kt, layer_bufs *L, int reps, int bgemm_only) {
    /* times[s] holds every repetition's seconds for stage s; times[N_STAGES] the totals. */
    double *times[N_STAGES + 1] = {NULL}, dummy[N_STAGES] = {0}, start;
    int n = 0, cap = 0;
    long long macs = (long long)L->s.h * L->s.w * L->s.oc * 9 * L->s.c;
    int32_t check = 0;
    run_layer(kt, L, dummy, bgemm_only); /* warm-up: caches, page faults */
    start = now_s();
    while (reps > 0 ? n < reps : (n < 5 || now_s() - start < 0.3)) {
        double t[N_STAGES] = {0}, sum = 0;
        run_layer(kt, L, t, bgemm_only);
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            for (int s = 0; s <= N_STAGES; s++) {
                times[s] = realloc(times[s], (size_t)cap * sizeof(double));
                if (!times[s]) {
                    fprintf(stderr, "bench_layers: out of memory\n");
                    exit(2);
                }
            }
        }
        for (int s = 0; s < N_STAGES; s++) times[s][n] = t[s], sum += t[s];
        times[N_STAGES][n++] = sum;
    }
    {
        double med = median_of(times[N_STAGES], n), best = times[N_STAGES][0];
        for (size_t i = 0; i < L->m * (size_t)L->s.oc; i += 97) check ^= L->d[i];
        printf("isa=%s layer=%dx%dx%d->%d M=%zu N=%d K=%zu macs=%lld reps=%d part=%s b=%s ms=%.4f "
               "min_ms=%.4f gmacs=%.2f",
               kt->name, L->s.h, L->s.w, L->s.c, L->s.oc, L->m, L->s.oc, L->kw, macs, n,
               bgemm_only ? "bgemm" : "layer", unpacked ? "unpacked" : "packed", med * 1e3,
               best * 1e3, (double)macs / med * 1e-9);
        for (int s = 0; s < N_STAGES && !bgemm_only; s++)
            printf(" %s_ms=%.4f", stage_names[s], median_of(times[s], n) * 1e3);
        printf(" check=%08x\n", (unsigned)check);
    }
    for (int s = 0; s <= N_STAGES; s++) free(times[s]);
}

/* c = a (m x k) times b (k x n), from bp (b packed) or, with --unpacked, from b. */
static void sgemm_call(const xe_kernels *kt, size_t m, size_t n, size_t k, const float *a,
                       const float *b, const float *bp, float *c) {
    if (unpacked)
        xe_sgemm_unpacked(kt, m, n, k, a, k, b, n, c, n);
    else
        xe_sgemm(kt, m, 0, n, k, a, k, bp, c, n);
}

/* Float GEMM shapes the executor sends to sgemm: ResNet-18's first conv
 * (7x7x3 stride 2 -> 112x112x64, im2col K = 147) and the 512 -> 1000 dense head. */
static void bench_sgemm(const xe_kernels *kt, int reps) {
    static const size_t shapes[][3] = {{112 * 112, 64, 147}, {1, 1000, 512}};
    for (size_t si = 0; si < 2; si++) {
        size_t m = shapes[si][0], n = shapes[si][1], k = shapes[si][2];
        float *a = xalloc(m * k * 4), *b = xalloc(k * n * 4), *c = xalloc(m * n * 4);
        float *bp = xalloc(xe_sgemm_packed_floats(kt, n, k) * 4);
        double best = 1e30, start;
        int done = 0;
        for (size_t i = 0; i < m * k; i++) a[i] = rndf();
        for (size_t i = 0; i < k * n; i++) b[i] = rndf();
        xe_sgemm_pack(kt, n, k, b, n, 1, bp);
        sgemm_call(kt, m, n, k, a, b, bp, c); /* warm-up */
        start = now_s();
        while (reps > 0 ? done < reps : (done < 5 || now_s() - start < 0.3)) {
            double t0 = now_s(), t1;
            sgemm_call(kt, m, n, k, a, b, bp, c);
            t1 = now_s();
            if (t1 - t0 < best) best = t1 - t0;
            done++;
        }
        printf("isa=%s sgemm b=%s M=%zu N=%zu K=%zu reps=%d min_ms=%.4f gflops=%.2f\n", kt->name,
               unpacked ? "unpacked" : "packed", m, n, k, done, best * 1e3,
               2.0 * (double)(m * n * k) / best * 1e-9);
        free(a), free(b), free(bp), free(c);
    }
}

int main(int argc, char **argv) {
    const char *isas = NULL;
    int only_layer = -1, reps = 0, bgemm_only = 0, sgemm = 0;
    static const char *const all[] = {
#define XE_KERNEL_SET(id, name, arch, features) name,
#include "kernel_sets.inc"
#undef XE_KERNEL_SET
    };
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--isa") && i + 1 < argc)
            isas = argv[++i];
        else if (!strcmp(argv[i], "--layer") && i + 1 < argc)
            only_layer = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--bgemm-only"))
            bgemm_only = 1;
        else if (!strcmp(argv[i], "--sgemm"))
            sgemm = 1;
        else if (!strcmp(argv[i], "--unpacked"))
            unpacked = 1;
        else if (!strcmp(argv[i], "--chunk-rows") && i + 1 < argc && atoi(argv[i + 1]) > 0)
            chunk_rows = (size_t)atoi(argv[++i]);
        else {
            fprintf(stderr,
                    "usage: %s [--isa NAME[,NAME...]] [--layer 0..%d] [--reps N] [--bgemm-only]\n"
                    "       [--chunk-rows R] [--sgemm] [--unpacked]\n"
                    "  default: every available kernel table, every layer, >= 0.3 s each\n",
                    argv[0], N_LAYERS - 1);
            return 2;
        }
    }
    if (only_layer >= N_LAYERS || reps < 0) {
        fprintf(stderr, "bench_layers: --layer must be 0..%d and --reps >= 0\n", N_LAYERS - 1);
        return 2;
    }
    printf(
        "# bench_layers: single thread, 3x3 stride 1 pad 1 binary conv layers; active table %s\n",
        xe_kernels_active()->name);
    for (size_t a = 0; a < sizeof all / sizeof all[0]; a++) {
        const xe_kernels *kt;
        if (isas != NULL) {
            /* membership in the comma-separated list */
            const char *p = strstr(isas, all[a]);
            size_t len = strlen(all[a]);
            int found = 0;
            while (p && !found) {
                found = (p == isas || p[-1] == ',') && (p[len] == '\0' || p[len] == ',');
                p = strstr(p + 1, all[a]);
            }
            if (!found) continue;
        }
        kt = xe_kernels_find(all[a]);
        if (kt == NULL) {
            if (isas != NULL) printf("# %s: not available on this CPU/build\n", all[a]);
            continue;
        }
        if (sgemm) {
            bench_sgemm(kt, reps);
            continue;
        }
        for (int l = 0; l < N_LAYERS; l++) {
            layer_bufs L;
            if (only_layer >= 0 && l != only_layer) continue;
            rng = 88172645463325252ull; /* same data for every table */
            layer_init(kt, &L, layers[l]);
            bench_one(kt, &L, reps, bgemm_only);
            layer_free(&L);
        }
    }
    return 0;
}
