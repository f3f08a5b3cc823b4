/*
 * test_kernels.c - every kernel set of kernel_sets.inc that this build has and
 * this CPU can run, through the GEMM driver, against this file's own plain
 * reference: exact integer equality for bgemm, bit equality for pack and
 * sgemm, over one battery of shapes (below, at and above every tile size;
 * k from every channel count 1..130 times every window 1x1..11x11; strided
 * leading dimensions; column offsets n0; ResNet-18 layer shapes; long rows
 * with all bits differing past every accumulator flush limit). Both the packed
 * path (xe_*_pack + xe_bgemm/xe_sgemm) and the transitional unpacked entry
 * points are checked, and packed buffers are unpacked again through the layout
 * kernels.h documents (zero padding included). Inputs and packed buffers sit
 * at the very end of their allocations and outputs and packed buffers are
 * fenced with canaries, so any read past the arguments (under ASan) or write
 * outside them is caught. Also checks each set's geometry and the dispatch
 * rules (XE_KERNELS, fallback, xe_available_isas).
 * Prints a summary; exits non-zero on the first mismatch, naming the shape.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kernels.h"
#include "xnor_edge.h"

#define XE_TEST_RNG_SEED 0x9E3779B97F4A7C15ull
#include "xe_test_rng.h"

static void *xmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "out of memory (%zu bytes)\n", bytes);
        exit(2);
    }
    return p;
}

/* A (rows x cols, leading dim ld) matrix placed so its last element is the last
 * byte of the allocation: an over-read runs off the block. */
typedef struct {
    void *block;
    void *data;
} tight_buf;
static tight_buf tight_alloc(size_t rows, size_t cols, size_t ld, size_t elem) {
    tight_buf t;
    size_t used = rows ? ((rows - 1) * ld + cols) : 0;
    t.block = xmalloc(used * elem + 64);
    t.data = (char *)t.block + 64;
    return t;
}

/* The test's own reference, independent of kernels__ref.c and the driver. */
static uint32_t popcount_plain(uint32_t v) {
    uint32_t n = 0;
    for (; v; v &= v - 1) n++;
    return n;
}
static void bgemm_plain(size_t m, size_t n, size_t k, const uint32_t *a, size_t lda,
                        const uint32_t *b, size_t ldb, int32_t *c, size_t ldc) {
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            uint32_t acc = 0;
            for (size_t t = 0; t < k; t++) acc += popcount_plain(a[i * lda + t] ^ b[j * ldb + t]);
            c[i * ldc + j] = (int32_t)acc;
        }
}
/* B(t, j) = b[t*rs + j*cs]. */
static void sgemm_plain(size_t m, size_t n, size_t k, const float *a, size_t lda, const float *b,
                        size_t rs, size_t cs, float *c, size_t ldc) {
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            float acc = 0.0f;
            for (size_t t = 0; t < k; t++) acc = fmaf(a[i * lda + t], b[t * rs + j * cs], acc);
            c[i * ldc + j] = acc;
        }
}
static void pack_plain(size_t rows, size_t channels, const float *x, size_t ldx, uint32_t *out,
                       size_t ldo) {
    for (size_t r = 0; r < rows; r++)
        for (size_t w = 0; w < (channels + 31) / 32; w++) {
            uint32_t word = 0;
            for (size_t bit = 0; bit < 32 && w * 32 + bit < channels; bit++)
                if (x[r * ldx + w * 32 + bit] < 0.0f) word |= (uint32_t)1 << bit;
            out[r * ldo + w] = word;
        }
}

static size_t round_up(size_t x, size_t to) { return (x + to - 1) / to * to; }

static const int32_t CANARY_I = 0x5A5A5A5A;
static const uint32_t CANARY_U = 0xA5A5A5A5u;
static long shapes_run;

/* Packs the ntot x k matrix b (row j = b[j*ldb], k words) with the set, checks
 * the documented panel layout word by word (zero padding included) and that
 * nothing is written past xe_bgemm_packed_words, and returns a copy that ends
 * exactly at the end of its allocation (*block is to be freed). */
static const uint32_t *packed_b(const xe_kernels *kt, size_t ntot, size_t k, const uint32_t *b,
                                size_t ldb, void **block, int *ok) {
    const xe_bgemm_config *g = &kt->bgemm_cfg;
    const size_t nr = g->nr, kr = g->kr, kp = round_up(k, kr);
    const size_t words = xe_bgemm_packed_words(kt, ntot, k);
    uint32_t *p = xmalloc((words + 8) * 4);
    tight_buf t = tight_alloc(1, words, words, 4);
    for (size_t i = 0; i < words + 8; i++) p[i] = CANARY_U;
    xe_bgemm_pack(kt, ntot, k, b, ldb, p);
    if (words != round_up(ntot, nr) * kp) {
        fprintf(stderr, "FAIL %s bgemm packed_words(%zu, %zu) = %zu\n", kt->name, ntot, k, words);
        *ok = 0;
    }
    for (size_t i = words; i < words + 8 && *ok; i++)
        if (p[i] != CANARY_U) {
            fprintf(stderr, "FAIL %s bgemm pack n=%zu k=%zu wrote word %zu of %zu\n", kt->name,
                    ntot, k, i, words);
            *ok = 0;
        }
    for (size_t j = 0; j < round_up(ntot, nr) && *ok; j++)
        for (size_t w = 0; w < kp && *ok; w++) {
            const size_t at = j / nr * nr * kp + w / kr * nr * kr + j % nr * kr + w % kr;
            const uint32_t want = j < ntot && w < k ? b[j * ldb + w] : 0;
            if (p[at] != want) {
                fprintf(stderr,
                        "FAIL %s bgemm pack n=%zu k=%zu: column %zu word %zu = %08x, %08x\n",
                        kt->name, ntot, k, j, w, p[at], want);
                *ok = 0;
            }
        }
    memcpy(t.data, p, words * 4);
    free(p);
    *block = t.block;
    return t.data;
}

