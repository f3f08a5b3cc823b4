/*
 * mst__avx512.c - the MST kernels of the avx512 set (kernels.h: the child
 * kernel xe_mst_children_fn and the whole-chunk kernel xe_mst_chunk_fn),
 * compiled with kernels__avx512.c's flags (-mavx512f -mavx512bw -mavx512vl
 * -mavx512vpopcntdq -mfma -mpopcnt).
 *
 * Sixteen rows at a time, vectorised over rows (one 32-bit lane per row): the
 * block's window words are transposed once, 16 x 16 words through registers
 * (transpose16), into at[t][16], and the popcount columns live transposed in
 * pt[c][16]. Then
 *   a child's entry (j, m, v): one load of at[j], one VPTERNLOGD ((a & m) ^ v,
 *     m and v broadcast) and one VPOPCNTD into a 32-bit sum, for 16 rows (no
 *     byte sums and no flush: a lane adds at most 32 an entry);
 *   a child: its parent's column one load, d - 2x, its own column one store;
 *   a root (the chunk kernel): per window word one load of at[t], VPXORD with
 *     the root's word broadcast, VPOPCNTD, VPADDD; four roots share each load.
 *     This is the bgemm's work per column (no 32-column panel to fill: a
 *     chunk's one root costs 1/32 of a 32-column panel's bgemm).
 * The results go back to rows by the same transpose, masked to the block's
 * rows and columns. A block of fewer than 16 rows is the same code with the
 * missing rows' lanes zero (computed, never stored), so there is no scalar row
 * tail. Windows over AT_MAX words or chunks over PT_MAX columns take a scalar
 * path (POPCNT; the chunk kernel then the reference twin). Integer maths, the
 * reference's values exactly (runtime_c/tests/test_kernels_mst.c).
 */
#if !defined(__AVX512F__) || !defined(__AVX512BW__) || !defined(__AVX512VL__) ||                   \
    !defined(__AVX512VPOPCNTDQ__)
#error "mst__avx512.c needs -mavx512f -mavx512bw -mavx512vl -mavx512vpopcntdq"
#endif
#include <immintrin.h>

#include "kernels.h"
#include "transpose16__avx512.h"

#define AT_MAX 512 /* window words of the 16-row transpose (33 KiB on the stack) */
#define PT_MAX 256 /* popcount columns of the 16-row transpose (17 KiB) */
#define RB 16      /* rows per block: one lane each */

#define XE_INLINE static inline __attribute__((always_inline))

/* Lanes [0, n) of a 16-lane vector, n clamped to 0..16. */
XE_INLINE __mmask16 lanes(size_t n) {
    return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u);
}

/* out[t*16 + i] = word t of row i for i < rows (<= 16; lanes past rows zero),
 * t < segs * seglen, word t of row i at rp[i][(t / seglen)*segstride +
 * t % seglen]. Reads only those words; writes out[] up to 15 rows of 16
 * words past the last (each segment's tail is overwritten by the next). */
static void transpose_in(size_t rows, const uint32_t *const *rp, size_t segs, size_t seglen,
                         size_t segstride, uint32_t *out) {
    for (size_t g = 0, off = 0; g < segs; g++, off += segstride, out += seglen * RB)
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
            for (size_t u = 0; u < RB; u++) _mm512_store_si512((void *)(out + (t0 + u) * RB), r[u]);
        }
}

/* pc[i*ldc + c] = pt[c*16 + i] for i < rows, c < n. */
static void transpose_out(size_t rows, size_t n, const int32_t *pt, int32_t *pc, size_t ldc) {
    for (size_t c0 = 0; c0 < n; c0 += RB) {
        const size_t nb = n - c0 < RB ? n - c0 : RB;
        const __mmask16 m = lanes(nb);
        __m512i r[RB];
        for (size_t u = 0; u < RB; u++)
            r[u] = u < nb ? _mm512_load_si512((const void *)(pt + (c0 + u) * RB))
                          : _mm512_setzero_si512();
        transpose16(r);
        for (size_t i = 0; i < rows; i++) _mm512_mask_storeu_epi32(pc + i * ldc + c0, m, r[i]);
    }
}

/* Position i's slot in pt: perm[i], or i without perm. */
XE_INLINE size_t slot(const uint32_t *perm, size_t i) { return perm ? perm[i] : i; }

/* The children on transposed data: child q (position q0 + q) and its parent
 * (position ppos - pfirst) at their slots pt[slot*16]. */
