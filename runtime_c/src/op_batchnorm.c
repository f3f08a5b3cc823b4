/*
 * op_batchnorm.c - per-channel y = x*scale[c] + shift[c], then optional ReLU;
 * element-wise in fixed blocks. Fusable into a convolution before it or
 * after it (fuse.c).
 */
#include "ops.h"

enum { SCALE, SHIFT };

typedef struct bn_job {
    const xe_node *n;
    const float *x;
    float *y;
    size_t count;
} bn_job;

static void bn_task(void *ctx, size_t task, uint32_t thread) {
    const bn_job *j = ctx;
    const size_t c = j->n->info.in_c;
    const float *sc = j->n->params[SCALE], *sf = j->n->params[SHIFT];
    size_t s, e;
    xe_ew_range(j->count, task, &s, &e);
    /* Channel runs instead of i % c per element, so the inner loop vectorises. */
    for (size_t i = s, ch = s % c; i < e; ch = 0) {
        const size_t run = c - ch < e - i ? c - ch : e - i;
        const float *xs = j->x + i, *a = sc + ch, *b = sf + ch;
        float *ys = j->y + i;
        for (size_t k = 0; k < run; k++) ys[k] = xs[k] * a[k] + b[k];
        i += run;
    }
    if (j->n->info.flags & XE_FLAG_RELU)
        for (size_t i = s; i < e; i++) j->y[i] = j->y[i] < 0.0f ? 0.0f : j->y[i];
}

static void bn_params(const xe_node *n, uint64_t need[XE_MAX_OP_PARAMS]) {
    need[SCALE] = need[SHIFT] = n->info.in_c;
}

static xe_status bn_bind(xe_loader *ld, xe_node *n, const uint64_t need[XE_MAX_OP_PARAMS]) {
    xe_node_info *f = &n->info;
    f->float_params = 2ull * f->in_c;
    f->macs = (uint64_t)f->out_h * f->out_w * f->out_c;
    return XE_OK;
}

/* Fusion (fuse.c): after a convolution's epilogue, or (without ReLU) in its
 * consumer's input pass; the same multiply then add either way. */
static int bn_post_op(const xe_node *n, uint32_t from, xe_post_op *op, uint32_t *other) {
    op->kind = XE_POST_AFFINE;
    op->relu = (n->info.flags & XE_FLAG_RELU) != 0;
    op->a = n->params[SCALE];
    op->b = n->params[SHIFT];
    return 1;
}

static int bn_pre_affine(const xe_node *n, const float **scale, const float **shift) {
    if (n->info.flags & XE_FLAG_RELU) return 0;
    *scale = n->params[SCALE];
    *shift = n->params[SHIFT];
    return 1;
}

static void bn_run(const xe_node *n, const xe_exec *ex, const void *in0, const void *in1,
                   void *out) {
    bn_job j = {n, in0, out, (size_t)n->info.in_h * n->info.in_w * n->info.in_c};
    xe_pool_run(ex->pool, xe_ew_tasks(j.count), bn_task, &j);
}

const xe_op_def xe_op_batchnorm = {
    .op = XE_OP_BATCHNORM,
    .name = "batchnorm",
    .flags = XE_FLAG_RELU,
    .n_params = 2,
    .param_dtypes = {XE_DTYPE_F32, XE_DTYPE_F32},
    .param_sizes = bn_params,
    .bind = bn_bind,
    .run = bn_run,
    .post_op = bn_post_op,
    .pre_affine = bn_pre_affine,
};
