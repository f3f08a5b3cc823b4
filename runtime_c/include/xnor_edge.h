/*
 * xnor_edge.h - the public C API of the xnor-edge runtime.
 *
 * This header is the single source of truth for the API: the Python binding
 * reads the block between XE_CDEF_BEGIN and XE_CDEF_END as its cffi cdef, so
 * that block holds only declarations cffi understands (integer #defines,
 * enums, structs, prototypes; XE_API is stripped by the binding).
 *
 * Conventions
 * - Every function that can fail returns xe_status; XE_OK is 0.
 * - Handles are opaque. Every create/load has a destroy that accepts NULL.
 * - A model is immutable after loading and may be shared by any number of
 *   sessions in any number of threads. A session is used by one thread at a
 *   time; it owns all scratch memory, planned at creation: xe_session_run
 *   does not allocate. A session's kernel set is fixed when it is created.
 * - The library never prints, exits or aborts, and keeps no global state
 *   beyond the process-wide kernel set choice (see xe_kernel_isa).
 * - Tensors are float32, NHWC with batch 1: an input of shape (H, W, C) is
 *   H*W*C floats in row-major order (or H*W*C bytes for a model that takes
 *   uint8 input, xe_session_run_u8).
 */
#ifndef XNOR_EDGE_H
#define XNOR_EDGE_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32) && defined(XE_BUILDING_SHARED)
#define XE_API __declspec(dllexport)
#elif defined(__GNUC__)
#define XE_API __attribute__((visibility("default")))
#else
#define XE_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* XE_CDEF_BEGIN */

/* Library version; see also xe_version_number(). */
#define XE_VERSION_MAJOR 0
#define XE_VERSION_MINOR 1
#define XE_VERSION_PATCH 0
/* Model file format version this library reads and writes (docs/format.md). */
#define XE_FORMAT_VERSION 1
/* Bit-packing contract version (docs/bitpacking.md). */
#define XE_PACKING_VERSION 1

/* Status codes. Values are pinned: never renumber, only append. */
typedef enum xe_status {
    XE_OK = 0,
    XE_ERR_INVALID_ARGUMENT = 1, /* NULL handle, wrong buffer size, bad option */
    XE_ERR_OUT_OF_MEMORY = 2,
    XE_ERR_IO = 3,                  /* file cannot be opened, read or mapped */
    XE_ERR_BAD_MAGIC = 4,           /* not an xnor-edge model file */
    XE_ERR_UNSUPPORTED_VERSION = 5, /* format or packing version not supported */
    XE_ERR_TRUNCATED = 6,           /* file shorter than its header says */
    XE_ERR_CHECKSUM = 7,            /* CRC-32 of the file does not match */
    XE_ERR_BAD_MODEL = 8,           /* structurally invalid: offsets, counts, shapes, ops */
    XE_ERR_THREAD = 9,              /* a worker thread could not be started */
    XE_ERR_UNSUPPORTED = 10         /* valid request this build cannot serve (e.g. ISA) */
} xe_status;

/* Operators of the graph (values pinned; docs/format.md gives their params). */
typedef enum xe_op {
    XE_OP_CONV2D = 1,     /* float convolution */
    XE_OP_BWN_CONV2D = 2, /* float input, binary weights, per-filter scale */
    XE_OP_BCONV2D = 3,    /* XNOR convolution: binary input and weights */
    XE_OP_BATCHNORM = 4,  /* per-channel y = x*scale + shift */
    XE_OP_RELU = 5,
    XE_OP_MAXPOOL = 6, /* float, or bits (binary max = AND of bits) */
    XE_OP_AVGPOOL = 7, /* divisor kh*kw (padding counted) */
    XE_OP_GLOBAL_AVGPOOL = 8,
    XE_OP_DENSE = 9,    /* float fully connected over the flattened HWC input */
    XE_OP_ADD = 10,     /* element-wise sum of two values (residual) */
    XE_OP_SOFTMAX = 11, /* over the channels of each position */
    XE_OP_SIGN = 12     /* float -> packed bits */
} xe_op;

