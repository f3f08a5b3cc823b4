/*
 * mst__avx2.c - the MST child kernel of the avx2 set (kernels.h,
 * xe_mst_children_fn), compiled with -mavx2 -mfma -mpopcnt like kernels__avx2.c.
 *
 * Eight rows at a time, vectorised over rows: the block's window words are
 * transposed once into at[j][8] and the chunk's popcount columns into pt[c][8],
 * so each entry (j, m, v) is one 256-bit load, AND, XOR and a byte popcount
 * (PSHUFB nibble table) for eight rows, summed in bytes (at most 8 per entry, so
 * 31 entries fit a byte) and widened once per child; a child's parent column
 * and its result are one load and one store. A child with one or two entries
 * then costs a few vector instructions per eight rows instead of a scalar loop
 * per row. Leftover rows, windows over AT_MAX words and chunks over PT_MAX
 * columns take the scalar path: hardware POPCNT, four rows sharing each entry
 * load. Integer maths, the reference's values exactly (tests/test_mst_runtime.py,
 * every set).
 */
#include <immintrin.h>

#include "kernels.h"

#define AT_MAX 512 /* window words of the 8-row transpose (16 KiB on the stack) */
#define PT_MAX 256 /* popcount columns of the 8-row transpose (8 KiB) */

#define XE_INLINE static inline __attribute__((always_inline))

XE_INLINE int32_t child_x(const xe_mst_entry *e, const xe_mst_entry *end, const uint32_t *ar) {
    int32_t x = 0;
    for (; e < end; e++) x += __builtin_popcount((ar[e->j] & e->m) ^ e->v);
    return x;
}

XE_INLINE __m256i popcount_bytes(__m256i x) {
    const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2,
                                         1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i low = _mm256_set1_epi8(0x0f);
    const __m256i lo = _mm256_and_si256(x, low);
    const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(x, 4), low);
    return _mm256_add_epi8(_mm256_shuffle_epi8(lut, lo), _mm256_shuffle_epi8(lut, hi));
}

/* The sum of the four bytes of each 32-bit lane (bytes <= 255). */
XE_INLINE __m256i bytes_to_lanes(__m256i b) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(b, _mm256_set1_epi8(1)), _mm256_set1_epi16(1));
}

/* Rows r..r+7 of children [0, nchild); parents and children live in columns
 * [cmin, out0 + nchild) of pc; at and pt are the transposes' buffers. */
static void block8(size_t nchild, const xe_mst_child *child, const xe_mst_entry *ent,
                   const uint32_t *a, size_t lda, size_t L, int32_t *pc, size_t ldc, size_t out0,
                   size_t pbase, size_t cmin, uint32_t *at, int32_t *pt) {
    for (size_t j = 0; j < L; j++)
        for (size_t i = 0; i < 8; i++) at[j * 8 + i] = a[i * lda + j];
    for (size_t c = cmin; c < out0; c++)
        for (size_t i = 0; i < 8; i++) pt[(c - cmin) * 8 + i] = pc[i * ldc + c];
    for (size_t q = 0; q < nchild; q++) {
        const xe_mst_child *ch = &child[q];
        __m256i acc = _mm256_setzero_si256(), bytes = _mm256_setzero_si256();
        unsigned n = 0;
        for (uint32_t e = ch->e0; e < ch->e1; e++) {
            const __m256i w = _mm256_load_si256((const __m256i *)(const void *)(at + ent[e].j * 8));
            const __m256i x =
                _mm256_xor_si256(_mm256_and_si256(w, _mm256_set1_epi32((int)ent[e].m)),
                                 _mm256_set1_epi32((int)ent[e].v));
            bytes = _mm256_add_epi8(bytes, popcount_bytes(x));
            if (++n == 31) {
                acc = _mm256_add_epi32(acc, bytes_to_lanes(bytes));
                bytes = _mm256_setzero_si256();
                n = 0;
            }
        }
        acc = _mm256_add_epi32(acc, bytes_to_lanes(bytes));
        const int32_t *par = pt + (ch->ppos - pbase - cmin) * 8;
        const __m256i pv = _mm256_load_si256((const __m256i *)(const void *)par);
        const __m256i res = _mm256_sub_epi32(_mm256_add_epi32(pv, _mm256_set1_epi32(ch->d)),
                                             _mm256_add_epi32(acc, acc));
        _mm256_store_si256((__m256i *)(void *)(pt + (out0 + q - cmin) * 8), res);
    }
    for (size_t q = 0; q < nchild; q++)
        for (size_t i = 0; i < 8; i++) pc[i * ldc + out0 + q] = pt[(out0 + q - cmin) * 8 + i];
}

void xe_mst_children_avx2(size_t rows, size_t nchild, const xe_mst_child *child,
                          const xe_mst_entry *ent, const uint32_t *a, size_t lda, int32_t *pc,
                          size_t ldc, size_t out0, size_t pbase) {
    size_t r = 0, cmin = out0, L = 0;
    for (size_t q = 0; q < nchild; q++) {
        const size_t pp = child[q].ppos - pbase;
        if (pp < cmin) cmin = pp;
        for (uint32_t e = child[q].e0; e < child[q].e1; e++)
            if (ent[e].j + (size_t)1 > L) L = ent[e].j + (size_t)1;
    }
    if (nchild && L <= AT_MAX && out0 + nchild - cmin <= PT_MAX) {
        uint32_t at[AT_MAX * 8] __attribute__((aligned(32)));
        int32_t pt[PT_MAX * 8] __attribute__((aligned(32)));
        for (; r + 8 <= rows; r += 8)
            block8(nchild, child, ent, a + r * lda, lda, L, pc + r * ldc, ldc, out0, pbase, cmin,
                   at, pt);
    }
    for (; r + 4 <= rows; r += 4) {
        const uint32_t *a0 = a + r * lda, *a1 = a0 + lda, *a2 = a1 + lda, *a3 = a2 + lda;
        int32_t *p0 = pc + r * ldc, *p1 = p0 + ldc, *p2 = p1 + ldc, *p3 = p2 + ldc;
        for (size_t i = 0; i < nchild; i++) {
            const xe_mst_child *ch = &child[i];
            int32_t x0 = 0, x1 = 0, x2 = 0, x3 = 0;
            for (const xe_mst_entry *e = ent + ch->e0, *end = ent + ch->e1; e < end; e++) {
                const uint32_t j = e->j, m = e->m, v = e->v;
                x0 += __builtin_popcount((a0[j] & m) ^ v);
                x1 += __builtin_popcount((a1[j] & m) ^ v);
                x2 += __builtin_popcount((a2[j] & m) ^ v);
                x3 += __builtin_popcount((a3[j] & m) ^ v);
            }
            const size_t pp = ch->ppos - pbase, o = out0 + i;
            p0[o] = p0[pp] + ch->d - 2 * x0;
            p1[o] = p1[pp] + ch->d - 2 * x1;
            p2[o] = p2[pp] + ch->d - 2 * x2;
            p3[o] = p3[pp] + ch->d - 2 * x3;
        }
    }
    for (; r < rows; r++) {
        const uint32_t *ar = a + r * lda;
        int32_t *pr = pc + r * ldc;
        for (size_t i = 0; i < nchild; i++) {
            const xe_mst_child *ch = &child[i];
            pr[out0 + i] =
                pr[ch->ppos - pbase] + ch->d - 2 * child_x(ent + ch->e0, ent + ch->e1, ar);
        }
    }
}