static int compare_i32(const xe_kernels *kt, const char *path, const int32_t *want,
                       const int32_t *got, size_t csz, size_t m, size_t n0, size_t n, size_t k,
                       size_t lda, size_t ldb, size_t ldc) {
    for (size_t i = 0; i < csz; i++)
        if (want[i] != got[i]) {
            fprintf(stderr,
                    "FAIL %s bgemm (%s) m=%zu n0=%zu n=%zu k=%zu lda=%zu ldb=%zu ldc=%zu: c[%zu] = "
                    "%d, ref %d\n",
                    kt->name, path, m, n0, n, k, lda, ldb, ldc, i, got[i], want[i]);
            return 0;
        }
    return 1;
}

/* Columns [n0, n0 + n) of an (m x ntot) product, packed and unpacked. */
static int check_bgemm(const xe_kernels *kt, size_t m, size_t n, size_t k, size_t pad) {
    size_t lda = k + (pad ? 1 + rnd32() % 5 : 0), ldb = k + (pad ? 1 + rnd32() % 3 : 0);
    size_t ldc = n + (pad ? 1 + rnd32() % 4 : 0);
    size_t n0 = pad ? 32 * (rnd32() % 3) : 0, ntot = n0 + n + (pad ? rnd32() % 3 : 0);
    tight_buf ta = tight_alloc(m, k, lda, 4), tb = tight_alloc(ntot, k, ldb, 4);
    uint32_t *a = ta.data, *b = tb.data;
    size_t csz = m * ldc + 4;
    int32_t *want = xmalloc(csz * 4), *got = xmalloc(csz * 4);
    const uint32_t *packed;
    void *pblock;
    int ok = 1;
    for (size_t i = 0; i < (m ? (m - 1) * lda + k : 0); i++) a[i] = rnd32();
    for (size_t i = 0; i < (ntot ? (ntot - 1) * ldb + k : 0); i++) b[i] = rnd32();
    if (rnd32() % 8 == 0 && n > 0) /* all-ones runs stress the byte/halfword accumulators */
        for (size_t i = 0; i < (m ? (m - 1) * lda + k : 0); i++)
            a[i] = ~b[n0 * ldb + i % (k ? k : 1)];
    for (size_t i = 0; i < csz; i++) want[i] = got[i] = CANARY_I;
    bgemm_plain(m, n, k, a, lda, b + n0 * ldb, ldb, want, ldc);
    packed = packed_b(kt, ntot, k, b, ldb, &pblock, &ok);
    xe_bgemm(kt, m, n0, n, k, a, lda, packed, got, ldc);
    ok = ok && compare_i32(kt, "packed", want, got, csz, m, n0, n, k, lda, ldb, ldc);
    for (size_t i = 0; i < csz; i++) got[i] = CANARY_I;
    xe_bgemm_unpacked(kt, m, n, k, a, lda, b + n0 * ldb, ldb, got, ldc);
    ok = ok && compare_i32(kt, "unpacked", want, got, csz, m, n0, n, k, lda, ldb, ldc);
    free(ta.block);
    free(tb.block);
    free(pblock);
    free(want);
    free(got);
    shapes_run++;
    return ok;
}

/* Every bit differs: the largest possible counts, 32*k, for accumulator overflow. */
static int check_bgemm_worst(const xe_kernels *kt, size_t m, size_t n, size_t k) {
    uint32_t *a = xmalloc(m * k * 4), *b = xmalloc(n * k * 4);
    int32_t *c = xmalloc(m * n * 4);
    const uint32_t *packed;
    void *pblock;
    int ok = 1;
    for (size_t i = 0; i < m * k; i++) a[i] = 0xFFFFFFFFu;
    for (size_t i = 0; i < n * k; i++) b[i] = 0;
    packed = packed_b(kt, n, k, b, k, &pblock, &ok);
    for (int path = 0; path < 2 && ok; path++) {
        memset(c, 0, m * n * 4);
        if (path == 0)
            xe_bgemm(kt, m, 0, n, k, a, k, packed, c, n);
        else
            xe_bgemm_unpacked(kt, m, n, k, a, k, b, k, c, n);
        for (size_t i = 0; i < m * n && ok; i++) {
            if (c[i] != (int32_t)(32 * k)) {
                fprintf(stderr,
                        "FAIL %s bgemm (%s) all-ones m=%zu n=%zu k=%zu: c[%zu] = %d, want %d\n",
                        kt->name, path ? "unpacked" : "packed", m, n, k, i, c[i], (int)(32 * k));
                ok = 0;
            }
        }
    }
    free(a);
    free(b);
    free(pblock);
    free(c);
    shapes_run++;
    return ok;
}

