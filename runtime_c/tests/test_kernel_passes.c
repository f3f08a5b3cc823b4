/*
 * test_kernel_passes.c - the binary convolution's non-GEMM kernel functions
 * (kernels.h: pack_abs, epilogue) of every kernel set this build has and this
 * CPU can run, against this file's own plain versions: bit equality of the
 * packed words, of the A means and of the epilogue floats (any NaN matches
 * any NaN, same_floats), over a
 * battery of row counts (every tail of the 8- and 16-row blocks), channel
 * counts 1..130 and the ResNet-18 widths, padded leading dimensions, with and
 * without the affine prologue, every post-op chain up to XE_MAX_POST_OPS, and
 * inputs holding -0.0, +-inf, NaN, denormals and values that round when added.
 * Prints a summary; exits non-zero on the first mismatch, naming the case.
 */
#if defined(__GNUC__) && !defined(__clang__)
/* The plain versions must round every multiply and add (no fused contraction). */
#pragma GCC optimize("fp-contract=off")
#endif
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

#define XE_TEST_RNG_SEED 0x2545F4914F6CDD1Dull
#include "xe_test_rng.h"

/* Mostly ordinary floats of mixed scale, sometimes a special value. */
static float rnd_value(void) {
    const uint32_t r = rnd32();
    switch (r % 64) {
    case 0:
        return -0.0f;
    case 1:
        return 0.0f;
    case 2:
        return INFINITY;
    case 3:
        return -INFINITY;
    case 4:
        return NAN;
    case 5:
        return 1e-40f; /* denormal */
    case 6:
        return -1e-40f;
    case 7:
        return 16777216.0f; /* 2^24: adding 1 rounds */
    default:
        break;
    }
    const float u = (float)(rnd32() >> 8) / 16777216.0f * 2.0f - 1.0f;
    return u * (float)(1u << (r % 16));
}

static void *xmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

static void plain_pack_abs(size_t rows, size_t channels, const float *x, size_t ldx, const float *s,
                           const float *b, uint32_t *out, size_t ldo, float inv, float *amean) {
    for (size_t r = 0; r < rows; r++) {
        float sum = 0.0f;
        for (size_t w = 0; w < (channels + 31) / 32; w++) out[r * ldo + w] = 0;
        for (size_t c = 0; c < channels; c++) {
            float t = x[r * ldx + c];
            if (s) {
                t = t * s[c];
                t = t + b[c];
            }
            if (t < 0.0f) out[r * ldo + c / 32] |= 1u << (c % 32);
            sum = sum + fabsf(t);
        }
        if (amean) amean[r] = sum * inv;
    }
}

static float plain_relu(float v) { return v < 0.0f ? 0.0f : v; }

static void plain_epilogue(size_t n, const int32_t *pc, int32_t nreal, const float *scale,
                           const float *bias, const float *k, int relu, const xe_post_op *ops,
                           size_t nops, float *y) {
    for (size_t o = 0; o < n; o++) {
        float v = (float)(nreal - 2 * pc[o]);
        v = v * scale[o];
        if (k) v = v * k[0];
        v = v + bias[o];
        if (relu) v = plain_relu(v);
        for (size_t i = 0; i < nops; i++) {
            if (ops[i].kind == XE_POST_AFFINE) {
                v = v * ops[i].a[o];
                v = v + ops[i].b[o];
            } else if (ops[i].kind == XE_POST_ADD) {
                v = v + ops[i].a[o];
            } else {
                v = ops[i].a[o] + v;
            }
            if (ops[i].relu) v = plain_relu(v);
        }
        y[o] = v;
    }
}

static long cases;

/* Bit equality, except that any two NaNs match: which NaN an operation with
 * NaN operands returns (sign, payload) depends on operand order, which C
 * compilers may swap for a commutative + (the plain versions here, and the ops
 * before fusion, do not pin it either). */
static int same_floats(const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (memcmp(a + i, b + i, 4) != 0 && !(isnan(a[i]) && isnan(b[i]))) return 0;
    return 1;
}

static int check_pack_abs(const xe_kernels *kt, size_t rows, size_t channels, size_t pad,
                          int affine, int with_a) {
    const size_t ldx = channels + pad, words = (channels + 31) / 32, ldo = words + pad % 3;
    float *x = xmalloc(rows * ldx * 4), *s = xmalloc(channels * 4), *b = xmalloc(channels * 4);
    uint32_t *want = xmalloc((rows * ldo + 1) * 4), *got = xmalloc((rows * ldo + 1) * 4);
    float *aw = xmalloc((rows + 1) * 4), *ag = xmalloc((rows + 1) * 4);
    for (size_t i = 0; i < rows * ldx; i++) x[i] = rnd_value();
    for (size_t c = 0; c < channels; c++) s[c] = rnd_value(), b[c] = rnd_value();
    memset(want, 0x5A, (rows * ldo + 1) * 4);
    memset(got, 0x5A, (rows * ldo + 1) * 4);
    memset(aw, 0x5A, (rows + 1) * 4);
    memset(ag, 0x5A, (rows + 1) * 4);
    const float inv = 1.0f / (float)channels;
    plain_pack_abs(rows, channels, x, ldx, affine ? s : NULL, affine ? b : NULL, want, ldo, inv,
                   with_a ? aw : NULL);
    xe_k_pack_abs(kt)(rows, channels, x, ldx, affine ? s : NULL, affine ? b : NULL, got, ldo, inv,
                      with_a ? ag : NULL);
    int bad = 0;
    for (size_t r = 0; r < rows && !bad; r++)
        bad = memcmp(want + r * ldo, got + r * ldo, words * 4) != 0;
    bad |= got[rows * ldo] != 0x5A5A5A5Au && ldo == words; /* nothing past the last word */
    if (with_a) bad |= !same_floats(aw, ag, rows + 1);
    if (bad)
        fprintf(stderr, "FAIL pack_abs %s rows=%zu channels=%zu pad=%zu affine=%d a=%d\n", kt->name,
                rows, channels, pad, affine, with_a);
    cases++;
    free(x), free(s), free(b), free(want), free(got), free(aw), free(ag);
    return bad;
}

