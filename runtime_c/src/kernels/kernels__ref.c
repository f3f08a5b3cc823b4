/*
 * kernels__ref.c - the plain reference kernels. Always built, never tuned:
 * one row per micro-kernel call (mr = nr = kr = 1, so a packed panel is one
 * filter row), one output at a time, scalar loops inside. test_kernels.c checks every set, this one
 * included, against its own independent reference.
 */
#include <math.h>

#include "kernels.h"

static int32_t popcount32_ref(uint32_t v) {
    /* SWAR popcount, so the reference needs no compiler builtin. */
    v = v - ((v >> 1) & 0x55555555u);
    v = (v & 0x33333333u) + ((v >> 2) & 0x33333333u);
    v = (v + (v >> 4)) & 0x0F0F0F0Fu;
    return (int32_t)((v * 0x01010101u) >> 24);
}

static void bgemm_1x1_ref(size_t nc, size_t kw, const uint32_t *a, size_t lda,
                          const uint32_t *panel, int32_t *c, size_t ldc) {
    (void)lda, (void)ldc;
    for (size_t s = 0; s < nc; s++, panel += kw) {
        int32_t acc = 0;
        for (size_t t = 0; t < kw; t++) acc += popcount32_ref(a[t] ^ panel[t]);
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

const xe_kernels xe_kernels_ref = {
    "ref",
    {1, 1, 1, {bgemm_1x1_ref}, xe_bgemm_pack_panel},
    {1, 1, 1, {sgemm_1x1_ref}, xe_sgemm_pack_panel, {sgemm_seg_1x1_ref}},
    pack_ref,
};
