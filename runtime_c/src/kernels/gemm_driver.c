/*
 * gemm_driver.c - the one GEMM driver: packs B into a set's panels and walks
 * the work for every kernel set (kernels.h has the layouts and the contract).
 * Loop order: blocks of columns whose packed B fits in about
 * XE_B_BLOCK_BYTES (L2); in a block, row tiles of mr (the last rows through
 * the largest micro-kernel that fits), each micro-kernel call sweeping all of
 * the block's panels, so its A rows stay in registers and L1 while the panels
 * stream from L2 (the order of XNNPACK's GEMM and of the AVX2 float kernel
 * before the driver).
 */
#include <math.h>
#include <string.h>

#include "kernels.h"

#define XE_B_BLOCK_BYTES (128u * 1024u)

static size_t round_up(size_t x, size_t to) { return (x + to - 1) / to * to; }

/* Columns per block for B columns of col_bytes bytes: a multiple of nr, at least nr. */
static size_t col_block(size_t nr, size_t col_bytes) {
    const size_t cols = XE_B_BLOCK_BYTES / (col_bytes ? col_bytes : 1) / nr * nr;
    return cols < nr ? nr : cols;
}

/* kr words; constant sizes for the usual kr, so each copy is one load and store. */
static void copy_step(uint32_t *dst, const uint32_t *src, size_t kr) {
    switch (kr) {
    case 1:
        dst[0] = src[0];
        break;
    case 2:
        memcpy(dst, src, 8);
        break;
    case 4:
        memcpy(dst, src, 16);
        break;
    default:
        memcpy(dst, src, kr * 4);
        break;
    }
}

void xe_bgemm_pack_panel(size_t nr, size_t kr, size_t nc, size_t kw, const uint32_t *b, size_t ldb,
                         uint32_t *panel) {
    const size_t kfull = kw / kr * kr, kp = round_up(kw, kr);
    for (size_t t0 = 0; t0 < kp; t0 += kr)
        for (size_t s = 0; s < nr; s++, panel += kr) {
            if (s < nc && t0 < kfull) {
                copy_step(panel, b + s * ldb + t0, kr);
                continue;
            }
            for (size_t u = 0; u < kr; u++)
                panel[u] = s < nc && t0 + u < kw ? b[s * ldb + t0 + u] : 0;
        }
}

void xe_sgemm_pack_panel(size_t nr, size_t kr, size_t nc, size_t kk, const float *b, size_t rs,
                         size_t cs, float *panel) {
    (void)kr; /* float sets keep kr = 1 (kernels.h) */
    for (size_t t = 0; t < kk; t++, panel += nr)
        for (size_t s = 0; s < nr; s++) panel[s] = s < nc ? b[t * rs + s * cs] : 0.0f;
}

size_t xe_bgemm_packed_words(const xe_kernels *k, size_t n, size_t kw) {
    const xe_bgemm_config *g = &k->bgemm_cfg;
    return round_up(n, g->nr) * round_up(kw, g->kr);
}

void xe_bgemm_pack(const xe_kernels *k, size_t n, size_t kw, const uint32_t *b, size_t ldb,
                   uint32_t *packed) {
    const xe_bgemm_config *g = &k->bgemm_cfg;
    const size_t step = (size_t)g->nr * round_up(kw, g->kr);
    for (size_t j = 0; j < n; j += g->nr, packed += step)
        g->pack(g->nr, g->kr, n - j < g->nr ? n - j : g->nr, kw, b + j * ldb, ldb, packed);
}

/* All m rows against nc columns of consecutive packed panels. */
static void bgemm_rows(const xe_bgemm_config *g, size_t m, size_t nc, size_t kw, const uint32_t *a,
                       size_t lda, const uint32_t *w, int32_t *c, size_t ldc) {
    size_t i = 0;
    while (i < m) {
        size_t r = m - i < g->mr ? m - i : g->mr;
        while (g->ukernel[r - 1] == NULL) r--;
        g->ukernel[r - 1](nc, kw, a + i * lda, lda, w, c + i * ldc, ldc);
        i += r;
    }
}

void xe_bgemm(const xe_kernels *k, size_t m, size_t n0, size_t n, size_t kw, const uint32_t *a,
              size_t lda, const uint32_t *packed, int32_t *c, size_t ldc) {
    const xe_bgemm_config *g = &k->bgemm_cfg;
    const size_t kp = round_up(kw, g->kr), nb = col_block(g->nr, kp * 4);
    packed += n0 / g->nr * g->nr * kp;
    for (size_t j = 0; j < n; j += nb)
        bgemm_rows(g, m, n - j < nb ? n - j : nb, kw, a, lda, packed + j * kp, c + j, ldc);
}

