/*
 * mst__neon_a32.c - the MST child kernel of the neon-a32 set (kernels.h,
 * xe_mst_children_fn), compiled with -march=armv7-a -mfpu=neon; the set is
 * used only where getauxval(AT_HWCAP) reports NEON (and VFPv4).
 *
 * Maths (docs/mst.md section 1): d_child = d_parent + D - 2x with
 * x = sum over the child's entries (j, m, v) of popcount((a[j] AND m) XOR v).
 *
 * The avx2 / neon-a64 scheme (mst__avx2.c, mst__neon_a64.c), vectorised over
 * rows, at sixteen rows (four Q registers) where the a64 kernel takes four:
 * the block's window words are transposed once into at[j][16] and the chunk's
 * popcount columns into pt[c][16]. An entry is then two VLD1 of 32 bytes
 * (sixteen rows of word j), two VLD1.32 {Dn[], Dn+1[]} that load m and v
 * already duplicated (no core-register VDUP, which costs a pipeline transfer
 * on Cortex-A cores), and VAND, VEOR, VCNT.8, VADD.I8 per Q register: 25
 * instructions for sixteen rows (1.6 a row; an 8-row form takes 15, 1.9 a
 * row), so the entry's loads and address arithmetic are shared by as many
 * rows as the registers allow: 4 window, m, v and 4 byte sums in the
 * loop, 4 32-bit sums outside, of ARMv7's 16 Q registers. Byte sums hold at
 * most 8 per entry, so a child's entries are taken in runs of 31
 * (kernels__neon_a32.c's block style: the inner loop carries no counter) and
 * each run is widened once with VPADDL.U8 and VPADAL.U16 into the 32-bit
 * per-row sums; parent + D - 2x is one VADD and one VMLS by scalar. Transposes
 * in and out are 4x4 VTRN.32 blocks (one vector load and store per row and 4
 * words instead of 4 scalar loads and stores).
 *
 * Leftover rows: one 8-row and one 4-row block (the intrinsics' loop), then
 * the reference's scalar loop for the last 0-3. Windows over AT_MAX words and
 * chunks over PT_MAX columns take the reference's loop. Integer maths, the
 * reference's values exactly (runtime_c/tests/test_kernels_mst.c).
 */
#if !defined(__ARM_NEON)
#error "mst__neon_a32.c needs -mfpu=neon"
#endif
#include <arm_neon.h>

#include "kernels.h"

#define XE_INLINE static inline __attribute__((always_inline))
#define AT_MAX 512 /* window words of the 16-row transpose (32 KiB on the stack) */
#define PT_MAX 256 /* popcount columns of the 16-row transpose (16 KiB) */
#define RUN 31     /* entries per byte-sum run: 31 * 8 <= 255 */

#if defined(__GNUC__) && !defined(__clang__)
#define XE_A32_ASM 1
#else
#define XE_A32_ASM 0
#endif

#if XE_A32_ASM
/* Entries [e, stop) (e < stop) of a 16-row block into the byte sums b[0..3]
 * (rows 4k..4k+3). 25 instructions an entry: the entry's three words by
 * post-incremented loads (j to a core register, m and v straight into
 * duplicated Q registers), two VLD1 of 32 bytes for at[j], 16 NEON operations
 * and the loop. (GCC 12 makes 20 instructions of an 8-row entry from the
 * intrinsics, against 15 for the same 8 rows here: a second pointer into the
 * entry, separate VLD1 for each Q register and their address arithmetic.) */
