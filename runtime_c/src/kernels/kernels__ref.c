/*
 * kernels__ref.c - the plain reference kernels. Always built, never tuned:
 * every other table is tested against these for exact equality.
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

static void bgemm_ref(size_t m, size_t n, size_t k, const uint32_t *a, size_t lda,
                      const uint32_t *b, size_t ldb, int32_t *c, size_t ldc) {
    for (size_t i = 0; i < m; i++) {
        for (size_t j = 0; j < n; j++) {
            int32_t acc = 0;
            for (size_t t = 0; t < k; t++) acc += popcount32_ref(a[i * lda + t] ^ b[j * ldb + t]);
            c[i * ldc + j] = acc;
        }
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

static void sgemm_ref(size_t m, size_t n, size_t k, const float *a, size_t lda, const float *b,
                      size_t ldb, float *c, size_t ldc) {
    for (size_t i = 0; i < m; i++) {
        for (size_t j = 0; j < n; j++) {
            float acc = 0.0f;
            for (size_t t = 0; t < k; t++) acc = fmaf(a[i * lda + t], b[t * ldb + j], acc);
            c[i * ldc + j] = acc;
        }
    }
}

const xe_kernels xe_kernels_ref = {"ref", bgemm_ref, pack_ref, sgemm_ref};