static int check_epilogue(const xe_kernels *kt, size_t n, int use_k, int relu, size_t nops) {
    const int32_t nreal = (int32_t)(rnd32() % 5000);
    int32_t *pc = xmalloc(n * 4);
    float *scale = xmalloc(n * 4), *bias = xmalloc(n * 4), *want = xmalloc((n + 1) * 4);
    float *got = xmalloc((n + 1) * 4), *opa[XE_MAX_POST_OPS], *opb[XE_MAX_POST_OPS];
    xe_post_op ops[XE_MAX_POST_OPS];
    const float k = rnd_value();
    for (size_t o = 0; o < n; o++) {
        pc[o] = (int32_t)(rnd32() % ((uint32_t)nreal + 1));
        scale[o] = rnd_value();
        bias[o] = rnd_value();
    }
    for (size_t i = 0; i < nops; i++) {
        opa[i] = xmalloc(n * 4);
        opb[i] = xmalloc(n * 4);
        for (size_t o = 0; o < n; o++) opa[i][o] = rnd_value(), opb[i][o] = rnd_value();
        ops[i].kind = XE_POST_AFFINE + rnd32() % 3;
        ops[i].relu = rnd32() % 2;
        ops[i].a = opa[i];
        ops[i].b = ops[i].kind == XE_POST_AFFINE ? opb[i] : NULL;
    }
    memset(want, 0x5A, (n + 1) * 4);
    memset(got, 0x5A, (n + 1) * 4);
    plain_epilogue(n, pc, nreal, scale, bias, use_k ? &k : NULL, relu, ops, nops, want);
    xe_k_epilogue(kt)(n, pc, nreal, scale, bias, use_k ? &k : NULL, relu, ops, nops, got);
    const int bad = !same_floats(want, got, n + 1);
    if (bad) {
        fprintf(stderr, "FAIL epilogue %s n=%zu k=%d relu=%d nops=%zu\n", kt->name, n, use_k, relu,
                nops);
        for (size_t o = 0; o <= n; o++)
            if (!same_floats(want + o, got + o, 1))
                fprintf(stderr, "  column %zu: want %a got %a\n", o, (double)want[o],
                        (double)got[o]);
    }
    cases++;
    for (size_t i = 0; i < nops; i++) free(opa[i]), free(opb[i]);
    free(pc), free(scale), free(bias), free(want), free(got);
    return bad;
}

static int battery(const xe_kernels *kt) {
    static const size_t widths[] = {64, 128, 256, 512, 3, 96, 200};
    int bad = 0;
    for (size_t rows = 1; rows <= 40 && !bad; rows++)
        for (size_t channels = 1; channels <= 130 && !bad; channels += 1 + channels / 16)
            for (int affine = 0; affine < 2; affine++)
                bad |=
                    check_pack_abs(kt, rows, channels, rows % 3, affine, (rows + affine) % 4 != 0);
    for (size_t i = 0; i < sizeof widths / sizeof widths[0] && !bad; i++)
        for (size_t rows = 47; rows <= 58; rows++)
            bad |= check_pack_abs(kt, rows, widths[i], rows % 2, rows % 3 == 0, 1);
    for (size_t n = 1; n <= 80 && !bad; n++)
        for (int use_k = 0; use_k < 2; use_k++)
            for (int relu = 0; relu < 2; relu++)
                for (size_t nops = 0; nops <= XE_MAX_POST_OPS; nops++)
                    bad |= check_epilogue(kt, n, use_k, relu, nops);
    for (size_t rep = 0; rep < 40 && !bad; rep++)
        bad |= check_epilogue(kt, 512, (int)(rep % 2), (int)(rep / 2 % 2), rep % 5);
    return bad;
}

int main(void) {
    int sets = 0;
#define XE_KERNEL_SET(id, name, arch, features)                                                    \
    do {                                                                                           \
        const xe_kernels *kt = xe_kernels_find(name);                                              \
        if (kt) {                                                                                  \
            if (battery(kt)) return 1;                                                             \
            sets++;                                                                                \
        }                                                                                          \
    } while (0);
#include "kernel_sets.inc"
#undef XE_KERNEL_SET
    printf("test_kernel_passes: %d kernel sets, %ld cases, all bit-identical\n", sets, cases);
    return sets > 0 ? 0 : 1;
}
