/*
 * op_pad.c - constant padding, possibly asymmetric: the output is the input
 * with `top` rows above, `bottom` below, `left` columns before and `right`
 * after, every padded element equal to `value`.
 *
 * The amounts live in the node's window fields, so that the loader's generic
 * window checks and output-shape rule hold: pad = (top, left), kernel =
 * (1 + top + bottom, 1 + left + right), stride 1. The window rule gives
 * in + 2*top - kernel + 1 = in + top - bottom; infer replaces it with
 * in + top + bottom (= in + kernel - 1). Its use: TFLite's SAME padding puts
 * the odd row or column after the input (stride 2 over an even size), which
 * symmetric window padding cannot express; pad + a VALID window can.
 *
 * Float input: any finite value (0 for convolutions, -FLT_MAX for a max pool
 * whose padding must never win). Bits input: value +1 (bit 0) or -1 (bit 1
 * in each of the C channels; the padding bits of the last word stay 0, rule 5
 * of docs/bitpacking.md). A copy, one task per output row.
 */
#include <string.h>

#include "ops.h"

#define XE_OP_PAD 19u

typedef struct pad_job {
    const xe_node *n;
    const uint8_t *x;
    uint8_t *y;
    size_t unit;   /* bytes per position: C floats or CW words */
    uint32_t fill; /* the padded position's 32-bit pattern, per element (float) or per word */
    uint32_t last; /* bits: the pattern of the last word of a position */
} pad_job;

static void fill_positions(const pad_job *j, uint8_t *dst, size_t count) {
    const xe_node_info *f = &j->n->info;
    const size_t words = j->unit / 4;
    for (size_t p = 0; p < count; p++)
        for (size_t k = 0; k < words; k++) {
            const uint32_t v = (f->in_dtype == XE_DTYPE_BITS && k == words - 1) ? j->last : j->fill;
            memcpy(dst + (p * words + k) * 4, &v, 4);
        }
}

static void pad_task(void *ctx, size_t task, uint32_t thread) {
    const pad_job *j = ctx;
    const xe_node_info *f = &j->n->info;
    const size_t top = f->pad_h, left = f->pad_w, right = f->kernel_w - 1 - f->pad_w;
    uint8_t *row = j->y + task * f->out_w * j->unit;
    const long ih = (long)task - (long)top;
    if (ih < 0 || ih >= (long)f->in_h) {
        fill_positions(j, row, f->out_w);
        return;
    }
    fill_positions(j, row, left);
    memcpy(row + left * j->unit, j->x + (size_t)ih * f->in_w * j->unit, f->in_w * j->unit);
    fill_positions(j, row + (left + f->in_w) * j->unit, right);
}

static xe_status pad_check(xe_loader *ld, const xe_node *n) {
    if (n->info.stride_h != 1 || n->info.stride_w != 1)
        return xe_node_fail(ld, "stride %ux%u, must be 1x1", n->info.stride_h, n->info.stride_w);
    return XE_OK;
}

static void pad_out(const xe_node *n, uint32_t rec_c, xe_out_shape *o) {
    o->h = (uint64_t)n->info.in_h + n->info.kernel_h - 1;
    o->w = (uint64_t)n->info.in_w + n->info.kernel_w - 1;
    o->c = n->info.in_c;
    o->dtype = n->info.in_dtype;
}

static void pad_params(const xe_node *n, uint64_t need[XE_MAX_OP_PARAMS]) { need[0] = 1; }

static xe_status pad_bind(xe_loader *ld, xe_node *n, const uint64_t need[XE_MAX_OP_PARAMS]) {
    const float v = ((const float *)n->params[0])[0];
    if (n->info.in_dtype == XE_DTYPE_BITS && v != 1.0f && v != -1.0f)
        return xe_node_fail(ld, "value %g on a bits input: must be +1 or -1", (double)v);
    n->info.float_params = 1;
    return XE_OK;
}

static void pad_run(const xe_node *n, const xe_exec *ex, const void *in0, const void *in1,
                    void *out) {
    const xe_node_info *f = &n->info;
    const float v = ((const float *)n->params[0])[0];
    pad_job j = {n, in0, out, 0, 0, 0};
    if (f->in_dtype == XE_DTYPE_BITS) {
        const uint32_t tail = f->in_c % 32;
        j.unit = (size_t)n->cw * 4;
        j.fill = v < 0 ? 0xFFFFFFFFu : 0u;
        j.last = v < 0 ? (tail ? (1u << tail) - 1u : 0xFFFFFFFFu) : 0u;
    } else {
        j.unit = (size_t)f->in_c * 4;
        memcpy(&j.fill, &v, 4);
        j.last = j.fill;
    }
    xe_pool_run(ex->pool, f->out_h, pad_task, &j);
}

const xe_op_def xe_op_pad = {
    .op = XE_OP_PAD,
    .name = "pad",
    .n_params = 1,
    .param_dtypes = {XE_DTYPE_F32},
    .windowed = 1,
    .bits_input = 1,
    .check = pad_check,
    .infer = pad_out,
    .param_sizes = pad_params,
    .bind = pad_bind,
    .run = pad_run,
};
