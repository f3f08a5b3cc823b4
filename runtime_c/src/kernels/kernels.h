/*
 * kernels.h - internal kernel sets and the one GEMM driver (not public).
 *
 * How a caller uses packed weights (once per model or session, then per run):
 *
 *     const xe_kernels *k = xe_kernels_active();            // fix the set first
 *     uint32_t *wp = malloc(4 * xe_bgemm_packed_words(k, oc, kw));
 *     xe_bgemm_pack(k, oc, kw, w_bits, kw, wp);              // filters: oc rows of kw words
 *     ...
 *     xe_bgemm(k, rows, o0, ncols, kw, a, lda, wp, c, ldc); // columns [o0, o0 + ncols)
 *
 * and the same for float weights with xe_sgemm_packed_floats / xe_sgemm_pack /
 * xe_sgemm. A packed buffer belongs to the set that packed it (the layout
 * follows that set's nr and kr): repack when the set changes. n0 must be a
 * multiple of the set's nr; every set's nr is a power of two <= 32 (the tests
 * check it), so any multiple of 32 (the executor's chunks of 64) is valid.
 *
 * One set per instruction set; every set computes exactly the same integers
 * as the reference (kernels__ref.c), and every float kernel accumulates each
 * output element in the same order (t ascending from 0.0f, one fused
 * multiply-add per term) so that results do not depend on the set, the tiling
 * or how the caller splits the work across threads.
 *
 * Structure (compare XNNPACK's xnn_gemm_config): a set gives, for bgemm and for
 * sgemm, its register tile (mr rows x nr columns), its k unroll kr, one
 * micro-kernel per row count and a panel-packing function. B is packed into
 * panels of nr columns: bgemm panel word (t, s) at [(t / kr) * nr * kr + s * kr
 * + t % kr] for t < round_up(kw, kr); sgemm panel float (t, s) at [t * nr + s].
 * Columns past n and words past kw are zero in a packed buffer. gemm_driver.c
 * walks panels and row tiles for every set; ISA files hold only micro-kernels
 * and their sign-pack. The list of sets is kernel_sets.inc.
 *
 * Memory contract: the driver and kernels read and write only inside the
 * ranges given by their arguments (no over-read slack; A is never padded);
 * pointers need only natural alignment (64-byte aligned packed buffers are
 * recommended). Row i of an operand spans [i*ld, i*ld + k) (bgemm a/b, sgemm
 * a; unpacked sgemm b rows are [t*ldb, t*ldb + n)), so the last row may end
 * exactly at the end of its buffer; c is written only at [i*ldc, i*ldc + n).
 * A packed buffer is exactly xe_*_packed_*() elements, all of them written by
 * the pack function (padding included). Nothing here allocates on the heap;
 * everything is reentrant (any number of threads may call on disjoint
 * outputs). Stack use is at most XE_UNPACKED_PANEL_WORDS words plus one mr x nr
 * tile, in the unpacked bgemm entry point. Tested in test_kernels.c (operands
 * at the very end of their allocations, canaries around outputs and packed
 * buffers).
 *
 * Overflow: bgemm sums fit int32 for k < 2^26 words; micro-kernels flush
 * narrower internal accumulators (8-bit, 16-bit) before they can overflow.
 */
#ifndef XE_KERNELS_H
#define XE_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* Largest mr and nr of any set (sizes of the driver's tables and temporaries). */
#define XE_MAX_MR 8
#define XE_MAX_NR 32
#define XE_MAX_KR 4 /* bgemm k unroll (a segment pads to a multiple of it) */

/* Portable SWAR popcount (no compiler builtin): the reference kernels' and the
 * loader's (per-tap weight popcounts). */
static inline int32_t xe_popcount32(uint32_t v) {
    v = v - ((v >> 1) & 0x55555555u);
    v = (v & 0x33333333u) + ((v >> 2) & 0x33333333u);
    v = (v + (v >> 4)) & 0x0F0F0F0Fu;
    return (int32_t)((v * 0x01010101u) >> 24);
}

