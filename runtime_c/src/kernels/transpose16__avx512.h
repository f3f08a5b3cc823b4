/*
 * transpose16__avx512.h - a 16 x 16 transpose of 32-bit words in ZMM
 * registers, shared by the avx512 set's files (kernels__avx512.c,
 * mst__avx512.c); include only from files compiled with -mavx512f.
 */
#ifndef XE_TRANSPOSE16_AVX512_H
#define XE_TRANSPOSE16_AVX512_H

#include <immintrin.h>

/* Transposes the 16 x 16 words in r: afterwards r[t] holds word t of the 16
 * rows (32-bit unpacks within 128-bit lanes, 64-bit unpacks, then a 4 x 4
 * transpose of the 128-bit lanes with VSHUFI32X4). */
static inline __attribute__((always_inline)) void transpose16(__m512i r[16]) {
    __m512i t[16], u[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    /* u[4i + j], 128-bit lane L: word 4L + j of rows 4i .. 4i + 3. */
    for (int i = 0; i < 4; i++) {
        u[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    for (int j = 0; j < 4; j++) {
        const __m512i x0 = _mm512_shuffle_i32x4(u[j], u[4 + j], 0x44);
        const __m512i x1 = _mm512_shuffle_i32x4(u[j], u[4 + j], 0xEE);
        const __m512i x2 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0x44);
        const __m512i x3 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0xEE);
        r[j] = _mm512_shuffle_i32x4(x0, x2, 0x88);
        r[4 + j] = _mm512_shuffle_i32x4(x0, x2, 0xDD);
        r[8 + j] = _mm512_shuffle_i32x4(x1, x3, 0x88);
        r[12 + j] = _mm512_shuffle_i32x4(x1, x3, 0xDD);
    }
}

#endif /* XE_TRANSPOSE16_AVX512_H */
