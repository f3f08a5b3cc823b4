/*
 * op_prelu.c - per-channel PReLU: y = x for x >= 0, y = slope[c] * x for
 * x < 0; element-wise in fixed blocks. A single slope repeated over C is
 * leaky ReLU; ReActNet's RPReLU is batchnorm (shift) -> prelu -> batchnorm.
 */
#include "ops.h"

#define XE_OP_PRELU 13u

typedef struct prelu_job {
    const xe_node *n;
    const float *x;
    float *y;
    size_t count;
} prelu_job;

static void prelu_task(void *ctx, size_t task, uint32_t thread) {
    const prelu_job *j = ctx;
    const size_t c = j->n->info.in_c;
    const float *slope = j->n->params[0];
    size_t s, e;
    xe_ew_range(j->count, task, &s, &e);
    /* Channel runs, as in op_batchnorm.c, so the inner loop vectorises. */
    for (size_t i = s, ch = s % c; i < e; ch = 0) {
        const size_t run = c - ch < e - i ? c - ch : e - i;
        const float *xs = j->x + i, *a = slope + ch;
        float *ys = j->y + i;
        for (size_t k = 0; k < run; k++) ys[k] = xs[k] < 0.0f ? xs[k] * a[k] : xs[k];
        i += run;
    }
}

static void prelu_params(const xe_node *n, uint64_t need[XE_MAX_OP_PARAMS]) {
    need[0] = n->info.in_c;
}

static xe_status prelu_bind(xe_loader *ld, xe_node *n, const uint64_t need[XE_MAX_OP_PARAMS]) {
    n->info.float_params = n->info.in_c;
    n->info.macs = (uint64_t)n->info.in_h * n->info.in_w * n->info.in_c;
    return XE_OK;
}

static void prelu_run(const xe_node *n, const xe_exec *ex, const void *in0, const void *in1,
                      void *out) {
    prelu_job j = {n, in0, out, (size_t)n->info.in_h * n->info.in_w * n->info.in_c};
    xe_pool_run(ex->pool, xe_ew_tasks(j.count), prelu_task, &j);
}

const xe_op_def xe_op_prelu = {
    .op = XE_OP_PRELU,
    .name = "prelu",
    .n_params = 1,
    .param_dtypes = {XE_DTYPE_F32},
    .param_sizes = prelu_params,
    .bind = prelu_bind,
    .run = prelu_run,
};
