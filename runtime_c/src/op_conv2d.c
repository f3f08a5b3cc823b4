/*
 * op_conv2d.c - float convolution (conv2d), and the im2col + sgemm path that
 * bwn_conv2d (op_bwn_conv2d.c) shares.
 *
 * conv2d:  y[p][oc] = bias[oc] + sum_t col[p][t] * W[t][oc],
 *          col[p] = the (kh, kw, ic) window of position p, zero padded;
 * bwn:     y[p][oc] = scale[oc] * (sum_t col[p][t] * B[t][oc]) + bias[oc].
 * Each session packs W (the file's [OC][KH][KW][IC], i.e. B = W transposed)
 * once for its kernel set (kernels.h, xe_sgemm_pack), so no run transposes or
 * repacks weights. Work is split into chunks of XE_CHUNK_ROWS output
 * positions (and of XE_CHUNK_OC channels when positions are few); sgemm
 * accumulates each element in a fixed order, so the split never changes a bit
 * of the result.
 *
 * Direct path (output rows of at least XE_DIRECT_MIN_W positions, a window
 * larger than 1x1): the input is copied once into a zero-padded buffer, and
 * the window of position (oh, ow) is then KH runs of KW*IC contiguous floats,
 * PW*IC apart, at (oh*SH*PW + ow*SW)*IC: xe_sgemm_seg reads it in place, one
 * output row per call (tasks are output rows). The terms and their order are
 * im2col's (pad taps are zeros either way), so both paths give the same bits.
 * For ResNet-18's 7x7x3 stem the im2col copies were 13% of the layer.
 */
#include <stdlib.h>
#include <string.h>

#include "ops.h"

enum { W, BIAS };

/* Writes the zero-padded float window of output position p: KH*KW*IC floats. */
static void im2col_f32(const xe_node_info *f, const float *in, size_t p, float *row) {
    const size_t ic = f->in_c, kw = f->kernel_w;
    const long oh = (long)(p / f->out_w), ow = (long)(p % f->out_w);
    const long h0 = oh * (long)f->stride_h - (long)f->pad_h;
    const long w0 = ow * (long)f->stride_w - (long)f->pad_w;
    long b0, b1;
    xe_tap_range(w0, f->kernel_w, f->in_w, &b0, &b1);
    if (b1 < b0) b1 = b0;
    for (uint32_t a = 0; a < f->kernel_h; a++) {
        const long ih = h0 + a;
        float *dst = row + (size_t)a * kw * ic;
        if (ih < 0 || ih >= (long)f->in_h) {
            memset(dst, 0, kw * ic * sizeof(float));
            continue;
        }
        /* At most two zero runs around one contiguous copy. */
        if (b0 > 0) memset(dst, 0, (size_t)b0 * ic * sizeof(float));
        if (b1 > b0)
            memcpy(dst + (size_t)b0 * ic, in + ((size_t)ih * f->in_w + (size_t)(w0 + b0)) * ic,
                   (size_t)(b1 - b0) * ic * sizeof(float));
        if ((long)kw > b1)
            memset(dst + (size_t)b1 * ic, 0, ((size_t)kw - (size_t)b1) * ic * sizeof(float));
    }
}

#define XE_DIRECT_MIN_W 16u

static int use_direct(const xe_node_info *f) {
    return f->out_w >= XE_DIRECT_MIN_W && (size_t)f->kernel_h * f->kernel_w > 1;
}

static int has_pad(const xe_node_info *f) { return f->pad_h || f->pad_w; }

/* Per thread: im2col rows (also the gather rows of xe_sgemm_seg on sets
 * without segmented kernels); shared: the padded input of the direct path. */
void xe_im2col_scratch(const xe_node *n, size_t *shared, size_t *per_thread, int *ovf) {
    const xe_node_info *f = &n->info;
    *shared = 0;
    *per_thread = 0;
    if (xe_is_pointwise(f)) return;
    const size_t k = xe_mul((size_t)f->kernel_h * f->kernel_w, f->in_c, ovf);
    *per_thread = xe_mul(xe_mul(k, XE_CHUNK_ROWS, ovf), sizeof(float), ovf);
    if (use_direct(f) && has_pad(f)) {
        const size_t ph = (size_t)f->in_h + 2u * f->pad_h, pw = (size_t)f->in_w + 2u * f->pad_w;
        *shared = xe_mul(xe_mul(xe_mul(ph, pw, ovf), f->in_c, ovf), sizeof(float), ovf);
    }
}

typedef struct conv_job {
    const xe_node *n;
    const xe_exec *ex;
    const float *in;
    float *out;
    const float *scale, *bias;
    float *pad; /* the direct path's zero-padded input, or NULL */
} conv_job;