XE_INLINE void run16(const xe_mst_entry *e, const xe_mst_entry *stop, const uint32_t *at,
                     uint8x16_t b[4]) {
    const uint32_t *w;
    __asm__("1:\n\t"
            "ldr %[w], [%[e]], #4\n\t"
            "add %[w], %[at], %[w], lsl #6\n\t"
            "vld1.32 {d16-d19}, [%[w] :128]!\n\t"
            "vld1.32 {d20-d23}, [%[w] :128]\n\t"
            "vld1.32 {d24[], d25[]}, [%[e]]!\n\t"
            "vld1.32 {d26[], d27[]}, [%[e]]!\n\t"
            "vand q8, q8, q12\n\t"
            "vand q9, q9, q12\n\t"
            "vand q10, q10, q12\n\t"
            "vand q11, q11, q12\n\t"
            "veor q8, q8, q13\n\t"
            "veor q9, q9, q13\n\t"
            "veor q10, q10, q13\n\t"
            "veor q11, q11, q13\n\t"
            "vcnt.8 q8, q8\n\t"
            "vcnt.8 q9, q9\n\t"
            "vcnt.8 q10, q10\n\t"
            "vcnt.8 q11, q11\n\t"
            "vadd.i8 %q[b0], %q[b0], q8\n\t"
            "vadd.i8 %q[b1], %q[b1], q9\n\t"
            "vadd.i8 %q[b2], %q[b2], q10\n\t"
            "vadd.i8 %q[b3], %q[b3], q11\n\t"
            "cmp %[e], %[stop]\n\t"
            "bne 1b"
            : [e] "+r"(e), [w] "=&r"(w), [b0] "+w"(b[0]), [b1] "+w"(b[1]), [b2] "+w"(b[2]),
              [b3] "+w"(b[3])
            : [at] "r"(at), [stop] "r"(stop)
            : "d16", "d17", "d18", "d19", "d20", "d21", "d22", "d23", "d24", "d25", "d26", "d27",
              "cc", "memory");
}
#endif

/* dst[c * ldd + i] = src[i * lds + c] for i, c < 4 (a 4x4 block of 32-bit
 * words): two VTRN.32 and D-register recombination. */
XE_INLINE void transpose4(const uint32_t *src, size_t lds, uint32_t *dst, size_t ldd) {
    const uint32x4x2_t t01 = vtrnq_u32(vld1q_u32(src), vld1q_u32(src + lds));
    const uint32x4x2_t t23 = vtrnq_u32(vld1q_u32(src + 2 * lds), vld1q_u32(src + 3 * lds));
    vst1q_u32(dst, vcombine_u32(vget_low_u32(t01.val[0]), vget_low_u32(t23.val[0])));
    vst1q_u32(dst + ldd, vcombine_u32(vget_low_u32(t01.val[1]), vget_low_u32(t23.val[1])));
    vst1q_u32(dst + 2 * ldd, vcombine_u32(vget_high_u32(t01.val[0]), vget_high_u32(t23.val[0])));
    vst1q_u32(dst + 3 * ldd, vcombine_u32(vget_high_u32(t01.val[1]), vget_high_u32(t23.val[1])));
}

/* dst[c * S + i] = src[i * lds + c] for rows i < S (4, 8 or 16) and
 * columns c < n: 4x4 blocks, then scalar columns. */
XE_INLINE void rows_to_lanes(int S, const uint32_t *src, size_t lds, size_t n, uint32_t *dst) {
    size_t c = 0;
    for (; c + 4 <= n; c += 4)
        for (int h = 0; h < S; h += 4) transpose4(src + h * lds + c, lds, dst + c * S + h, S);
    for (; c < n; c++)
        for (int i = 0; i < S; i++) dst[c * S + i] = src[i * lds + c];
}

/* The inverse: dst[i * ldd + c] = src[c * S + i]. */
XE_INLINE void lanes_to_rows(int S, const uint32_t *src, size_t n, uint32_t *dst, size_t ldd) {
    size_t c = 0;
    for (; c + 4 <= n; c += 4)
        for (int h = 0; h < S; h += 4) transpose4(src + c * S + h, S, dst + h * ldd + c, ldd);
    for (; c < n; c++)
        for (int i = 0; i < S; i++) dst[i * ldd + c] = src[c * S + i];
}

