/*
 * op_sign_shift.c - float -> packed bits with a learnable per-channel
 * threshold (ReActNet's RSign): bit = (x + shift[c] < 0), so a sum of exactly
 * 0 gives +1 as in op_sign.c. One task per input row: the row plus shift goes
 * to per-thread scratch, then through the kernel set's pack.
 *
 * A new op rather than an optional param of sign (docs/format.md): an op's
 * param count is fixed by its record, so files with a plain sign keep their
 * meaning and old readers reject this one by name ("unknown op 15").
 */
#include "ops.h"

#define XE_OP_SIGN_SHIFT 15u

typedef struct sshift_job {
    const xe_node *n;
    const xe_exec *ex;
    const float *in;
    uint32_t *out;
} sshift_job;

static void sshift_task(void *ctx, size_t h, uint32_t thread) {
    const sshift_job *j = ctx;
    const xe_node_info *f = &j->n->info;
    const size_t iw = f->in_w, ic = f->in_c, cw = j->n->cw;
    const float *x = j->in + h * iw * ic, *shift = j->n->params[0];
    float *t = (float *)(void *)j->ex->thread_scratch[thread];
    for (size_t p = 0; p < iw; p++)
        for (size_t c = 0; c < ic; c++) t[p * ic + c] = x[p * ic + c] + shift[c];
    j->ex->k->pack(iw, ic, t, ic, j->out + h * iw * cw, cw);
}

static void sshift_out(const xe_node *n, uint32_t rec_c, xe_out_shape *o) {
    o->dtype = XE_DTYPE_BITS;
}

static void sshift_params(const xe_node *n, uint64_t need[XE_MAX_OP_PARAMS]) {
    need[0] = n->info.in_c;
}

static xe_status sshift_bind(xe_loader *ld, xe_node *n, const uint64_t need[XE_MAX_OP_PARAMS]) {
    n->info.float_params = n->info.in_c;
    return XE_OK;
}

static void sshift_scratch(const xe_node *n, size_t *shared, size_t *per_thread, int *ovf) {
    *shared = 0;
    *per_thread = xe_align_up(xe_mul((size_t)n->info.in_w * n->info.in_c, 4, ovf));
}

static void sshift_run(const xe_node *n, const xe_exec *ex, const void *in0, const void *in1,
                       void *out) {
    sshift_job j = {n, ex, in0, out};
    xe_pool_run(ex->pool, n->info.in_h, sshift_task, &j);
}

const xe_op_def xe_op_sign_shift = {
    .op = XE_OP_SIGN_SHIFT,
    .name = "sign_shift",
    .n_params = 1,
    .param_dtypes = {XE_DTYPE_F32},
    .infer = sshift_out,
    .param_sizes = sshift_params,
    .bind = sshift_bind,
    .scratch = sshift_scratch,
    .run = sshift_run,
};