static void children16(size_t nchild, const xe_mst_child *child, const xe_mst_entry *ent,
                       const uint32_t *at, int32_t *pt, size_t pfirst, size_t q0,
                       const uint32_t *perm) {
    for (size_t q = 0; q < nchild; q++) {
        const xe_mst_child *ch = &child[q];
        __m512i acc0 = _mm512_setzero_si512(), acc1 = _mm512_setzero_si512();
        const xe_mst_entry *e = ent + ch->e0, *end = ent + ch->e1;
        for (; e + 2 <= end; e += 2) {
            const __m512i w0 = _mm512_load_si512((const void *)(at + (size_t)e[0].j * RB));
            const __m512i w1 = _mm512_load_si512((const void *)(at + (size_t)e[1].j * RB));
            const __m512i x0 = _mm512_ternarylogic_epi32(w0, _mm512_set1_epi32((int)e[0].m),
                                                         _mm512_set1_epi32((int)e[0].v), 0x6A);
            const __m512i x1 = _mm512_ternarylogic_epi32(w1, _mm512_set1_epi32((int)e[1].m),
                                                         _mm512_set1_epi32((int)e[1].v), 0x6A);
            acc0 = _mm512_add_epi32(acc0, _mm512_popcnt_epi32(x0));
            acc1 = _mm512_add_epi32(acc1, _mm512_popcnt_epi32(x1));
        }
        if (e < end) { /* (a & m) ^ v: VPTERNLOGD 0x6A */
            const __m512i w0 = _mm512_load_si512((const void *)(at + (size_t)e->j * RB));
            const __m512i x0 = _mm512_ternarylogic_epi32(w0, _mm512_set1_epi32((int)e->m),
                                                         _mm512_set1_epi32((int)e->v), 0x6A);
            acc0 = _mm512_add_epi32(acc0, _mm512_popcnt_epi32(x0));
        }
        const __m512i x = _mm512_add_epi32(acc0, acc1);
        const __m512i par =
            _mm512_load_si512((const void *)(pt + slot(perm, ch->ppos - pfirst) * RB));
        const __m512i res = _mm512_sub_epi32(_mm512_add_epi32(par, _mm512_set1_epi32(ch->d)),
                                             _mm512_add_epi32(x, x));
        _mm512_store_si512((void *)(pt + slot(perm, q0 + q) * RB), res);
    }
}

/* The roots on transposed data: root i (position i, words roots[i*L ..
 * i*L + L)) at its slot pt[slot*16]. Four roots share each load of at. */