/* bgemm micro-kernel for a fixed number of rows r (its index in ukernel[] + 1),
 * over ceil(nc / nr) consecutive packed panels (nc >= 1): for i < r, s < nc
 *   c[i*ldc + s] = sum_{t < kw} popcount(a[i*lda + t] ^ packed word (t, s))
 * reading a[i*lda + t] only for t < kw and the panels only within
 * ceil(nc / nr) * round_up(kw, kr) * nr words. kw may be 0 (writes zeros).
 * Looping over panels inside (as XNNPACK's micro-kernels loop over nc) keeps
 * the A rows in registers/L1 and the call overhead off short windows. */
typedef void (*xe_bgemm_ukernel_fn)(size_t nc, size_t kw, const uint32_t *a, size_t lda,
                                    const uint32_t *panel, int32_t *c, size_t ldc);

/* Segmented-A bgemm micro-kernel (im2col-free binary convolution), optional:
 * as the bgemm micro-kernel over segs segments of seglen words, A's word u of
 * segment g in row i at
 *   a[i*lda + g*segstride + u]
 * against panels packed segment by segment, each segment padded with zero
 * words to a multiple of kr (xe_bgemm_pack_seg; with kr = 1 that is the plain
 * packing), and the same integers as bgemm on the gathered rows. For a
 * convolution over the zero-padded packed input, a segment is one kernel row
 * (KW * words per pixel, contiguous), segstride the padded input row and lda
 * stride_w * words per pixel: the window is read in place instead of copied.
 * seglen <= XE_SEG_MAX_WORDS (accumulator bounds may assume it). */
#define XE_SEG_MAX_WORDS 2040u
typedef void (*xe_bgemm_seg_ukernel_fn)(size_t nc, size_t segs, size_t seglen, size_t segstride,
                                        const uint32_t *a, size_t lda, const uint32_t *panel,
                                        int32_t *c, size_t ldc);

/* Pack one bgemm panel: columns s < nc of b (row s = b[s*ldb], kw words) into
 * the layout above, zero for s >= nc and t >= kw. */
typedef void (*xe_bgemm_pack_fn)(size_t nr, size_t kr, size_t nc, size_t kw, const uint32_t *b,
                                 size_t ldb, uint32_t *panel);

/* sgemm micro-kernel for r rows over ceil(nc / nr) panels, panel p at
 * b + p*bstep: for i < r, s < nc (nc >= 1), with p = s / nr, q = s % nr
 *   c[i*ldc + s] = sum_{t < kk} a[i*lda + t] * b[p*bstep + t*ldb + q]   (fmaf, t ascending)
 * reading only columns s < nc, so b may be packed panels (ldb = nr,
 * bstep = kk * nr) or an unpacked [k][n] matrix (ldb, bstep = nr). */
typedef void (*xe_sgemm_ukernel_fn)(size_t nc, size_t kk, const float *a, size_t lda,
                                    const float *b, size_t ldb, size_t bstep, float *c, size_t ldc);

/* Segmented-A sgemm micro-kernel (direct convolution), optional: as the sgemm
 * micro-kernel with kk = segs * seglen, but A's term t of row i is
 *   a[i*lda + (t / seglen) * segstride + t % seglen]
 * (fmaf, t ascending, the same order and results as sgemm on the gathered
 * rows). For a convolution over a zero-padded HWC input, a segment is one
 * kernel row (KW*IC contiguous floats), segstride the padded input row and
 * lda stride_w*IC: the window is read in place instead of copied (im2col). */
typedef void (*xe_sgemm_seg_ukernel_fn)(size_t nc, size_t segs, size_t seglen, size_t segstride,
                                        const float *a, size_t lda, const float *b, size_t ldb,
                                        size_t bstep, float *c, size_t ldc);

/* Pack one sgemm panel: element (t, s) of B is b[t*rs + s*cs] ([k][n]: rs = ldb,
 * cs = 1; [n][k]: rs = 1, cs = ldb); columns s < nc, zero for s >= nc. */
