/*
 * mst__avx512.c - the MST kernels of the avx512 set (kernels.h: the child
 * kernel xe_mst_children_fn and the whole-chunk kernel xe_mst_chunk_fn),
 * compiled with kernels__avx512.c's flags (-mavx512f -mavx512bw -mavx512vl
 * -mavx512vpopcntdq -mfma -mpopcnt).
 *
 * Vectorised over rows, one 32-bit lane per row, 16 rows a vector: a block
 * of rows' window words are transposed once, 16 x 16 words through
 * registers (transpose16), into at[t][16 * nv], and the popcount columns
 * live transposed in pt[c][16 * nv] (nv = 2 vectors, 32 rows, where the
 * window is at most AT_MAX2 words and each chunk at most PT_MAX2 columns;
 * else nv = 1 up to AT_MAX and PT_MAX). Then
 *   a child's entry (j, m, v): j, m and v loaded once, then per vector one
 *     load of at[j], VPTERNLOGD ((a & m) ^ v, m broadcast, v broadcast from
 *     memory), VPOPCNTD into a 32-bit sum (no byte sums and no flush: a lane
 *     adds at most 32 an entry);
 *   a child: its parent's column one load, d - 2x, its own column one store,
 *     at the slot of its channel (perm), so the transpose back writes
 *     channel order;
 *   a root (the chunk kernel): per window word one load of at[t], VPXORD with
 *     the root's word broadcast, VPOPCNTD, VPADDD; four vector sums share
 *     each load. This is the bgemm's work per column with no 32-column panel
 *     to fill: a chunk's one root costs 1/32 of a panel.
 * The chunk kernel runs every chunk of its call on one transposed block. The
 * results go back to rows by the same transpose, masked to the block's rows
 * and columns; a block of fewer rows is the same code with the missing rows'
 * lanes zero (computed, never stored), so there is no scalar row tail.
 * Windows over AT_MAX words or chunks over PT_MAX columns take the reference
 * twin's loops (mst_scalar.h) with hardware POPCNT. Integer maths, the reference's values exactly
 * (runtime_c/tests/test_kernels_mst.c); docs/mst.md section 5.1.
 */
#if !defined(__AVX512F__) || !defined(__AVX512BW__) || !defined(__AVX512VL__) ||                   \
    !defined(__AVX512VPOPCNTDQ__)
#error "mst__avx512.c needs -mavx512f -mavx512bw -mavx512vl -mavx512vpopcntdq"
#endif
#include <immintrin.h>

#include "kernels.h"
#include "transpose16__avx512.h"

#define XE_MST_POPCOUNT(v) __builtin_popcount(v) /* POPCNT: this file is built with it */
#include "mst_scalar.h"

#define AT_MAX 512  /* window words of the 16-row transpose (33 KiB on the stack) */
#define PT_MAX 256  /* popcount columns of the 16-row transpose (17 KiB) */
#define RB 16       /* rows per vector: one lane each */
#define AT_MAX2 256 /* the same at 32 rows (2 vectors; 34 KiB) */
#define PT_MAX2 128 /* (17 KiB) */

#define XE_INLINE static inline __attribute__((always_inline))

/* Lanes [0, n) of a 16-lane vector, n clamped to 0..16. */
XE_INLINE __mmask16 lanes(size_t n) {
    return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u);
}

/* out[t*ostride + i] = word t of row i for i < rows (<= 16; lanes past rows
 * zero), t < segs * seglen, word t of row i at rp[i][(t / seglen)*segstride
 * + t % seglen]. Reads only those words; writes out[] up to 15 rows of
 * ostride words past the last (each segment's tail is overwritten by the
 * next). */