/* As packed_b for float B(t, j) = b[t*rs + j*cs], t < k, j < ntot. */
static const float *packed_s(const xe_kernels *kt, size_t ntot, size_t k, const float *b, size_t rs,
                             size_t cs, void **block, int *ok) {
    const size_t nr = kt->sgemm_cfg.nr, floats = xe_sgemm_packed_floats(kt, ntot, k);
    float *p = xmalloc((floats + 8) * 4);
    tight_buf t = tight_alloc(1, floats, floats, 4);
    for (size_t i = 0; i < floats + 8; i++) p[i] = -777.25f;
    xe_sgemm_pack(kt, ntot, k, b, rs, cs, p);
    if (floats != round_up(ntot, nr) * k) {
        fprintf(stderr, "FAIL %s sgemm packed_floats(%zu, %zu) = %zu\n", kt->name, ntot, k, floats);
        *ok = 0;
    }
    for (size_t i = floats; i < floats + 8 && *ok; i++)
        if (p[i] != -777.25f) {
            fprintf(stderr, "FAIL %s sgemm pack wrote float %zu of %zu\n", kt->name, i, floats);
            *ok = 0;
        }
    for (size_t j = 0; j < round_up(ntot, nr) && *ok; j++)
        for (size_t w = 0; w < k && *ok; w++) {
            const float want = j < ntot ? b[w * rs + j * cs] : 0.0f;
            if (memcmp(&p[j / nr * nr * k + w * nr + j % nr], &want, 4) != 0) {
                fprintf(stderr, "FAIL %s sgemm pack n=%zu k=%zu: column %zu row %zu\n", kt->name,
                        ntot, k, j, w);
                *ok = 0;
            }
        }
    memcpy(t.data, p, floats * 4);
    free(p);
    *block = t.block;
    return t.data;
}

static int compare_f32(const xe_kernels *kt, const char *path, const float *want, const float *got,
                       size_t csz, size_t m, size_t n0, size_t n, size_t k, size_t ldc) {
    if (memcmp(want, got, csz * 4) == 0) return 1;
    for (size_t i = 0; i < csz; i++)
        if (memcmp(&want[i], &got[i], 4) != 0) {
            fprintf(
                stderr,
                "FAIL %s sgemm (%s) m=%zu n0=%zu n=%zu k=%zu ldc=%zu: c[%zu] = %.9g, ref %.9g\n",
                kt->name, path, m, n0, n, k, ldc, i, got[i], want[i]);
            break;
        }
    return 0;
}

/* Columns [n0, n0 + n); B stored [k][ntot] or (nk) [ntot][k]. */
static int check_sgemm(const xe_kernels *kt, size_t m, size_t n, size_t k, size_t pad) {
    size_t n0 = pad ? 32 * (rnd32() % 3) : 0, ntot = n0 + n + (pad ? rnd32() % 3 : 0);
    int nk = pad && (rnd32() & 1);
    size_t lda = k + (pad ? 1 + rnd32() % 3 : 0),
           ldb = (nk ? k : ntot) + (pad ? 1 + rnd32() % 5 : 0);
    size_t ldc = n + (pad ? 1 + rnd32() % 4 : 0), rs = nk ? 1 : ldb, cs = nk ? ldb : 1;
    tight_buf ta = tight_alloc(m, k, lda, 4);
    tight_buf tb = nk ? tight_alloc(ntot, k, ldb, 4) : tight_alloc(k, ntot, ldb, 4);
    size_t bsz = nk ? (ntot ? (ntot - 1) * ldb + k : 0) : (k ? (k - 1) * ldb + ntot : 0);
    float *a = ta.data, *b = tb.data;
    size_t csz = m * ldc + 4;
    float *want = xmalloc(csz * 4), *got = xmalloc(csz * 4);
    const float *packed;
    void *pblock;
    int ok = 1;
    for (size_t i = 0; i < (m ? (m - 1) * lda + k : 0); i++) a[i] = rnd_unit();
    for (size_t i = 0; i < bsz; i++) b[i] = rnd_unit() * 3.0f;
    for (size_t i = 0; i < csz; i++) want[i] = got[i] = -12345.5f;
    sgemm_plain(m, n, k, a, lda, b + n0 * cs, rs, cs, want, ldc);
    packed = packed_s(kt, ntot, k, b, rs, cs, &pblock, &ok);
    xe_sgemm(kt, m, n0, n, k, a, lda, packed, got, ldc);
    ok = ok && compare_f32(kt, "packed", want, got, csz, m, n0, n, k, ldc);
    if (!nk) {
        for (size_t i = 0; i < csz; i++) got[i] = -12345.5f;
        xe_sgemm_unpacked(kt, m, n, k, a, lda, b + n0, ldb, got, ldc);
        ok = ok && compare_f32(kt, "unpacked", want, got, csz, m, n0, n, k, ldc);
    }
    free(ta.block);
    free(tb.block);
    free(pblock);
    free(want);
    free(got);
    shapes_run++;
    return ok;
}

