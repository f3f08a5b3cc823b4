/*
 * op_flatten.c - (H, W, C) float32 -> (1, 1, H*W*C): the same floats in the
 * same (h, w, c) order, so a copy in fixed blocks. A binary dense layer after
 * it packs H*W*C bits densely instead of ceil(C/32) words per position (a
 * 28x28x1 input: 25 words per filter instead of 784).
 */
#include <string.h>

#include "ops.h"

#define XE_OP_FLATTEN 17u

typedef struct flatten_job {
    const float *x;
    float *y;
    size_t count;
} flatten_job;

static void flatten_task(void *ctx, size_t task, uint32_t thread) {
    const flatten_job *j = ctx;
    size_t s, e;
    xe_ew_range(j->count, task, &s, &e);
    memcpy(j->y + s, j->x + s, (e - s) * sizeof(float));
}

static void flatten_out(const xe_node *n, uint32_t rec_c, xe_out_shape *o) {
    o->c = (uint64_t)n->info.in_h * n->info.in_w * n->info.in_c;
    o->h = o->w = 1;
}

static void flatten_run(const xe_node *n, const xe_exec *ex, const void *in0, const void *in1,
                        void *out) {
    flatten_job j = {in0, out, (size_t)n->info.in_h * n->info.in_w * n->info.in_c};
    xe_pool_run(ex->pool, xe_ew_tasks(j.count), flatten_task, &j);
}

const xe_op_def xe_op_flatten = {
    .op = XE_OP_FLATTEN,
    .name = "flatten",
    .infer = flatten_out,
    .run = flatten_run,
};
