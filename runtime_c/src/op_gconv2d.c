/*
 * op_gconv2d.c - grouped and dilated float convolution (PyTorch's Conv2d
 * with groups G and dilation (DH, DW)).
 *
 * Input channels split into G groups of ICG = IC / G, output channels into
 * G groups of OCG = OC / G; output channel o reads group g = o / OCG only:
 *   y[o] = bias[o] + sum over taps (a, b) and c < ICG of
 *          x[oh*SH - PH + a*DH][ow*SW - PW + b*DW][g*ICG + c] * w[o][a][b][c]
 * with zero padding (taps outside the input add nothing). The node's window
 * fields hold the dilated extent, kernel_h = (KH - 1) * DH + 1, so the loader's
 * generic window rules and output size are those of the extent; the config
 * param gives G and the dilation, and with them KH = (kernel_h - 1) / DH + 1.
 * Weights are [OC][KH][KW][ICG], so the inner loop runs over contiguous input
 * channels of one filter. One task per output row; each output sums its taps
 * in row-major order and each tap's channels in increasing order, the same on
 * every thread count and kernel set (the op uses no kernel table).
 * MACs: OH*OW*OC*KH*KW*ICG.
 */
#include "ops.h"

#define XE_OP_GCONV2D 21u

enum { CONFIG, W, BIAS };
/* The config param: u32 words. */
enum { CFG_GROUPS, CFG_DIL_H, CFG_DIL_W, CFG_RESERVED, CFG_WORDS };

typedef struct gc_job {
    const xe_node *n;
    const float *x;
    float *y;
    uint32_t groups, dh, dw, kh, kw; /* kh, kw: taps, not the extent */
} gc_job;

/* Taps [lo, hi) of k taps spaced d apart from `start` that fall in [0, size). */
static void dilated_taps(long start, uint32_t k, uint32_t d, uint32_t size, long *lo, long *hi) {
    *lo = start < 0 ? (-start + (long)d - 1) / (long)d : 0;
    const long last = (long)size - 1 - start; /* the largest offset a*d inside */
    *hi = last < 0 ? 0 : last / (long)d + 1;
    if (*hi > (long)k) *hi = (long)k;
}

/* The OC outputs of the window whose first tap is (h0, w0), padding included. */
static void gc_position(const gc_job *j, long h0, long w0, float *y) {
    const xe_node_info *f = &j->n->info;
    const size_t ic = f->in_c, oc = f->out_c, icg = ic / j->groups, ocg = oc / j->groups;
    const float *wt = j->n->params[W], *bias = j->n->params[BIAS];
    long a0, a1, b0, b1;
    dilated_taps(h0, j->kh, j->dh, f->in_h, &a0, &a1);
    dilated_taps(w0, j->kw, j->dw, f->in_w, &b0, &b1);
    for (size_t o = 0; o < oc; o++) {
        const size_t g = o / ocg;
        const float *wo = wt + o * j->kh * j->kw * icg;
        float acc = bias[o];
        for (long a = a0; a < a1; a++)
            for (long b = b0; b < b1; b++) {
                const size_t pos =
                    (size_t)(h0 + a * (long)j->dh) * f->in_w + (size_t)(w0 + b * (long)j->dw);
                const float *x = j->x + pos * ic + g * icg;
                const float *w = wo + ((size_t)a * j->kw + (size_t)b) * icg;
                for (size_t c = 0; c < icg; c++) acc += x[c] * w[c];
            }
        y[o] = (f->flags & XE_FLAG_RELU) && acc < 0.0f ? 0.0f : acc;
    }
}

static void gc_row_task(void *ctx, size_t oh, uint32_t thread) {
    const gc_job *j = ctx;
    const xe_node_info *f = &j->n->info;
    const long h0 = (long)(oh * f->stride_h) - (long)f->pad_h;
    for (size_t ow = 0; ow < f->out_w; ow++) {
        const long w0 = (long)(ow * f->stride_w) - (long)f->pad_w;
        gc_position(j, h0, w0, j->y + (oh * f->out_w + ow) * f->out_c);
    }
}

