/*
 * op_add.c - element-wise sum of two values of one shape (a residual), then
 * optional ReLU; in fixed blocks. Fusable into the convolution computing one
 * of its operands (fuse.c).
 */
#include "ops.h"

typedef struct add_job {
    const float *a, *b;
    float *y;
    size_t count;
    int relu;
} add_job;

static void add_task(void *ctx, size_t task, uint32_t thread) {
    const add_job *j = ctx;
    size_t s, e;
    xe_ew_range(j->count, task, &s, &e);
    float *y = j->y;
    for (size_t i = s; i < e; i++) y[i] = j->a[i] + j->b[i];
    if (j->relu)
        for (size_t i = s; i < e; i++) y[i] = y[i] < 0.0f ? 0.0f : y[i];
}

/* Fusion (fuse.c): after the epilogue of the convolution writing `from`,
 * keeping the operand order (left + right). x + x is not fusable. */
static int add_post_op(const xe_node *n, uint32_t from, xe_post_op *op, uint32_t *other) {
    const xe_node_info *f = &n->info;
    if (f->input0 == f->input1) return 0;
    op->kind = f->input0 == from ? XE_POST_ADD : XE_POST_RADD;
    op->relu = (f->flags & XE_FLAG_RELU) != 0;
    *other = f->input0 == from ? f->input1 : f->input0;
    return 1;
}

static void add_run(const xe_node *n, const xe_exec *ex, const void *in0, const void *in1,
                    void *out) {
    const xe_node_info *f = &n->info;
    add_job j = {in0, in1, out, (size_t)f->in_h * f->in_w * f->in_c,
                 (f->flags & XE_FLAG_RELU) != 0};
    xe_pool_run(ex->pool, xe_ew_tasks(j.count), add_task, &j);
}

const xe_op_def xe_op_add = {
    .op = XE_OP_ADD,
    .name = "add",
    .flags = XE_FLAG_RELU,
    .input1 = XE_IN1_SAME_SHAPE,
    .run = add_run,
    .post_op = add_post_op,
};