void xe_bgemm_pack_seg(const xe_kernels *k, size_t n, size_t segs, size_t seglen, const uint32_t *b,
                       size_t ldb, uint32_t *packed) {
    const xe_bgemm_config *g = &k->bgemm_cfg;
    const size_t sw = xe_bgemm_seg_words(k, seglen);
    for (size_t j = 0; j < n; j += g->nr)
        for (size_t s = 0; s < segs; s++, packed += (size_t)g->nr * sw)
            g->pack(g->nr, g->kr, n - j < g->nr ? n - j : g->nr, seglen, b + j * ldb + s * seglen,
                    ldb, packed);
}

void xe_bgemm_seg(const xe_kernels *k, size_t m, size_t n0, size_t n, size_t segs, size_t seglen,
                  size_t segstride, const uint32_t *a, size_t lda, const uint32_t *packed,
                  int32_t *c, size_t ldc) {
    const xe_bgemm_config *g = &k->bgemm_cfg;
    const size_t kp = segs * xe_bgemm_seg_words(k, seglen), nb = col_block(g->nr, kp * 4);
    packed += n0 / g->nr * g->nr * kp;
    for (size_t j = 0; j < n; j += nb) {
        const size_t nc = n - j < nb ? n - j : nb;
        for (size_t i = 0; i < m;) {
            size_t r = m - i < g->mr ? m - i : g->mr;
            while (g->seg_ukernel[r - 1] == NULL) r--;
            g->seg_ukernel[r - 1](nc, segs, seglen, segstride, a + i * lda, lda, packed + j * kp,
                                  c + i * ldc + j, ldc);
            i += r;
        }
    }
}

void xe_bgemm_unpacked(const xe_kernels *k, size_t m, size_t n, size_t kw, const uint32_t *a,
                       size_t lda, const uint32_t *b, size_t ldb, int32_t *c, size_t ldc) {
    const xe_bgemm_config *g = &k->bgemm_cfg;
    const size_t nr = g->nr, kp = round_up(kw, g->kr);
    uint32_t panel[XE_UNPACKED_PANEL_WORDS];
    int32_t tile[XE_MAX_MR * XE_MAX_NR];
    if (kp * nr <= XE_UNPACKED_PANEL_WORDS) {
        /* As many panels as the stack buffer holds, then all rows against them. */
        const size_t nb = XE_UNPACKED_PANEL_WORDS / ((kp ? kp : 1) * nr) * nr;
        for (size_t j = 0; j < n; j += nb) {
            const size_t cols = n - j < nb ? n - j : nb;
            for (size_t p = 0; p < cols; p += nr)
                g->pack(nr, g->kr, cols - p < nr ? cols - p : nr, kw, b + (j + p) * ldb, ldb,
                        panel + p * kp);
            bgemm_rows(g, m, cols, kw, a, lda, panel, c + j, ldc);
        }
        return;
    }
    /* One panel at a time in k blocks of kc words; blocks after the first go
     * through a tile buffer and are added to c. */
    {
        const size_t kc = XE_UNPACKED_PANEL_WORDS / nr / g->kr * g->kr;
        for (size_t j = 0; j < n; j += nr) {
            const size_t nc = n - j < nr ? n - j : nr;
            for (size_t t0 = 0; t0 < kw; t0 += kc) {
                const size_t kb = kw - t0 < kc ? kw - t0 : kc;
                g->pack(nr, g->kr, nc, kb, b + j * ldb + t0, ldb, panel);
                if (t0 == 0) {
                    bgemm_rows(g, m, nc, kb, a, lda, panel, c + j, ldc);
                    continue;
                }
                for (size_t i = 0; i < m; i += g->mr) {
                    const size_t r = m - i < g->mr ? m - i : g->mr;
                    bgemm_rows(g, r, nc, kb, a + i * lda + t0, lda, panel, tile, XE_MAX_NR);
                    for (size_t u = 0; u < r; u++)
                        for (size_t s = 0; s < nc; s++)
                            c[(i + u) * ldc + j + s] += tile[u * XE_MAX_NR + s];
                }
            }
        }
    }
}

size_t xe_sgemm_packed_floats(const xe_kernels *k, size_t n, size_t kk) {
    return round_up(n, k->sgemm_cfg.nr) * kk;
}

void xe_sgemm_pack(const xe_kernels *k, size_t n, size_t kk, const float *b, size_t rs, size_t cs,
                   float *packed) {
    const xe_sgemm_config *g = &k->sgemm_cfg;
    const size_t step = (size_t)g->nr * kk;
    for (size_t j = 0; j < n; j += g->nr, packed += step)
        g->pack(g->nr, g->kr, n - j < g->nr ? n - j : g->nr, kk, b + j * cs, rs, cs, packed);
}