static void gc_out(const xe_node *n, uint32_t rec_c, xe_out_shape *o) { o->c = rec_c; }

static void gc_params(const xe_node *n, uint64_t need[XE_MAX_OP_PARAMS]) {
    need[CONFIG] = CFG_WORDS;
    need[W] = XE_COUNT_FROM_FILE; /* OC*KH*KW*IC/G: follows from the config, bind checks it */
    need[BIAS] = n->info.out_c;
}

/* Groups divide both channel counts; each dilation divides its extent - 1. */
static xe_status gc_check_config(xe_loader *ld, const xe_node *n, const uint32_t *cfg) {
    const xe_node_info *f = &n->info;
    const uint32_t g = cfg[CFG_GROUPS], dh = cfg[CFG_DIL_H], dw = cfg[CFG_DIL_W];
    if (cfg[CFG_RESERVED] != 0) return xe_node_fail(ld, "config word 3 (reserved) is not zero");
    if (g < 1 || f->in_c % g != 0 || f->out_c % g != 0)
        return xe_node_fail(ld, "groups %u does not divide the %u input and %u output channels", g,
                            f->in_c, f->out_c);
    if (dh < 1 || dw < 1 || (f->kernel_h - 1) % dh != 0 || (f->kernel_w - 1) % dw != 0)
        return xe_node_fail(ld,
                            "dilation %ux%u does not divide the window extent %ux%u minus 1 "
                            "(extent = (taps - 1) * dilation + 1)",
                            dh, dw, f->kernel_h, f->kernel_w);
    return XE_OK;
}

static xe_status gc_bind(xe_loader *ld, xe_node *n, const uint64_t need[XE_MAX_OP_PARAMS]) {
    xe_node_info *f = &n->info;
    const uint32_t *cfg = n->params[CONFIG];
    const xe_status st = gc_check_config(ld, n, cfg);
    if (st != XE_OK) return st;
    const uint64_t kh = (f->kernel_h - 1) / cfg[CFG_DIL_H] + 1,
                   kw = (f->kernel_w - 1) / cfg[CFG_DIL_W] + 1;
    const uint64_t want = (uint64_t)f->out_c * kh * kw * (f->in_c / cfg[CFG_GROUPS]);
    if (need[W] != want)
        return xe_node_fail(ld,
                            "weights have %llu floats, %u groups of %ux%u taps need OC*KH*KW*IC/G "
                            "= %llu",
                            (unsigned long long)need[W], cfg[CFG_GROUPS], (unsigned)kh,
                            (unsigned)kw, (unsigned long long)want);
    f->float_params = need[W] + need[BIAS];
    f->macs = (uint64_t)f->out_h * f->out_w * want;
    return XE_OK;
}

static void gc_run(const xe_node *n, const xe_exec *ex, const void *in0, const void *in1,
                   void *out) {
    const xe_node_info *f = &n->info;
    const uint32_t *cfg = n->params[CONFIG];
    gc_job j = {n,
                in0,
                out,
                cfg[CFG_GROUPS],
                cfg[CFG_DIL_H],
                cfg[CFG_DIL_W],
                (f->kernel_h - 1) / cfg[CFG_DIL_H] + 1,
                (f->kernel_w - 1) / cfg[CFG_DIL_W] + 1};
    xe_pool_run(ex->pool, f->out_h, gc_row_task, &j);
}

const xe_op_def xe_op_gconv2d = {
    .op = XE_OP_GCONV2D,
    .name = "gconv2d",
    .flags = XE_FLAG_RELU,
    .n_params = 3,
    .param_dtypes = {XE_DTYPE_BITS, XE_DTYPE_F32, XE_DTYPE_F32},
    .windowed = 1,
    .infer = gc_out,
    .param_sizes = gc_params,
    .bind = gc_bind,
    .run = gc_run,
};