/* xe_sgemm_seg (segmented A rows: a convolution's window read in place)
 * against sgemm_plain on the gathered rows; rows overlap when lda is small,
 * as the windows of neighbouring output positions do. */
static int check_sgemm_seg(const xe_kernels *kt, size_t m, size_t n, size_t segs, size_t seglen,
                           size_t segstride, size_t lda) {
    const size_t kk = segs * seglen, n0 = 32 * (rnd32() % 2), ntot = n0 + n + rnd32() % 3;
    const size_t ldc = n + rnd32() % 4, grows = 1 + rnd32() % 7;
    const size_t asz = m ? (m - 1) * lda + (segs - 1) * segstride + seglen : 0;
    tight_buf ta = tight_alloc(1, asz, asz, 4), tb = tight_alloc(kk, ntot, ntot, 4);
    float *a = ta.data, *b = tb.data, *rows = xmalloc((m * kk + 1) * 4);
    float *gather = xmalloc((grows * kk + 1) * 4);
    const size_t csz = m * ldc + 4;
    float *want = xmalloc(csz * 4), *got = xmalloc(csz * 4);
    void *pblock;
    int ok = 1;
    for (size_t i = 0; i < asz; i++) a[i] = rnd_unit();
    for (size_t i = 0; i < kk * ntot; i++) b[i] = rnd_unit() * 3.0f;
    for (size_t i = 0; i < m; i++)
        for (size_t g = 0; g < segs; g++)
            memcpy(rows + i * kk + g * seglen, a + i * lda + g * segstride, seglen * 4);
    for (size_t i = 0; i < csz; i++) want[i] = got[i] = -12345.5f;
    sgemm_plain(m, n, kk, rows, kk, b + n0, ntot, 1, want, ldc);
    const float *packed = packed_s(kt, ntot, kk, b, ntot, 1, &pblock, &ok);
    xe_sgemm_seg(kt, m, n0, n, segs, seglen, segstride, a, lda, packed, got, ldc, gather, grows);
    ok = ok && compare_f32(kt, "segmented", want, got, csz, m, n0, n, kk, ldc);
    free(ta.block);
    free(tb.block);
    free(pblock);
    free(rows);
    free(gather);
    free(want);
    free(got);
    shapes_run++;
    return ok;
}

/* xe_bgemm_seg (segmented A rows: a binary convolution's window read in
 * place from the padded packed input) against bgemm_plain on the gathered
 * rows, for sets that have segmented micro-kernels; rows overlap when lda is
 * small, as the windows of neighbouring output positions do. */
static int check_bgemm_seg(const xe_kernels *kt, size_t m, size_t n, size_t segs, size_t seglen,
                           size_t segstride, size_t lda) {
    if (!xe_bgemm_has_seg(kt)) return 1;
    const size_t kw = segs * seglen, n0 = 32 * (rnd32() % 2), ntot = n0 + n + rnd32() % 3;
    const size_t ldc = n + rnd32() % 4;
    const size_t asz = m ? (m - 1) * lda + (segs - 1) * segstride + seglen : 0;
    tight_buf ta = tight_alloc(1, asz, asz, 4), tb = tight_alloc(ntot, kw, kw, 4);
    uint32_t *a = ta.data, *b = tb.data, *rows = xmalloc((m * kw + 1) * 4);
    const size_t csz = m * ldc + 4;
    int32_t *want = xmalloc(csz * 4), *got = xmalloc(csz * 4);
    int ok = 1;
    for (size_t i = 0; i < asz; i++) a[i] = rnd32();
    for (size_t i = 0; i < ntot * kw; i++) b[i] = rnd32();
    if (rnd32() % 4 == 0) /* every bit differs somewhere: the largest counts */
        for (size_t i = 0; i < asz; i++) a[i] = ~b[(n0 * kw + i) % (ntot * kw)];
    const size_t sw = xe_bgemm_seg_words(kt, seglen), kp = segs * sw;
    uint32_t *prow = xmalloc((m * kp + 1) * 4);
    for (size_t i = 0; i < m; i++)
        for (size_t g = 0; g < segs; g++) {
            memcpy(rows + i * kw + g * seglen, a + i * lda + g * segstride, seglen * 4);
            memcpy(prow + i * kp + g * sw, a + i * lda + g * segstride, seglen * 4);
            memset(prow + i * kp + g * sw + seglen, 0, (sw - seglen) * 4);
        }
    for (size_t i = 0; i < csz; i++) want[i] = got[i] = CANARY_I;
    bgemm_plain(m, n, kw, rows, kw, b + n0 * kw, kw, want, ldc);
    const size_t pwords = round_up(ntot, kt->bgemm_cfg.nr) * kp;
    tight_buf tp = tight_alloc(1, pwords, pwords, 4); /* packing past its size: ASan */
    uint32_t *packed = tp.data;
    xe_bgemm_pack_seg(kt, ntot, segs, seglen, b, kw, packed);
    xe_bgemm_seg(kt, m, n0, n, segs, seglen, segstride, a, lda, packed, got, ldc);
    ok = ok && compare_i32(kt, "segmented", want, got, csz, m, n0, n, kw, lda, kw, ldc);
    /* The same packing is the plain one of the segment-padded rows (the
     * im2col fallback of op_bconv2d for narrow outputs). */
    for (size_t i = 0; i < csz; i++) got[i] = CANARY_I;
    xe_bgemm(kt, m, n0, n, kp, prow, kp, packed, got, ldc);
    ok = ok && compare_i32(kt, "segment-padded rows", want, got, csz, m, n0, n, kw, kp, kw, ldc);
    free(prow);
    free(ta.block);
    free(tb.block);
    free(tp.block);
    free(rows);
    free(want);
    free(got);
    shapes_run++;
    return ok;
}

