/*
 * op_concat.c - concatenation along channels: input0 (H, W, C0) and input1
 * (H, W, C1), both float32, give (H, W, C0 + C1) with y[p] = x0[p] ++ x1[p]
 * at every position p. A copy, in tasks of whole positions (about
 * XE_EW_BLOCK floats each) so that the split never depends on the threads.
 */
#include <string.h>

#include "ops.h"

#define XE_OP_CONCAT 16u

typedef struct concat_job {
    const float *a, *b;
    float *y;
    size_t positions, per_task, ca, cb;
} concat_job;

static void concat_task(void *ctx, size_t task, uint32_t thread) {
    const concat_job *j = ctx;
    const size_t s = task * j->per_task, c = j->ca + j->cb;
    const size_t e = j->positions - s < j->per_task ? j->positions : s + j->per_task;
    for (size_t p = s; p < e; p++) {
        memcpy(j->y + p * c, j->a + p * j->ca, j->ca * sizeof(float));
        memcpy(j->y + p * c + j->ca, j->b + p * j->cb, j->cb * sizeof(float));
    }
}

static void concat_out(const xe_node *n, uint32_t rec_c, xe_out_shape *o) {
    o->c = (uint64_t)n->info.in_c + n->in1_c;
}

static void concat_run(const xe_node *n, const xe_exec *ex, const void *in0, const void *in1,
                       void *out) {
    const xe_node_info *f = &n->info;
    const size_t c = (size_t)f->out_c, per = XE_EW_BLOCK / c ? XE_EW_BLOCK / c : 1;
    concat_job j = {in0, in1, out, (size_t)f->in_h * f->in_w, per, f->in_c, n->in1_c};
    xe_pool_run(ex->pool, (j.positions + per - 1) / per, concat_task, &j);
}

const xe_op_def xe_op_concat = {
    .op = XE_OP_CONCAT,
    .name = "concat",
    .input1 = XE_IN1_SAME_HW,
    .infer = concat_out,
    .run = concat_run,
};
