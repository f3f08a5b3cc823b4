/*
 * op_relu.c - y = max(x, 0), element-wise in fixed blocks.
 */
#include "ops.h"

typedef struct relu_job {
    const float *x;
    float *y;
    size_t count;
} relu_job;

static void relu_task(void *ctx, size_t task, uint32_t thread) {
    const relu_job *j = ctx;
    size_t s, e;
    xe_ew_range(j->count, task, &s, &e);
    for (size_t i = s; i < e; i++) j->y[i] = j->x[i] < 0.0f ? 0.0f : j->x[i];
}

/* Fusion (fuse.c): the ReLU of the op fused before it. */
static int relu_post_op(const xe_node *n, uint32_t from, xe_post_op *op, uint32_t *other) {
    op->kind = 0;
    op->relu = 1;
    return 1;
}

static void relu_run(const xe_node *n, const xe_exec *ex, const void *in0, const void *in1,
                     void *out) {
    relu_job j = {in0, out, (size_t)n->info.in_h * n->info.in_w * n->info.in_c};
    xe_pool_run(ex->pool, xe_ew_tasks(j.count), relu_task, &j);
}

const xe_op_def xe_op_relu = {
    .op = XE_OP_RELU,
    .name = "relu",
    .run = relu_run,
    .post_op = relu_post_op,
};