static void transpose_in(size_t rows, const uint32_t *const *rp, size_t segs, size_t seglen,
                         size_t segstride, uint32_t *out, size_t ostride) {
    for (size_t g = 0, off = 0; g < segs; g++, off += segstride, out += seglen * ostride)
        for (size_t t0 = 0; t0 < seglen; t0 += RB) {
            const size_t kb = seglen - t0 < RB ? seglen - t0 : RB;
            const __mmask16 m = lanes(kb);
            __m512i r[RB];
            for (size_t i = 0; i < RB; i++)
                r[i] = i < rows ? _mm512_maskz_loadu_epi32(m, rp[i] + off + t0)
                                : _mm512_setzero_si512();
            transpose16(r);
            /* all 16 (out has RB rows of slack past the last): a loop to kb
             * became a memcpy of r spilled to the stack */
            for (size_t u = 0; u < RB; u++)
                _mm512_store_si512((void *)(out + (t0 + u) * ostride), r[u]);
        }
}

/* pc[i*ldc + c] = pt[c*istride + i] for i < rows (<= 16), c < n. */
static void transpose_out(size_t rows, size_t n, const int32_t *pt, size_t istride, int32_t *pc,
                          size_t ldc) {
    for (size_t c0 = 0; c0 < n; c0 += RB) {
        const size_t nb = n - c0 < RB ? n - c0 : RB;
        const __mmask16 m = lanes(nb);
        __m512i r[RB];
        for (size_t u = 0; u < RB; u++)
            r[u] = u < nb ? _mm512_load_si512((const void *)(pt + (c0 + u) * istride))
                          : _mm512_setzero_si512();
        transpose16(r);
        for (size_t i = 0; i < rows; i++) _mm512_mask_storeu_epi32(pc + i * ldc + c0, m, r[i]);
    }
}

/* Position i's slot in pt: perm[i], or i without perm. */
XE_INLINE size_t slot(const uint32_t *perm, size_t i) { return perm ? perm[i] : i; }

/* The children on transposed data, nv vectors of 16 rows (a row of at and
 * pt is nv * 16 lanes): child q (position q0 + q) and its parent (position
 * ppos - pfirst) at their slots pt[slot * 16 * nv]. An entry's j, m and v are
 * loaded once for the nv vectors. */
XE_INLINE void children_nv(int nv, size_t nchild, const xe_mst_child *child,
                           const xe_mst_entry *ent, const uint32_t *at, int32_t *pt, size_t pfirst,
                           size_t q0, const uint32_t *perm) {
    const size_t w = (size_t)nv * RB;
    for (size_t q = 0; q < nchild; q++) {
        const xe_mst_child *ch = &child[q];
        __m512i acc0 = _mm512_setzero_si512(), acc1 = _mm512_setzero_si512();
        for (const xe_mst_entry *e = ent + ch->e0, *end = ent + ch->e1; e < end; e++) {
            /* (a & m) ^ v: VPTERNLOGD 0x6A */
            const uint32_t *a0 = at + (size_t)e->j * w;
            const __m512i m = _mm512_set1_epi32((int)e->m), v = _mm512_set1_epi32((int)e->v);
            acc0 = _mm512_add_epi32(_mm512_popcnt_epi32(_mm512_ternarylogic_epi32(
                                        _mm512_load_si512((const void *)a0), m, v, 0x6A)),
                                    acc0);
            if (nv == 2)
                acc1 =
                    _mm512_add_epi32(_mm512_popcnt_epi32(_mm512_ternarylogic_epi32(
                                         _mm512_load_si512((const void *)(a0 + RB)), m, v, 0x6A)),
                                     acc1);
        }
        const int32_t *par = pt + slot(perm, ch->ppos - pfirst) * w;
        int32_t *out = pt + slot(perm, q0 + q) * w;
        const __m512i d = _mm512_set1_epi32(ch->d);
        for (int k = 0; k < nv; k++) {
            const __m512i x = k ? acc1 : acc0;
            const __m512i pv = _mm512_load_si512((const void *)(par + k * RB));
            _mm512_store_si512((void *)(out + k * RB),
                               _mm512_sub_epi32(_mm512_add_epi32(pv, d), _mm512_slli_epi32(x, 1)));
        }
    }
}

/* The roots on transposed data, nv vectors of 16 rows: root i (position i,
 * words roots[i*L .. i*L + L)) at its slot pt[slot * 16 * nv]. Four vector
 * sums at a time (four roots of 16 rows, two of 32) share each load of at. */
