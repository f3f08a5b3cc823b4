/*
 * op_sign.c - float -> packed bits: bit = (x < 0), so sign(0) = +1
 * (docs/bitpacking.md). One task per input row, through the kernel set's pack.
 */
#include "ops.h"

typedef struct sign_job {
    const xe_node *n;
    const xe_exec *ex;
    const float *in;
    uint32_t *out;
} sign_job;

static void sign_task(void *ctx, size_t h, uint32_t thread) {
    const sign_job *j = ctx;
    const xe_node_info *f = &j->n->info;
    const size_t iw = f->in_w, ic = f->in_c, cw = j->n->cw;
    j->ex->k->pack(iw, ic, j->in + h * iw * ic, ic, j->out + h * iw * cw, cw);
}

static void sign_out(const xe_node *n, uint32_t rec_c, xe_out_shape *o) {
    o->dtype = XE_DTYPE_BITS;
}

/* Fusion (fuse.c): the packing of the convolution's result before it. */
static int sign_post_op(const xe_node *n, uint32_t from, xe_post_op *op, uint32_t *other) {
    op->kind = XE_POST_SIGN;
    op->relu = 0;
    return 1;
}

static void sign_run(const xe_node *n, const xe_exec *ex, const void *in0, const void *in1,
                     void *out) {
    sign_job j = {n, ex, in0, out};
    xe_pool_run(ex->pool, n->info.in_h, sign_task, &j);
}

const xe_op_def xe_op_sign = {
    .op = XE_OP_SIGN,
    .name = "sign",
    .infer = sign_out,
    .run = sign_run,
    .post_op = sign_post_op,
};