static void roots16(size_t L, size_t nroot, const uint32_t *roots, const uint32_t *at, int32_t *pt,
                    const uint32_t *perm) {
    size_t i = 0;
    for (; i + 4 <= nroot; i += 4) {
        const uint32_t *w0 = roots + i * L, *w1 = w0 + L, *w2 = w1 + L, *w3 = w2 + L;
        __m512i s0 = _mm512_setzero_si512(), s1 = s0, s2 = s0, s3 = s0;
        for (size_t t = 0; t < L; t++) {
            const __m512i av = _mm512_load_si512((const void *)(at + t * RB));
            s0 = _mm512_add_epi32(
                s0, _mm512_popcnt_epi32(_mm512_xor_si512(av, _mm512_set1_epi32((int)w0[t]))));
            s1 = _mm512_add_epi32(
                s1, _mm512_popcnt_epi32(_mm512_xor_si512(av, _mm512_set1_epi32((int)w1[t]))));
            s2 = _mm512_add_epi32(
                s2, _mm512_popcnt_epi32(_mm512_xor_si512(av, _mm512_set1_epi32((int)w2[t]))));
            s3 = _mm512_add_epi32(
                s3, _mm512_popcnt_epi32(_mm512_xor_si512(av, _mm512_set1_epi32((int)w3[t]))));
        }
        _mm512_store_si512((void *)(pt + slot(perm, i) * RB), s0);
        _mm512_store_si512((void *)(pt + slot(perm, i + 1) * RB), s1);
        _mm512_store_si512((void *)(pt + slot(perm, i + 2) * RB), s2);
        _mm512_store_si512((void *)(pt + slot(perm, i + 3) * RB), s3);
    }
    for (; i < nroot; i++) {
        const uint32_t *w = roots + i * L;
        __m512i s0 = _mm512_setzero_si512(), s1 = s0;
        size_t t = 0;
        for (; t + 2 <= L; t += 2) {
            const __m512i a0 = _mm512_load_si512((const void *)(at + t * RB));
            const __m512i a1 = _mm512_load_si512((const void *)(at + (t + 1) * RB));
            s0 = _mm512_add_epi32(
                s0, _mm512_popcnt_epi32(_mm512_xor_si512(a0, _mm512_set1_epi32((int)w[t]))));
            s1 = _mm512_add_epi32(
                s1, _mm512_popcnt_epi32(_mm512_xor_si512(a1, _mm512_set1_epi32((int)w[t + 1]))));
        }
        if (t < L) {
            const __m512i a0 = _mm512_load_si512((const void *)(at + t * RB));
            s0 = _mm512_add_epi32(
                s0, _mm512_popcnt_epi32(_mm512_xor_si512(a0, _mm512_set1_epi32((int)w[t]))));
        }
        _mm512_store_si512((void *)(pt + slot(perm, i) * RB), _mm512_add_epi32(s0, s1));
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

/* Scalar rows (POPCNT): the children of rows [0, rows). */
static void children_scalar(size_t rows, size_t nchild, const xe_mst_child *child,
                            const xe_mst_entry *ent, const uint32_t *a, size_t lda, int32_t *pc,
                            size_t ldc, size_t out0, size_t pbase) {
    for (size_t r = 0; r < rows; r++) {
        const uint32_t *ar = a + r * lda;
        int32_t *pr = pc + r * ldc;
        for (size_t i = 0; i < nchild; i++) {
            const xe_mst_child *ch = &child[i];
            int32_t x = 0;
            for (uint32_t e = ch->e0; e < ch->e1; e++)
                x += __builtin_popcount((ar[ent[e].j] & ent[e].m) ^ ent[e].v);
            pr[out0 + i] = pr[ch->ppos - pbase] + ch->d - 2 * x;
        }
    }
}

void xe_mst_children_avx512(size_t rows, size_t nchild, const xe_mst_child *child,
                            const xe_mst_entry *ent, const uint32_t *a, size_t lda, int32_t *pc,
                            size_t ldc, size_t out0, size_t pbase) {
    size_t cmin = out0;
    for (size_t q = 0; q < nchild; q++)
        if (child[q].ppos - pbase < cmin) cmin = child[q].ppos - pbase;
    const size_t L = window_used(nchild, child, ent);
    if (!nchild || L > AT_MAX || out0 + nchild - cmin > PT_MAX) {
        children_scalar(rows, nchild, child, ent, a, lda, pc, ldc, out0, pbase);
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
        transpose_in(nb, rp, 1, L, 0, at);
        /* the parents computed before this call: columns [cmin, out0) */
        transpose_in(nb, cp, 1, out0 - cmin, 0, (uint32_t *)(void *)pt);
        children16(nchild, child, ent, at, pt, pbase + cmin, out0 - cmin, NULL);
        transpose_out(nb, nchild, pt + (out0 - cmin) * RB, pb + out0, ldc);
    }
}

void xe_mst_chunk_avx512(size_t rows, const uint32_t *const *arow, size_t segs, size_t seglen,
                         size_t segstride, size_t nroot, const uint32_t *roots, size_t nchild,
                         const xe_mst_child *child, const xe_mst_entry *ent, const uint32_t *perm,
                         int32_t *pc, size_t ldc, size_t out0, size_t pbase) {
    const size_t L = segs * seglen, npos = nroot + nchild;
    if (L > AT_MAX || npos > PT_MAX) {
        xe_mst_chunk_ref(rows, arow, segs, seglen, segstride, nroot, roots, nchild, child, ent,
                         perm, pc, ldc, out0, pbase);
        return;
    }
    uint32_t at[(AT_MAX + RB) * RB] __attribute__((aligned(64)));
    int32_t pt[(PT_MAX + RB) * RB] __attribute__((aligned(64)));
    for (size_t r = 0; r < rows; r += RB) {
        const size_t nb = rows - r < RB ? rows - r : RB;
        transpose_in(nb, arow + r, segs, seglen, segstride, at);
        roots16(L, nroot, roots, at, pt, perm);
        children16(nchild, child, ent, at, pt, pbase + out0, nroot, perm);
        transpose_out(nb, npos, pt, pc + r * ldc + out0, ldc);
    }
}