XE_INLINE void roots_nv(int nv, size_t L, size_t nroot, const uint32_t *roots, const uint32_t *at,
                        int32_t *pt, const uint32_t *perm) {
    const size_t w = (size_t)nv * RB, g = 4 / (size_t)nv; /* roots a group */
    size_t i = 0;
    for (; i + g <= nroot; i += g) {
        __m512i s[4];
        for (int k = 0; k < 4; k++) s[k] = _mm512_setzero_si512();
        for (size_t t = 0; t < L; t++)
            for (size_t k = 0; k < 4; k++) {
                const __m512i av = _mm512_load_si512((const void *)(at + t * w + (k % nv) * RB));
                const __m512i wv = _mm512_set1_epi32((int)roots[(i + k / nv) * L + t]);
                s[k] = _mm512_add_epi32(s[k], _mm512_popcnt_epi32(_mm512_xor_si512(av, wv)));
            }
        for (size_t k = 0; k < 4; k++)
            _mm512_store_si512((void *)(pt + slot(perm, i + k / nv) * w + (k % nv) * RB), s[k]);
    }
    for (; i < nroot; i++) { /* two sums per vector: even and odd words */
        const uint32_t *wr = roots + i * L;
        __m512i s0[2], s1[2];
        for (int v = 0; v < nv; v++) s0[v] = s1[v] = _mm512_setzero_si512();
        size_t t = 0;
        for (; t + 2 <= L; t += 2) {
            const __m512i w0 = _mm512_set1_epi32((int)wr[t]),
                          w1 = _mm512_set1_epi32((int)wr[t + 1]);
            for (int v = 0; v < nv; v++) {
                const __m512i a0 = _mm512_load_si512((const void *)(at + t * w + v * RB));
                const __m512i a1 = _mm512_load_si512((const void *)(at + (t + 1) * w + v * RB));
                s0[v] = _mm512_add_epi32(s0[v], _mm512_popcnt_epi32(_mm512_xor_si512(a0, w0)));
                s1[v] = _mm512_add_epi32(s1[v], _mm512_popcnt_epi32(_mm512_xor_si512(a1, w1)));
            }
        }
        for (int v = 0; v < nv; v++) {
            if (t < L)
                s0[v] = _mm512_add_epi32(s0[v],
                                         _mm512_popcnt_epi32(_mm512_xor_si512(
                                             _mm512_load_si512((const void *)(at + t * w + v * RB)),
                                             _mm512_set1_epi32((int)wr[t]))));
            _mm512_store_si512((void *)(pt + slot(perm, i) * w + v * RB),
                               _mm512_add_epi32(s0[v], s1[v]));
        }
    }
}

/* Window words the children read: 1 + their largest j (0 without entries). */
static size_t window_used(size_t nchild, const xe_mst_child *child, const xe_mst_entry *ent) {
    size_t L = 0;
    for (size_t q = 0; q < nchild; q++)
        for (uint32_t e = child[q].e0; e < child[q].e1; e++)
            if (ent[e].j + (size_t)1 > L) L = ent[e].j + (size_t)1;
    return L;
}

void xe_mst_children_avx512(size_t rows, size_t nchild, const xe_mst_child *child,
                            const xe_mst_entry *ent, const uint32_t *a, size_t lda, int32_t *pc,
                            size_t ldc, size_t out0, size_t pbase) {
    size_t cmin = out0;
    for (size_t q = 0; q < nchild; q++)
        if (child[q].ppos - pbase < cmin) cmin = child[q].ppos - pbase;
    const size_t L = window_used(nchild, child, ent);
    if (!nchild || L > AT_MAX || out0 + nchild - cmin > PT_MAX) {
        xe_mst_children_scalar(rows, nchild, child, ent, a, lda, pc, ldc, out0, pbase);
        return;
    }
    uint32_t at[(AT_MAX + RB) * RB] __attribute__((aligned(64)));
    int32_t pt[(PT_MAX + RB) * RB] __attribute__((aligned(64)));
    for (size_t r = 0; r < rows; r += RB) {
        const size_t nb = rows - r < RB ? rows - r : RB;
        int32_t *pb = pc + r * ldc;
        const uint32_t *rp[RB], *cp[RB];
        for (size_t i = 0; i < nb; i++) {
            rp[i] = a + (r + i) * lda;
            cp[i] = (const uint32_t *)(const void *)(pb + i * ldc + cmin);
        }
        transpose_in(nb, rp, 1, L, 0, at, RB);
        /* the parents computed before this call: columns [cmin, out0) */
        transpose_in(nb, cp, 1, out0 - cmin, 0, (uint32_t *)(void *)pt, RB);
        children_nv(1, nchild, child, ent, at, pt, pbase + cmin, out0 - cmin, NULL);
        transpose_out(nb, nchild, pt + (out0 - cmin) * RB, RB, pb + out0, ldc);
    }
}

