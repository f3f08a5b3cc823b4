/*
 * test_ops.c - every op and flag combination against a double-precision
 * reference interpreter of docs/format.md, over a battery of shapes, with
 * every kernel set this CPU can run (outputs must be bit-identical across
 * sets).
 *
 * The reference computes the formulas literally: binary convolution as an
 * explicit sum of +-1 sign products (padded taps 0 or +1), K = box(mean_c|x|),
 * pools tap by tap, and so on. Bits values are held as +-1 doubles. A bits
 * output is checked through a "decode" bconv2d (1x1, IC+1 filters: filter j
 * is -1 on channel j only, the last is all +1; dot_j = S - 2*s_j) whose float
 * output the reference also computes.
 *
 * Inputs, weights, scales and biases are small dyadic rationals, so every
 * product and sum in these tests is exact in float32 as well as in double:
 * results are compared exactly, except after USE_K, avgpool,
 * global_avgpool and softmax (divisions, exp), where the tolerance is
 * |got - ref| <= 1e-5 * (1 + |ref|).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xe_test_model.h"
#include "xnor_edge.h"

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;

static uint32_t rnd(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng >> 11);
}
/* Multiples of 1/4 in [-2, 2]: exact in float, zeros included. */
static float rnd_in(void) { return (float)((int)(rnd() % 17) - 8) / 4.0f; }
/* Multiples of 1/8 in [-0.5, 0.5]. */
static float rnd_w(void) { return (float)((int)(rnd() % 9) - 4) / 8.0f; }

/* ------------------------------------------------------------------ */
/* Parameter storage for a test model (freed together).                 */

typedef struct arena {
    void *p[64];
    int n;
} arena;

static void *arena_alloc(arena *a, size_t bytes) {
    void *p = calloc(bytes ? bytes : 1, 1);
    if (!p || a->n == 64) {
        fprintf(stderr, "arena full\n");
        exit(2);
    }
    a->p[a->n++] = p;
    return p;
}

static void arena_free(arena *a) {
    for (int i = 0; i < a->n; i++) free(a->p[i]);
    a->n = 0;
}

static float *rand_f32(arena *a, size_t n, float (*gen)(void)) {
    float *f = arena_alloc(a, n * 4);
    for (size_t i = 0; i < n; i++) f[i] = gen();
    return f;
}

/* Random weight bits [OC][taps][CW], padding bits zero. */
static uint32_t *rand_bits(arena *a, size_t oc, size_t taps, size_t ic) {
    const size_t cw = (ic + 31) / 32;
    uint32_t *w = arena_alloc(a, oc * taps * cw * 4);
    for (size_t t = 0; t < oc * taps; t++)
        for (size_t c = 0; c < ic; c++)
            if (rnd() & 1) w[t * cw + c / 32] |= 1u << (c % 32);
    return w;
}

/* Scales: multiples of 1/8 in [1/8, 2], sometimes negative; biases: odd
 * multiples of 1/8, so dot*scale + bias is never exactly 0 and the OUT_BITS
 * threshold is never a tie. */
static float *rand_scale(arena *a, size_t n) {
    float *f = arena_alloc(a, n * 4);
    for (size_t i = 0; i < n; i++)
        f[i] = (float)((int)(rnd() % 16) + 1) / 8.0f * ((rnd() % 5) ? 1.f : -1.f);
    return f;
}
static float *rand_bias(arena *a, size_t n) {
    float *f = arena_alloc(a, n * 4);
    for (size_t i = 0; i < n; i++) f[i] = (float)(2 * (int)(rnd() % 33) - 33) / 8.0f;
    return f;
}

/* ------------------------------------------------------------------ */
/* Graph helpers.                                                        */

static uint32_t add_conv(xtm *t, arena *a, uint32_t op, uint32_t flags, uint32_t in, uint32_t k,
                         uint32_t s, uint32_t p, uint32_t oc) {
    const xtm_value v = t->values[in];
    const size_t taps = (size_t)k * k;
    uint32_t p0;
    if (op == XE_OP_CONV2D) {
        p0 = xtm_param(t, XTM_F32, rand_f32(a, oc * taps * v.c, rnd_w), oc * taps * v.c);
        xtm_param(t, XTM_F32, rand_bias(a, oc), oc);
        return xtm_node(t, op, flags, in, XTM_NONE, k, k, s, s, p, p, oc, p0, 2);
    }
    const size_t cw = (v.c + 31) / 32;
    p0 = xtm_param(t, XTM_BITS, rand_bits(a, oc, taps, v.c), oc * taps * cw);
    xtm_param(t, XTM_F32, rand_scale(a, oc), oc);
    xtm_param(t, XTM_F32, rand_bias(a, oc), oc);
    return xtm_node(t, op, flags, in, XTM_NONE, k, k, s, s, p, p, oc, p0, 3);
}

/* bits (h, w, C) -> float (h, w, C+1) exposing every bit; see the file comment. */
static uint32_t add_decode(xtm *t, arena *a, uint32_t in) {
    const uint32_t c = t->values[in].c, cw = (c + 31) / 32, oc = c + 1;
    uint32_t *w = arena_alloc(a, (size_t)oc * cw * 4);
    for (uint32_t j = 0; j < c; j++) w[(size_t)j * cw + j / 32] = 1u << (j % 32);
    float *sc = arena_alloc(a, oc * 4), *b = arena_alloc(a, oc * 4);
    for (uint32_t j = 0; j < oc; j++) sc[j] = 1.0f;
    uint32_t p0 = xtm_param(t, XTM_BITS, w, (uint64_t)oc * cw);
    xtm_param(t, XTM_F32, sc, oc);
    xtm_param(t, XTM_F32, b, oc);
    return xtm_node(t, XE_OP_BCONV2D, 0, in, XTM_NONE, 1, 1, 1, 1, 0, 0, oc, p0, 3);
}

/* ------------------------------------------------------------------ */
/* The reference interpreter.                                            */

typedef struct rv {
    uint32_t h, w, c, dtype;
    double *d; /* h*w*c; bits as +-1 */
} rv;

static double sgn(double x) { return x < 0 ? -1.0 : 1.0; }

static int wbit(const uint32_t *w, size_t cw, size_t o, size_t taps, size_t t, size_t c) {
    return (w[(o * taps + t) * cw + c / 32] >> (c % 32)) & 1u;
}

/* The filters [oc][L] a bconv2d_mst node's params code (docs/format.md), bit
 * by bit: roots in order's order, each child its parent with the listed
 * differences flipped. */
static uint32_t *mst_decode(const void *const *P, uint32_t oc, size_t L) {
    const uint32_t *t = P[0], *roots = P[1], *off = P[2], *idx = P[3], *mask = P[4];
    uint32_t *w = calloc((size_t)oc * L + 1, 4);
    size_t r = 0;
    for (uint32_t q = 0; q < oc; q++) {
        const uint32_t c = t[8 + q], pa = t[8 + oc + c];
        uint32_t *wc = w + (size_t)c * L;
        memcpy(wc, pa == XTM_NONE ? roots + L * r++ : w + (size_t)pa * L, L * 4);
        for (uint32_t e = off[c]; pa != XTM_NONE && e < off[c + 1]; e++) {
            const uint32_t i = t[5] == 16 ? (idx[e / 2] >> (16 * (e % 2))) & 0xFFFFu : idx[e];
            if (t[0] == 1)
                wc[i] ^= mask[e];
            else
                wc[i / 32] ^= 1u << (i % 32);
        }
    }
    return w;
}

