/*
 * op_bwn_conv2d.c - binary-weight convolution: float input, +-1 weights with
 * a per-filter scale (alpha), run as im2col + sgemm (op_conv2d.c).
 *
 *   y[p][oc] = scale[oc] * (sum_t col[p][t] * B[t][oc]) + bias[oc]
 * B = +-1 (bit 1 = -1, docs/bitpacking.md) unpacked at load into [K][OC]
 * floats, K = (kh, kw, ic); the scale is applied in the epilogue, so the sum
 * is exact in the same order as conv2d's.
 */
#include <stdlib.h>

#include "ops.h"

enum { W, SCALE, BIAS };

static void bwn_out(const xe_node *n, uint32_t rec_c, xe_out_shape *o) { o->c = rec_c; }

void xe_binary_weight_sizes(const xe_node *n, uint64_t need[XE_MAX_OP_PARAMS]) {
    const xe_node_info *f = &n->info;
    need[W] = (uint64_t)f->out_c * f->kernel_h * f->kernel_w * n->cw;
    need[SCALE] = need[BIAS] = f->out_c;
}

/* Rule 5 of docs/bitpacking.md: padding bits of each filter tap's last word
 * are 0; a 1 there would add to every popcount. */
static xe_status check_weight_padding(xe_loader *ld, const xe_node *n) {
    const xe_node_info *f = &n->info;
    const uint32_t *w = n->params[W];
    const uint64_t taps = (uint64_t)f->kernel_h * f->kernel_w;
    if (f->in_c % 32 == 0) return XE_OK;
    const uint32_t mask = ~(((uint32_t)1 << (f->in_c % 32)) - 1);
    for (uint64_t t = 0; t < f->out_c * taps; t++)
        if (w[t * n->cw + n->cw - 1] & mask)
            return xe_node_fail(ld, "weight padding bits of filter %llu tap %llu are not zero",
                                (unsigned long long)(t / taps), (unsigned long long)(t % taps));
    return XE_OK;
}

xe_status xe_binary_weight_bind(xe_loader *ld, xe_node *n, const uint64_t need[XE_MAX_OP_PARAMS]) {
    xe_node_info *f = &n->info;
    const uint64_t k = (uint64_t)f->kernel_h * f->kernel_w * f->in_c;
    f->binary_params = f->out_c * k;
    f->float_params = 2ull * f->out_c;
    f->macs = (uint64_t)f->out_h * f->out_w * f->out_c * k;
    return check_weight_padding(ld, n);
}

static xe_status bwn_precompute(xe_loader *ld, xe_node *n) {
    const xe_node_info *f = &n->info;
    const size_t taps = (size_t)f->kernel_h * f->kernel_w, oc = f->out_c, ic = f->in_c;
    int ovf = 0;
    const size_t bytes = xe_mul(xe_mul(taps * ic, oc, &ovf), sizeof(float), &ovf);
    float *wt = ovf ? NULL : malloc(bytes ? bytes : 1);
    if (!wt) return xe_node_oom(ld, " for weights");
    const uint32_t *bits = n->params[W];
    for (size_t o = 0; o < oc; o++)
        for (size_t t = 0; t < taps; t++) {
            const uint32_t *w = bits + (o * taps + t) * n->cw;
            for (size_t c = 0; c < ic; c++)
                wt[(t * ic + c) * oc + o] = (w[c / 32] >> (c % 32)) & 1u ? -1.0f : 1.0f;
        }
    n->pre = wt;
    return XE_OK;
}

static size_t bwn_session_bytes(const xe_node *n, const xe_kernels *k) {
    const xe_node_info *f = &n->info;
    return xe_sgemm_session_bytes(k, f->out_c, (size_t)f->kernel_h * f->kernel_w * f->in_c);
}

/* n->pre is [KH*KW*IC][OC]: sgemm's B as it stands. */
static void bwn_session_prepare(const xe_node *n, const xe_kernels *k, void *dst) {
    const xe_node_info *f = &n->info;
    const size_t kk = (size_t)f->kernel_h * f->kernel_w * f->in_c;
    xe_sgemm_pack(k, f->out_c, kk, n->pre, f->out_c, 1, dst);
}

static void bwn_run(const xe_node *n, const xe_exec *ex, const void *in0, const void *in1,
                    void *out) {
    xe_run_im2col_sgemm(n, ex, in0, out, n->params[SCALE], n->params[BIAS]);
}

const xe_op_def xe_op_bwn_conv2d = {
    .op = XE_OP_BWN_CONV2D,
    .name = "bwn_conv2d",
    .flags = XE_FLAG_RELU,
    .n_params = 3,
    .param_dtypes = {XE_DTYPE_BITS, XE_DTYPE_F32, XE_DTYPE_F32},
    .windowed = 1,
    .infer = bwn_out,
    .param_sizes = xe_binary_weight_sizes,
    .bind = xe_binary_weight_bind,
    .precompute = bwn_precompute,
    .destroy = xe_free_pre,
    .scratch = xe_im2col_scratch,
    .session_bytes = bwn_session_bytes,
    .session_prepare = bwn_session_prepare,
    .run = bwn_run,
};