/* The chunk kernel's blocks of NV * 16 rows (NV 1 or 2) over buffers of
 * AT_WORDS window words and PT_COLS columns (every chunk at most that many),
 * on the stack of this call only: each block is transposed once for all the
 * chunks. */
#define XE_CHUNK_BLOCKS(NV, AT_WORDS, PT_COLS)                                                     \
    __attribute__((noinline)) static void chunk_blocks##NV(                                        \
        size_t rows, const uint32_t *const *arow, size_t segs, size_t seglen, size_t segstride,    \
        size_t nchunk, const xe_mst_chunk *chunk, const xe_mst_entry *ent, int32_t *pc,            \
        size_t ldc, size_t cbase) {                                                                \
        const size_t L = segs * seglen, w = NV * RB;                                               \
        uint32_t at[(AT_WORDS + RB) * NV * RB] __attribute__((aligned(64)));                       \
        int32_t pt[(PT_COLS + RB) * NV * RB] __attribute__((aligned(64)));                         \
        for (size_t r = 0; r < rows; r += w) {                                                     \
            const size_t nb = rows - r < w ? rows - r : w;                                         \
            for (size_t v = 0; v * RB < nb; v++)                                                   \
                transpose_in(nb - v * RB < RB ? nb - v * RB : RB, arow + r + v * RB, segs, seglen, \
                             segstride, at + v * RB, w);                                           \
            for (size_t k = 0; k < nchunk; k++) {                                                  \
                const xe_mst_chunk *ck = &chunk[k];                                                \
                roots_nv(NV, L, ck->nroot, ck->roots, at, pt, ck->perm);                           \
                children_nv(NV, ck->nchild, ck->child, ent, at, pt, ck->c0, ck->nroot, ck->perm);  \
                for (size_t v = 0; v * RB < nb; v++)                                               \
                    transpose_out(nb - v * RB < RB ? nb - v * RB : RB, ck->nroot + ck->nchild,     \
                                  pt + v * RB, w, pc + (r + v * RB) * ldc + (ck->c0 - cbase),      \
                                  ldc);                                                            \
            }                                                                                      \
        }                                                                                          \
    }
XE_CHUNK_BLOCKS(1, AT_MAX, PT_MAX)
XE_CHUNK_BLOCKS(2, AT_MAX2, PT_MAX2)

void xe_mst_chunk_avx512(size_t rows, const uint32_t *const *arow, size_t segs, size_t seglen,
                         size_t segstride, size_t nchunk, const xe_mst_chunk *chunk,
                         const xe_mst_entry *ent, int32_t *pc, size_t ldc, size_t cbase) {
    const size_t L = segs * seglen;
    size_t npos = 0; /* the largest chunk */
    for (size_t k = 0; k < nchunk; k++)
        if ((size_t)chunk[k].nroot + chunk[k].nchild > npos)
            npos = (size_t)chunk[k].nroot + chunk[k].nchild;
    if (rows > RB && L <= AT_MAX2 && npos <= PT_MAX2)
        chunk_blocks2(rows, arow, segs, seglen, segstride, nchunk, chunk, ent, pc, ldc, cbase);
    else if (L <= AT_MAX && npos <= PT_MAX)
        chunk_blocks1(rows, arow, segs, seglen, segstride, nchunk, chunk, ent, pc, ldc, cbase);
    else
        xe_mst_chunk_scalar(rows, arow, segs, seglen, segstride, nchunk, chunk, ent, pc, ldc,
                            cbase);
}