static void ref_eval(const xtm *t, const float *input, rv *vals) {
    vals[0] = (rv){t->ih, t->iw, t->ic, XTM_F32, malloc(sizeof(double) * t->ih * t->iw * t->ic)};
    for (size_t i = 0; i < (size_t)t->ih * t->iw * t->ic; i++) vals[0].d[i] = input[i];
    for (uint32_t ni = 0; ni < t->nn; ni++) {
        const xtm_node_rec *n = &t->nodes[ni];
        const rv x = vals[n->in0];
        const xtm_value ov = t->values[ni + 1];
        rv y = {ov.h, ov.w, ov.c, ov.dtype, calloc((size_t)ov.h * ov.w * ov.c, sizeof(double))};
        const void *P[7] = {NULL};
        for (uint32_t k = 0; k < n->pcount; k++) P[k] = t->params[n->pfirst + k].data;
        uint32_t *mst_w = NULL;
        if (n->op == XTM_OP_BCONV2D_MST) {
            mst_w = mst_decode(P, ov.c, (size_t)n->kh * n->kw * ((x.c + 31) / 32));
            P[0] = mst_w;
            P[1] = P[5];
            P[2] = P[6];
        }
        const int relu = (n->flags & XE_FLAG_RELU) != 0;
        const size_t taps = (size_t)n->kh * n->kw, cw = (x.c + 31) / 32;
        switch (n->op) {
        case XE_OP_CONV2D:
        case XE_OP_BWN_CONV2D:
        case XE_OP_BCONV2D:
        case XTM_OP_BCONV2D_MST: {
            const int pad_one = (n->flags & XE_FLAG_PAD_ONE) != 0,
                      use_k = (n->flags & XE_FLAG_USE_K) != 0;
            for (uint32_t oh = 0; oh < y.h; oh++)
                for (uint32_t ow = 0; ow < y.w; ow++) {
                    double kval = 1.0;
                    if (use_k) {
                        double s = 0;
                        for (uint32_t a = 0; a < n->kh; a++)
                            for (uint32_t b = 0; b < n->kw; b++) {
                                long ih = (long)(oh * n->sh + a) - n->ph,
                                     iw = (long)(ow * n->sw + b) - n->pw;
                                if (ih < 0 || iw < 0 || ih >= (long)x.h || iw >= (long)x.w)
                                    continue;
                                double am = 0;
                                for (uint32_t c = 0; c < x.c; c++)
                                    am += fabs(x.d[((size_t)ih * x.w + iw) * x.c + c]);
                                s += am / x.c;
                            }
                        kval = s / (double)taps;
                    }
                    for (uint32_t o = 0; o < y.c; o++) {
                        double acc = 0;
                        for (uint32_t a = 0; a < n->kh; a++)
                            for (uint32_t b = 0; b < n->kw; b++) {
                                long ih = (long)(oh * n->sh + a) - n->ph,
                                     iw = (long)(ow * n->sw + b) - n->pw;
                                const int oob =
                                    ih < 0 || iw < 0 || ih >= (long)x.h || iw >= (long)x.w;
                                const size_t tap = (size_t)a * n->kw + b;
                                for (uint32_t c = 0; c < x.c; c++) {
                                    double xv, wv;
                                    if (n->op == XE_OP_CONV2D) {
                                        xv = oob ? 0.0 : x.d[((size_t)ih * x.w + iw) * x.c + c];
                                        wv = ((
                                            const float *)P[0])[((size_t)o * taps + tap) * x.c + c];
                                    } else {
                                        wv = wbit(P[0], cw, o, taps, tap, c) ? -1.0 : 1.0;
                                        if (n->op == XE_OP_BWN_CONV2D)
                                            xv = oob ? 0.0 : x.d[((size_t)ih * x.w + iw) * x.c + c];
                                        else
                                            xv = oob ? (pad_one ? 1.0 : 0.0)
                                                     : sgn(x.d[((size_t)ih * x.w + iw) * x.c + c]);
                                    }
                                    acc += xv * wv;
                                }
                            }
                        double v;
                        if (n->op == XE_OP_CONV2D)
                            v = acc + ((const float *)P[1])[o];
                        else
                            v = acc * ((const float *)P[1])[o] * kval + ((const float *)P[2])[o];
                        if (relu && v < 0) v = 0;
                        if (y.dtype == XTM_BITS) v = v < 0 ? -1.0 : 1.0;
                        y.d[((size_t)oh * y.w + ow) * y.c + o] = v;
                    }
                }
            break;
        }
        case XE_OP_BATCHNORM:
        case XE_OP_RELU:
        case XE_OP_ADD:
        case XE_OP_SIGN:
            for (size_t i = 0; i < (size_t)x.h * x.w * x.c; i++) {
                double v = x.d[i];
                if (n->op == XE_OP_BATCHNORM)
                    v = v * ((const float *)P[0])[i % x.c] + ((const float *)P[1])[i % x.c];
                if (n->op == XE_OP_ADD) v += vals[n->in1].d[i];
                if (n->op == XE_OP_RELU || relu) v = v < 0 ? 0 : v;
                if (n->op == XE_OP_SIGN) v = sgn(v);
                y.d[i] = v;
            }
            break;
        case XTM_OP_PRELU:
        case XTM_OP_CLIP:
        case XTM_OP_SIGN_SHIFT:
            for (size_t i = 0; i < (size_t)x.h * x.w * x.c; i++) {
                const float *p0 = P[0];
                double v = x.d[i];
                if (n->op == XTM_OP_PRELU && v < 0) v *= p0[i % x.c];
                if (n->op == XTM_OP_CLIP) v = v < p0[0] ? p0[0] : v > p0[1] ? p0[1] : v;
                if (n->op == XTM_OP_SIGN_SHIFT) v = sgn(v + p0[i % x.c]);
                y.d[i] = v;
            }
            break;
        case XTM_OP_DWCONV2D: {
            const float *wt = P[0], *bias = P[1];
            const uint32_t mult = y.c / x.c;
            for (uint32_t oh = 0; oh < y.h; oh++)
                for (uint32_t ow = 0; ow < y.w; ow++)
                    for (uint32_t o = 0; o < y.c; o++) {
                        double acc = bias[o];
                        for (uint32_t a = 0; a < n->kh; a++)
                            for (uint32_t b = 0; b < n->kw; b++) {
                                const long ih = (long)(oh * n->sh + a) - n->ph,
                                           iw = (long)(ow * n->sw + b) - n->pw;
                                if (ih < 0 || iw < 0 || ih >= (long)x.h || iw >= (long)x.w)
                                    continue;
                                acc += x.d[((size_t)ih * x.w + iw) * x.c + o / mult] *
                                       wt[((size_t)a * n->kw + b) * y.c + o];
                            }
                        y.d[((size_t)oh * y.w + ow) * y.c + o] = relu && acc < 0 ? 0 : acc;
                    }
            break;
        }
        case XTM_OP_GCONV2D: {
            const uint32_t *cfg = P[0];
            const float *wt = P[1], *bias = P[2];
            const uint32_t g = cfg[0], dh = cfg[1], dw = cfg[2];
            const uint32_t kh = (n->kh - 1) / dh + 1, kw = (n->kw - 1) / dw + 1;
            const uint32_t icg = x.c / g, ocg = y.c / g;
            for (uint32_t oh = 0; oh < y.h; oh++)
                for (uint32_t ow = 0; ow < y.w; ow++)
                    for (uint32_t o = 0; o < y.c; o++) {
                        double acc = bias[o];
                        for (uint32_t a = 0; a < kh; a++)
                            for (uint32_t b = 0; b < kw; b++)
                                for (uint32_t c = 0; c < icg; c++) {
                                    const long ih = (long)(oh * n->sh + a * dh) - n->ph,
                                               iw = (long)(ow * n->sw + b * dw) - n->pw;
                                    if (ih < 0 || iw < 0 || ih >= (long)x.h || iw >= (long)x.w)
                                        continue;
                                    acc +=
                                        x.d[((size_t)ih * x.w + iw) * x.c + (o / ocg) * icg + c] *
                                        wt[(((size_t)o * kh + a) * kw + b) * icg + c];
                                }
                        y.d[((size_t)oh * y.w + ow) * y.c + o] = relu && acc < 0 ? 0 : acc;
                    }
            break;
        }
        case XTM_OP_FLATTEN:
            for (size_t i = 0; i < (size_t)x.h * x.w * x.c; i++) y.d[i] = x.d[i];
            break;
        case XTM_OP_PAD: /* y = x shifted by (top, left) = pad, value elsewhere */
            for (uint32_t oh = 0; oh < y.h; oh++)
                for (uint32_t ow = 0; ow < y.w; ow++)
                    for (uint32_t c = 0; c < y.c; c++) {
                        const long ih = (long)oh - n->ph, iw = (long)ow - n->pw;
                        const int in = ih >= 0 && iw >= 0 && ih < (long)x.h && iw < (long)x.w;
                        y.d[((size_t)oh * y.w + ow) * y.c + c] =
                            in ? x.d[((size_t)ih * x.w + iw) * x.c + c] : ((const float *)P[0])[0];
                    }
            break;
        case XTM_OP_CONCAT: {
            const rv b = vals[n->in1];
            for (size_t p = 0; p < (size_t)x.h * x.w; p++) {
                for (uint32_t c = 0; c < x.c; c++) y.d[p * y.c + c] = x.d[p * x.c + c];
                for (uint32_t c = 0; c < b.c; c++) y.d[p * y.c + x.c + c] = b.d[p * b.c + c];
            }
            break;
        }
        case XE_OP_MAXPOOL:
        case XE_OP_AVGPOOL:
        case XTM_OP_AVGPOOL_EXCL_PAD: /* y.h, y.w from the record: the padding after */
            for (uint32_t oh = 0; oh < y.h; oh++)
                for (uint32_t ow = 0; ow < y.w; ow++)
                    for (uint32_t c = 0; c < y.c; c++) {
                        double m = -INFINITY, s = 0, valid = 0;
                        for (uint32_t a = 0; a < n->kh; a++)
                            for (uint32_t b = 0; b < n->kw; b++) {
                                long ih = (long)(oh * n->sh + a) - n->ph,
                                     iw = (long)(ow * n->sw + b) - n->pw;
                                if (ih < 0 || iw < 0 || ih >= (long)x.h || iw >= (long)x.w)
                                    continue;
                                double v = x.d[((size_t)ih * x.w + iw) * x.c + c];
                                m = v > m ? v : m;
                                s += v;
                                valid += 1;
                            }
                        y.d[((size_t)oh * y.w + ow) * y.c + c] = n->op == XE_OP_MAXPOOL ? m
                                                                 : n->op == XE_OP_AVGPOOL
                                                                     ? s / (double)taps
                                                                     : s / valid;
                    }
            break;
        case XE_OP_GLOBAL_AVGPOOL:
            for (uint32_t c = 0; c < x.c; c++) {
                double s = 0;
                for (size_t p = 0; p < (size_t)x.h * x.w; p++) s += x.d[p * x.c + c];
                y.d[c] = s / ((double)x.h * x.w);
            }
            break;
        case XE_OP_DENSE: {
            const size_t in_n = (size_t)x.h * x.w * x.c;
            for (uint32_t o = 0; o < y.c; o++) {
                double s = ((const float *)P[1])[o];
                for (size_t i = 0; i < in_n; i++) s += ((const float *)P[0])[o * in_n + i] * x.d[i];
                y.d[o] = relu && s < 0 ? 0 : s;
            }
            break;
        }
        case XE_OP_SOFTMAX:
            for (size_t p = 0; p < (size_t)x.h * x.w; p++) {
                double m = -INFINITY, s = 0;
                for (uint32_t c = 0; c < x.c; c++) m = x.d[p * x.c + c] > m ? x.d[p * x.c + c] : m;
                for (uint32_t c = 0; c < x.c; c++) s += exp(x.d[p * x.c + c] - m);
                for (uint32_t c = 0; c < x.c; c++) y.d[p * x.c + c] = exp(x.d[p * x.c + c] - m) / s;
            }
            break;
        }
        free(mst_w);
        vals[ni + 1] = y;
    }
}