typedef void (*xe_sgemm_pack_fn)(size_t nr, size_t kr, size_t nc, size_t kk, const float *b,
                                 size_t rs, size_t cs, float *panel);

/* Sign-pack rows: for r < rows, channel ch < channels
 *   bit (ch % 32) of out[r*ldo + ch/32] = (x[r*ldx + ch] < 0)
 * and the unused high bits of each row's last word are 0 (docs/bitpacking.md).
 * ldo >= ceil(channels/32); words past ceil(channels/32) are not written. */
typedef void (*xe_pack_fn)(size_t rows, size_t channels, const float *x, size_t ldx, uint32_t *out,
                           size_t ldo);

/* A GEMM family of one set. ukernel[r - 1] handles r rows; ukernel[0] and
 * ukernel[mr - 1] are required, others may be NULL (the driver then uses the
 * largest present one that fits). kr is the k unroll: packed panels are padded
 * with zero words to a multiple of kr, so micro-kernels load B whole; A is not
 * padded. Float sets keep kr = 1: a padded float term is not neutral
 * (fmaf(inf, 0, s) is NaN, -0.0f + 0.0f is +0.0f). */
typedef struct xe_bgemm_config {
    uint8_t mr, nr, kr;
    xe_bgemm_ukernel_fn ukernel[XE_MAX_MR];
    xe_bgemm_pack_fn pack;
    /* Optional, same rules as ukernel (all NULL: callers gather rows, see
     * xe_bgemm_has_seg). */
    xe_bgemm_seg_ukernel_fn seg_ukernel[XE_MAX_MR];
} xe_bgemm_config;

typedef struct xe_sgemm_config {
    uint8_t mr, nr, kr;
    xe_sgemm_ukernel_fn ukernel[XE_MAX_MR];
    xe_sgemm_pack_fn pack;
    /* Optional, same rules as ukernel (all NULL: xe_sgemm_seg gathers rows). */
    xe_sgemm_seg_ukernel_fn seg_ukernel[XE_MAX_MR];
} xe_sgemm_config;

/* Sign-pack with the mean |t| of each row (a binary convolution's float input
 * and its A map), where t = x, or with an affine prologue (s, b non-NULL: a
 * batchnorm fused into its consumer) t = x[ch] * s[ch] + b[ch], one multiply
 * then one add, each rounded. For r < rows:
 *   bits of out[r*ldo ...] as xe_pack_fn, on t;
 *   amean[r] = (sum over ch ascending of fabsf(t), from 0.0f, one float add
 *              per term) * inv                         (amean may be NULL)
 * Every set computes the same floats as the reference, whatever its lanes. */
typedef void (*xe_pack_abs_fn)(size_t rows, size_t channels, const float *x, size_t ldx,
                               const float *s, const float *b, uint32_t *out, size_t ldo, float inv,
                               float *amean);

/* An element-wise op fused after a convolution's epilogue (fuse.c): with y the
 * value so far of output column o,
 *   XE_POST_AFFINE: y = y * a[o] + b[o]    (a batchnorm: multiply, then add)
 *   XE_POST_ADD:    y = y + a[o]           (a residual add, y its left operand)
 *   XE_POST_RADD:   y = a[o] + y           (y its right operand)
 * then, with relu, y = (y < 0 ? 0 : y). a and b point at the first column. */
enum { XE_POST_AFFINE = 1, XE_POST_ADD = 2, XE_POST_RADD = 3 };
#define XE_MAX_POST_OPS 4
typedef struct xe_post_op {
    uint32_t kind, relu;
    const float *a, *b;
} xe_post_op;

/* A binary convolution's float epilogue over n columns: for o < n
 *   y[o] = (float)(nreal - 2*pc[o]) * scale[o]; then y *= *k (k non-NULL: K[p]);
 *   y += bias[o]; with relu y = (y < 0 ? 0 : y); then ops[0..nops) in order.
 * Each step one rounded float operation, so every set gives the same bits. */