/* y = y * scale + bias (or y + bias), then optional ReLU: rows x ncols at ldy. */
static void conv_epilogue(const conv_job *j, float *y, size_t rows, size_t ncols, size_t ldy,
                          size_t o0) {
    const float *bias = j->bias + o0, *scale = j->scale ? j->scale + o0 : NULL;
    const int relu = (j->n->info.flags & XE_FLAG_RELU) != 0;
    for (size_t r = 0; r < rows; r++) {
        float *yr = y + r * ldy;
        if (scale) {
            for (size_t o = 0; o < ncols; o++) yr[o] = yr[o] * scale[o] + bias[o];
        } else {
            for (size_t o = 0; o < ncols; o++) yr[o] = yr[o] + bias[o];
        }
        if (relu)
            for (size_t o = 0; o < ncols; o++) yr[o] = yr[o] < 0.0f ? 0.0f : yr[o];
    }
}

/* Positions per task of the im2col path: XE_CHUNK_ROWS at one thread; with
 * more, equal chunks, a multiple of the thread count of them, so each
 * thread's own range of tasks (threadpool.c) is one slice of positions (as
 * bconv2d cuts its rows). */
static size_t im2col_rows(size_t m, uint32_t threads) {
    if (threads < 2 || m < 8u * threads) return XE_CHUNK_ROWS;
    size_t nch = (m + XE_CHUNK_ROWS - 1) / XE_CHUNK_ROWS;
    nch = (nch + threads - 1) / threads * threads;
    return (m + nch - 1) / nch;
}

/* Channel chunks of XE_CHUNK_OC when there are few row chunks. */
static size_t im2col_split(size_t m, size_t oc, size_t rows) {
    return (m + rows - 1) / rows < 8 && oc > XE_CHUNK_OC ? (oc + XE_CHUNK_OC - 1) / XE_CHUNK_OC : 1;
}

static void conv_task(void *ctx, size_t task, uint32_t thread) {
    const conv_job *j = ctx;
    const xe_node_info *f = &j->n->info;
    const size_t m = (size_t)f->out_h * f->out_w, oc = f->out_c;
    const size_t k = (size_t)f->kernel_h * f->kernel_w * f->in_c;
    const size_t crows = im2col_rows(m, xe_pool_threads(j->ex->pool));
    const size_t split = im2col_split(m, oc, crows);
    const size_t p0 = (task / split) * crows, o0 = (task % split) * XE_CHUNK_OC;
    const size_t rows = m - p0 < crows ? m - p0 : crows;
    const size_t ncols = split == 1 ? oc : (oc - o0 < XE_CHUNK_OC ? oc - o0 : XE_CHUNK_OC);
    const float *a;
    if (xe_is_pointwise(f)) {
        a = j->in + p0 * k;
    } else {
        float *col = (float *)(void *)j->ex->thread_scratch[thread];
        for (size_t r = 0; r < rows; r++) im2col_f32(f, j->in, p0 + r, col + r * k);
        a = col;
    }
    float *y = j->out + p0 * oc + o0;
    xe_sgemm(j->ex->k, rows, o0, ncols, k, a, k, j->ex->prepared, y, oc);
    conv_epilogue(j, y, rows, ncols, oc, o0);
}

/* The direct path's channel split: XE_CHUNK_OC chunks when output rows are few. */
static size_t direct_split(const xe_node_info *f) {
    return f->out_h < 8 && f->out_c > XE_CHUNK_OC ? (f->out_c + XE_CHUNK_OC - 1) / XE_CHUNK_OC : 1;
}

/* One padded input row: zeros, or zeros around a copy of input row h - pad_h. */
static void pad_row_task(void *ctx, size_t r, uint32_t thread) {
    const conv_job *j = ctx;
    const xe_node_info *f = &j->n->info;
    const size_t c = f->in_c, pw = f->pad_w, iw = f->in_w, row = (iw + 2 * pw) * c;
    float *dst = j->pad + r * row;
    if (r < f->pad_h || r >= f->pad_h + f->in_h) {
        memset(dst, 0, row * sizeof(float));
        return;
    }
    memset(dst, 0, pw * c * sizeof(float));
    memcpy(dst + pw * c, j->in + (r - f->pad_h) * iw * c, iw * c * sizeof(float));
    memset(dst + (pw + iw) * c, 0, pw * c * sizeof(float));
}