static int check_pack(const xe_kernels *kt, size_t rows, size_t channels, size_t pad) {
    size_t words = (channels + 31) / 32;
    size_t ldx = channels + (pad ? 1 + rnd32() % 7 : 0), ldo = words + (pad ? 1 + rnd32() % 3 : 0);
    tight_buf tx = tight_alloc(rows, channels, ldx, 4);
    float *x = tx.data;
    size_t osz = rows * ldo + 2;
    uint32_t *want = xmalloc(osz * 4), *got = xmalloc(osz * 4);
    int ok = 1;
    for (size_t i = 0; i < (rows ? (rows - 1) * ldx + channels : 0); i++) {
        uint32_t r = rnd32() % 16;
        x[i] = r == 0 ? 0.0f : r == 1 ? -0.0f : r == 2 ? NAN : r == 3 ? -NAN : rnd_unit();
    }
    for (size_t i = 0; i < osz; i++) want[i] = got[i] = CANARY_U;
    pack_plain(rows, channels, x, ldx, want, ldo);
    kt->pack(rows, channels, x, ldx, got, ldo);
    for (size_t i = 0; i < osz && ok; i++) {
        if (want[i] != got[i]) {
            fprintf(
                stderr,
                "FAIL %s pack rows=%zu channels=%zu ldx=%zu ldo=%zu: word %zu = %08x, ref %08x\n",
                kt->name, rows, channels, ldx, ldo, i, got[i], want[i]);
            ok = 0;
        }
    }
    free(tx.block);
    free(want);
    free(got);
    shapes_run++;
    return ok;
}

/* The set's self-description: what the driver and the packed layout rely on. */
static int check_geometry(const xe_kernels *kt, const char *name) {
    const xe_bgemm_config *b = &kt->bgemm_cfg;
    const xe_sgemm_config *s = &kt->sgemm_cfg;
    int ok = strcmp(kt->name, name) == 0 && kt->pack;
    ok = ok && b->mr >= 1 && b->mr <= XE_MAX_MR && b->kr >= 1 && b->kr <= XE_MAX_KR && b->pack;
    ok = ok && (b->seg_ukernel[0] ? b->seg_ukernel[b->mr - 1] != NULL : 1);
    for (size_t r = b->seg_ukernel[0] ? b->mr : 0; r < XE_MAX_MR; r++)
        ok = ok && b->seg_ukernel[r] == NULL;
    ok = ok && b->nr >= 1 && b->nr <= XE_MAX_NR && (b->nr & (b->nr - 1)) == 0;
    ok = ok && b->ukernel[0] && b->ukernel[b->mr - 1];
    for (size_t r = b->mr; r < XE_MAX_MR; r++) ok = ok && b->ukernel[r] == NULL;
    ok = ok && s->mr >= 1 && s->mr <= XE_MAX_MR && s->kr == 1 && s->pack;
    ok = ok && s->nr >= 1 && s->nr <= XE_MAX_NR && (s->nr & (s->nr - 1)) == 0;
    ok = ok && s->ukernel[0] && s->ukernel[s->mr - 1];
    for (size_t r = s->mr; r < XE_MAX_MR; r++) ok = ok && s->ukernel[r] == NULL;
    ok = ok && (s->seg_ukernel[0] ? s->seg_ukernel[s->mr - 1] != NULL : 1);
    for (size_t r = s->seg_ukernel[0] ? s->mr : 0; r < XE_MAX_MR; r++)
        ok = ok && s->seg_ukernel[r] == NULL;
    if (!ok)
        fprintf(stderr,
                "FAIL %s geometry: name, entry points, 1 <= mr <= %d, nr a power of two <= %d, "
                "1 <= kr <= %d (sgemm: 1), ukernel[0] and [mr-1] set and none past mr "
                "(seg_ukernel: the same, or none)\n",
                name, XE_MAX_MR, XE_MAX_NR, XE_MAX_KR);
    return ok;
}

