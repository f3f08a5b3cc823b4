/*
 * op_softmax.c - exp(x - max) / sum over the channels of each position, in
 * tasks of 64 positions.
 */
#include <math.h>

#include "ops.h"

#define XE_SOFTMAX_BLOCK 64u

typedef struct softmax_job {
    const float *x;
    float *y;
    size_t positions, c;
} softmax_job;

static void softmax_task(void *ctx, size_t task, uint32_t thread) {
    const softmax_job *j = ctx;
    const size_t c = j->c, s = task * XE_SOFTMAX_BLOCK;
    const size_t e = j->positions - s < XE_SOFTMAX_BLOCK ? j->positions : s + XE_SOFTMAX_BLOCK;
    for (size_t p = s; p < e; p++) {
        const float *x = j->x + p * c;
        float *y = j->y + p * c;
        float mx = x[0];
        for (size_t k = 1; k < c; k++) mx = x[k] > mx ? x[k] : mx;
        float sum = 0.0f;
        for (size_t k = 0; k < c; k++) {
            y[k] = expf(x[k] - mx);
            sum += y[k];
        }
        const float inv = 1.0f / sum;
        for (size_t k = 0; k < c; k++) y[k] *= inv;
    }
}

static void softmax_run(const xe_node *n, const xe_exec *ex, const void *in0, const void *in1,
                        void *out) {
    softmax_job j = {in0, out, (size_t)n->info.in_h * n->info.in_w, n->info.in_c};
    xe_pool_run(ex->pool, (j.positions + XE_SOFTMAX_BLOCK - 1) / XE_SOFTMAX_BLOCK, softmax_task,
                &j);
}

const xe_op_def xe_op_softmax = {
    .op = XE_OP_SOFTMAX,
    .name = "softmax",
    .run = softmax_run,
};
