/*
 * kernels__ref.c - the plain reference kernels. Always built, never tuned:
 * one row per micro-kernel call (mr = nr = kr = 1, so a packed panel is one
 * filter row), one output at a time, scalar loops inside. test_kernels.c checks every set, this one
 * included, against its own independent reference.
 */
#include <math.h>

#include "kernels.h"

static void bgemm_1x1_ref(size_t nc, size_t kw, const uint32_t *a, size_t lda,
                          const uint32_t *panel, int32_t *c, size_t ldc) {
    (void)lda, (void)ldc;
    for (size_t s = 0; s < nc; s++, panel += kw) {
        int32_t acc = 0;
        for (size_t t = 0; t < kw; t++) acc += xe_popcount32(a[t] ^ panel[t]);
        c[s] = acc;
    }
}

static void bgemm_seg_1x1_ref(size_t nc, size_t segs, size_t seglen, size_t segstride,
                              const uint32_t *a, size_t lda, const uint32_t *panel, int32_t *c,
                              size_t ldc) {
    (void)lda, (void)ldc;
    for (size_t s = 0; s < nc; s++) {
        int32_t acc = 0;
        for (size_t g = 0; g < segs; g++)
            for (size_t u = 0; u < seglen; u++, panel++)
                acc += xe_popcount32(a[g * segstride + u] ^ *panel);
        c[s] = acc;
    }
}

static void sgemm_1x1_ref(size_t nc, size_t kk, const float *a, size_t lda, const float *b,
                          size_t ldb, size_t bstep, float *c, size_t ldc) {
    (void)lda, (void)ldc;
    for (size_t s = 0; s < nc; s++, b += bstep) {
        float acc = 0.0f;
        for (size_t t = 0; t < kk; t++) acc = fmaf(a[t], b[t * ldb], acc);
        c[s] = acc;
    }
}

static void sgemm_seg_1x1_ref(size_t nc, size_t segs, size_t seglen, size_t segstride,
                              const float *a, size_t lda, const float *b, size_t ldb, size_t bstep,
                              float *c, size_t ldc) {
    (void)lda, (void)ldc;
    for (size_t s = 0; s < nc; s++, b += bstep) {
        float acc = 0.0f;
        for (size_t g = 0, t = 0; g < segs; g++)
            for (size_t u = 0; u < seglen; u++, t++)
                acc = fmaf(a[g * segstride + u], b[t * ldb], acc);
        c[s] = acc;
    }
}

static void pack_ref(size_t rows, size_t channels, const float *x, size_t ldx, uint32_t *out,
                     size_t ldo) {
    size_t words = (channels + 31) / 32;
    for (size_t r = 0; r < rows; r++) {
        for (size_t w = 0; w < words; w++) {
            uint32_t word = 0;
            for (size_t bit = 0; bit < 32 && w * 32 + bit < channels; bit++) {
                if (x[r * ldx + w * 32 + bit] < 0.0f) word |= (uint32_t)1 << bit;
            }
            out[r * ldo + w] = word;
        }
    }
}

/* ---- Binary-convolution input and output passes (not GEMM) ---- */

void xe_pack_abs_ref(size_t rows, size_t channels, const float *x, size_t ldx, const float *s,
                     const float *b, uint32_t *out, size_t ldo, float inv, float *amean) {
    const size_t words = (channels + 31) / 32;
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * ldx;
        float sum = 0.0f;
        for (size_t w = 0; w < words; w++) {
            uint32_t word = 0;
            for (size_t bit = 0; bit < 32 && w * 32 + bit < channels; bit++) {
                const size_t ch = w * 32 + bit;
                const float t = s ? xr[ch] * s[ch] + b[ch] : xr[ch];
                word |= (uint32_t)(t < 0.0f) << bit;
                sum += fabsf(t);
            }
            out[r * ldo + w] = word;
        }
        if (amean) amean[r] = sum * inv;
    }
}

void xe_epilogue_ref(size_t n, const int32_t *pc, int32_t nreal, const float *scale,
                     const float *bias, const float *k, int relu, const xe_post_op *ops,
                     size_t nops, float *y) {
    for (size_t o = 0; o < n; o++) {
        float v = (float)(nreal - 2 * pc[o]) * scale[o];
        if (k) v = v * *k;
        v = v + bias[o];
        if (relu) v = v < 0.0f ? 0.0f : v;
        for (size_t i = 0; i < nops; i++) {
            const xe_post_op *op = &ops[i];
            if (op->kind == XE_POST_AFFINE)
                v = v * op->a[o] + op->b[o];
            else if (op->kind == XE_POST_ADD)
                v = v + op->a[o];
            else
                v = op->a[o] + v;
            if (op->relu) v = v < 0.0f ? 0.0f : v;
        }
        y[o] = v;
    }
}

const xe_kernels xe_kernels_ref = {
    "ref",
    {1, 1, 1, {bgemm_1x1_ref}, xe_bgemm_pack_panel, {bgemm_seg_1x1_ref}},
    {1, 1, 1, {sgemm_1x1_ref}, xe_sgemm_pack_panel, {sgemm_seg_1x1_ref}},
    pack_ref,
    xe_pack_abs_ref,
    xe_epilogue_ref,
    NULL, /* mst_children: the reference twin */
    NULL, /* mst_chunk: xe_bgemm on the roots, then mst_children */
};
