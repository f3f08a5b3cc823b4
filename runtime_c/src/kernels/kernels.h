/*
 * kernels.h - internal kernel table (not public).
 *
 * One table per instruction set; every table computes exactly the same
 * integers as the reference (kernels__ref.c), and every float kernel
 * accumulates each output element in the same order (k ascending, one
 * multiply-add per term) so that results do not depend on how the caller
 * tiles or splits the work across threads.
 *
 * Memory contract: kernels read and write only inside the ranges given by
 * their arguments (no over-read slack); pointers need only natural alignment.
 * Row i of an operand spans [i*ld, i*ld + k) (bgemm a/b, sgemm a; sgemm b
 * rows are [t*ldb, t*ldb + n)), so the last row may end exactly at the end
 * of its buffer; c is written only at [i*ldc, i*ldc + n). Kernels allocate nothing on the heap and
 * are reentrant (any number of threads may call them on disjoint outputs); the largest stack use is
 * the AVX2 bgemm's B panel, 16 KiB. Tested in test_kernels.c (operands at the very end of their
 * allocations, canaries around outputs).
 *
 * Overflow: bgemm sums fit int32 for k < 2^26 words; internal narrower
 * accumulators (8-bit, 16-bit) are flushed before they can overflow.
 */
#ifndef XE_KERNELS_H
#define XE_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* Binary GEMM ("NT"): for i < m, j < n
 *   c[i*ldc + j] = sum_{t < k} popcount(a[i*lda + t] ^ b[j*ldb + t])
 * a: m rows of k packed words (im2col of the packed input),
 * b: n rows of k packed words (one row per output channel). */
typedef void (*xe_bgemm_fn)(size_t m, size_t n, size_t k, const uint32_t *a, size_t lda,
                            const uint32_t *b, size_t ldb, int32_t *c, size_t ldc);

/* Sign-pack rows: for r < rows, channel ch < channels
 *   bit (ch % 32) of out[r*ldo + ch/32] = (x[r*ldx + ch] < 0)
 * and the unused high bits of each row's last word are 0 (docs/bitpacking.md).
 * ldo >= ceil(channels/32); words past ceil(channels/32) are not written. */
typedef void (*xe_pack_fn)(size_t rows, size_t channels, const float *x, size_t ldx, uint32_t *out,
                           size_t ldo);

/* Float GEMM ("NN"): for i < m, j < n
 *   c[i*ldc + j] = sum_{t < k} a[i*lda + t] * b[t*ldb + j]   (t ascending)
 * The sum starts at 0.0f and adds one product per t with fmaf semantics
 * (fused multiply-add) on every ISA, so all tables agree bit for bit. */
typedef void (*xe_sgemm_fn)(size_t m, size_t n, size_t k, const float *a, size_t lda,
                            const float *b, size_t ldb, float *c, size_t ldc);

typedef struct xe_kernels {
    const char *name; /* "ref", "popcnt", "avx2", "neon-a64", "neon-a32" */
    xe_bgemm_fn bgemm;
    xe_pack_fn pack;
    xe_sgemm_fn sgemm;
} xe_kernels;

/* Tables; a table is NULL-free. Which exist depends on the target. */
extern const xe_kernels xe_kernels_ref;
#if defined(__x86_64__) || defined(__i386__) || defined(_M_X64)
#define XE_HAVE_X86 1
extern const xe_kernels xe_kernels_popcnt;
extern const xe_kernels xe_kernels_avx2;
#endif
#if defined(__aarch64__)
#define XE_HAVE_NEON_A64 1
extern const xe_kernels xe_kernels_neon_a64;
#endif
#if defined(__arm__)
#define XE_HAVE_NEON_A32 1
extern const xe_kernels xe_kernels_neon_a32;
#endif

/* The active table: chosen once (CPU features, or XE_KERNELS in the
 * environment), changeable through xe_set_kernel_isa. Never NULL. */
const xe_kernels *xe_kernels_active(void);
/* The table of that name if this CPU can run it, else NULL. */
const xe_kernels *xe_kernels_find(const char *name);

#endif /* XE_KERNELS_H */
