/*
 * op_pool.c - maxpool, avgpool, avgpool_excl_pad and global_avgpool.
 *
 * maxpool:   max over the valid taps (padding never wins); on bits the binary
 *            max of +-1 values is +1 unless all are -1, i.e. AND of the bits;
 * avgpool:   (sum of valid taps) / (KH*KW), padding counted as zeros;
 * avgpool_excl_pad: (sum of valid taps) / (number of valid taps), TFLite's
 *            SAME average pool and ONNX's count_include_pad = 0. Padding may
 *            be asymmetric: top/left are the window's pad fields, and the
 *            output size gives bottom/right, out = (in + top + bottom -
 *            kernel) / stride + 1 with bottom < kernel, so that every window
 *            holds a valid tap; the run needs only each window's clipped tap
 *            range.
 *            The count is exact in float and the sum is divided by it, as TF.
 * global_avgpool: mean over h, w (accumulated in double, in row order).
 * Windowed pools run one task per output row; the taps of a window are
 * summed in row-major order whatever the thread count.
 */
#include <math.h>

#include "ops.h"

#define XE_OP_AVGPOOL_EXCL_PAD 20u

enum { POOL_MAX, POOL_AVG, POOL_AVG_EXCL };

typedef struct pool_job {
    const xe_node *n;
    const void *in;
    void *out;
    int kind; /* POOL_* */
} pool_job;

static void maxpool_bits_row(const pool_job *j, size_t oh) {
    const xe_node_info *f = &j->n->info;
    const size_t cw = j->n->cw;
    const uint32_t *x = j->in;
    const long h0 = (long)(oh * f->stride_h) - (long)f->pad_h;
    long a0, a1;
    xe_tap_range(h0, f->kernel_h, f->in_h, &a0, &a1);
    for (size_t ow = 0; ow < f->out_w; ow++) {
        const long w0 = (long)(ow * f->stride_w) - (long)f->pad_w;
        long b0, b1;
        xe_tap_range(w0, f->kernel_w, f->in_w, &b0, &b1);
        uint32_t *y = (uint32_t *)j->out + (oh * f->out_w + ow) * cw;
        for (size_t c = 0; c < cw; c++) y[c] = 0xFFFFFFFFu;
        for (long a = a0; a < a1; a++)
            for (long b = b0; b < b1; b++) {
                const uint32_t *xp = x + ((size_t)(h0 + a) * f->in_w + (size_t)(w0 + b)) * cw;
                for (size_t c = 0; c < cw; c++) y[c] &= xp[c];
            }
    }
}

/* Max (or sum) of one tap into the accumulator row: separate loops with
 * restrict pointers, so the compiler vectorises them (a select inside one
 * loop over both ops did not: 94 us for ResNet-18's 24x24x64 maxpool). The
 * taps arrive in the same order as before, so which of +0/-0 wins a tie is
 * unchanged. */
static void max_into(float *restrict y, const float *restrict x, size_t c) {
    for (size_t k = 0; k < c; k++) y[k] = x[k] > y[k] ? x[k] : y[k];
}

static void sum_into(float *restrict y, const float *restrict x, size_t c) {
    for (size_t k = 0; k < c; k++) y[k] += x[k];
}

static void pool_task(void *ctx, size_t oh, uint32_t thread) {
    const pool_job *j = ctx;
    const xe_node_info *f = &j->n->info;
    if (f->in_dtype == XE_DTYPE_BITS) {
        maxpool_bits_row(j, oh);
        return;
    }
    const long h0 = (long)(oh * f->stride_h) - (long)f->pad_h;
    long a0, a1;
    xe_tap_range(h0, f->kernel_h, f->in_h, &a0, &a1);
    const size_t c = f->in_c;
    const float *x = j->in;
    const int is_max = j->kind == POOL_MAX;
    const float inv = 1.0f / (float)(f->kernel_h * f->kernel_w);
    for (size_t ow = 0; ow < f->out_w; ow++) {
        const long w0 = (long)(ow * f->stride_w) - (long)f->pad_w;
        long b0, b1;
        xe_tap_range(w0, f->kernel_w, f->in_w, &b0, &b1);
        float *y = (float *)j->out + (oh * f->out_w + ow) * c;
        const float init = is_max ? -INFINITY : 0.0f;
        for (size_t k = 0; k < c; k++) y[k] = init;
        for (long a = a0; a < a1; a++)
            for (long b = b0; b < b1; b++) {
                const float *xp = x + ((size_t)(h0 + a) * f->in_w + (size_t)(w0 + b)) * c;
                if (is_max)
                    max_into(y, xp, c);
                else
                    sum_into(y, xp, c);
            }
        if (j->kind == POOL_AVG)
            for (size_t k = 0; k < c; k++) y[k] *= inv;
        if (j->kind == POOL_AVG_EXCL) {
            const float count = (float)((a1 - a0) * (b1 - b0));
            for (size_t k = 0; k < c; k++) y[k] /= count;
        }
    }
}