typedef void (*xe_epilogue_fn)(size_t n, const int32_t *pc, int32_t nreal, const float *scale,
                               const float *bias, const float *k, int relu, const xe_post_op *ops,
                               size_t nops, float *y);

/* ---- MST child kernel (op bconv2d_mst, docs/mst.md section 5) ----
 * A child's difference from its parent as entries (j, m, v): word j of the
 * window, m = w_child[j] XOR w_parent[j] (non-zero), v = w_parent[j] AND m.
 * For each row r < rows and child i < nchild, in order (a child's parent is a
 * root or an earlier child):
 *   pc[r*ldc + out0 + i] = pc[r*ldc + child[i].ppos - pbase] + child[i].d
 *                          - 2 * sum_{e0 <= e < e1} popcount((a[r*lda + j_e] AND m_e) XOR v_e)
 * (d = popcount of the whole difference). Exact integers: every set's kernel
 * gives the reference's values. A set names its own in its table
 * (xe_kernels.mst_children; NULL: the reference twin). */
typedef struct xe_mst_entry {
    uint32_t j, m, v;
} xe_mst_entry;
typedef struct xe_mst_child {
    uint32_t ppos;   /* parent's runtime position (0xFFFFFFFF: a root, never passed) */
    int32_t d;       /* popcount of the difference */
    uint32_t e0, e1; /* its entries [e0, e1) */
} xe_mst_child;
typedef void (*xe_mst_children_fn)(size_t rows, size_t nchild, const xe_mst_child *child,
                                   const xe_mst_entry *ent, const uint32_t *a, size_t lda,
                                   int32_t *pc, size_t ldc, size_t out0, size_t pbase);
void xe_mst_children_ref(size_t rows, size_t nchild, const xe_mst_child *child,
                         const xe_mst_entry *ent, const uint32_t *a, size_t lda, int32_t *pc,
                         size_t ldc, size_t out0, size_t pbase);
/* Whole chunks, roots and children, for sets that keep a block of rows in
 * their own layout across them (optional, xe_kernels.mst_chunk; NULL: the
 * caller runs xe_bgemm on the packed roots, then the child kernel), several
 * chunks of the same rows in one call (the rows' layout is made once). Row
 * r's window is read in place: with L = segs * seglen words, its word t is
 *   A(r, t) = arow[r][(t / seglen)*segstride + t % seglen]
 * (im2col'd rows: segs = 1, seglen = L; a convolution's padded input: one
 * segment per kernel row, as xe_bgemm_seg, but any row addresses). Chunk k
 * (ck = chunk[k]) has positions i < nroot + nchild, its roots then its
 * children, and position i lands in column ck.c0 - cbase + P(i) of pc, with
 * P(i) = ck.perm[i] (a permutation of [0, nroot + nchild)) or i where perm
 * is NULL:
 *   root i < nroot:  popcount sum over t < L of A(r, t) XOR ck.roots[i*L + t];
 *   child q (position nroot + q): xe_mst_children_fn's maths on the rows
 *   A(r, .) (entries' j indexing t) from its parent at position
 *   ck.child[q].ppos - ck.c0 < nroot + q (read from the parent's column).
 * Exact integers: the reference twin's values. */
typedef struct xe_mst_chunk {
    uint32_t nroot, nchild;
    const uint32_t *roots;     /* nroot filters of L words */
    const xe_mst_child *child; /* nchild records; ppos absolute (c0 + position) */
    const uint32_t *perm;      /* NULL or nroot + nchild columns */
    size_t c0;                 /* the chunk's first position (and column, before cbase) */
} xe_mst_chunk;
typedef void (*xe_mst_chunk_fn)(size_t rows, const uint32_t *const *arow, size_t segs,
                                size_t seglen, size_t segstride, size_t nchunk,
                                const xe_mst_chunk *chunk, const xe_mst_entry *ent, int32_t *pc,
                                size_t ldc, size_t cbase);
