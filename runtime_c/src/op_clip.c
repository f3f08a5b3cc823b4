/*
 * op_clip.c - y = min(max(x, lo), hi) with bounds = [lo, hi], lo <= hi
 * (hard-tanh is lo = -1, hi = 1; ReLU6 is 0, 6); element-wise in fixed
 * blocks. max before min, so a NaN input stays NaN on every kernel set.
 */
#include "ops.h"

#define XE_OP_CLIP 14u

typedef struct clip_job {
    const float *x;
    float *y;
    size_t count;
    float lo, hi;
} clip_job;

static void clip_task(void *ctx, size_t task, uint32_t thread) {
    const clip_job *j = ctx;
    size_t s, e;
    xe_ew_range(j->count, task, &s, &e);
    const float lo = j->lo, hi = j->hi;
    for (size_t i = s; i < e; i++) {
        const float v = j->x[i] < lo ? lo : j->x[i];
        j->y[i] = v > hi ? hi : v;
    }
}

static void clip_params(const xe_node *n, uint64_t need[XE_MAX_OP_PARAMS]) { need[0] = 2; }

static xe_status clip_bind(xe_loader *ld, xe_node *n, const uint64_t need[XE_MAX_OP_PARAMS]) {
    const float *b = n->params[0];
    if (!(b[0] <= b[1])) return xe_node_fail(ld, "bounds [%g, %g]: min > max", b[0], b[1]);
    n->info.float_params = 2;
    return XE_OK;
}

static void clip_run(const xe_node *n, const xe_exec *ex, const void *in0, const void *in1,
                     void *out) {
    const float *b = n->params[0];
    clip_job j = {in0, out, (size_t)n->info.in_h * n->info.in_w * n->info.in_c, b[0], b[1]};
    xe_pool_run(ex->pool, xe_ew_tasks(j.count), clip_task, &j);
}

const xe_op_def xe_op_clip = {
    .op = XE_OP_CLIP,
    .name = "clip",
    .n_params = 1,
    .param_dtypes = {XE_DTYPE_F32},
    .param_sizes = clip_params,
    .bind = clip_bind,
    .run = clip_run,
};
