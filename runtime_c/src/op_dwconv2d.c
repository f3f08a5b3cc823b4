/*
 * op_dwconv2d.c - depthwise float convolution (PyTorch groups = IC), with a
 * channel multiplier M = OC / IC: output channel o reads input channel o / M
 * only, y[o] = bias[o] + sum over the valid taps of x[ic = o / M] * w[tap][o],
 * zero padding. Weights are [KH][KW][OC] so that the inner loop runs over
 * contiguous output channels. One task per output row; the taps of a
 * position are summed in row-major tap order, the same on every thread
 * count. MACs: OH*OW*OC*KH*KW.
 */
#include "ops.h"

#define XE_OP_DWCONV2D 18u

enum { W, BIAS };

typedef struct dw_job {
    const xe_node *n;
    const float *x;
    float *y;
} dw_job;

static void dw_row_task(void *ctx, size_t oh, uint32_t thread) {
    const dw_job *j = ctx;
    const xe_node_info *f = &j->n->info;
    const size_t ic = f->in_c, oc = f->out_c, mult = oc / ic, kw = f->kernel_w;
    const float *wt = j->n->params[W], *bias = j->n->params[BIAS];
    const long h0 = (long)(oh * f->stride_h) - (long)f->pad_h;
    long a0, a1;
    xe_tap_range(h0, f->kernel_h, f->in_h, &a0, &a1);
    for (size_t ow = 0; ow < f->out_w; ow++) {
        const long w0 = (long)(ow * f->stride_w) - (long)f->pad_w;
        long b0, b1;
        xe_tap_range(w0, f->kernel_w, f->in_w, &b0, &b1);
        float *y = j->y + (oh * f->out_w + ow) * oc;
        for (size_t o = 0; o < oc; o++) y[o] = bias[o];
        for (long a = a0; a < a1; a++)
            for (long b = b0; b < b1; b++) {
                const float *x = j->x + ((size_t)(h0 + a) * f->in_w + (size_t)(w0 + b)) * ic;
                const float *w = wt + ((size_t)a * kw + (size_t)b) * oc;
                if (mult == 1)
                    for (size_t o = 0; o < oc; o++) y[o] += x[o] * w[o];
                else
                    for (size_t o = 0; o < oc; o++) y[o] += x[o / mult] * w[o];
            }
        if (f->flags & XE_FLAG_RELU)
            for (size_t o = 0; o < oc; o++) y[o] = y[o] < 0.0f ? 0.0f : y[o];
    }
}

static void dw_out(const xe_node *n, uint32_t rec_c, xe_out_shape *o) { o->c = rec_c; }

static void dw_params(const xe_node *n, uint64_t need[XE_MAX_OP_PARAMS]) {
    const xe_node_info *f = &n->info;
    need[W] = (uint64_t)f->kernel_h * f->kernel_w * f->out_c;
    need[BIAS] = f->out_c;
}

static xe_status dw_bind(xe_loader *ld, xe_node *n, const uint64_t need[XE_MAX_OP_PARAMS]) {
    xe_node_info *f = &n->info;
    if (f->out_c % f->in_c != 0)
        return xe_node_fail(ld, "out_c %u is not a multiple of the %u input channels", f->out_c,
                            f->in_c);
    f->float_params = need[W] + need[BIAS];
    f->macs = (uint64_t)f->out_h * f->out_w * need[W];
    return XE_OK;
}

static void dw_run(const xe_node *n, const xe_exec *ex, const void *in0, const void *in1,
                   void *out) {
    dw_job j = {n, in0, out};
    xe_pool_run(ex->pool, n->info.out_h, dw_row_task, &j);
}

const xe_op_def xe_op_dwconv2d = {
    .op = XE_OP_DWCONV2D,
    .name = "dwconv2d",
    .flags = XE_FLAG_RELU,
    .n_params = 2,
    .param_dtypes = {XE_DTYPE_F32, XE_DTYPE_F32},
    .windowed = 1,
    .infer = dw_out,
    .param_sizes = dw_params,
    .bind = dw_bind,
    .run = dw_run,
};