/* Node flags (bit set). */
#define XE_FLAG_RELU 1     /* ReLU after the op (conv, bwn, bconv, batchnorm, dense, add) */
#define XE_FLAG_PAD_ONE 2  /* bconv: padded input positions are +1 instead of 0 */
#define XE_FLAG_USE_K 4    /* bconv: scale by the per-position K map */
#define XE_FLAG_OUT_BITS 8 /* bconv: emit packed bits (v < 0 -> 1), no K, no ReLU */

/* Element type of a value (a node's output). */
typedef enum xe_dtype {
    XE_DTYPE_F32 = 0,
    XE_DTYPE_BITS = 1 /* packed per docs/bitpacking.md: [H][W][ceil(C/32)] uint32 */
} xe_dtype;

/* What xe_model_node_info reports about one node. */
typedef struct xe_node_info {
    uint32_t op;     /* xe_op */
    uint32_t flags;  /* XE_FLAG_* */
    uint32_t input0; /* value ids: 0 is the model input, node i writes value i+1 */
    uint32_t input1; /* 0xFFFFFFFF when unused */
    uint32_t kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w;
    uint32_t in_h, in_w, in_c, in_dtype;
    uint32_t out_h, out_w, out_c, out_dtype;
    uint64_t binary_params; /* 1-bit weights */
    uint64_t float_params;  /* float32 parameters */
    uint64_t param_bytes;   /* bytes of parameter data in the file */
    uint64_t macs;          /* multiply-accumulates (binary ops for bconv) */
} xe_node_info;

/* Options for xe_session_create. Zero-initialise, then set what you need. */
typedef struct xe_session_options {
    uint32_t num_threads; /* 0 or 1: run on the calling thread only */
    /* Kernel set of the session. 0: the process-wide choice when the session
     * is created (xe_kernel_isa()); i >= 1: the i-th name (1-based) that
     * xe_available_isas writes. Out of range: XE_ERR_INVALID_ARGUMENT. */
    uint32_t kernel_isa;
    uint32_t reserved[6]; /* must be zero */
} xe_session_options;

typedef struct xe_model xe_model;
typedef struct xe_session xe_session;

/* --- library --- */
XE_API const char *xe_status_string(xe_status status);
XE_API uint32_t xe_version_number(void); /* major*10000 + minor*100 + patch */
XE_API const char *xe_version_string(void);
XE_API uint32_t xe_format_version(void);
XE_API uint32_t xe_packing_version(void);
XE_API const char *xe_op_name(uint32_t op); /* "conv2d", ...; "unknown" otherwise */

/* --- kernel dispatch ---
 * The process-wide kernel set is chosen once, on first use, from the CPU's
 * features, or from the environment variable XE_KERNELS ("ref", "popcnt",
 * "ssse3", "avx2", "avx512", "neon-a64", "neon-a32", "auto"). A session takes its kernel set
 * when it is created (this choice, or xe_session_options.kernel_isa) and
 * keeps it: xe_session_run never consults the process-wide choice. Every set
 * gives bit-identical integer results; float epilogues are shared code. */
XE_API const char *xe_kernel_isa(void);
/* Writes up to cap names of the kernel sets this CPU can run; returns how many
 * exist. The order is fixed for the life of the process. */
XE_API size_t xe_available_isas(const char **names, size_t cap);
/* Changes the process-wide kernel set by name ("auto" re-detects). Affects
 * only sessions created afterwards; existing sessions keep theirs. Do not
 * call it concurrently with xe_session_create or another xe_set_kernel_isa. */
XE_API xe_status xe_set_kernel_isa(const char *name);

/* --- models ---
 * On failure *out is NULL and, when err is not NULL, a NUL-terminated reason
 * of at most err_cap bytes is written ("truncated: file is 100 bytes, header
 * says 4096", "node 3 (bconv2d): input has 64 channels, weights expect 32"). */
/* Loads a file by mapping it (MAP_PRIVATE, read-only) and using the weights in
 * place; it falls back to reading when the file cannot be mapped. While the
 * model lives, the file must not be truncated, replaced in place or rewritten:
 * a truncated mapping faults (SIGBUS) on the next run, and a rewrite may
 * silently change the weights the model uses, after the load-time checks.
 * (Replacing the file by rename is safe: the mapping keeps the old inode.)
 * For a file that may change, read it into memory and call
 * xe_model_load_memory with copy != 0. */