void xe_mst_chunk_ref(size_t rows, const uint32_t *const *arow, size_t segs, size_t seglen,
                      size_t segstride, size_t nchunk, const xe_mst_chunk *chunk,
                      const xe_mst_entry *ent, int32_t *pc, size_t ldc, size_t cbase);
typedef struct xe_kernels {
    const char *name; /* as listed in kernel_sets.inc */
    xe_bgemm_config bgemm_cfg;
    xe_sgemm_config sgemm_cfg;
    xe_pack_fn pack; /* sign-pack */
    /* Optional (NULL: the reference's, through xe_k_pack_abs / xe_k_epilogue). */
    xe_pack_abs_fn pack_abs;
    xe_epilogue_fn epilogue;
    xe_mst_children_fn mst_children; /* optional: NULL = xe_mst_children_ref */
    xe_mst_chunk_fn mst_chunk;       /* optional: NULL = xe_bgemm, then mst_children */
} xe_kernels;

/* The reference versions (kernels__ref.c), and the set's own or those. */
void xe_pack_abs_ref(size_t rows, size_t channels, const float *x, size_t ldx, const float *s,
                     const float *b, uint32_t *out, size_t ldo, float inv, float *amean);
void xe_epilogue_ref(size_t n, const int32_t *pc, int32_t nreal, const float *scale,
                     const float *bias, const float *k, int relu, const xe_post_op *ops,
                     size_t nops, float *y);
static inline xe_pack_abs_fn xe_k_pack_abs(const xe_kernels *k) {
    return k->pack_abs ? k->pack_abs : xe_pack_abs_ref;
}
static inline xe_epilogue_fn xe_k_epilogue(const xe_kernels *k) {
    return k->epilogue ? k->epilogue : xe_epilogue_ref;
}

/* ---- The driver (gemm_driver.c), for every set ---- */

/* Binary GEMM ("NT") on packed B: for i < m, j < n
 *   c[i*ldc + j] = sum_{t < kw} popcount(a[i*lda + t] ^ b[(n0 + j)*ldb + t])
 * where b is the [N][kw] matrix that xe_bgemm_pack packed (N >= n0 + n):
 * columns [n0, n0 + n) of the full product, n0 a multiple of nr. */
size_t xe_bgemm_packed_words(const xe_kernels *k, size_t n, size_t kw);
void xe_bgemm_pack(const xe_kernels *k, size_t n, size_t kw, const uint32_t *b, size_t ldb,
                   uint32_t *packed);
void xe_bgemm(const xe_kernels *k, size_t m, size_t n0, size_t n, size_t kw, const uint32_t *a,
              size_t lda, const uint32_t *packed, int32_t *c, size_t ldc);

/* Float GEMM ("NN") on packed B: for i < m, j < n
 *   c[i*ldc + j] = sum_{t < kk} a[i*lda + t] * B(t, n0 + j)   (fmaf, t ascending)
 * where B(t, j) = b[t*rs + j*cs] was packed by xe_sgemm_pack; n0 a multiple of nr. */
size_t xe_sgemm_packed_floats(const xe_kernels *k, size_t n, size_t kk);
void xe_sgemm_pack(const xe_kernels *k, size_t n, size_t kk, const float *b, size_t rs, size_t cs,
                   float *packed);
void xe_sgemm(const xe_kernels *k, size_t m, size_t n0, size_t n, size_t kk, const float *a,
              size_t lda, const float *packed, float *c, size_t ldc);

/* Binary GEMM with segmented A rows (xe_bgemm_seg_ukernel_fn), columns
 * [n0, n0 + n) of B packed by xe_bgemm_pack_seg; only for sets where
 * xe_bgemm_has_seg(k). xe_bgemm_seg_words: a segment's packed length, seglen
 * rounded up to kr. A packing by xe_bgemm_pack_seg is also xe_bgemm_pack's of
 * the filter rows with each segment padded so (zero words), for xe_bgemm on
 * rows gathered the same way. */