/* ------------------------------------------------------------------ */
/* Running a test model.                                                 */

static const char *g_isas[8];
static size_t g_nisas;

/* Builds the file, loads it, runs it with every kernel set (and 1 to 4
 * threads), checks sets agree bit for bit and match the reference. A model
 * with a uint8 input table runs on random bytes (xe_session_run_u8); the
 * reference reads them through the table. */
static void check_model(const char *name, const xtm *t, int exact) {
    size_t size;
    uint8_t *file = xtm_write(t, &size);
    char err[256];
    xe_model *m = NULL;
    xe_status st = xe_model_load_memory(file, size, 0, &m, err, sizeof err);
    if (st != XE_OK) {
        printf("FAIL %s: load: %s: %s\n", name, xe_status_string(st), err);
        g_fail++;
        free(file);
        return;
    }
    const size_t in_n = (size_t)t->ih * t->iw * t->ic;
    const xtm_value ov = t->values[t->nn];
    const size_t out_n = (size_t)ov.h * ov.w * ov.c;
    float *in = malloc(in_n * 4), *out = malloc(out_n * 4), *first = malloc(out_n * 4);
    uint8_t *px = malloc(in_n);
    for (size_t i = 0; i < in_n; i++) in[i] = rnd_in();
    if (t->u8_table != XTM_NONE) { /* the format's conversion, by lookup */
        const float *table = t->params[t->u8_table].data;
        for (size_t i = 0; i < in_n; i++) {
            px[i] = (uint8_t)rnd();
            in[i] = table[(i % t->ic) * 256 + px[i]];
        }
    }
    rv *vals = calloc(t->nn + 1, sizeof *vals);
    ref_eval(t, in, vals);
    const double *ref = vals[t->nn].d;
    for (size_t k = 0; k < g_nisas; k++) {
        if (xe_set_kernel_isa(g_isas[k]) != XE_OK) {
            printf("FAIL %s: cannot set kernels %s\n", name, g_isas[k]);
            g_fail++;
            continue;
        }
        for (uint32_t threads = 1; threads <= 4; threads++) {
            xe_session_options o;
            memset(&o, 0, sizeof o);
            o.num_threads = threads;
            xe_session *s = NULL;
            st = xe_session_create(m, &o, &s);
            if (st == XE_OK)
                st = t->u8_table != XTM_NONE ? xe_session_run_u8(s, px, in_n, out, out_n)
                                             : xe_session_run(s, in, in_n, out, out_n);
            xe_session_destroy(s);
            if (st != XE_OK) {
                printf("FAIL %s [%s]: run: %s\n", name, g_isas[k], xe_status_string(st));
                g_fail++;
                continue;
            }
            if (k == 0 && threads == 1) {
                memcpy(first, out, out_n * 4);
                size_t bad = 0;
                for (size_t i = 0; i < out_n; i++) {
                    const double d = fabs((double)out[i] - ref[i]);
                    const double tol = exact ? 0.0 : 1e-5 * (1.0 + fabs(ref[i]));
                    if (!(d <= tol)) {
                        if (bad < 3)
                            printf("FAIL %s [%s]: out[%zu] = %.9g, reference %.9g\n", name,
                                   g_isas[k], i, (double)out[i], ref[i]);
                        bad++;
                    }
                }
                if (bad) g_fail++;
            } else if (memcmp(first, out, out_n * 4) != 0) {
                printf("FAIL %s: kernels %s with %u threads differ from %s with 1\n", name,
                       g_isas[k], threads, g_isas[0]);
                g_fail++;
            }
        }
    }
    xe_set_kernel_isa("auto");
    for (uint32_t i = 0; i <= t->nn; i++) free(vals[i].d);
    free(vals);
    free(in);
    free(px);
    free(out);
    free(first);
    xe_model_destroy(m);
    free(file);
}

/* ------------------------------------------------------------------ */
/* The battery.                                                          */

static const uint32_t k_chan[] = {1, 3, 31, 32, 33, 63, 64, 65, 96, 130};
static const uint32_t k_spatial[] = {1, 2, 3, 5, 7, 8, 9, 13, 17};
static const uint32_t k_kern[] = {1, 3, 5, 7, 11};
static const uint32_t k_stride[] = {1, 2, 4};
static const uint32_t k_pad[] = {0, 1, 2};

/* One conv-like case per (kernel, stride, pad), shapes drawn from the lists
 * and kept to a bounded reference cost. */