/* Rough single-thread cost in ns (about 4 values per ns, bits 32 per word):
 * small pools run inline (threadpool.c, xe_pool_run_work). */
static uint64_t pool_ns(const xe_node_info *f) {
    const uint64_t taps = (uint64_t)f->out_h * f->out_w * f->kernel_h * f->kernel_w;
    return f->in_dtype == XE_DTYPE_BITS ? taps * ((f->in_c + 31) / 32) : taps * f->in_c / 4;
}

static void maxpool_out(const xe_node *n, uint32_t rec_c, xe_out_shape *o) {
    o->dtype = n->info.in_dtype;
}

static void maxpool_run(const xe_node *n, const xe_exec *ex, const void *in0, const void *in1,
                        void *out) {
    pool_job j = {n, in0, out, POOL_MAX};
    xe_pool_run_work(ex->pool, n->info.out_h, pool_task, &j, pool_ns(&n->info));
}

static void avgpool_run(const xe_node *n, const xe_exec *ex, const void *in0, const void *in1,
                        void *out) {
    pool_job j = {n, in0, out, POOL_AVG};
    xe_pool_run_work(ex->pool, n->info.out_h, pool_task, &j, pool_ns(&n->info));
}

static void avg_excl_run(const xe_node *n, const xe_exec *ex, const void *in0, const void *in1,
                         void *out) {
    pool_job j = {n, in0, out, POOL_AVG_EXCL};
    xe_pool_run_work(ex->pool, n->info.out_h, pool_task, &j, pool_ns(&n->info));
}

/* Whether `out` windows of kernel k, stride s after `top` padding are what
 * out = (in + top + bottom - k) / s + 1 gives for some bottom in [0, k): with
 * b = (out - 1) * s + k - in - top, some bottom in [b, b + s) is, i.e.
 * -s < b < k (b < 0: the last rows of the input are in no window, as in
 * ONNX's floor rounding). b < k also puts a valid tap in the last window. */
static int after_pad_ok(uint32_t out, uint32_t in, uint32_t k, uint32_t s, uint32_t top) {
    const uint64_t span = (uint64_t)(out ? out - 1 : 0) * s + k, start = (uint64_t)in + top;
    return out >= 1 && span + s > start && span < start + k;
}

/* The recorded size when its padding after the input is in range; else the
 * symmetric window's (which the loader then finds differs from the record). */
static void avg_excl_out(const xe_node *n, uint32_t rec_c, xe_out_shape *o) {
    const xe_node_info *f = &n->info;
    if (after_pad_ok(f->out_h, f->in_h, f->kernel_h, f->stride_h, f->pad_h)) o->h = f->out_h;
    if (after_pad_ok(f->out_w, f->in_w, f->kernel_w, f->stride_w, f->pad_w)) o->w = f->out_w;
}

const xe_op_def xe_op_maxpool = {
    .op = XE_OP_MAXPOOL,
    .name = "maxpool",
    .windowed = 1,
    .bits_input = 1,
    .infer = maxpool_out,
    .run = maxpool_run,
};

const xe_op_def xe_op_avgpool = {
    .op = XE_OP_AVGPOOL,
    .name = "avgpool",
    .windowed = 1,
    .run = avgpool_run,
};

const xe_op_def xe_op_avgpool_excl_pad = {
    .op = XE_OP_AVGPOOL_EXCL_PAD,
    .name = "avgpool_excl_pad",
    .windowed = 1,
    .infer = avg_excl_out,
    .run = avg_excl_run,
};

static void gap_out(const xe_node *n, uint32_t rec_c, xe_out_shape *o) { o->h = o->w = 1; }

static void gap_scratch(const xe_node *n, size_t *shared, size_t *per_thread, int *ovf) {
    *shared = xe_mul(n->info.in_c, sizeof(double), ovf);
    *per_thread = 0;
}

/* Small and memory-bound: one thread, double accumulators. */
static void gap_run(const xe_node *n, const xe_exec *ex, const void *in0, const void *in1,
                    void *out) {
    const xe_node_info *f = &n->info;
    double *acc = (double *)(void *)ex->shared;
    const size_t c = f->in_c, hw = (size_t)f->in_h * f->in_w;
    const float *x = in0;
    for (size_t k = 0; k < c; k++) acc[k] = 0.0;
    for (size_t p = 0; p < hw; p++)
        for (size_t k = 0; k < c; k++) acc[k] += x[p * c + k];
    float *y = out;
    for (size_t k = 0; k < c; k++) y[k] = (float)(acc[k] / (double)hw);
}

const xe_op_def xe_op_global_avgpool = {
    .op = XE_OP_GLOBAL_AVGPOOL,
    .name = "global_avgpool",
    .infer = gap_out,
    .scratch = gap_scratch,
    .run = gap_run,
};
