/*
 * ops.h - the op implementations the session dispatches to (op_*.c).
 */
#ifndef XE_OPS_H
#define XE_OPS_H

#include "xe_internal.h"

/* Output channels per task when a conv has too few positions to split by rows
 * alone. A multiple of 32, so bit outputs are written in whole words. */
#define XE_CHUNK_OC 64u

/* How a conv-like node's M x N output is cut into tasks: row chunks of
 * XE_CHUNK_ROWS, and channel chunks of XE_CHUNK_OC when there are few rows. */
static inline size_t xe_oc_split(size_t m, size_t oc) {
    const size_t mchunks = (m + XE_CHUNK_ROWS - 1) / XE_CHUNK_ROWS;
    return (mchunks < 8 && oc > XE_CHUNK_OC) ? (oc + XE_CHUNK_OC - 1) / XE_CHUNK_OC : 1;
}

size_t xe_conv_thread_scratch(const xe_node_info *f, int *ovf);
void xe_run_conv(const xe_node *n, const xe_exec *ex, const float *in, float *out);
void xe_run_dense(const xe_node *n, const xe_exec *ex, const float *in, float *out);

void xe_bconv_scratch(const xe_node *n, size_t *shared, size_t *per_thread, int *ovf);
void xe_run_bconv(const xe_node *n, const xe_exec *ex, const void *in, void *out);
void xe_run_sign(const xe_node *n, const xe_exec *ex, const float *in, uint32_t *out);

void xe_run_misc(const xe_node *n, const xe_exec *ex, const void *in0, const void *in1, void *out);
size_t xe_misc_shared_scratch(const xe_node *n, int *ovf);

#endif /* XE_OPS_H */