XE_API xe_status xe_model_load_file(const char *path, xe_model **out, char *err, size_t err_cap);
/* Loads from memory. With copy = 0 the model keeps pointers into data, which
 * must stay alive and unchanged until xe_model_destroy and be 4-byte aligned;
 * with copy != 0 the bytes are copied first. data may be NULL when size is 0
 * (that load fails as truncated). */
XE_API xe_status xe_model_load_memory(const void *data, size_t size, int copy, xe_model **out,
                                      char *err, size_t err_cap);
XE_API void xe_model_destroy(xe_model *model);

XE_API void xe_model_input_shape(const xe_model *model, uint32_t *h, uint32_t *w, uint32_t *c);
XE_API void xe_model_output_shape(const xe_model *model, uint32_t *h, uint32_t *w, uint32_t *c);
/* UTF-8 JSON metadata (docs/format.md); NUL-terminated, valid while the model lives. */
XE_API const char *xe_model_metadata(const xe_model *model, size_t *len);
/* uint8 input (docs/format.md, header flag U8_INPUT): a model may declare
 * that it also takes uint8 pixels, HWC like its float input, and carry the
 * conversion to that float input as a table: channel c's byte u becomes
 * table[c * 256 + u] (the normalisation, e.g. (u / 255 - mean[c]) / std[c],
 * rounded to float32 once, by the writer). Returns the table (input C * 256
 * floats, valid while the model lives), or NULL when the model takes float32
 * input only. xe_session_run_u8 converts with it; the float entry points
 * still take the converted (normalised) input. */
XE_API const float *xe_model_input_u8_table(const xe_model *model);
XE_API uint32_t xe_model_num_nodes(const xe_model *model);
XE_API xe_status xe_model_node_info(const xe_model *model, uint32_t index, xe_node_info *out);

/* --- sessions ---
 * A session may be used by one thread at a time: xe_session_run,
 * xe_session_run_batch and xe_session_node_time_ns on one session must not
 * overlap, and xe_session_destroy must not run while any of them is in
 * progress on that session (in any thread): the caller waits for the call to
 * return first. Different sessions are independent. */
XE_API xe_status xe_session_create(const xe_model *model, const xe_session_options *options,
                                   xe_session **out);
XE_API void xe_session_destroy(xe_session *session);
XE_API uint32_t xe_session_num_threads(const xe_session *session);
/* Name of the kernel set the session runs with ("avx2", ...); NULL for NULL. */
XE_API const char *xe_session_kernel_isa(const xe_session *session);
/* Runs one image: input has input_count = H*W*C floats (NHWC), output receives
 * output_count = out H*W*C floats. Counts must match exactly. */
XE_API xe_status xe_session_run(xe_session *session, const float *input, size_t input_count,
                                float *output, size_t output_count);
/* Runs n images stored back to back; input_count and output_count are the
 * totals for all n images (n*H*W*C each). */
XE_API xe_status xe_session_run_batch(xe_session *session, size_t n, const float *input,
                                      size_t input_count, float *output, size_t output_count);
/* xe_session_run and xe_session_run_batch on uint8 input (input_count bytes,
 * H*W*C per image), for a model with an input table (xe_model_input_u8_table);
 * each image is converted through the table in one pass into a buffer the
 * session owns, then run. A model without one: XE_ERR_INVALID_ARGUMENT. */
XE_API xe_status xe_session_run_u8(xe_session *session, const uint8_t *input, size_t input_count,
                                   float *output, size_t output_count);
XE_API xe_status xe_session_run_batch_u8(xe_session *session, size_t n, const uint8_t *input,
                                         size_t input_count, float *output, size_t output_count);
/* Wall time of each node in the most recent run, in nanoseconds (profiling is
 * always on; its cost is two clock reads per node). */
XE_API xe_status xe_session_node_time_ns(const xe_session *session, uint32_t index, uint64_t *ns);

/* XE_CDEF_END */

#ifdef __cplusplus
}
#endif

#endif /* XNOR_EDGE_H */
