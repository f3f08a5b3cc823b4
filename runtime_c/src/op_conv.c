/*
 * op_conv.c - float convolution (conv2d), binary-weight convolution
 * (bwn_conv2d) and dense, all as im2col + the sgemm kernel.
 *
 * conv2d:  y[p][oc] = bias[oc] + sum_t col[p][t] * W[t][oc],
 *          col[p] = the (kh, kw, ic) window of position p, zero padded;
 * bwn:     y[p][oc] = scale[oc] * (sum_t col[p][t] * B[t][oc]) + bias[oc],
 *          B = +-1 from the weight bits (unpacked at load), scale = alpha;
 * dense:   y[o] = bias[o] + sum_i x[i] * W[i][o].
 * Work is split into chunks of XE_CHUNK_ROWS output positions (and of
 * XE_CHUNK_OC channels when positions are few; XE_CHUNK_COLS outputs for
 * dense); sgemm accumulates each element in a fixed order, so the split never
 * changes a bit of the result.
 */
#include <string.h>

#include "ops.h"

/* Writes the zero-padded float window of output position p: KH*KW*IC floats. */
static void im2col_f32(const xe_node_info *f, const float *in, size_t p, float *row) {
    const size_t ic = f->in_c, kw = f->kernel_w;
    const long oh = (long)(p / f->out_w), ow = (long)(p % f->out_w);
    const long h0 = oh * (long)f->stride_h - (long)f->pad_h;
    const long w0 = ow * (long)f->stride_w - (long)f->pad_w;
    for (uint32_t a = 0; a < f->kernel_h; a++) {
        const long ih = h0 + a;
        float *dst = row + (size_t)a * kw * ic;
        if (ih < 0 || ih >= (long)f->in_h) {
            memset(dst, 0, kw * ic * sizeof(float));
            continue;
        }
        /* Valid kw range, then at most two zero runs around one contiguous copy. */
        long b0 = w0 < 0 ? -w0 : 0;
        long b1 = (long)f->in_w - w0;
        if (b1 > (long)kw) b1 = (long)kw;
        if (b0 > 0) memset(dst, 0, (size_t)b0 * ic * sizeof(float));
        if (b1 > b0)
            memcpy(dst + (size_t)b0 * ic, in + ((size_t)ih * f->in_w + (size_t)(w0 + b0)) * ic,
                   (size_t)(b1 - b0) * ic * sizeof(float));
        else
            b1 = b0;
        if ((long)kw > b1)
            memset(dst + (size_t)b1 * ic, 0, ((size_t)kw - (size_t)b1) * ic * sizeof(float));
    }
}

static int is_pointwise(const xe_node_info *f) {
    return f->kernel_h == 1 && f->kernel_w == 1 && f->stride_h == 1 && f->stride_w == 1;
}

size_t xe_conv_thread_scratch(const xe_node_info *f, int *ovf) {
    if (is_pointwise(f)) return 0;
    const size_t k = xe_mul((size_t)f->kernel_h * f->kernel_w, f->in_c, ovf);
    return xe_mul(xe_mul(k, XE_CHUNK_ROWS, ovf), sizeof(float), ovf);
}

typedef struct conv_job {
    const xe_node *n;
    const xe_exec *ex;
    const float *in;
    float *out;
} conv_job;

static void conv_task(void *ctx, size_t task, uint32_t thread) {
    const conv_job *j = ctx;
    const xe_node_info *f = &j->n->info;
    const size_t m = (size_t)f->out_h * f->out_w, oc = f->out_c;
    const size_t k = (size_t)f->kernel_h * f->kernel_w * f->in_c;
    const size_t split = xe_oc_split(m, oc);
    const size_t p0 = (task / split) * XE_CHUNK_ROWS, o0 = (task % split) * XE_CHUNK_OC;
    const size_t rows = m - p0 < XE_CHUNK_ROWS ? m - p0 : XE_CHUNK_ROWS;
    const size_t ncols = split == 1 ? oc : (oc - o0 < XE_CHUNK_OC ? oc - o0 : XE_CHUNK_OC);
    const float *a;
    if (is_pointwise(f)) {
        a = j->in + p0 * k;
    } else {
        float *col = (float *)(void *)j->ex->thread_scratch[thread];
        for (size_t r = 0; r < rows; r++) im2col_f32(f, j->in, p0 + r, col + r * k);
        a = col;
    }
    float *y = j->out + p0 * oc + o0;
    j->ex->k->sgemm(rows, ncols, k, a, k, j->n->wt + o0, oc, y, oc);
    const float *bias = j->n->bias + o0, *scale = j->n->scale ? j->n->scale + o0 : NULL;
    const int relu = (f->flags & XE_FLAG_RELU) != 0;
    for (size_t r = 0; r < rows; r++) {
        float *yr = y + r * oc;
        if (f->op == XE_OP_BWN_CONV2D) {
            for (size_t o = 0; o < ncols; o++) yr[o] = yr[o] * scale[o] + bias[o];
        } else {
            for (size_t o = 0; o < ncols; o++) yr[o] = yr[o] + bias[o];
        }
        if (relu)
            for (size_t o = 0; o < ncols; o++) yr[o] = yr[o] < 0.0f ? 0.0f : yr[o];
    }
}

void xe_run_conv(const xe_node *n, const xe_exec *ex, const float *in, float *out) {
    conv_job j = {n, ex, in, out};
    const size_t m = (size_t)n->info.out_h * n->info.out_w;
    const size_t tasks = (m + XE_CHUNK_ROWS - 1) / XE_CHUNK_ROWS * xe_oc_split(m, n->info.out_c);
    xe_pool_run(ex->pool, tasks, conv_task, &j);
}

static void dense_task(void *ctx, size_t task, uint32_t thread) {
    const conv_job *j = ctx;
    const xe_node_info *f = &j->n->info;
    const size_t out_n = f->out_c, k = (size_t)f->in_h * f->in_w * f->in_c;
    const size_t j0 = task * XE_CHUNK_COLS;
    const size_t cols = out_n - j0 < XE_CHUNK_COLS ? out_n - j0 : XE_CHUNK_COLS;
    j->ex->k->sgemm(1, cols, k, j->in, k, j->n->wt + j0, out_n, j->out + j0, out_n);
    const int relu = (f->flags & XE_FLAG_RELU) != 0;
    float *y = j->out + j0;
    const float *bias = j->n->bias + j0;
    for (size_t o = 0; o < cols; o++) y[o] = y[o] + bias[o];
    if (relu)
        for (size_t o = 0; o < cols; o++) y[o] = y[o] < 0.0f ? 0.0f : y[o];
}

void xe_run_dense(const xe_node *n, const xe_exec *ex, const float *in, float *out) {
    conv_job j = {n, ex, in, out};
    xe_pool_run(ex->pool, (n->info.out_c + XE_CHUNK_COLS - 1) / XE_CHUNK_COLS, dense_task, &j);
}