static inline int xe_bgemm_has_seg(const xe_kernels *k) {
    return k->bgemm_cfg.seg_ukernel[0] != NULL;
}
static inline size_t xe_bgemm_seg_words(const xe_kernels *k, size_t seglen) {
    const size_t kr = k->bgemm_cfg.kr;
    return (seglen + kr - 1) / kr * kr;
}
void xe_bgemm_pack_seg(const xe_kernels *k, size_t n, size_t segs, size_t seglen, const uint32_t *b,
                       size_t ldb, uint32_t *packed);
void xe_bgemm_seg(const xe_kernels *k, size_t m, size_t n0, size_t n, size_t segs, size_t seglen,
                  size_t segstride, const uint32_t *a, size_t lda, const uint32_t *packed,
                  int32_t *c, size_t ldc);
/* Float GEMM with segmented A rows (kernels.h, xe_sgemm_seg_ukernel_fn), on
 * packed B: the same results as xe_sgemm on the gathered rows
 *   row i = [a + i*lda + g*segstride, + seglen) for g < segs.
 * Sets without segmented micro-kernels gather up to gather_rows rows at a time
 * into gather (gather_rows * segs * seglen floats, gather_rows >= 1). */
void xe_sgemm_seg(const xe_kernels *k, size_t m, size_t n0, size_t n, size_t segs, size_t seglen,
                  size_t segstride, const float *a, size_t lda, const float *packed, float *c,
                  size_t ldc, float *gather, size_t gather_rows);

/* Unpacked B, for the kernel tests and the benchmark (the executor always
 * keeps packed weights, packed once per session):
 * bgemm b is n rows of kw words (ldb), packed on the stack panel by panel in
 * k blocks of at most XE_UNPACKED_PANEL_WORDS / nr words; sgemm b is [kk][n]
 * (ldb), read in place. Same results as the packed calls. */
#define XE_UNPACKED_PANEL_WORDS 4096
void xe_bgemm_unpacked(const xe_kernels *k, size_t m, size_t n, size_t kw, const uint32_t *a,
                       size_t lda, const uint32_t *b, size_t ldb, int32_t *c, size_t ldc);
void xe_sgemm_unpacked(const xe_kernels *k, size_t m, size_t n, size_t kk, const float *a,
                       size_t lda, const float *b, size_t ldb, float *c, size_t ldc);

/* The sgemm micro-kernel of sets whose instruction set has no fused multiply-add
 * (popcnt, ssse3): libm fmaf per term (correctly rounded, as the contract
 * requires; a multiply then an add rounds twice), one row against 8 columns,
 * t outermost so the panel streams contiguously while each sum keeps
 * ascending t. Use with sgemm mr = 1, nr = 8, kr = 1. */
void xe_sgemm_1x8_fmaf(size_t nc, size_t kk, const float *a, size_t lda, const float *b, size_t ldb,
                       size_t bstep, float *c, size_t ldc);

/* The default panel packers: plain loops over the layout above. */
void xe_bgemm_pack_panel(size_t nr, size_t kr, size_t nc, size_t kw, const uint32_t *b, size_t ldb,
                         uint32_t *panel);
void xe_sgemm_pack_panel(size_t nr, size_t kr, size_t nc, size_t kk, const float *b, size_t rs,
                         size_t cs, float *panel);

/* ---- The list of sets (kernel_sets.inc) ---- */

/* 1 where this compiler targets the architecture, else 0 (kernel_sets.inc's arch column). */
#define XE_ARCH_ANY 1
#if defined(__x86_64__) || defined(__i386__)
#define XE_ARCH_X86 1
#else
#define XE_ARCH_X86 0
#endif
#if defined(__aarch64__)
#define XE_ARCH_AARCH64 1
#else
#define XE_ARCH_AARCH64 0
#endif
#if defined(__arm__)
#define XE_ARCH_ARM 1
#else
#define XE_ARCH_ARM 0
#endif

/* The sets' own MST child kernels (mst__avx2.c, mst__neon_a64.c, mst__neon_a32.c), named in
 * their tables. */
