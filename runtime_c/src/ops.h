/*
 * ops.h - the record that describes one op, and helpers the op files share.
 *
 * Each op is one constant xe_op_def in its own op_*.c file, listed once in
 * ops.inc. The loader (model_load.c) and the session (session.c) walk the
 * records generically: the generic code checks everything the record's fields
 * describe (flags, param count and dtypes, window, bit input, input1) and
 * calls the hooks for the rest. A NULL hook means "nothing to do".
 */
#ifndef XE_OPS_H
#define XE_OPS_H

#include "xe_internal.h"

/* The error sink of one model load (model_load.c). */
typedef struct xe_loader xe_loader;

/* Fails the node being loaded with XE_ERR_BAD_MODEL and the reason
 * "node <i> (<op name>): <fmt...>". */
xe_status xe_node_fail(xe_loader *ld, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Fails the node being loaded with XE_ERR_OUT_OF_MEMORY:
 * "node <i>: out of memory<what>". */
xe_status xe_node_oom(xe_loader *ld, const char *what);

/* Output of a node as inferred at load; 64-bit so the loader can range-check it. */
typedef struct xe_out_shape {
    uint64_t h, w, c;
    uint32_t dtype;
} xe_out_shape;

/* A param_sizes answer: the count is the file's, bind checks it. */
#define XE_COUNT_FROM_FILE UINT64_MAX
/* What an op's input1 must be: none (0xFFFFFFFF in the record), or an earlier
 * float32 value of input0's shape, or of input0's height and width (any
 * channel count; n->in1_c holds it). */
enum { XE_IN1_NONE = 0, XE_IN1_SAME_SHAPE = 1, XE_IN1_SAME_HW = 2 };

struct xe_op_def {
    uint32_t op;       /* pinned id (xe_op in xnor_edge.h, docs/format.md) */
    const char *name;  /* what xe_op_name returns */
    uint32_t flags;    /* XE_FLAG_* the op accepts; any other bit is rejected */
    uint32_t n_params; /* exactly this many params */
    uint32_t param_dtypes[XE_MAX_OP_PARAMS]; /* XE_DTYPE_F32 or XE_DTYPE_BITS */
    uint8_t windowed;                        /* kernel/stride/pad are used; else they must be 0 */
    uint8_t bits_input;                      /* input0 may be packed bits */
    uint8_t input1; /* input1: XE_IN1_NONE, XE_IN1_SAME_SHAPE or XE_IN1_SAME_HW */

    /* Load, in this order, for each node (in_* and cw are set, params are not). */
    /* Checks beyond the generic ones (flag combinations, input dtypes). */
    xe_status (*check)(xe_loader *ld, const xe_node *n);
    /* Output shape. On entry *o is input0's shape (spatial size from the
     * window when windowed), float32; rec_c is the out_c the node records,
     * n->info.out_h and out_w its height and width (an op whose padding after
     * the input follows from its output size reads them; the loader then
     * compares *o with the record as for every op). */
    void (*infer)(const xe_node *n, uint32_t rec_c, xe_out_shape *o);
    /* Element count of each param (in_* and out_* are set), or
     * XE_COUNT_FROM_FILE: the file gives it and bind checks it (a count that
     * depends on other params, such as bconv2d_mst's tree; may be 0). */
    void (*param_sizes)(const xe_node *n, uint64_t need[XE_MAX_OP_PARAMS]);
    /* Validates param contents (n->params points into the file) and fills
     * binary_params, float_params and macs of n->info. */
    xe_status (*bind)(xe_loader *ld, xe_node *n, const uint64_t need[XE_MAX_OP_PARAMS]);
    /* Load-time precomputation into n->pre, after every node has loaded. */
    xe_status (*precompute)(xe_loader *ld, xe_node *n);
    /* Frees n->pre (model destroy; also after a failed load). */
    void (*destroy)(xe_node *n);

    /* Session. Scratch: node-wide bytes and bytes per thread (sessions keep
     * the largest over the nodes, shared by all of them). */
    void (*scratch)(const xe_node *n, size_t *shared, size_t *per_thread, int *ovf);
    /* Per-session data of this node for kernel set k (for example weights
     * packed into k's layout): session_bytes says how much (0: none, SIZE_MAX:
     * overflow), session_prepare fills dst (XE_ALIGN-aligned, that size) once
     * at session creation; run finds it in ex->prepared. */
    size_t (*session_bytes)(const xe_node *n, const xe_kernels *k);
    void (*session_prepare)(const xe_node *n, const xe_kernels *k, void *dst);
    /* Runs the node: reads in0 (and in1), writes out. Never fails. */
    void (*run)(const xe_node *n, const xe_exec *ex, const void *in0, const void *in1, void *out);

    /* Fusion at session creation (fuse.c, docs/executor.md). fuse_post: run
     * applies ex->post after its epilogue when its output is float32, and
     * with ex->pack_out writes the sign-packed bits of the result instead;
     * fuse_pre: run applies ex->pre_scale/pre_shift to a float32 input0. */
    uint8_t fuse_post, fuse_pre;
    /* This node as an op after its producer's epilogue, `from` the value the
     * producer writes: fills *op (kind 0: a ReLU alone; XE_POST_SIGN: a sign,
     * which ends the chain) and, for an add, *other
     * (the value it adds); returns 0 where it cannot be. */
    int (*post_op)(const xe_node *n, uint32_t from, xe_post_op *op, uint32_t *other);
    /* This node as y = x * scale[c] + shift[c] that its consumer may apply to
     * its own input; returns 0 where it cannot be. */
    int (*pre_affine)(const xe_node *n, const float **scale, const float **shift);
};

/* post_op's answer for a sign: the producer packs its result (never reaches
 * a kernel's epilogue). */
#define XE_POST_SIGN 16u

/* fuse.c: the fused plan of a model for one session (docs/executor.md). */
typedef struct xe_fused {
    uint8_t skip; /* folded into another node's step: not run */
    uint32_t in0; /* the value read as input0 (a fused batchnorm's input) */
    uint32_t out; /* the value written (the last fused node's) */
    const float *pre_scale, *pre_shift;
    uint32_t npost;
    uint8_t pack_out;                 /* the chain ends in a sign: the node writes packed bits */
    xe_post_op post[XE_MAX_POST_OPS]; /* an add's a is resolved per run */
    uint32_t other[XE_MAX_POST_OPS];  /* an add's other value */
} xe_fused;
/* One entry per node; with fusion off (XE_FUSE=0 in the environment) every
 * node is its own step. NULL when out of memory. */
xe_fused *xe_fuse_plan(const xe_model *m);

/* The record of op id `op`, or NULL (api.c, from ops.inc). */
const xe_op_def *xe_op_find(uint32_t op);
/* The i-th record in ops.inc order, or NULL past the end. */
const xe_op_def *xe_op_at(size_t i);

/* Output channels per task when a conv has too few positions to split by rows
 * alone. A multiple of 32, so bit outputs are written in whole words. */
#define XE_CHUNK_OC 64u

/* How a conv-like node's M x N output is cut into tasks: row chunks of
 * XE_CHUNK_ROWS, and channel chunks of XE_CHUNK_OC when there are few rows. */
static inline size_t xe_oc_split(size_t m, size_t oc) {
    const size_t mchunks = (m + XE_CHUNK_ROWS - 1) / XE_CHUNK_ROWS;
    return (mchunks < 8 && oc > XE_CHUNK_OC) ? (oc + XE_CHUNK_OC - 1) / XE_CHUNK_OC : 1;
}

/* A 1x1, stride-1 window: the input rows are the im2col rows. */
static inline int xe_is_pointwise(const xe_node_info *f) {
    return f->kernel_h == 1 && f->kernel_w == 1 && f->stride_h == 1 && f->stride_w == 1;
}

/* Valid taps [lo, hi) of a window of k taps starting at `start` (may be
 * negative: padding) over [0, size); hi <= lo when no tap is valid. */
static inline void xe_tap_range(long start, uint32_t k, uint32_t size, long *lo, long *hi) {
    *lo = start < 0 ? -start : 0;
    *hi = (long)size - start < (long)k ? (long)size - start : (long)k;
}

/* Rounds a byte count up to XE_ALIGN (callers bound it far below SIZE_MAX). */
static inline size_t xe_align_up(size_t v) { return (v + XE_ALIGN - 1) / XE_ALIGN * XE_ALIGN; }

/* Element-wise ops run in fixed blocks of XE_EW_BLOCK elements: task t
 * covers [*s, *e) of count. Small blocks (8 KiB) so that even small
 * activations split across threads along positions like the convolutions
 * around them (threadpool.c: each thread takes its own range of tasks first):
 * run on one thread, a 6x6x256 add read half its inputs from the other core's
 * cache and took 10 us at 2 threads against 1 us at 1. */
#define XE_EW_BLOCK 2048u
static inline size_t xe_ew_tasks(size_t count) { return (count + XE_EW_BLOCK - 1) / XE_EW_BLOCK; }
static inline void xe_ew_range(size_t count, size_t task, size_t *s, size_t *e) {
    *s = task * XE_EW_BLOCK;
    *e = count - *s < XE_EW_BLOCK ? count : *s + XE_EW_BLOCK;
}

/* The params of bwn_conv2d and bconv2d (op_bwn_conv2d.c): weights (bits,
 * OC*KH*KW*CW words), scale (OC), bias (OC); bind checks the weights' padding
 * bits (docs/bitpacking.md rule 5) and fills the counts of xe_node_info. */
void xe_binary_weight_sizes(const xe_node *n, uint64_t need[XE_MAX_OP_PARAMS]);
xe_status xe_binary_weight_bind(xe_loader *ld, xe_node *n, const uint64_t need[XE_MAX_OP_PARAMS]);

/* The binary conv driver (op_bconv2d.c), shared by bconv2d and bconv2d_mst:
 * input packing, K, im2col of packed words, the zero-padding correction and
 * the epilogue; the op supplies the window popcounts. */
typedef struct xe_bconv_ops {
    const int32_t *wpop;       /* [KH*KW][OC] popcounts of each filter's tap words */
    const float *scale, *bias; /* [OC] */
    size_t oc_step;            /* channel split granularity, a multiple of 32 */
    /* pc[r*ncols + o] = popcount(a_r XOR w_{o0+o}) over the whole padded window
     * for r < rows, o < ncols (o0 and o0 + ncols on oc_step multiples or OC);
     * a: rows of lda words; scratch: the op's per-thread bytes (xe_bconv_scratch). */
    void (*popcounts)(const xe_node *n, const xe_exec *ex, size_t rows, size_t o0, size_t ncols,
                      const uint32_t *a, size_t lda, int32_t *pc, uint8_t *scratch);
    /* Zero padding: the summed pad-tap popcounts of each border class
     * (xe_bconv_corr_fill), or NULL: summed per position from wpop. */
    const int32_t *pad_corr;
    /* OUT_BITS: per-channel integer thresholds (xe_bconv_thresholds), st[OC]
     * then m[OC], or NULL: the float formula per output. */
    const int32_t *thr;
    /* Optional: popcounts with the window read in place (xe_bgemm_seg's
     * segments: kh kernel rows of seglen words, segstride apart, rows lda
     * apart), used where the session's kernel set has segmented kernels;
     * NULL: `popcounts` on gathered (im2col) rows. */
    void (*popcounts_seg)(const xe_node *n, const xe_exec *ex, size_t rows, size_t o0, size_t ncols,
                          size_t seglen, size_t segstride, const uint32_t *a, size_t lda,
                          int32_t *pc, size_t ldc);
    /* Optional: popcounts with each row's window read in place at its own
     * address, arow[r] (r < rows <= XE_CHUNK_ROWS): kh kernel rows of seglen
     * words, segstride apart in the padded input; pc as `popcounts`. Used
     * (over popcounts_seg and im2col) wherever it is set and the conv is not
     * pointwise; NULL: the paths above. */
    void (*popcounts_rows)(const xe_node *n, const xe_exec *ex, size_t rows, size_t o0,
                           size_t ncols, const uint32_t *const *arow, size_t seglen,
                           size_t segstride, int32_t *pc);
} xe_bconv_ops;
/* Scratch of the driver plus `extra` per-thread bytes for the op. */
void xe_bconv_scratch(const xe_node *n, size_t extra, size_t *shared, size_t *per_thread, int *ovf);
void xe_bconv_run(const xe_node *n, const xe_exec *ex, const void *in, void *out,
                  const xe_bconv_ops *ops);
/* bconv2d's flag and input rules, and its output shape and dtype. */
xe_status xe_bconv_check(xe_loader *ld, const xe_node *n);
void xe_bconv_infer(const xe_node *n, uint32_t rec_c, xe_out_shape *o);
/* The zero-padding correction per border class (op_bconv2d.c): bytes of the
 * table (0: none, +1 padding or too many classes), and filling it from wpop. */
size_t xe_bconv_corr_bytes(const xe_node *n);
void xe_bconv_corr_fill(const xe_node *n, const int32_t *wpop, int32_t *table);
/* OUT_BITS as integer compares: for finite scale and bias, v(dot) = (float)dot
 * * scale + bias (two roundings) is monotone in dot, so bit = (v < 0) equals
 * xe_thr_bit(dot, st[o], m[o]) for every |dot| <= n: with m = 0, dot < st;
 * with m = -1, -dot < st. Returns 0 (nothing written) when a scale or bias
 * is not finite. */
int xe_bconv_thresholds(const float *scale, const float *bias, size_t oc, int32_t n, int32_t *st,
                        int32_t *m);
static inline int xe_thr_bit(int32_t dot, int32_t st, int32_t m) { return ((dot ^ m) - m) < st; }
/* The driver's tables in an op's session block, at an aligned byte offset
 * after the op's own data: a header word saying whether thresholds follow,
 * the border classes' pad-tap popcounts when the node has them
 * (xe_bconv_corr_bytes), then OUT_BITS thresholds st[OC], m[OC] when every
 * scale and bias (the op's parameters, passed in: the two ops number them
 * differently) is finite. bconv2d and bconv2d_mst lay them out alike:
 * tables_bytes sizes them, tables_fill writes them from wpop at
 * session creation, tables_get gives xe_bconv_ops.pad_corr and .thr at run
 * time (NULL where absent) without looking at the parameters again. */
size_t xe_bconv_tables_bytes(const xe_node *n, const float *scale, const float *bias, int *ovf);
void xe_bconv_tables_fill(const xe_node *n, const float *scale, const float *bias,
                          const int32_t *wpop, uint8_t *at);
void xe_bconv_tables_get(const xe_node *n, const uint8_t *at, const int32_t **corr,
                         const int32_t **thr);
/* wpop[t*OC + o] = popcount of tap t of filter o of bits [OC][KH*KW][CW]. */
void xe_bconv_wpop(const xe_node *n, const uint32_t *bits, int32_t *wpop);

/* Float GEMM ops (op_conv2d.c, shared by bwn_conv2d and dense). */
/* Bytes of sgemm's B (kk x n) packed for kernel set k; SIZE_MAX on overflow. */
size_t xe_sgemm_session_bytes(const xe_kernels *k, size_t n, size_t kk);
/* Per-thread im2col rows of a conv node. */
void xe_im2col_scratch(const xe_node *n, size_t *shared, size_t *per_thread, int *ovf);
/* y = (im2col(x) * B) [* scale] + bias, then ReLU when the node says so;
 * B is [KH*KW*IC][OC], packed for the session's kernel set in ex->prepared
 * (the op's session_prepare); scale may be NULL. */
void xe_run_im2col_sgemm(const xe_node *n, const xe_exec *ex, const float *in, float *out,
                         const float *scale, const float *bias);
/* Frees n->pre (the destroy hook of ops whose precomputation is one block). */
void xe_free_pre(xe_node *n);

#endif /* XE_OPS_H */