static void battery(uint32_t op, const uint32_t *flag_sets, size_t nflags, int bits_input) {
    char name[160];
    for (size_t ki = 0; ki < 5; ki++)
        for (size_t si = 0; si < 3; si++)
            for (size_t pi = 0; pi < 3; pi++) {
                const uint32_t k = k_kern[ki], s = k_stride[si], p = k_pad[pi];
                if (p >= k) continue;
                uint32_t h, w, ic, oc;
                for (int tries = 0;; tries++) {
                    h = k_spatial[rnd() % 9];
                    w = k_spatial[rnd() % 9];
                    ic = k_chan[rnd() % 10];
                    oc = k_chan[rnd() % 10];
                    if (h + 2 * p < k || w + 2 * p < k) continue;
                    const uint64_t oh = (h + 2 * p - k) / s + 1, ow = (w + 2 * p - k) / s + 1;
                    if (oh * ow * oc * k * k * ic <= 400000 || tries > 200) break;
                }
                if (h + 2 * p < k || w + 2 * p < k) continue;
                for (size_t fi = 0; fi < nflags; fi++) {
                    const uint32_t fl = flag_sets[fi];
                    if (bits_input && (fl & XE_FLAG_USE_K)) continue;
                    xtm t;
                    arena a = {{0}, 0};
                    xtm_init(&t, h, w, ic);
                    uint32_t v = 0;
                    if (bits_input)
                        v = xtm_node(&t, XE_OP_SIGN, 0, 0, XTM_NONE, 0, 0, 0, 0, 0, 0, 0, 0, 0);
                    v = add_conv(&t, &a, op, fl, v, k, s, p, oc);
                    if (fl & XE_FLAG_OUT_BITS) v = add_decode(&t, &a, v);
                    snprintf(name, sizeof name, "%s%s flags=%u in=%ux%ux%u k=%u s=%u p=%u oc=%u",
                             xe_op_name(op), bits_input ? "(bits in)" : "", fl, h, w, ic, k, s, p,
                             oc);
                    check_model(name, &t, !(fl & XE_FLAG_USE_K));
                    xtm_free(&t);
                    arena_free(&a);
                }
            }
}

/* A bconv2d_mst node: a random tree of `kind` (0 random, 1 chain of depth
 * OC-1 per chunk, 2 all duplicates D = 0, 3 children complement their parent
 * D = K) over filters derived from their parents, in encoding enc. */
static uint32_t add_mst_conv(xtm *t, arena *a, xtm_mst *code, uint32_t flags, uint32_t in,
                             uint32_t k, uint32_t s, uint32_t p, uint32_t oc, uint32_t enc,
                             uint32_t chunk, int kind) {
    const uint32_t ic = t->values[in].c, cw = (ic + 31) / 32;
    const size_t L = (size_t)k * k * cw;
    uint32_t *w = rand_bits(a, oc, (size_t)k * k, ic);
    uint32_t *order = arena_alloc(a, oc * 4), *parent = arena_alloc(a, oc * 4);
    uint32_t *depth = arena_alloc(a, oc * 4), maxd = 0;
    for (uint32_t c0 = 0; c0 < oc; c0 += chunk) {
        const uint32_t n = oc - c0 < chunk ? oc - c0 : chunk;
        for (uint32_t q = 0; q < n; q++) order[c0 + q] = c0 + q;
        for (uint32_t q = n; q > 1; q--) {
            const uint32_t j = rnd() % q, tmp = order[c0 + q - 1];
            order[c0 + q - 1] = order[c0 + j];
            order[c0 + j] = tmp;
        }
        for (uint32_t q = 0; q < n; q++) {
            const uint32_t c = order[c0 + q];
            const int root = q == 0 || (kind == 0 && rnd() % 8 == 0);
            parent[c] = root ? XTM_NONE : order[c0 + (kind == 1 ? q - 1 : rnd() % q)];
            depth[c] = root ? 0 : depth[parent[c]] + 1;
            maxd = depth[c] > maxd ? depth[c] : maxd;
            if (root) continue;
            uint32_t *wc = w + (size_t)c * L;
            const uint32_t *wp = w + (size_t)parent[c] * L;
            for (size_t j = 0; j < L; j++) {
                const uint32_t real = (j % cw == cw - 1 && ic % 32) ? (1u << (ic % 32)) - 1 : ~0u;
                uint32_t m = kind == 2 ? 0 : kind == 3 ? real : (rnd() & rnd() & rnd() & real);
                if (kind == 0 && rnd() % 4 == 0) m = (rnd() % 3) ? 0 : (wc[j] ^ wp[j]);
                wc[j] = wp[j] ^ m;
            }
        }
    }
    maxd += maxd + 1 < oc ? (uint32_t)(rnd() % 2) : 0; /* a bound, not always tight */
    xtm_mst_encode(w, oc, L, enc, chunk, maxd, order, parent, code);
    const uint32_t p0 = xtm_mst_params(t, code, rand_scale(a, oc), rand_bias(a, oc), oc);
    return xtm_node(t, XTM_OP_BCONV2D_MST, flags, in, XTM_NONE, k, k, s, s, p, p, oc, p0, 7);
}

/* bconv2d_mst against the reference: random trees, chains, D = 0, D = K, both
 * encodings, chunks that do and do not split the channels, every flag set. */
static void test_mst(const uint32_t *flag_sets, size_t nflags) {
    static const uint32_t chans[] = {1, 3, 31, 33, 64, 65, 130};
    static const uint32_t chunks[] = {64, 1, 5, 16, 200};
    char name[200];
    for (int i = 0; i < 120; i++) {
        const uint32_t k = (i % 3) ? 3 : 1, s = 1 + (uint32_t)(i % 2), p = k == 3 ? i % 2 : 0;
        const uint32_t h = 1 + rnd() % 9, w = 1 + rnd() % 9, ic = chans[rnd() % 7];
        const uint32_t oc = chans[rnd() % 7], enc = 1 + (uint32_t)(i % 2);
        const uint32_t chunk = chunks[rnd() % 5], fl = flag_sets[(size_t)i % nflags];
        const int kind = (i / 2) % 4, bits_in = (i / 8) % 2;
        if (h + 2 * p < k || w + 2 * p < k || (bits_in && (fl & XE_FLAG_USE_K))) continue;
        xtm t;
        arena a = {{0}, 0};
        xtm_mst code;
        xtm_init(&t, h, w, ic);
        uint32_t v = 0;
        if (bits_in) v = xtm_node(&t, XE_OP_SIGN, 0, 0, XTM_NONE, 0, 0, 0, 0, 0, 0, 0, 0, 0);
        v = add_mst_conv(&t, &a, &code, fl, v, k, s, p, oc, enc, chunk, kind);
        if (fl & XE_FLAG_OUT_BITS) v = add_decode(&t, &a, v);
        snprintf(name, sizeof name,
                 "bconv2d_mst%s flags=%u in=%ux%ux%u k=%u s=%u p=%u oc=%u enc=%u chunk=%u "
                 "tree=%d",
                 bits_in ? "(bits in)" : "", fl, h, w, ic, k, s, p, oc, enc, chunk, kind);
        check_model(name, &t, !(fl & XE_FLAG_USE_K));
        xtm_mst_free(&code);
        xtm_free(&t);
        arena_free(&a);
    }
}

static void test_pools(void) {
    char name[128];
    for (size_t ki = 0; ki < 3; ki++)
        for (size_t si = 0; si < 2; si++)
            for (uint32_t p = 0; p < 2; p++) {
                const uint32_t k = k_kern[ki], s = k_stride[si];
                if (p >= k) continue;
                const uint32_t h = k_spatial[2 + rnd() % 7], w = k_spatial[2 + rnd() % 7],
                               c = k_chan[rnd() % 10];
                if (h + 2 * p < k || w + 2 * p < k) continue;
                for (int kind = 0; kind < 3; kind++) {
                    xtm t;
                    arena a = {{0}, 0};
                    xtm_init(&t, h, w, c);
                    uint32_t v = 0;
                    if (kind == 2)
                        v = xtm_node(&t, XE_OP_SIGN, 0, 0, XTM_NONE, 0, 0, 0, 0, 0, 0, 0, 0, 0);
                    v = xtm_node(&t, kind == 1 ? XE_OP_AVGPOOL : XE_OP_MAXPOOL, 0, v, XTM_NONE, k,
                                 k, s, s, p, p, 0, 0, 0);
                    if (kind == 2) v = add_decode(&t, &a, v);
                    snprintf(name, sizeof name, "%s in=%ux%ux%u k=%u s=%u p=%u",
                             kind == 0   ? "maxpool"
                             : kind == 1 ? "avgpool"
                                         : "maxpool(bits)",
                             h, w, c, k, s, p);
                    check_model(name, &t, kind != 1);
                    xtm_free(&t);
                    arena_free(&a);
                }
            }
}