/* Sizes below, at and above the tiles of every set (2, 4, 6, 8, 16, 32). */
static const size_t edge_sizes[] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  11, 12,
                                    13, 15, 16, 17, 23, 24, 25, 31, 32, 33, 40};
#define N_EDGE (sizeof edge_sizes / sizeof edge_sizes[0])

static int battery(const xe_kernels *kt) {
    /* k block of the unpacked entry point (more words go through its tile buffer). */
    const size_t kc =
        XE_UNPACKED_PANEL_WORDS / kt->bgemm_cfg.nr / kt->bgemm_cfg.kr * kt->bgemm_cfg.kr;
    int ok = 1;
    /* Every k = 1..80 words against rotating (m, n) pairs from the edge sizes. */
    for (size_t k = 1; k <= 80 && ok; k++)
        for (size_t p = 0; p < 6 && ok; p++)
            ok = check_bgemm(kt, edge_sizes[(k * 7 + p * 5) % N_EDGE],
                             edge_sizes[(k * 3 + p * 11) % N_EDGE], k, p & 1);
    /* Every (m, n) edge pair at a few k, and every channel count x window:
     * k = ceil(C/32) * taps for C in 1..130 and windows 1x1, 3x3, 5x5, 7x7, 11x11. */
    {
        static const size_t ks[] = {1, 7, 8, 9, 31, 72};
        for (size_t ki = 0; ki < sizeof ks / sizeof ks[0] && ok; ki++)
            for (size_t x = 0; x < N_EDGE && ok; x++)
                for (size_t y = 0; y < N_EDGE && ok; y++)
                    ok = check_bgemm(kt, edge_sizes[x], edge_sizes[y], ks[ki], (x + y) & 1);
        static const size_t taps[] = {1, 9, 25, 49, 121};
        for (size_t cw = 1; cw <= 5 && ok; cw++)
            for (size_t ti = 0; ti < 5 && ok; ti++)
                ok = check_bgemm(kt, 1 + rnd32() % 13, 1 + rnd32() % 11, cw * taps[ti], 1);
    }
    /* ResNet-18 binary layers (3x3, pad 1) and the 1x1 stride-2 shortcuts:
     * M = output pixels, N = output channels, K = 9*CW or CW; and the
     * executor's chunks: 32 rows, 64 columns at n0 = 64. */
    if (ok) ok = check_bgemm(kt, 3136, 64, 18, 0);
    if (ok) ok = check_bgemm(kt, 784, 128, 36, 0);
    if (ok) ok = check_bgemm(kt, 196, 256, 72, 0);
    if (ok) ok = check_bgemm(kt, 49, 512, 144, 0);
    if (ok) ok = check_bgemm(kt, 784, 128, 2, 1);
    if (ok) ok = check_bgemm(kt, 49, 512, 8, 1);
    for (int rep = 0; rep < 4 && ok; rep++) ok = check_bgemm(kt, 32, 64, 144, 1);
    /* The unpacked entry point's k blocks: exactly one, one word more, several. */
    if (ok)
        ok = check_bgemm(kt, 9, 19, kc, 1) && check_bgemm(kt, 9, 19, kc + 1, 1) &&
             check_bgemm(kt, 5, 3, 2 * kc + 3, 1);
    /* Long rows overflow 8-bit accumulators many times over, and pass several
     * aarch64 16-bit blocks (511 steps). */
    if (ok) ok = check_bgemm(kt, 5, 6, 4100, 1);
    /* Many 16-bit blocks (4094 steps + tail was the former aarch64 block); 31 words
     * per AVX2 byte block. */
    if (ok)
        ok = check_bgemm_worst(kt, 5, 17, 4 * 4094 * 2 + 3) &&
             check_bgemm_worst(kt, 4, 16, 4 * 4094 + 3);
    if (ok)
        ok = check_bgemm_worst(kt, 3, 9, 248) && check_bgemm_worst(kt, 3, 9, 249) &&
             check_bgemm_worst(kt, 1, 1, 31);
    /* 511 16-byte steps + a 3-word tail per aarch64 16-bit block (8 columns
     * folded by ADDP, <= 128 per lane per step, 65504 in all): exactly full,
     * one step more, three blocks. */
    if (ok)
        ok = check_bgemm_worst(kt, 5, 17, 4 * 511 + 3) && check_bgemm_worst(kt, 5, 17, 4 * 512) &&
             check_bgemm_worst(kt, 4, 9, 4 * 1023 + 2);
    /* 30 16-byte steps (+ tail) per ARMv7 byte block: exactly full, and one step more;
     * with a 1-2 word tail, which two rows take as half a step folded per row
     * (3 rows: a pair and a single row), at the end of one and of two blocks. */
    if (ok) ok = check_bgemm_worst(kt, 2, 5, 4 * 30 + 3) && check_bgemm_worst(kt, 2, 5, 4 * 31 + 3);
    if (ok)
        ok = check_bgemm_worst(kt, 3, 5, 4 * 30 + 2) && check_bgemm_worst(kt, 3, 5, 4 * 31 + 1) &&
             check_bgemm_worst(kt, 2, 4, 4 * 60 + 2) && check_bgemm_worst(kt, 2, 4, 2);
    for (size_t m = 0; m <= 1 && ok; m++) /* empty shapes must not write */
        ok = check_bgemm(kt, m, 1 - m, 5, 1) && check_bgemm(kt, 3, 4, 0, 1);

    for (size_t k = 1; k <= 80 && ok; k++)
        for (size_t p = 0; p < 3 && ok; p++)
            ok = check_sgemm(kt, edge_sizes[(k * 5 + p * 7) % N_EDGE],
                             edge_sizes[(k * 11 + p * 3) % N_EDGE], k, p & 1);
    for (size_t x = 0; x < N_EDGE && ok; x++)
        for (size_t y = 0; y < N_EDGE && ok; y++)
            ok = check_sgemm(kt, edge_sizes[x], edge_sizes[y], 5, (x ^ y) & 1);
    if (ok) ok = check_sgemm(kt, 1024, 64, 27, 0); /* first conv: 3x3x3 im2col, 64 filters */
    if (ok) ok = check_sgemm(kt, 32, 64, 147, 1);  /* a 7x7x3 stem chunk at n0 = 0..64 */
    if (ok) ok = check_sgemm(kt, 1, 1000, 512, 1); /* dense head */
    if (ok) ok = check_sgemm(kt, 3, 10, 4096, 1);  /* long sums */
    for (size_t m = 0; m <= 1 && ok; m++)
        ok = check_sgemm(kt, m, 1 - m, 5, 1) && check_sgemm(kt, 3, 4, 0, 1);
    /* Segmented rows: every segment count x length at edge (m, n), then the
     * stem (7x7x3 stride 2: 7 segments of 21, rows 6 floats apart) and a 3x3
     * float conv over 5 channels; segments may overlap (segstride < seglen). */
    for (size_t segs = 1; segs <= 7 && ok; segs++)
        for (size_t len = 1; len <= 9 && ok; len += 2)
            ok = check_sgemm_seg(kt, edge_sizes[(segs * 5 + len) % N_EDGE],
                                 edge_sizes[(segs * 3 + len * 7) % N_EDGE], segs, len,
                                 len + rnd32() % 6 - (len > 2 ? 2 : 0), 1 + rnd32() % 12);
    if (ok) ok = check_sgemm_seg(kt, 48, 64, 7, 21, 102 * 3, 6);
    if (ok) ok = check_sgemm_seg(kt, 112, 64, 7, 21, 230 * 3, 6);
    if (ok) ok = check_sgemm_seg(kt, 13, 37, 3, 15, 11 * 5, 5);
    if (ok) ok = check_sgemm_seg(kt, 0, 16, 3, 4, 8, 2);

    /* Segmented binary rows: every segment count x length at edge (m, n), then
     * the ResNet-18 3x3 windows (3 kernel rows of 3 pixels x 2..16 words, rows
     * one pixel apart, stride 2 two pixels) and a 1-word 5x5. */
    for (size_t segs = 1; segs <= 7 && ok; segs++)
        for (size_t len = 1; len <= 9 && ok; len += 2)
            ok = check_bgemm_seg(kt, edge_sizes[(segs * 5 + len) % N_EDGE],
                                 edge_sizes[(segs * 3 + len * 7) % N_EDGE], segs, len,
                                 len + rnd32() % 6 - (len > 2 ? 2 : 0), 1 + rnd32() % 12);
    for (size_t cw = 2; cw <= 16 && ok; cw *= 2)
        ok = check_bgemm_seg(kt, 56, 32 * cw, 3, 3 * cw, 58 * cw, cw) &&
             check_bgemm_seg(kt, 27, 32 * cw, 3, 3 * cw, 57 * cw, 2 * cw);
    if (ok) ok = check_bgemm_seg(kt, 13, 37, 5, 5, 17, 1);
    if (ok) ok = check_bgemm_seg(kt, 0, 16, 3, 4, 8, 2);

    for (size_t ch = 1; ch <= 130 && ok; ch++) ok = check_pack(kt, 1 + ch % 7, ch, ch & 1);
    if (ok) ok = check_pack(kt, 3136, 64, 0);
    if (ok) ok = check_pack(kt, 0, 17, 1);
    return ok;
}