#if XE_ARCH_X86
void xe_mst_children_avx2(size_t rows, size_t nchild, const xe_mst_child *child,
                          const xe_mst_entry *ent, const uint32_t *a, size_t lda, int32_t *pc,
                          size_t ldc, size_t out0, size_t pbase);
#endif
#if XE_ARCH_AARCH64
void xe_mst_children_neon_a64(size_t rows, size_t nchild, const xe_mst_child *child,
                              const xe_mst_entry *ent, const uint32_t *a, size_t lda, int32_t *pc,
                              size_t ldc, size_t out0, size_t pbase);
#endif
#if XE_ARCH_ARM
void xe_mst_children_neon_a32(size_t rows, size_t nchild, const xe_mst_child *child,
                              const xe_mst_entry *ent, const uint32_t *a, size_t lda, int32_t *pc,
                              size_t ldc, size_t out0, size_t pbase);
#endif

/* 1 where the build compiled kernels__avx512.c: x86 and a compiler that takes
 * its flags (runtime_c/CMakeLists.txt then defines XE_HAVE_AVX512). */
#if XE_ARCH_X86 && defined(XE_HAVE_AVX512)
#define XE_ARCH_X86_AVX512 1
#else
#define XE_ARCH_X86_AVX512 0
#endif

/* The avx512 set's MST kernels (mst__avx512.c). */
#if XE_ARCH_X86_AVX512
void xe_mst_children_avx512(size_t rows, size_t nchild, const xe_mst_child *child,
                            const xe_mst_entry *ent, const uint32_t *a, size_t lda, int32_t *pc,
                            size_t ldc, size_t out0, size_t pbase);
void xe_mst_chunk_avx512(size_t rows, const uint32_t *const *arow, size_t segs, size_t seglen,
                         size_t segstride, size_t nchunk, const xe_mst_chunk *chunk,
                         const xe_mst_entry *ent, int32_t *pc, size_t ldc, size_t cbase);
#endif

/* XE_IF(cond, yes, no): yes if cond expands to 1, no if it expands to 0. */
#define XE_CAT_(a, b) a##b
#define XE_CAT(a, b) XE_CAT_(a, b)
#define XE_IF_1(yes, no) yes
#define XE_IF_0(yes, no) no
#define XE_IF(cond, yes, no) XE_CAT(XE_IF_, cond)(yes, no)

/* CPU features a set may require (kernel_sets.inc's features column); the
 * dispatcher detects them once. */
enum {
    XE_CPU_X86_POPCNT = 1u << 0,
    XE_CPU_X86_AVX2 = 1u << 1,  /* AVX2 + FMA, and the OS saves YMM state */
    XE_CPU_ARM_NEON = 1u << 2,  /* ARMv7 HWCAP NEON (always set on aarch64) */
    XE_CPU_ARM_VFPV4 = 1u << 3, /* ARMv7 HWCAP VFPv4 (always set on aarch64) */
    XE_CPU_X86_SSSE3 = 1u << 4, /* SSSE3 (PSHUFB, PMADDUBSW); no POPCNT implied */
    XE_CPU_X86_AVX512 = 1u << 5 /* AVX-512 F, BW, VL, VPOPCNTDQ; OS saves ZMM, k0-7 */
};

/* Tables of the sets built for this target: xe_kernels_ID. */
#define XE_KERNEL_SET(id, name, arch, features)                                                    \
    XE_IF(arch, extern const xe_kernels xe_kernels_##id;, )
#include "kernel_sets.inc"
#undef XE_KERNEL_SET

/* The active set: chosen once (CPU features, or XE_KERNELS in the
 * environment), changeable through xe_set_kernel_isa. Never NULL. */
const xe_kernels *xe_kernels_active(void);
/* The set of that name if this build has it and this CPU can run it, else NULL. */
const xe_kernels *xe_kernels_find(const char *name);

/* The child kernel of set k (the reference twin where k has none of its own). */
xe_mst_children_fn xe_mst_children_for(const xe_kernels *k);

#endif /* XE_KERNELS_H */
