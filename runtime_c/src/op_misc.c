/*
 * op_misc.c - element-wise ops, pooling and softmax (docs/format.md, "Ops").
 *
 * batchnorm: y = x*scale[c] + shift[c];  relu: max(x, 0);  add: a + b;
 * maxpool:   max over the valid taps (padding never wins); on bits the binary
 *            max of +-1 values is +1 unless all are -1, i.e. AND of the bits;
 * avgpool:   (sum of valid taps) / (KH*KW), padding counted as zeros;
 * global_avgpool: mean over h, w (accumulated in double, in row order);
 * softmax:   exp(x - max) / sum over the channels of each position.
 * Pools run one task per output row; element-wise ops in fixed blocks.
 */
#include <math.h>
#include <string.h>

#include "ops.h"

#define XE_EW_BLOCK 16384u

typedef struct misc_job {
    const xe_node *n;
    const void *in0, *in1;
    void *out;
    size_t count;
    double *acc;
} misc_job;

static void ew_task(void *ctx, size_t task, uint32_t thread) {
    const misc_job *j = ctx;
    const xe_node_info *f = &j->n->info;
    const size_t s = task * XE_EW_BLOCK;
    const size_t e = j->count - s < XE_EW_BLOCK ? j->count : s + XE_EW_BLOCK;
    const float *x = j->in0;
    float *y = j->out;
    switch (f->op) {
    case XE_OP_BATCHNORM: {
        /* Channel runs instead of i % c per element, so the inner loop vectorises. */
        const size_t c = f->in_c;
        const float *sc = j->n->scale, *sf = j->n->bias;
        for (size_t i = s, ch = s % c; i < e; ch = 0) {
            const size_t run = c - ch < e - i ? c - ch : e - i;
            const float *xs = x + i, *a = sc + ch, *b = sf + ch;
            float *ys = y + i;
            for (size_t k = 0; k < run; k++) ys[k] = xs[k] * a[k] + b[k];
            i += run;
        }
        break;
    }
    case XE_OP_ADD: {
        const float *b = j->in1;
        for (size_t i = s; i < e; i++) y[i] = x[i] + b[i];
        break;
    }
    default: /* relu */
        for (size_t i = s; i < e; i++) y[i] = x[i] < 0.0f ? 0.0f : x[i];
        return;
    }
    if (f->flags & XE_FLAG_RELU)
        for (size_t i = s; i < e; i++) y[i] = y[i] < 0.0f ? 0.0f : y[i];
}

/* Valid tap range [lo, hi) of a window starting at `start` over [0, size). */
static void tap_range(long start, uint32_t k, uint32_t size, long *lo, long *hi) {
    *lo = start < 0 ? -start : 0;
    *hi = (long)size - start < (long)k ? (long)size - start : (long)k;
}