static int check_dispatch(void) {
    const char *names[8];
    size_t count = xe_available_isas(names, 8), have_ref = 0;
    int ok = 1;
    const char *saved = getenv("XE_KERNELS");
    for (size_t i = 0; i < count && i < 8; i++) have_ref |= strcmp(names[i], "ref") == 0;
    if (!have_ref) {
        fprintf(stderr, "FAIL dispatch: xe_available_isas does not list \"ref\"\n");
        ok = 0;
    }
    if (xe_available_isas(NULL, 0) != count) {
        fprintf(stderr, "FAIL dispatch: xe_available_isas(NULL, 0) disagrees with the count\n");
        ok = 0;
    }
    /* The table chosen at first use follows XE_KERNELS (ctest runs with it unset,
     * so the best table is active) ... */
    if (saved == NULL && strcmp(xe_kernel_isa(), names[count - 1]) != 0) {
        fprintf(stderr, "FAIL dispatch: active %s, best available %s\n", xe_kernel_isa(),
                names[count - 1]);
        ok = 0;
    }
    /* ... and the explicit switch, which uses the same lookup. */
    if (xe_set_kernel_isa("ref") != XE_OK || strcmp(xe_kernel_isa(), "ref") != 0 ||
        xe_kernels_active() != &xe_kernels_ref) {
        fprintf(stderr, "FAIL dispatch: forcing ref did not select ref\n");
        ok = 0;
    }
    if (xe_set_kernel_isa("no-such-isa") != XE_ERR_INVALID_ARGUMENT ||
        xe_set_kernel_isa(NULL) != XE_ERR_INVALID_ARGUMENT) {
        fprintf(stderr, "FAIL dispatch: unknown name not rejected with XE_ERR_INVALID_ARGUMENT\n");
        ok = 0;
    }
    if (strcmp(xe_kernel_isa(), "ref") != 0) {
        fprintf(stderr, "FAIL dispatch: a rejected name changed the active table\n");
        ok = 0;
    }
#if defined(__x86_64__)
    if (xe_set_kernel_isa("neon-a64") != XE_ERR_UNSUPPORTED) {
        fprintf(stderr, "FAIL dispatch: neon-a64 on x86 should be XE_ERR_UNSUPPORTED\n");
        ok = 0;
    }
#endif
    if (xe_set_kernel_isa("auto") != XE_OK || strcmp(xe_kernel_isa(), names[count - 1]) != 0) {
        fprintf(stderr, "FAIL dispatch: auto did not restore the best table\n");
        ok = 0;
    }
    if (xe_kernels_find("bogus") != NULL || xe_kernels_find("ref") != &xe_kernels_ref) {
        fprintf(stderr, "FAIL dispatch: xe_kernels_find\n");
        ok = 0;
    }
    printf("dispatch: active=%s available=", xe_kernel_isa());
    for (size_t i = 0; i < count && i < 8; i++) printf("%s%s", i ? "," : "", names[i]);
    printf(" XE_KERNELS=%s -> %s\n", saved ? saved : "(unset)", ok ? "ok" : "FAILED");
    return ok;
}