static void test_misc(void) {
    for (int relu = 0; relu < 2; relu++) {
        for (size_t ci = 0; ci < 10; ci += 3) {
            const uint32_t c = k_chan[ci], h = 5, w = 3;
            xtm t;
            arena a = {{0}, 0};
            xtm_init(&t, h, w, c);
            /* batchnorm -> relu -> conv 3x3 -> add(residual with bn) -> gap -> dense -> softmax */
            uint32_t p0 = xtm_param(&t, XTM_F32, rand_f32(&a, c, rnd_w), c);
            xtm_param(&t, XTM_F32, rand_f32(&a, c, rnd_w), c);
            const uint32_t bn = xtm_node(&t, XE_OP_BATCHNORM, relu ? XE_FLAG_RELU : 0, 0, XTM_NONE,
                                         0, 0, 0, 0, 0, 0, 0, p0, 2);
            const uint32_t r = xtm_node(&t, XE_OP_RELU, 0, 0, XTM_NONE, 0, 0, 0, 0, 0, 0, 0, 0, 0);
            const uint32_t cv =
                add_conv(&t, &a, XE_OP_CONV2D, relu ? XE_FLAG_RELU : 0, r, 3, 1, 1, c);
            const uint32_t ad =
                xtm_node(&t, XE_OP_ADD, relu ? XE_FLAG_RELU : 0, cv, bn, 0, 0, 0, 0, 0, 0, 0, 0, 0);
            char name[96];
            /* Exact part first: dense over the (h, w, c) value. */
            {
                const uint32_t out = 10;
                p0 = xtm_param(&t, XTM_F32, rand_f32(&a, out * h * w * c, rnd_w),
                               (uint64_t)out * h * w * c);
                xtm_param(&t, XTM_F32, rand_bias(&a, out), out);
                xtm_node(&t, XE_OP_DENSE, relu ? XE_FLAG_RELU : 0, ad, XTM_NONE, 0, 0, 0, 0, 0, 0,
                         out, p0, 2);
                snprintf(name, sizeof name, "bn/relu/conv/add/dense c=%u relu=%d", c, relu);
                check_model(name, &t, 1);
                t.nn--;
                t.np -= 2;
            }
            const uint32_t g =
                xtm_node(&t, XE_OP_GLOBAL_AVGPOOL, 0, ad, XTM_NONE, 0, 0, 0, 0, 0, 0, 0, 0, 0);
            p0 = xtm_param(&t, XTM_F32, rand_f32(&a, 7 * c, rnd_w), 7ull * c);
            xtm_param(&t, XTM_F32, rand_bias(&a, 7), 7);
            const uint32_t d =
                xtm_node(&t, XE_OP_DENSE, 0, g, XTM_NONE, 0, 0, 0, 0, 0, 0, 7, p0, 2);
            xtm_node(&t, XE_OP_SOFTMAX, 0, d, XTM_NONE, 0, 0, 0, 0, 0, 0, 0, 0, 0);
            snprintf(name, sizeof name, "bn/relu/conv/add/gap/dense/softmax c=%u relu=%d", c, relu);
            check_model(name, &t, 0);
            xtm_free(&t);
            arena_free(&a);
        }
    }
    /* Element-wise ops over several work blocks (16384 floats each) whose starts fall
     * mid-channel: batchnorm must pick up the channel where each block begins. */
    for (uint32_t c = 37; c <= 64; c += 27) {
        xtm t;
        arena a = {{0}, 0};
        xtm_init(&t, 40, 40, c);
        const uint32_t p0 = xtm_param(&t, XTM_F32, rand_f32(&a, c, rnd_w), c);
        xtm_param(&t, XTM_F32, rand_f32(&a, c, rnd_w), c);
        const uint32_t bn =
            xtm_node(&t, XE_OP_BATCHNORM, 0, 0, XTM_NONE, 0, 0, 0, 0, 0, 0, 0, p0, 2);
        xtm_node(&t, XE_OP_ADD, XE_FLAG_RELU, bn, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
        char name[64];
        snprintf(name, sizeof name, "batchnorm/add 40x40x%u (4 blocks)", c);
        check_model(name, &t, 1);
        xtm_free(&t);
        arena_free(&a);
    }
    /* Softmax over channels at every position of a spatial value. */
    {
        xtm t;
        xtm_init(&t, 4, 3, 9);
        xtm_node(&t, XE_OP_SOFTMAX, 0, 0, XTM_NONE, 0, 0, 0, 0, 0, 0, 0, 0, 0);
        check_model("softmax 4x3x9", &t, 0);
        xtm_free(&t);
    }
    /* A small XNOR network: conv -> bn -> sign -> bconv(OUT_BITS) -> maxpool(bits)
     * -> bconv(bits in, float out) -> binary FC as whole-window bconv -> dense. */
    for (int pad_one = 0; pad_one < 2; pad_one++) {
        xtm t;
        arena a = {{0}, 0};
        xtm_init(&t, 12, 12, 3);
        uint32_t v = add_conv(&t, &a, XE_OP_CONV2D, 0, 0, 3, 1, 1, 40);
        uint32_t p0 = xtm_param(&t, XTM_F32, rand_f32(&a, 40, rnd_w), 40);
        xtm_param(&t, XTM_F32, rand_f32(&a, 40, rnd_w), 40);
        v = xtm_node(&t, XE_OP_BATCHNORM, 0, v, XTM_NONE, 0, 0, 0, 0, 0, 0, 0, p0, 2);
        v = xtm_node(&t, XE_OP_SIGN, 0, v, XTM_NONE, 0, 0, 0, 0, 0, 0, 0, 0, 0);
        v = add_conv(&t, &a, XE_OP_BCONV2D, XE_FLAG_OUT_BITS | (pad_one ? XE_FLAG_PAD_ONE : 0), v,
                     3, 1, 1, 70);
        v = xtm_node(&t, XE_OP_MAXPOOL, 0, v, XTM_NONE, 2, 2, 2, 2, 0, 0, 0, 0, 0);
        v = add_conv(&t, &a, XE_OP_BCONV2D, pad_one ? XE_FLAG_PAD_ONE : 0, v, 3, 2, 1, 33);
        v = add_conv(&t, &a, XE_OP_BCONV2D, XE_FLAG_RELU, v, 3, 1, 0, 100);
        add_conv(&t, &a, XE_OP_BWN_CONV2D, 0, v, 1, 1, 0, 10);
        check_model(pad_one ? "xnor net (+1 padding)" : "xnor net (zero padding)", &t, 1);
        xtm_free(&t);
        arena_free(&a);
    }
}

/* Bounds for clip: lo <= hi, multiples of 1/4 (lo == hi included). */
static float *rand_bounds(arena *a) {
    float *b = arena_alloc(a, 8);
    b[0] = rnd_in();
    b[1] = b[0] + (float)(rnd() % 9) / 4.0f;
    return b;
}

/* conv2d and bwn_conv2d over outputs at least 16 wide (the direct path of
 * op_conv2d.c, windows read in place from a zero-padded input): stems like
 * ResNet-18's 7x7/2, odd channel counts, pads past the kernel's half, every
 * kernel set and 1-4 threads equal to each other and to the reference. */
static void test_conv_direct(void) {
    static const uint32_t cases[][7] = {
        /* h, w, ic, k, s, p, oc */
        {9, 38, 3, 7, 2, 3, 64}, {5, 16, 1, 5, 1, 2, 32}, {4, 21, 5, 3, 1, 1, 70},
        {7, 40, 2, 3, 2, 0, 17}, {3, 18, 3, 3, 1, 2, 9},  {6, 35, 4, 5, 2, 4, 33},
    };
    char name[128];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int bwn = 0; bwn < 2; bwn++) {
            const uint32_t *c = cases[i];
            xtm t;
            arena a = {{0}, 0};
            xtm_init(&t, c[0], c[1], c[2]);
            add_conv(&t, &a, bwn ? XE_OP_BWN_CONV2D : XE_OP_CONV2D, i & 1 ? XE_FLAG_RELU : 0, 0,
                     c[3], c[4], c[5], c[6]);
            snprintf(name, sizeof name, "%s direct in=%ux%ux%u k=%u s=%u p=%u oc=%u",
                     bwn ? "bwn_conv2d" : "conv2d", c[0], c[1], c[2], c[3], c[4], c[5], c[6]);
            check_model(name, &t, 1);
            xtm_free(&t);
            arena_free(&a);
        }
}

