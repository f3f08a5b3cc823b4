/*
 * test_bconv_thresholds.c - bconv2d's OUT_BITS integer thresholds
 * (xe_bconv_thresholds, op_bconv2d.c) against the float formula
 * bit = ((float)dot * scale + bias < 0), exhaustively over every dot in
 * [-n, n]: window sizes n from 1 to 2^20 (ResNet-18's 4608 included), scales
 * and biases of both signs and all magnitudes (+-0, denormals, FLT_MAX,
 * products that overflow to infinity, biases that land exactly on a product),
 * and the refusal of non-finite params. Exits non-zero on the first mismatch.
 */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#endif
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "ops.h"

#define XE_TEST_RNG_SEED 0x9E3779B97F4A7C15ull
#include "xe_test_rng.h"

static int float_bit(int32_t dot, float s, float b) {
    float v = (float)dot;
    v = v * s;
    v = v + b;
    return v < 0.0f;
}

static long checked;

static int check(float s, float b, int32_t n) {
    int32_t st, m;
    if (!xe_bconv_thresholds(&s, &b, 1, n, &st, &m)) {
        fprintf(stderr, "FAIL: refused finite scale %a bias %a\n", (double)s, (double)b);
        return 1;
    }
    for (int32_t d = -n; d <= n; d++)
        if (xe_thr_bit(d, st, m) != float_bit(d, s, b)) {
            fprintf(stderr, "FAIL: scale %a bias %a n %d dot %d: threshold %d, float %d\n",
                    (double)s, (double)b, n, d, xe_thr_bit(d, st, m), float_bit(d, s, b));
            return 1;
        }
    checked++;
    return 0;
}

int main(void) {
    static const float specials[] = {0.0f,    -0.0f,    1e-45f, -1e-45f, 1e-38f, -1e-38f,
                                     FLT_MAX, -FLT_MAX, 1.0f,   -1.0f,   1e30f,  -1e30f,
                                     0.1f,    -0.1f,    3.0f,   -7.5f};
    static const int32_t ns[] = {1, 2, 3, 9, 27, 64, 576, 4608, 1 << 20};
    const size_t nspec = sizeof specials / sizeof specials[0];
    int bad = 0;
    for (size_t k = 0; k < sizeof ns / sizeof ns[0] && !bad; k++) {
        const int32_t n = ns[k];
        const int trials = n > 5000 ? 3 : 60;
        for (size_t i = 0; i < nspec && !bad; i++)
            for (size_t j = 0; j < nspec && !bad; j++)
                if (n <= 5000 || (i % 5 == 0 && j % 5 == 0))
                    bad |= check(specials[i], specials[j], n);
        for (int t = 0; t < trials && !bad; t++) {
            const float s = rnd_unit() * ldexpf(1.0f, (int)(rnd32() % 40) - 20);
            const int32_t d0 = (int32_t)(rnd32() % (2u * (uint32_t)n + 1)) - n;
            /* A bias that cancels one product exactly, one a rounding step off, one random. */
            const float p = (float)d0 * s;
            bad |= check(s, -p, n);
            bad |= check(s, nextafterf(-p, INFINITY), n);
            bad |= check(s, nextafterf(-p, -INFINITY), n);
            bad |= check(s, rnd_unit() * (float)n * fabsf(s), n);
        }
    }
    const float nonfinite[] = {INFINITY, -INFINITY, NAN};
    for (size_t i = 0; i < 3 && !bad; i++) {
        float one = 1.0f;
        int32_t st, m;
        if (xe_bconv_thresholds(&nonfinite[i], &one, 1, 9, &st, &m) ||
            xe_bconv_thresholds(&one, &nonfinite[i], 1, 9, &st, &m)) {
            fprintf(stderr, "FAIL: accepted a non-finite param %a\n", (double)nonfinite[i]);
            bad = 1;
        }
    }
    if (!bad)
        printf("test_bconv_thresholds: %ld (scale, bias, n) cases, every dot equal\n", checked);
    return bad;
}
