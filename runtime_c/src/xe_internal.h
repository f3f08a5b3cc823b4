/*
 * xe_internal.h - shared internals of the runtime core (not public).
 *
 * A model (model_load.c) is the validated file plus per-node precomputation;
 * it never changes after loading, so sessions in many threads read it freely.
 * A session (session.c) owns every buffer a run needs, planned at creation.
 */
#ifndef XE_INTERNAL_H
#define XE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "kernels.h"
#include "xnor_edge.h"

#define XE_INPUT_NONE 0xFFFFFFFFu
#define XE_MAX_DIM 65535u
#define XE_MAX_ELEMS ((uint64_t)1 << 28)
#define XE_MAX_KERNEL 64u
#define XE_MAX_STRIDE 64u
#define XE_MAX_NODES 65536u
#define XE_MAX_PARAMS 1048576u
#define XE_HEADER_SIZE 128u
#define XE_TRAILER_SIZE 8u
#define XE_NODE_SIZE 64u
#define XE_PARAM_SIZE 32u
/* Header flag bit 0 (docs/format.md): the model also takes uint8 input, and
 * the header's input_table names the param that converts it. */
#define XE_HEADER_U8_INPUT 1u
/* Entries per channel of that table: one per byte value. */
#define XE_U8_LEVELS 256u
/* Alignment of every buffer the runtime allocates (widest vector, a cache line). */
#define XE_ALIGN 64u

/* Output rows (positions) per work chunk of a conv/bconv node. Fixed so that
 * the split of work never depends on the thread count. */
#define XE_CHUNK_ROWS 32u
/* Output columns per chunk of a dense node. */
#define XE_CHUNK_COLS 64u

typedef struct xe_value_desc {
    uint32_t h, w, c, dtype;
    size_t units; /* 4-byte elements: floats, or packed words for bits */
} xe_value_desc;

/* Parameters an op may take (docs/format.md, "Ops"). */
#define XE_MAX_OP_PARAMS 7u

typedef struct xe_op_def xe_op_def; /* ops.h */

typedef struct xe_node {
    xe_node_info info;
    const xe_op_def *def;
    uint32_t cw;    /* ceil(in_c / 32) */
    uint32_t in1_c; /* input1's channel count (0 without input1) */
    /* Views into the file (little-endian, 4-byte aligned), in the op's param order. */
    const void *params[XE_MAX_OP_PARAMS];
    /* Load-time precomputation (owned by the model, freed by def->destroy). */
    void *pre;
} xe_node;

struct xe_model {
    const uint8_t *data; /* the file bytes */
    size_t size;
    void *owned; /* heap copy (copy != 0 or read() fallback), freed at destroy */
    void *map;   /* mmap'ed region, unmapped at destroy */
    size_t map_size;
    const char *meta;
    size_t meta_len;
    uint32_t num_nodes;
    xe_node *nodes;
    xe_value_desc *values; /* num_nodes + 1; value 0 is the input */
    /* uint8 input (XE_HEADER_U8_INPUT): x = input_table[c * 256 + u], a view
     * into the file; NULL for a float-only model. */
    const float *input_table;
};

/* model_load.c */
uint32_t xe_crc32(const uint8_t *p, size_t n);

/* threadpool.c: a pool of num_threads - 1 workers plus the calling thread.
 * xe_pool_run calls fn(ctx, task, thread) once for every task < n_tasks,
 * spread over the threads, and returns when all are done. thread < num_threads
 * names the executing thread so tasks can use per-thread scratch. */
typedef struct xe_pool xe_pool;
typedef void (*xe_task_fn)(void *ctx, size_t task, uint32_t thread);
xe_status xe_pool_create(uint32_t num_threads, xe_pool **out);
void xe_pool_destroy(xe_pool *pool);
uint32_t xe_pool_threads(const xe_pool *pool);
void xe_pool_run(xe_pool *pool, size_t n_tasks, xe_task_fn fn, void *ctx);
/* xe_pool_run with the job's estimated single-thread cost in nanoseconds: a
 * job cheaper than handing it out (XE_POOL_MIN_PARALLEL_NS) runs inline on
 * the caller and wakes nobody. */
void xe_pool_run_work(xe_pool *pool, size_t n_tasks, xe_task_fn fn, void *ctx, uint64_t work_ns);
/* A parallel region around one inference (nestable; pool may be NULL): begin
 * wakes parked workers, which then spin between the region's jobs; after the
 * outermost end they park as soon as they are idle. */
void xe_pool_begin(xe_pool *pool);
void xe_pool_end(xe_pool *pool);
/* Tuning and observation, for tests and benchmarks: how long idle workers
 * spin before parking outside a region, and how many are parked now. */
void xe_pool_set_spin_us(xe_pool *pool, uint32_t us);
uint32_t xe_pool_parked(const xe_pool *pool);

/* Per-run context handed to an op's run hook (ops.h). */
typedef struct xe_exec {
    const xe_kernels *k; /* the session's kernel set */
    xe_pool *pool;
    uint8_t *shared;          /* node-wide scratch, shared_bytes */
    uint8_t **thread_scratch; /* one per thread, thread_bytes each */
    const void *prepared;     /* this node's session-prepared block, or NULL */
    /* Fusion (fuse.c, docs/executor.md): a per-channel affine applied to
     * input0 before the op (pre_scale NULL: none), and element-wise ops after
     * its epilogue, in order (an XE_POST_ADD's a is the other value's base). */
    const float *pre_scale, *pre_shift;
    const xe_post_op *post;
    uint32_t npost;
    uint32_t pack_out; /* a fused sign: write the packed bits of the floats */
} xe_exec;

/* Checked size arithmetic: sets *overflow and returns 0 when a product or sum
 * does not fit in size_t. */
static inline size_t xe_mul(size_t a, size_t b, int *overflow) {
    if (a != 0 && b > SIZE_MAX / a) {
        *overflow = 1;
        return 0;
    }
    return a * b;
}
static inline size_t xe_add(size_t a, size_t b, int *overflow) {
    if (b > SIZE_MAX - a) {
        *overflow = 1;
        return 0;
    }
    return a + b;
}

#endif /* XE_INTERNAL_H */
