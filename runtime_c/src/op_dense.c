/*
 * op_dense.c - float fully connected over the flattened HWC input:
 *   y[o] = bias[o] + sum_i x[i] * W[i][o]
 * The file's W is [OUT][IN]; each session packs it once as sgemm's B for its
 * kernel set. One task per XE_CHUNK_COLS outputs, each a 1-row sgemm, so the
 * split never changes a bit.
 */
#include "ops.h"

enum { W, BIAS };

typedef struct dense_job {
    const xe_node *n;
    const xe_exec *ex;
    const float *in;
    float *out;
} dense_job;

static void dense_task(void *ctx, size_t task, uint32_t thread) {
    const dense_job *j = ctx;
    const xe_node_info *f = &j->n->info;
    const size_t out_n = f->out_c, k = (size_t)f->in_h * f->in_w * f->in_c;
    const size_t j0 = task * XE_CHUNK_COLS;
    const size_t cols = out_n - j0 < XE_CHUNK_COLS ? out_n - j0 : XE_CHUNK_COLS;
    xe_sgemm(j->ex->k, 1, j0, cols, k, j->in, k, j->ex->prepared, j->out + j0, out_n);
    float *y = j->out + j0;
    const float *bias = (const float *)j->n->params[BIAS] + j0;
    for (size_t o = 0; o < cols; o++) y[o] = y[o] + bias[o];
    if (f->flags & XE_FLAG_RELU)
        for (size_t o = 0; o < cols; o++) y[o] = y[o] < 0.0f ? 0.0f : y[o];
}

static void dense_out(const xe_node *n, uint32_t rec_c, xe_out_shape *o) {
    o->h = o->w = 1;
    o->c = rec_c;
}

static void dense_params(const xe_node *n, uint64_t need[XE_MAX_OP_PARAMS]) {
    const xe_node_info *f = &n->info;
    need[W] = (uint64_t)f->out_c * f->in_h * f->in_w * f->in_c;
    need[BIAS] = f->out_c;
}

static xe_status dense_bind(xe_loader *ld, xe_node *n, const uint64_t need[XE_MAX_OP_PARAMS]) {
    n->info.float_params = need[W] + need[BIAS];
    n->info.macs = need[W];
    return XE_OK;
}

static size_t dense_session_bytes(const xe_node *n, const xe_kernels *k) {
    const xe_node_info *f = &n->info;
    return xe_sgemm_session_bytes(k, f->out_c, (size_t)f->in_h * f->in_w * f->in_c);
}

static void dense_session_prepare(const xe_node *n, const xe_kernels *k, void *dst) {
    const xe_node_info *f = &n->info;
    const size_t kk = (size_t)f->in_h * f->in_w * f->in_c;
    xe_sgemm_pack(k, f->out_c, kk, n->params[W], 1, kk, dst);
}

static void dense_run(const xe_node *n, const xe_exec *ex, const void *in0, const void *in1,
                      void *out) {
    dense_job j = {n, ex, in0, out};
    /* About 8 multiply-adds per ns on one thread: small heads run inline. */
    xe_pool_run_work(ex->pool, (n->info.out_c + XE_CHUNK_COLS - 1) / XE_CHUNK_COLS, dense_task, &j,
                     n->info.macs / 8);
}

const xe_op_def xe_op_dense = {
    .op = XE_OP_DENSE,
    .name = "dense",
    .flags = XE_FLAG_RELU,
    .n_params = 2,
    .param_dtypes = {XE_DTYPE_F32, XE_DTYPE_F32},
    .infer = dense_out,
    .param_sizes = dense_params,
    .bind = dense_bind,
    .session_bytes = dense_session_bytes,
    .session_prepare = dense_session_prepare,
    .run = dense_run,
};