/* XE_KERNELS is read once per process, so each value is tried in a fresh child
 * forked before this process makes its own first dispatch call. want NULL means
 * "the best available table" (fallback). */
static int check_env(const char *value, const char *want) {
    pid_t pid = fork();
    int status = 0;
    if (pid < 0) {
        perror("fork");
        return 0;
    }
    if (pid == 0) {
        const char *names[8];
        size_t count;
        setenv("XE_KERNELS", value, 1);
        count = xe_available_isas(names, 8);
        if (want == NULL) want = names[count - 1];
        printf("env: XE_KERNELS=%s -> %s (want %s)\n", value, xe_kernel_isa(), want);
        fflush(stdout);
        _exit(strcmp(xe_kernel_isa(), want) == 0 ? 0 : 1);
    }
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "FAIL dispatch: XE_KERNELS=%s did not select %s\n", value,
                want ? want : "the best table");
        return 0;
    }
    return 1;
}

int main(void) {
    /* Every set of kernel_sets.inc, with whether this build compiled it. */
    static const struct {
        const char *name;
        int built;
    } sets[] = {
#define XE_KERNEL_SET(id, name, arch, features) {name, arch},
#include "kernel_sets.inc"
#undef XE_KERNEL_SET
    };
    int ok = 1, tested = 0;
    fflush(stdout);
    ok &= check_env("ref", "ref");
    ok &= check_env("auto", NULL);
    ok &= check_env("no-such-isa", NULL);
    ok &= check_env("", NULL);
#if defined(__x86_64__)
    ok &= check_env("neon-a32", NULL); /* a real name this CPU cannot run also falls back */
#else
    ok &= check_env("avx2", NULL);
#endif
    ok &= check_dispatch();
    for (size_t i = 0; i < sizeof sets / sizeof sets[0] && ok; i++) {
        const xe_kernels *kt = xe_kernels_find(sets[i].name);
        long before = shapes_run;
        if (kt == NULL) {
            printf("%-9s SKIPPED (%s)\n", sets[i].name,
                   sets[i].built ? "this CPU lacks its instructions: not tested here"
                                 : "not built for this target");
            continue;
        }
        ok = check_geometry(kt, sets[i].name) && battery(kt);
        tested++;
        printf("%-9s %s (bgemm %ux%u kr %u, sgemm %ux%u; %ld shapes: bgemm and sgemm packed and "
               "unpacked, pack)\n",
               sets[i].name, ok ? "ok" : "FAILED", kt->bgemm_cfg.mr, kt->bgemm_cfg.nr,
               kt->bgemm_cfg.kr, kt->sgemm_cfg.mr, kt->sgemm_cfg.nr, shapes_run - before);
    }
    printf("test_kernels: %d sets tested, %s\n", tested,
           ok ? "all equal to the reference" : "MISMATCH");
    return ok ? 0 : 1;
}