/* One output row (x channel chunk) of the direct path. */
static void direct_task(void *ctx, size_t task, uint32_t thread) {
    const conv_job *j = ctx;
    const xe_node_info *f = &j->n->info;
    const size_t oc = f->out_c, c = f->in_c, split = direct_split(f);
    const size_t oh = task / split, o0 = (task % split) * XE_CHUNK_OC;
    const size_t ncols = split == 1 ? oc : (oc - o0 < XE_CHUNK_OC ? oc - o0 : XE_CHUNK_OC);
    const size_t pw = (size_t)f->in_w + 2u * f->pad_w;
    const float *src = j->pad ? j->pad : j->in;
    float *y = j->out + oh * f->out_w * oc + o0;
    xe_sgemm_seg(j->ex->k, f->out_w, o0, ncols, f->kernel_h, (size_t)f->kernel_w * c, pw * c,
                 src + oh * f->stride_h * pw * c, (size_t)f->stride_w * c, j->ex->prepared, y, oc,
                 (float *)(void *)j->ex->thread_scratch[thread], XE_CHUNK_ROWS);
    conv_epilogue(j, y, f->out_w, ncols, oc, o0);
}

void xe_run_im2col_sgemm(const xe_node *n, const xe_exec *ex, const float *in, float *out,
                         const float *scale, const float *bias) {
    const xe_node_info *f = &n->info;
    conv_job j = {n, ex, in, out, scale, bias, NULL};
    if (use_direct(f)) {
        if (has_pad(f)) {
            const size_t ph = (size_t)f->in_h + 2u * f->pad_h;
            const size_t bytes = ph * ((size_t)f->in_w + 2u * f->pad_w) * f->in_c * 4;
            j.pad = (float *)(void *)ex->shared;
            xe_pool_run_work(ex->pool, ph, pad_row_task, &j, bytes / 8); /* ~8 bytes/ns */
        }
        xe_pool_run(ex->pool, f->out_h * direct_split(f), direct_task, &j);
        return;
    }
    const size_t m = (size_t)f->out_h * f->out_w;
    const size_t crows = im2col_rows(m, xe_pool_threads(ex->pool));
    const size_t tasks = (m + crows - 1) / crows * im2col_split(m, f->out_c, crows);
    xe_pool_run_work(ex->pool, tasks, conv_task, &j, f->macs / 8); /* ~8 MACs/ns */
}

size_t xe_sgemm_session_bytes(const xe_kernels *k, size_t n, size_t kk) {
    int ovf = 0;
    const size_t bytes = xe_mul(xe_sgemm_packed_floats(k, n, kk), sizeof(float), &ovf);
    return ovf ? SIZE_MAX : bytes;
}

void xe_free_pre(xe_node *n) { free(n->pre); }

static void conv2d_out(const xe_node *n, uint32_t rec_c, xe_out_shape *o) { o->c = rec_c; }

static void conv2d_params(const xe_node *n, uint64_t need[XE_MAX_OP_PARAMS]) {
    const xe_node_info *f = &n->info;
    need[W] = (uint64_t)f->out_c * f->kernel_h * f->kernel_w * f->in_c;
    need[BIAS] = f->out_c;
}

static xe_status conv2d_bind(xe_loader *ld, xe_node *n, const uint64_t need[XE_MAX_OP_PARAMS]) {
    xe_node_info *f = &n->info;
    f->float_params = need[W] + need[BIAS];
    f->macs = (uint64_t)f->out_h * f->out_w * need[W];
    return XE_OK;
}

static size_t conv2d_session_bytes(const xe_node *n, const xe_kernels *k) {
    const xe_node_info *f = &n->info;
    return xe_sgemm_session_bytes(k, f->out_c, (size_t)f->kernel_h * f->kernel_w * f->in_c);
}

/* The file's [OC][KH*KW*IC] weights, packed as sgemm's B (B(t, o) = W[o][t]). */
static void conv2d_session_prepare(const xe_node *n, const xe_kernels *k, void *dst) {
    const xe_node_info *f = &n->info;
    const size_t kk = (size_t)f->kernel_h * f->kernel_w * f->in_c;
    xe_sgemm_pack(k, f->out_c, kk, n->params[W], 1, kk, dst);
}

static void conv2d_run(const xe_node *n, const xe_exec *ex, const void *in0, const void *in1,
                       void *out) {
    xe_run_im2col_sgemm(n, ex, in0, out, NULL, n->params[BIAS]);
}

const xe_op_def xe_op_conv2d = {
    .op = XE_OP_CONV2D,
    .name = "conv2d",
    .flags = XE_FLAG_RELU,
    .n_params = 2,
    .param_dtypes = {XE_DTYPE_F32, XE_DTYPE_F32},
    .windowed = 1,
    .infer = conv2d_out,
    .param_sizes = conv2d_params,
    .bind = conv2d_bind,
    .scratch = xe_im2col_scratch,
    .session_bytes = conv2d_session_bytes,
    .session_prepare = conv2d_session_prepare,
    .run = conv2d_run,
};