/* prelu, clip, sign_shift and concat: on their own over the channel list
 * (and spatial sizes that span several work blocks, whose starts fall
 * mid-channel), then chained with the other ops. */
static void test_new_elementwise(void) {
    static const uint32_t hw[][2] = {{1, 1}, {3, 5}, {7, 2}, {40, 40}};
    char name[128];
    for (size_t si = 0; si < 4; si++)
        for (size_t ci = 0; ci < 10; ci += (si == 3 ? 4 : 1)) {
            const uint32_t h = hw[si][0], w = hw[si][1], c = k_chan[ci];
            for (int kind = 0; kind < 4; kind++) {
                xtm t;
                arena a = {{0}, 0};
                xtm_init(&t, h, w, c);
                uint32_t v;
                if (kind == 0) {
                    const uint32_t p0 = xtm_param(&t, XTM_F32, rand_f32(&a, c, rnd_w), c);
                    v = xtm_node(&t, XTM_OP_PRELU, 0, 0, XTM_NONE, 0, 0, 0, 0, 0, 0, 0, p0, 1);
                } else if (kind == 1) {
                    const uint32_t p0 = xtm_param(&t, XTM_F32, rand_bounds(&a), 2);
                    v = xtm_node(&t, XTM_OP_CLIP, 0, 0, XTM_NONE, 0, 0, 0, 0, 0, 0, 0, p0, 1);
                } else if (kind == 2) {
                    /* Shifts in multiples of 1/4 too, so x + shift is often exactly 0 (+1). */
                    const uint32_t p0 = xtm_param(&t, XTM_F32, rand_f32(&a, c, rnd_in), c);
                    v = xtm_node(&t, XTM_OP_SIGN_SHIFT, 0, 0, XTM_NONE, 0, 0, 0, 0, 0, 0, 0, p0, 1);
                    v = add_decode(&t, &a, v);
                } else {
                    const uint32_t oc = k_chan[rnd() % 10];
                    const uint32_t cv = add_conv(&t, &a, XE_OP_CONV2D, 0, 0, 1, 1, 0, oc);
                    v = xtm_node(&t, XTM_OP_CONCAT, 0, cv, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
                    v = xtm_node(&t, XTM_OP_CONCAT, 0, 0, v, 0, 0, 0, 0, 0, 0, 0, 0, 0);
                }
                static const char *const names[] = {"prelu", "clip", "sign_shift", "concat"};
                snprintf(name, sizeof name, "%s in=%ux%ux%u", names[kind], h, w, c);
                check_model(name, &t, 1);
                xtm_free(&t);
                arena_free(&a);
            }
        }
    /* flatten, alone (over several work blocks) and in front of a binary dense
     * layer (1x1 bconv2d over H*W*C channels) and a float dense. */
    static const uint32_t fl_shapes[][3] = {{1, 1, 5}, {28, 28, 1}, {7, 5, 33}, {130, 130, 3}};
    for (size_t si = 0; si < 4; si++) {
        const uint32_t *sh = fl_shapes[si];
        xtm t;
        arena a = {{0}, 0};
        xtm_init(&t, sh[0], sh[1], sh[2]);
        uint32_t v = xtm_node(&t, XTM_OP_FLATTEN, 0, 0, XTM_NONE, 0, 0, 0, 0, 0, 0, 0, 0, 0);
        snprintf(name, sizeof name, "flatten in=%ux%ux%u", sh[0], sh[1], sh[2]);
        check_model(name, &t, 1);
        if (si < 3) {
            v = add_conv(&t, &a, XE_OP_BCONV2D, 0, v, 1, 1, 0, 40);
            const uint32_t p0 = xtm_param(&t, XTM_F32, rand_f32(&a, 40 * 7, rnd_w), 40 * 7);
            xtm_param(&t, XTM_F32, rand_bias(&a, 7), 7);
            xtm_node(&t, XE_OP_DENSE, 0, v, XTM_NONE, 0, 0, 0, 0, 0, 0, 7, p0, 2);
            snprintf(name, sizeof name, "flatten/binary dense/dense in=%ux%ux%u", sh[0], sh[1],
                     sh[2]);
            check_model(name, &t, 1);
        }
        xtm_free(&t);
        arena_free(&a);
    }
    /* A Bi-Real / ReActNet-style block: bn -> prelu -> sign_shift -> bconv (bits in)
     * -> clip, concatenated with the shortcut, then a bconv on the float concat. */
    for (int pad_one = 0; pad_one < 2; pad_one++) {
        xtm t;
        arena a = {{0}, 0};
        xtm_init(&t, 9, 7, 35);
        uint32_t p0 = xtm_param(&t, XTM_F32, rand_f32(&a, 35, rnd_w), 35);
        xtm_param(&t, XTM_F32, rand_f32(&a, 35, rnd_w), 35);
        const uint32_t bn =
            xtm_node(&t, XE_OP_BATCHNORM, 0, 0, XTM_NONE, 0, 0, 0, 0, 0, 0, 0, p0, 2);
        p0 = xtm_param(&t, XTM_F32, rand_f32(&a, 35, rnd_w), 35);
        uint32_t v = xtm_node(&t, XTM_OP_PRELU, 0, bn, XTM_NONE, 0, 0, 0, 0, 0, 0, 0, p0, 1);
        p0 = xtm_param(&t, XTM_F32, rand_f32(&a, 35, rnd_w), 35);
        v = xtm_node(&t, XTM_OP_SIGN_SHIFT, 0, v, XTM_NONE, 0, 0, 0, 0, 0, 0, 0, p0, 1);
        v = add_conv(&t, &a, XE_OP_BCONV2D, pad_one ? XE_FLAG_PAD_ONE : 0, v, 3, 1, 1, 40);
        p0 = xtm_param(&t, XTM_F32, rand_bounds(&a), 2);
        v = xtm_node(&t, XTM_OP_CLIP, 0, v, XTM_NONE, 0, 0, 0, 0, 0, 0, 0, p0, 1);
        v = xtm_node(&t, XTM_OP_CONCAT, 0, v, bn, 0, 0, 0, 0, 0, 0, 0, 0, 0);
        add_conv(&t, &a, XE_OP_BCONV2D, pad_one ? XE_FLAG_PAD_ONE : 0, v, 3, 2, 1, 12);
        check_model(pad_one ? "bn/prelu/sign_shift/bconv/clip/concat/bconv (+1 padding)"
                            : "bn/prelu/sign_shift/bconv/clip/concat/bconv",
                    &t, 1);
        xtm_free(&t);
        arena_free(&a);
    }
}

/* dwconv2d over the window battery, channel multipliers 1 to 3, with and
 * without RELU. */
static void test_dwconv2d(void) {
    char name[128];
    for (size_t ki = 0; ki < 5; ki++)
        for (size_t si = 0; si < 3; si++)
            for (size_t pi = 0; pi < 3; pi++) {
                const uint32_t k = k_kern[ki], s = k_stride[si], p = k_pad[pi];
                const uint32_t h = k_spatial[rnd() % 9], w = k_spatial[rnd() % 9];
                const uint32_t c = k_chan[rnd() % 10], mult = 1 + (uint32_t)(rnd() % 3);
                if (p >= k || h + 2 * p < k || w + 2 * p < k) continue;
                const uint32_t oc = c * mult;
                for (uint32_t fl = 0; fl <= XE_FLAG_RELU; fl += XE_FLAG_RELU) {
                    xtm t;
                    arena a = {{0}, 0};
                    xtm_init(&t, h, w, c);
                    const uint32_t p0 = xtm_param(&t, XTM_F32, rand_f32(&a, k * k * oc, rnd_w),
                                                  (uint64_t)k * k * oc);
                    xtm_param(&t, XTM_F32, rand_bias(&a, oc), oc);
                    xtm_node(&t, XTM_OP_DWCONV2D, fl, 0, XTM_NONE, k, k, s, s, p, p, oc, p0, 2);
                    snprintf(name, sizeof name,
                             "dwconv2d flags=%u in=%ux%ux%u k=%u s=%u p=%u oc=%u", fl, h, w, c, k,
                             s, p, oc);
                    check_model(name, &t, 1);
                    xtm_free(&t);
                    arena_free(&a);
                }
            }
}

/* pad (op 19): float with 0, -FLT_MAX and another value, bits with +1 and -1
 * (decoded, so the last word's padding bits are checked), asymmetric amounts,
 * alone and in front of the VALID windows it serves (conv2d, maxpool of bits,
 * bconv2d of bits padded with +1). */
static void test_pad(void) {
    static const uint32_t amounts[][4] = {{0, 1, 0, 1}, {1, 0, 2, 0}, {2, 3, 1, 1}, {0, 0, 0, 0}};
    static const float values[] = {0.0f, -3.4028235e38f, 1.25f, 1.0f, -1.0f};
    char name[160];
    for (size_t ai = 0; ai < 4; ai++)
        for (size_t vi = 0; vi < 5; vi++)
            for (size_t ci = 0; ci < 10; ci += 2) {
                const uint32_t *am = amounts[ai], c = k_chan[ci];
                const uint32_t h = k_spatial[1 + rnd() % 8], w = k_spatial[1 + rnd() % 8];
                const int bits = vi >= 3;
                for (int chain = 0; chain < 2; chain++) {
                    xtm t;
                    arena a = {{0}, 0};
                    xtm_init(&t, h, w, c);
                    float *val = arena_alloc(&a, 4);
                    *val = values[vi];
                    uint32_t v = 0;
                    if (bits)
                        v = xtm_node(&t, XE_OP_SIGN, 0, 0, XTM_NONE, 0, 0, 0, 0, 0, 0, 0, 0, 0);
                    const uint32_t p0 = xtm_param(&t, XTM_F32, val, 1);
                    v = xtm_node(&t, XTM_OP_PAD, 0, v, XTM_NONE, 1 + am[0] + am[1],
                                 1 + am[2] + am[3], 1, 1, am[0], am[2], 0, p0, 1);
                    if (chain && !bits)
                        v = vi == 1 ? xtm_node(&t, XE_OP_MAXPOOL, 0, v, XTM_NONE, 2, 2, 2, 2, 0, 0,
                                               0, 0, 0)
                                    : add_conv(&t, &a, XE_OP_CONV2D, 0, v, 2, 2, 0, 5);
                    else if (chain)
                        v = vi == 4 ? xtm_node(&t, XE_OP_MAXPOOL, 0, v, XTM_NONE, 2, 2, 2, 2, 0, 0,
                                               0, 0, 0)
                                    : add_conv(&t, &a, XE_OP_BCONV2D, 0, v, 2, 2, 0, 33);
                    if (t.values[v].dtype == XTM_BITS) v = add_decode(&t, &a, v);
                    snprintf(name, sizeof name, "pad%s value=%g in=%ux%ux%u t=%u b=%u l=%u r=%u%s",
                             bits ? "(bits)" : "", (double)values[vi], h, w, c, am[0], am[1], am[2],
                             am[3], chain ? " + window" : "");
                    check_model(name, &t, 1);
                    xtm_free(&t);
                    arena_free(&a);
                }
            }
}

/* avgpool_excl_pad with (top, bottom) and (left, right) padding: the output
 * size (in + top + bottom - k) / s + 1 records the padding after. */
static uint32_t add_avg_excl(xtm *t, uint32_t in, uint32_t k, uint32_t s, const uint32_t pad[4]) {
    const xtm_value iv = t->values[in];
    const uint32_t v =
        xtm_node(t, XTM_OP_AVGPOOL_EXCL_PAD, 0, in, XTM_NONE, k, k, s, s, pad[0], pad[2], 0, 0, 0);
    t->nodes[v - 1].oh = t->values[v].h = (iv.h + pad[0] + pad[1] - k) / s + 1;
    t->nodes[v - 1].ow = t->values[v].w = (iv.w + pad[2] + pad[3] - k) / s + 1;
    return v;
}

/* avgpool_excl_pad (op 20): kernels 1 to 5, strides 1 to 3, every top
 * padding below the kernel with a random bottom, TFLite's SAME sizes among
 * them; alone and after a conv2d (channels 1 to 130). */
static void test_avgpool_excl_pad(void) {
    static const uint32_t kerns[] = {1, 2, 3, 5};
    char name[160];
    for (size_t ki = 0; ki < 4; ki++)
        for (uint32_t s = 1; s <= 3; s++)
            for (uint32_t top = 0; top < kerns[ki]; top++) {
                const uint32_t k = kerns[ki], c = k_chan[rnd() % 10];
                const uint32_t h = k_spatial[1 + rnd() % 8], w = k_spatial[1 + rnd() % 8];
                const uint32_t pad[4] = {top, rnd() % k, rnd() % k, rnd() % k};
                if (h + 2 * top < k || w + 2 * pad[2] < k || h + top + pad[1] < k ||
                    w + pad[2] + pad[3] < k)
                    continue;
                for (int conv = 0; conv < 2; conv++) {
                    xtm t;
                    arena a = {{0}, 0};
                    xtm_init(&t, h, w, c);
                    uint32_t v = conv ? add_conv(&t, &a, XE_OP_CONV2D, 0, 0, 3, 1, 1, 7) : 0;
                    add_avg_excl(&t, v, k, s, pad);
                    snprintf(name, sizeof name,
                             "avgpool_excl_pad in=%ux%ux%u k=%u s=%u pads=%u,%u,%u,%u%s", h, w, c,
                             k, s, pad[0], pad[1], pad[2], pad[3], conv ? " after conv" : "");
                    check_model(name, &t, 0);
                    xtm_free(&t);
                    arena_free(&a);
                }
            }
}

/* gconv2d (op 21): groups 1 to 4 (depthwise included), dilations 1 to 3,
 * 1 to 3 taps, strides 1 and 2, padding up to the extent - 1, RELU. */
static void test_gconv2d(void) {
    char name[160];
    for (uint32_t g = 1; g <= 4; g++)
        for (uint32_t d = 1; d <= 3; d++)
            for (uint32_t taps = 1; taps <= 3; taps++)
                for (uint32_t s = 1; s <= 2; s++) {
                    const uint32_t ext = (taps - 1) * d + 1, p = rnd() % ext;
                    const uint32_t h = k_spatial[2 + rnd() % 7], w = k_spatial[2 + rnd() % 7];
                    const uint32_t ic = g * (1 + rnd() % 9), oc = g * (1 + rnd() % 9);
                    const uint32_t dw = d == 1 ? 1 : 1 + rnd() % 2, kw = taps,
                                   extw = (kw - 1) * dw + 1;
                    if (h + 2 * p < ext || w + 2 * p < extw || p >= extw) continue;
                    const uint32_t fl = (rnd() & 1) ? XE_FLAG_RELU : 0;
                    xtm t;
                    arena a = {{0}, 0};
                    xtm_init(&t, h, w, ic);
                    uint32_t *cfg = arena_alloc(&a, 16);
                    cfg[0] = g;
                    cfg[1] = d;
                    cfg[2] = dw;
                    const size_t nw = (size_t)oc * taps * kw * (ic / g);
                    const uint32_t p0 = xtm_param(&t, XTM_BITS, cfg, 4);
                    xtm_param(&t, XTM_F32, rand_f32(&a, nw, rnd_w), nw);
                    xtm_param(&t, XTM_F32, rand_bias(&a, oc), oc);
                    xtm_node(&t, XTM_OP_GCONV2D, fl, 0, XTM_NONE, ext, extw, s, s, p, p, oc, p0, 3);
                    snprintf(name, sizeof name,
                             "gconv2d g=%u dil=%ux%u taps=%ux%u s=%u p=%u in=%ux%ux%u oc=%u fl=%u",
                             g, d, dw, taps, kw, s, p, h, w, ic, oc, fl);
                    check_model(name, &t, 1);
                    xtm_free(&t);
                    arena_free(&a);
                }
}

/* A binary dense layer: bconv2d whose window is the whole input (pad 0). */
static uint32_t add_bdense(xtm *t, arena *a, uint32_t in, uint32_t oc, uint32_t flags) {
    const xtm_value v = t->values[in];
    const size_t taps = (size_t)v.h * v.w, cw = (v.c + 31) / 32;
    const uint32_t p0 = xtm_param(t, XTM_BITS, rand_bits(a, oc, taps, v.c), oc * taps * cw);
    xtm_param(t, XTM_F32, rand_scale(a, oc), oc);
    xtm_param(t, XTM_F32, rand_bias(a, oc), oc);
    return xtm_node(t, XE_OP_BCONV2D, flags, in, XTM_NONE, v.h, v.w, 1, 1, 0, 0, oc, p0, 3);
}

/* Binary dense layers with bit-packed outputs (OUT_BITS: integer thresholds)
 * feeding the next binary dense layer: float input -> [flatten ->] dense with
 * bits out -> dense over those bits with bits out -> decoded; widths around
 * the 32-bit word and the 64-channel task split, up to 2050 outputs. */
static void test_binary_dense_bits(void) {
    static const uint32_t widths[] = {1, 31, 32, 33, 64, 65, 130, 1000, 2050};
    char name[160];
    for (size_t i = 0; i < 9; i++)
        for (int form = 0; form < 3; form++) { /* (1,1,C), whole window (h,w,c), flatten */
            const uint32_t c = k_chan[rnd() % 10], h = form ? 1 + rnd() % 5 : 1,
                           w = form ? 1 + rnd() % 5 : 1;
            const uint32_t oc1 = widths[i], oc2 = widths[rnd() % 9];
            xtm t;
            arena a = {{0}, 0};
            xtm_init(&t, h, w, c);
            uint32_t v = 0;
            if (form == 2)
                v = xtm_node(&t, XTM_OP_FLATTEN, 0, 0, XTM_NONE, 0, 0, 0, 0, 0, 0, 0, 0, 0);
            v = add_bdense(&t, &a, v, oc1, XE_FLAG_OUT_BITS);
            v = add_bdense(&t, &a, v, oc2, XE_FLAG_OUT_BITS);
            add_decode(&t, &a, v);
            snprintf(name, sizeof name, "binary dense bits %ux%ux%u%s -> %u -> %u", h, w, c,
                     form == 2 ? " flattened" : "", oc1, oc2);
            check_model(name, &t, 1);
            xtm_free(&t);
            arena_free(&a);
        }
}

/* A batch of 3 images through xe_session_run_batch_u8 equals
 * xe_session_run_batch on the table's floats, bit for bit; a float-only
 * model refuses uint8 input. */
static void check_u8_matches_float(const char *name, const xtm *t) {
    size_t size;
    uint8_t *file = xtm_write(t, &size);
    xe_model *m = NULL;
    xe_session *s = NULL;
    xe_session_options o;
    memset(&o, 0, sizeof o);
    o.num_threads = 3;
    if (xe_model_load_memory(file, size, 0, &m, NULL, 0) != XE_OK ||
        xe_session_create(m, &o, &s) != XE_OK) {
        printf("FAIL %s: load or session\n", name);
        g_fail++;
        xe_model_destroy(m);
        free(file);
        return;
    }
    const float *table = xe_model_input_u8_table(m);
    const size_t in_n = (size_t)t->ih * t->iw * t->ic, nb = 3;
    const xtm_value ov = t->values[t->nn];
    const size_t out_n = (size_t)ov.h * ov.w * ov.c;
    uint8_t *px = malloc(nb * in_n);
    float *x = malloc(nb * in_n * 4), *y8 = malloc(nb * out_n * 4), *yf = malloc(nb * out_n * 4);
    for (size_t i = 0; i < nb * in_n; i++) {
        px[i] = (uint8_t)(i < 256 ? i : rnd()); /* every byte value at least once when it fits */
        x[i] = table[(i % t->ic) * 256 + px[i]];
    }
    CHECK(table == t->params[t->u8_table].data ||
              memcmp(table, t->params[t->u8_table].data, 256 * 4 * (size_t)t->ic) == 0,
          "%s: xe_model_input_u8_table is not the file's table", name);
    CHECK(xe_session_run_batch_u8(s, nb, px, nb * in_n, y8, nb * out_n) == XE_OK &&
              xe_session_run_batch(s, nb, x, nb * in_n, yf, nb * out_n) == XE_OK &&
              memcmp(y8, yf, nb * out_n * 4) == 0,
          "%s: uint8 batch differs from the float batch", name);
    CHECK(xe_session_run_u8(s, px, in_n - 1, y8, out_n) == XE_ERR_INVALID_ARGUMENT &&
              xe_session_run_u8(s, NULL, in_n, y8, out_n) == XE_ERR_INVALID_ARGUMENT &&
              xe_session_run_u8(NULL, px, in_n, y8, out_n) == XE_ERR_INVALID_ARGUMENT,
          "%s: bad uint8 runs are not rejected", name);
    free(px);
    free(x);
    free(y8);
    free(yf);
    xe_session_destroy(s);
    xe_model_destroy(m);
    free(file);
}

/* uint8 input (header flag U8_INPUT): random tables (dyadic values, so
 * the conv after them stays exact) over 1 to 65 channels, alone (a relu) and
 * in front of a conv2d and a bconv2d; xe_session_run_u8 must equal
 * xe_session_run on the looked-up floats, batches included. */
static void test_u8_input(void) {
    char name[160];
    for (size_t ci = 0; ci < 8; ci++)
        for (int kind = 0; kind < 3; kind++) {
            const uint32_t c = k_chan[ci], h = k_spatial[1 + rnd() % 8],
                           w = k_spatial[1 + rnd() % 8];
            xtm t;
            arena a = {{0}, 0};
            xtm_init(&t, h, w, c);
            t.u8_table = xtm_param(&t, XTM_F32, rand_f32(&a, 256 * c, rnd_in), 256 * c);
            const uint32_t v =
                kind == 0 ? xtm_node(&t, XE_OP_RELU, 0, 0, XTM_NONE, 0, 0, 0, 0, 0, 0, 0, 0, 0)
                          : add_conv(&t, &a, kind == 1 ? XE_OP_CONV2D : XE_OP_BCONV2D, XE_FLAG_RELU,
                                     0, 3, 1 + (uint32_t)(rnd() % 2), 1, 9);
            (void)v;
            snprintf(name, sizeof name, "u8 input -> %s in=%ux%ux%u",
                     kind == 0   ? "relu"
                     : kind == 1 ? "conv2d"
                                 : "bconv2d",
                     h, w, c);
            check_model(name, &t, 1);
            check_u8_matches_float(name, &t);
            xtm_free(&t);
            arena_free(&a);
        }
}

int main(void) {
    g_nisas = xe_available_isas(g_isas, 8);
    if (g_nisas > 8) g_nisas = 8;
    printf("kernel sets:");
    for (size_t i = 0; i < g_nisas; i++) printf(" %s", g_isas[i]);
    printf("\n");

    static const uint32_t bconv_flags[] = {
        0,
        XE_FLAG_RELU,
        XE_FLAG_PAD_ONE,
        XE_FLAG_USE_K,
        XE_FLAG_USE_K | XE_FLAG_RELU | XE_FLAG_PAD_ONE,
        XE_FLAG_OUT_BITS,
        XE_FLAG_OUT_BITS | XE_FLAG_PAD_ONE,
    };
    static const uint32_t conv_flags[] = {0, XE_FLAG_RELU};
    battery(XE_OP_BCONV2D, bconv_flags, 7, 0);
    battery(XE_OP_BCONV2D, bconv_flags, 7, 1);
    battery(XE_OP_CONV2D, conv_flags, 2, 0);
    battery(XE_OP_BWN_CONV2D, conv_flags, 2, 0);
    test_conv_direct();
    test_mst(bconv_flags, 7);
    test_pools();
    test_misc();
    test_new_elementwise();
    test_dwconv2d();
    test_pad();
    test_u8_input();
    test_avgpool_excl_pad();
    test_gconv2d();
    test_binary_dense_bits();
    if (g_fail) {
        printf("test_ops: %d failure(s)\n", g_fail);
        return 1;
    }
    printf("test_ops: all passed\n");
    return 0;
}