/* Rows r..r+4*NV-1 (NV = 1, 2 or 4, a constant at each call) of children
 * [0, nchild); parents and children live in columns [cmin, out0 + nchild) of
 * pc; at and pt are the transposes' buffers (stride S = 4*NV words). */
XE_INLINE void block(int NV, size_t nchild, const xe_mst_child *child, const xe_mst_entry *ent,
                     const uint32_t *a, size_t lda, size_t L, int32_t *pc, size_t ldc, size_t out0,
                     size_t pbase, size_t cmin, uint32_t *at, uint32_t *pt) {
    const int S = 4 * NV;
    rows_to_lanes(S, a, lda, L, at);
    rows_to_lanes(S, (const uint32_t *)(const void *)pc + cmin, ldc, out0 - cmin, pt);
    for (size_t q = 0; q < nchild; q++) {
        const xe_mst_child *ch = &child[q];
        const xe_mst_entry *e = ent + ch->e0, *const end = ent + ch->e1;
        uint32x4_t acc[4];
        for (int k = 0; k < NV; k++) acc[k] = vdupq_n_u32(0);
        while (e < end) {
            const xe_mst_entry *const stop = end - e > RUN ? e + RUN : end;
            uint8x16_t bytes[4];
            for (int k = 0; k < NV; k++) bytes[k] = vdupq_n_u8(0);
#if XE_A32_ASM
            if (NV == 4) {
                run16(e, stop, at, bytes);
                e = stop;
            }
#endif
            for (; e < stop; e++) {
                const uint32_t *w = at + e->j * S;
                const uint32x4_t m = vld1q_dup_u32(&e->m), v = vld1q_dup_u32(&e->v);
                for (int k = 0; k < NV; k++) {
                    const uint32x4_t x = veorq_u32(vandq_u32(vld1q_u32(w + 4 * k), m), v);
                    bytes[k] = vaddq_u8(bytes[k], vcntq_u8(vreinterpretq_u8_u32(x)));
                }
            }
            for (int k = 0; k < NV; k++) acc[k] = vpadalq_u16(acc[k], vpaddlq_u8(bytes[k]));
        }
        const uint32_t *par = pt + (ch->ppos - pbase - cmin) * S;
        uint32_t *res = pt + (out0 + q - cmin) * S;
        const uint32x4_t d = vld1q_dup_u32((const uint32_t *)(const void *)&ch->d);
        for (int k = 0; k < NV; k++) /* parent + D - 2x modulo 2^32, read as int32: exact */
            vst1q_u32(res + 4 * k, vmlsq_n_u32(vaddq_u32(vld1q_u32(par + 4 * k), d), acc[k], 2));
    }
    lanes_to_rows(S, pt + (out0 - cmin) * S, nchild, (uint32_t *)(void *)pc + out0, ldc);
}

void xe_mst_children_neon_a32(size_t rows, size_t nchild, const xe_mst_child *child,
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
        uint32_t at[AT_MAX * 16] __attribute__((aligned(16)));
        uint32_t pt[PT_MAX * 16] __attribute__((aligned(16)));
        for (; r + 16 <= rows; r += 16)
            block(4, nchild, child, ent, a + r * lda, lda, L, pc + r * ldc, ldc, out0, pbase, cmin,
                  at, pt);
        if (r + 8 <= rows) {
            block(2, nchild, child, ent, a + r * lda, lda, L, pc + r * ldc, ldc, out0, pbase, cmin,
                  at, pt);
            r += 8;
        }
        if (r + 4 <= rows) {
            block(1, nchild, child, ent, a + r * lda, lda, L, pc + r * ldc, ldc, out0, pbase, cmin,
                  at, pt);
            r += 4;
        }
    }
    if (r < rows)
        xe_mst_children_ref(rows - r, nchild, child, ent, a + r * lda, lda, pc + r * ldc, ldc, out0,
                            pbase);
}