/* All m rows against nc columns of panels bstep apart (row stride ldb). */
static void sgemm_rows(const xe_sgemm_config *g, size_t m, size_t nc, size_t kk, const float *a,
                       size_t lda, const float *b, size_t ldb, size_t bstep, float *c, size_t ldc) {
    size_t i = 0;
    while (i < m) {
        size_t r = m - i < g->mr ? m - i : g->mr;
        while (g->ukernel[r - 1] == NULL) r--;
        g->ukernel[r - 1](nc, kk, a + i * lda, lda, b, ldb, bstep, c + i * ldc, ldc);
        i += r;
    }
}

void xe_sgemm(const xe_kernels *k, size_t m, size_t n0, size_t n, size_t kk, const float *a,
              size_t lda, const float *packed, float *c, size_t ldc) {
    const xe_sgemm_config *g = &k->sgemm_cfg;
    const size_t nb = col_block(g->nr, kk * 4);
    packed += n0 * kk;
    for (size_t j = 0; j < n; j += nb)
        sgemm_rows(g, m, n - j < nb ? n - j : nb, kk, a, lda, packed + j * kk, g->nr, g->nr * kk,
                   c + j, ldc);
}

/* As sgemm_rows, with the segmented micro-kernels. */
static void sgemm_seg_rows(const xe_sgemm_config *g, size_t m, size_t nc, size_t segs,
                           size_t seglen, size_t segstride, const float *a, size_t lda,
                           const float *b, size_t kk, float *c, size_t ldc) {
    size_t i = 0;
    while (i < m) {
        size_t r = m - i < g->mr ? m - i : g->mr;
        while (g->seg_ukernel[r - 1] == NULL) r--;
        g->seg_ukernel[r - 1](nc, segs, seglen, segstride, a + i * lda, lda, b, g->nr, g->nr * kk,
                              c + i * ldc, ldc);
        i += r;
    }
}

void xe_sgemm_seg(const xe_kernels *k, size_t m, size_t n0, size_t n, size_t segs, size_t seglen,
                  size_t segstride, const float *a, size_t lda, const float *packed, float *c,
                  size_t ldc, float *gather, size_t gather_rows) {
    const xe_sgemm_config *g = &k->sgemm_cfg;
    const size_t kk = segs * seglen;
    if (g->seg_ukernel[0] == NULL) {
        for (size_t i = 0; i < m; i += gather_rows) {
            const size_t rows = m - i < gather_rows ? m - i : gather_rows;
            for (size_t r = 0; r < rows; r++)
                for (size_t s = 0; s < segs; s++)
                    memcpy(gather + r * kk + s * seglen, a + (i + r) * lda + s * segstride,
                           seglen * sizeof(float));
            xe_sgemm(k, rows, n0, n, kk, gather, kk, packed, c + i * ldc, ldc);
        }
        return;
    }
    const size_t nb = col_block(g->nr, kk * 4);
    packed += n0 * kk;
    for (size_t j = 0; j < n; j += nb)
        sgemm_seg_rows(g, m, n - j < nb ? n - j : nb, segs, seglen, segstride, a, lda,
                       packed + j * kk, kk, c + j, ldc);
}

void xe_sgemm_unpacked(const xe_kernels *k, size_t m, size_t n, size_t kk, const float *a,
                       size_t lda, const float *b, size_t ldb, float *c, size_t ldc) {
    const xe_sgemm_config *g = &k->sgemm_cfg;
    const size_t nb = col_block(g->nr, kk * 4);
    for (size_t j = 0; j < n; j += nb)
        sgemm_rows(g, m, n - j < nb ? n - j : nb, kk, a, lda, b + j, ldb, g->nr, c + j, ldc);
}

void xe_sgemm_1x8_fmaf(size_t nc, size_t kk, const float *a, size_t lda, const float *b, size_t ldb,
                       size_t bstep, float *c, size_t ldc) {
    (void)lda, (void)ldc;
    for (; nc > 0; b += bstep, c += 8) {
        const size_t cols = nc < 8 ? nc : 8;
        float acc[8] = {0};
        for (size_t t = 0; t < kk; t++) {
            const float at = a[t];
            const float *bt = b + t * ldb;
            for (size_t s = 0; s < cols; s++) acc[s] = fmaf(at, bt[s], acc[s]);
        }
        for (size_t s = 0; s < cols; s++) c[s] = acc[s];
        nc -= cols;
    }
}