static void pool_task(void *ctx, size_t oh, uint32_t thread) {
    const misc_job *j = ctx;
    const xe_node_info *f = &j->n->info;
    const long h0 = (long)(oh * f->stride_h) - (long)f->pad_h;
    long a0, a1;
    tap_range(h0, f->kernel_h, f->in_h, &a0, &a1);
    if (f->in_dtype == XE_DTYPE_BITS) {
        const size_t cw = j->n->cw;
        const uint32_t *x = j->in0;
        for (size_t ow = 0; ow < f->out_w; ow++) {
            const long w0 = (long)(ow * f->stride_w) - (long)f->pad_w;
            long b0, b1;
            tap_range(w0, f->kernel_w, f->in_w, &b0, &b1);
            uint32_t *y = (uint32_t *)j->out + (oh * f->out_w + ow) * cw;
            for (size_t c = 0; c < cw; c++) y[c] = 0xFFFFFFFFu;
            for (long a = a0; a < a1; a++)
                for (long b = b0; b < b1; b++) {
                    const uint32_t *xp = x + ((size_t)(h0 + a) * f->in_w + (size_t)(w0 + b)) * cw;
                    for (size_t c = 0; c < cw; c++) y[c] &= xp[c];
                }
        }
        return;
    }
    const size_t c = f->in_c;
    const float *x = j->in0;
    const int is_max = f->op == XE_OP_MAXPOOL;
    const float inv = 1.0f / (float)(f->kernel_h * f->kernel_w);
    for (size_t ow = 0; ow < f->out_w; ow++) {
        const long w0 = (long)(ow * f->stride_w) - (long)f->pad_w;
        long b0, b1;
        tap_range(w0, f->kernel_w, f->in_w, &b0, &b1);
        float *y = (float *)j->out + (oh * f->out_w + ow) * c;
        for (size_t k = 0; k < c; k++) y[k] = is_max ? -INFINITY : 0.0f;
        for (long a = a0; a < a1; a++)
            for (long b = b0; b < b1; b++) {
                const float *xp = x + ((size_t)(h0 + a) * f->in_w + (size_t)(w0 + b)) * c;
                if (is_max)
                    for (size_t k = 0; k < c; k++) y[k] = xp[k] > y[k] ? xp[k] : y[k];
                else
                    for (size_t k = 0; k < c; k++) y[k] += xp[k];
            }
        if (!is_max)
            for (size_t k = 0; k < c; k++) y[k] *= inv;
    }
}

static void softmax_task(void *ctx, size_t task, uint32_t thread) {
    const misc_job *j = ctx;
    const size_t c = j->n->info.in_c;
    const size_t s = task * 64, e = j->count - s < 64 ? j->count : s + 64; /* positions */
    for (size_t p = s; p < e; p++) {
        const float *x = (const float *)j->in0 + p * c;
        float *y = (float *)j->out + p * c;
        float mx = x[0];
        for (size_t k = 1; k < c; k++) mx = x[k] > mx ? x[k] : mx;
        float sum = 0.0f;
        for (size_t k = 0; k < c; k++) {
            y[k] = expf(x[k] - mx);
            sum += y[k];
        }
        const float inv = 1.0f / sum;
        for (size_t k = 0; k < c; k++) y[k] *= inv;
    }
}

size_t xe_misc_shared_scratch(const xe_node *n, int *ovf) {
    if (n->info.op == XE_OP_GLOBAL_AVGPOOL) return xe_mul(n->info.in_c, sizeof(double), ovf);
    return 0;
}

void xe_run_misc(const xe_node *n, const xe_exec *ex, const void *in0, const void *in1, void *out) {
    const xe_node_info *f = &n->info;
    misc_job j = {n, in0, in1, out, (size_t)f->in_h * f->in_w * f->in_c, NULL};
    switch (f->op) {
    case XE_OP_BATCHNORM:
    case XE_OP_RELU:
    case XE_OP_ADD:
        xe_pool_run(ex->pool, (j.count + XE_EW_BLOCK - 1) / XE_EW_BLOCK, ew_task, &j);
        break;
    case XE_OP_MAXPOOL:
    case XE_OP_AVGPOOL:
        xe_pool_run(ex->pool, f->out_h, pool_task, &j);
        break;
    case XE_OP_SOFTMAX:
        j.count = (size_t)f->in_h * f->in_w;
        xe_pool_run(ex->pool, (j.count + 63) / 64, softmax_task, &j);
        break;
    case XE_OP_GLOBAL_AVGPOOL: {
        /* Small and memory-bound: one thread, double accumulators. */
        double *acc = (double *)(void *)ex->shared;
        const size_t c = f->in_c, hw = (size_t)f->in_h * f->in_w;
        const float *x = in0;
        for (size_t k = 0; k < c; k++) acc[k] = 0.0;
        for (size_t p = 0; p < hw; p++)
            for (size_t k = 0; k < c; k++) acc[k] += x[p * c + k];
        float *y = out;
        for (size_t k = 0; k < c; k++) y[k] = (float)(acc[k] / (double)hw);
        break;
    }
    default:
        break;
    }
}
