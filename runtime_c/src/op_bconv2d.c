/*
 * op_bconv2d.c - the XNOR convolution: binary input and weights.
 *
 * Maths. With bit 1 = -1 and n real +-1 pairs, dot = n - 2*popcount(x XOR w)
 * (docs/bitpacking.md rule 6). The input is packed once into a spatially
 * padded buffer whose pad words are 0 (= +1 in every channel); each output
 * position's window is then KH rows of KW*CW contiguous words, copied with
 * one memcpy per kernel row (im2col of packed words), and the bgemm driver,
 * on the filters the session packed once for its kernel set, gives pc[p][oc] = popcount over the
 * whole window, pad taps included. +1 padding:   dot = IC*KH*KW - 2*pc            (pad taps are
 * real +1s) zero padding: a pad tap must contribute 0. Its term in pc is popcount(0 XOR w_tap) =
 * wpop[tap][oc] (precomputed at load), so pc' = pc - sum_{pad taps} wpop[tap][oc], n = IC *
 * t_valid, dot = n - 2*pc'. Only border positions pay for the sum. Channel-padding bits are 0 in
 * both operands and never count (rule 5). Epilogue: y = dot * scale[oc] * K[p] + bias[oc], then
 * optional ReLU; or with OUT_BITS, bit = (dot * scale[oc] + bias[oc] < 0). K = box(A), A = mean_c
 * |x|, the box over the same window with zero padding and divisor KH*KW. Bounds: a window holds at
 * most 64*64*65535 bits < 2^28, so int32 is exact; (float)dot is exact below 2^24 and deterministic
 * above.
 *
 * A is kept zero-padded ([IH+2PH][IW+2PW], pad 0), so K sums every tap of the
 * window in row-major order, vectorisable across output columns: adding a
 * padded 0.0f to a partial sum that is >= +0 or NaN leaves it unchanged, so K
 * is bit-identical to summing the valid taps only. The input pass (sign-pack
 * plus each pixel's mean |x|, optionally after a fused batchnorm) and the
 * float epilogue (plus fused element-wise ops) are the kernel set's pack_abs
 * and epilogue (kernels.h), which compute the reference's floats exactly.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"

enum { W, SCALE, BIAS };

typedef struct bconv_plan {
    const xe_node *n;
    const xe_exec *ex;
    const xe_bconv_ops *ops;
    const void *in;
    void *out;
    const uint32_t *pbuf; /* padded packed input [PH][PW][CW] */
    size_t pw_full;       /* PW: padded width */
    float *amap;          /* [PH][PW], zero padded, when USE_K */
    float *kmap;          /* [OH][OW] when USE_K */
    size_t oh_lo, oh_hi;  /* output rows [oh_lo, oh_hi) have no padded tap */
    size_t ow_lo, ow_hi;  /* likewise output columns */
    size_t ncc;           /* column border classes (axis_class) */
    int seg;              /* windows read in place (window_popcounts_seg) */
    size_t segw;          /* a kernel row's words in the gathered rows (bconv_seg_words) */
} bconv_plan;

/* Output rows narrower than this gather their windows (im2col) instead: a
 * stretch of fewer positions than a micro-kernel's rows wastes its tile. */
#ifndef XE_SEG_MIN_OUT_W
#define XE_SEG_MIN_OUT_W 8u
#endif
/* Sets with kr > 1 (NEON) read windows in place only while a kernel row is at
 * most this many words: instructions of a whole 3x3 layer through the public
 * API under qemu-aarch64 (bench_mst --mode dense --part layer), in place over
 * im2col: 56x56x64 (6 words) 0.970, 28x28x128 (12) 1.041, 14x14x256 (24)
 * 1.031. Per segment the kernel restarts its step loop and k tail, which
 * costs more than copying wide rows; the x86 sets (kr 1) win at every width. */
#ifndef XE_SEG_MAX_ROW_WORDS_KR
#define XE_SEG_MAX_ROW_WORDS_KR 8u
#endif

static int needs_pbuf(const xe_node_info *f) {
    return f->in_dtype == XE_DTYPE_F32 || f->pad_h || f->pad_w;
}

/* bconv2d packs its filters segment by segment (one segment per kernel row,
 * xe_bgemm_pack_seg) where the set has segmented kernels and the conv is not
 * pointwise; its gathered rows then pad each kernel row alike. */
static int bconv_seg_layout(const xe_node *n, const xe_kernels *k) {
    return xe_bgemm_has_seg(k) && !xe_is_pointwise(&n->info) &&
           (size_t)n->info.kernel_w * n->cw <= XE_SEG_MAX_WORDS;
}

static size_t bconv_seg_words(const xe_node *n, const xe_kernels *k) {
    const size_t row = (size_t)n->info.kernel_w * n->cw;
    return bconv_seg_layout(n, k) ? xe_bgemm_seg_words(k, row) : row;
}

/* Words of one packed filter: the window, each kernel row padded (above). */
static size_t bconv_packed_kw(const xe_node *n, const xe_kernels *k) {
    return n->info.kernel_h * bconv_seg_words(n, k);
}

void xe_bconv_scratch(const xe_node *n, size_t extra, size_t *shared, size_t *per_thread,
                      int *ovf) {
    const xe_node_info *f = &n->info;
    const size_t taps = (size_t)f->kernel_h * f->kernel_w, cw = n->cw, oc = f->out_c;
    size_t sh = 0;
    if (needs_pbuf(f)) {
        const size_t ph = (size_t)f->in_h + 2u * f->pad_h, pw = (size_t)f->in_w + 2u * f->pad_w;
        sh = xe_align_up(xe_mul(xe_mul(xe_mul(ph, pw, ovf), cw, ovf), 4, ovf));
    }
    if (f->flags & XE_FLAG_USE_K) {
        const size_t ph = (size_t)f->in_h + 2u * f->pad_h, pw = (size_t)f->in_w + 2u * f->pad_w;
        sh = xe_add(sh, xe_align_up(xe_mul(ph * pw, 4, ovf)), ovf);
        sh = xe_add(sh, xe_align_up(xe_mul((size_t)f->out_h * f->out_w, 4, ovf)), ovf);
    }
    size_t pt = 0;
    if (!xe_is_pointwise(f)) /* gathered rows, each kernel row padded to at most XE_MAX_KR */
        pt = xe_align_up(
            xe_mul(xe_mul(taps * cw + f->kernel_h * (XE_MAX_KR - 1u), XE_CHUNK_ROWS, ovf), 4, ovf));
    pt = xe_add(pt, xe_align_up(xe_mul(oc, XE_CHUNK_ROWS * 4, ovf)), ovf); /* popcounts */
    pt = xe_add(pt, xe_align_up(xe_mul(oc, 4, ovf)), ovf); /* one row of floats (pack_out) */
    pt = xe_add(pt, xe_align_up(extra), ovf);              /* the op's own */
    *shared = sh;
    *per_thread = pt;
}

/* Pass 1, one task per input row: pack (or copy) the row into the padded
 * buffer, zero its left/right pad words, and compute its A values. */
static void pack_row_task(void *ctx, size_t h, uint32_t thread) {
    const bconv_plan *pl = ctx;
    const xe_node_info *f = &pl->n->info;
    const size_t cw = pl->n->cw, iw = f->in_w, ic = f->in_c, pw = f->pad_w;
    uint32_t *row = (uint32_t *)pl->pbuf + ((h + f->pad_h) * pl->pw_full) * cw;
    memset(row, 0, pw * cw * 4);
    memset(row + (pw + iw) * cw, 0, pw * cw * 4);
    if (f->in_dtype == XE_DTYPE_F32) {
        const float *x = (const float *)pl->in + h * iw * ic;
        float *arow = NULL;
        if (pl->amap) {
            arow = pl->amap + (h + f->pad_h) * pl->pw_full;
            for (size_t w = 0; w < pw; w++) arow[w] = arow[pw + iw + w] = 0.0f;
            arow += pw;
        }
        xe_k_pack_abs(pl->ex->k)(iw, ic, x, ic, pl->ex->pre_scale, pl->ex->pre_shift, row + pw * cw,
                                 cw, 1.0f / (float)ic, arow);
    } else {
        memcpy(row + pw * cw, (const uint32_t *)pl->in + h * iw * cw, iw * cw * 4);
    }
}

/* Pass 2 (USE_K), one task per output row: K = box(A), every tap of the
 * zero-padded A in row-major order (header), one column per lane. */
static void kmap_row_task(void *ctx, size_t oh, uint32_t thread) {
    const bconv_plan *pl = ctx;
    const xe_node_info *f = &pl->n->info;
    const float inv = 1.0f / (float)(f->kernel_h * f->kernel_w);
    const size_t ow_n = f->out_w, sw = f->stride_w;
    float *k = pl->kmap + oh * ow_n;
    for (size_t ow = 0; ow < ow_n; ow++) k[ow] = 0.0f;
    for (size_t i = 0; i < f->kernel_h; i++) {
        const float *arow = pl->amap + (oh * f->stride_h + i) * pl->pw_full;
        for (size_t j = 0; j < f->kernel_w; j++) {
            const float *a = arow + j;
            if (sw == 1)
                for (size_t ow = 0; ow < ow_n; ow++) k[ow] += a[ow];
            else
                for (size_t ow = 0; ow < ow_n; ow++) k[ow] += a[ow * sw];
        }
    }
    for (size_t ow = 0; ow < ow_n; ow++) k[ow] *= inv;
}

/* Output indices [*lo, *hi) whose window has no padded tap along one axis. */
static void interior(uint32_t pad, uint32_t k, uint32_t stride, uint32_t in, uint32_t out,
                     size_t *lo, size_t *hi) {
    *lo = ((size_t)pad + stride - 1) / stride;
    *hi = (size_t)in + pad >= k ? ((size_t)in + pad - k) / stride + 1 : 0;
    if (*hi > out) *hi = out;
    if (*hi < *lo) *hi = *lo;
}

/* Border classes of zero padding: along one axis, the lo positions before the
 * interior [lo, hi) are classes 0..lo-1, the interior is class lo, the
 * positions from hi on follow; positions of one class have the same valid taps. */
static size_t axis_class(size_t i, size_t lo, size_t hi) {
    return i < lo ? i : i < hi ? lo : lo + 1 + (i - hi);
}

/* Classes per axis, and the int32 count of the class table (0: no table,
 * for +1 padding or when it would exceed XE_MAX_CORR_WORDS). */
#define XE_MAX_CORR_WORDS (1u << 20)
static size_t corr_words(const xe_node *n, size_t *nrc, size_t *ncc) {
    const xe_node_info *f = &n->info;
    size_t lo, hi;
    interior(f->pad_h, f->kernel_h, f->stride_h, f->in_h, f->out_h, &lo, &hi);
    *nrc = lo + 1 + (f->out_h - hi);
    interior(f->pad_w, f->kernel_w, f->stride_w, f->in_w, f->out_w, &lo, &hi);
    *ncc = lo + 1 + (f->out_w - hi);
    if (f->flags & XE_FLAG_PAD_ONE) return 0;
    const double words = (double)*nrc * (double)*ncc * (double)f->out_c;
    return words > XE_MAX_CORR_WORDS ? 0 : *nrc * *ncc * f->out_c;
}

size_t xe_bconv_corr_bytes(const xe_node *n) {
    size_t nrc, ncc;
    return corr_words(n, &nrc, &ncc) * 4;
}

/* table[(rc*ncc + cc)*OC + o] = sum over the pad taps of class (rc, cc) of
 * wpop[tap][o] (one position of each class stands for it). */
void xe_bconv_corr_fill(const xe_node *n, const int32_t *wpop, int32_t *table) {
    const xe_node_info *f = &n->info;
    size_t nrc, ncc, oc = f->out_c;
    if (!corr_words(n, &nrc, &ncc)) return;
    size_t hlo, hhi, wlo, whi;
    interior(f->pad_h, f->kernel_h, f->stride_h, f->in_h, f->out_h, &hlo, &hhi);
    interior(f->pad_w, f->kernel_w, f->stride_w, f->in_w, f->out_w, &wlo, &whi);
    memset(table, 0, nrc * ncc * oc * 4);
    for (size_t rc = 0; rc < nrc; rc++)
        for (size_t cc = 0; cc < ncc; cc++) {
            const size_t oh = rc <= hlo ? rc : hhi + (rc - hlo - 1);
            const size_t ow = cc <= wlo ? cc : whi + (cc - wlo - 1);
            long a0, a1, b0, b1;
            xe_tap_range((long)(oh * f->stride_h) - (long)f->pad_h, f->kernel_h, f->in_h, &a0, &a1);
            xe_tap_range((long)(ow * f->stride_w) - (long)f->pad_w, f->kernel_w, f->in_w, &b0, &b1);
            int32_t *t = table + (rc * ncc + cc) * oc;
            for (long i = 0; i < (long)f->kernel_h; i++)
                for (long j = 0; j < (long)f->kernel_w; j++) {
                    if (i >= a0 && i < a1 && j >= b0 && j < b1) continue;
                    const int32_t *wp = wpop + ((size_t)i * f->kernel_w + (size_t)j) * oc;
                    for (size_t o = 0; o < oc; o++) t[o] += wp[o];
                }
        }
}

/* Zero padding: removes the pad taps of output position p from its popcounts
 * pr[0..ncols) and returns the number of real +-1 pairs of its window. */
static int32_t zero_pad_correct(const bconv_plan *pl, size_t oh, size_t ow, size_t o0, size_t ncols,
                                int32_t *pr) {
    const xe_node *n = pl->n;
    const xe_node_info *f = &n->info;
    const size_t oc = f->out_c;
    const int32_t *wpop = pl->ops->wpop;
    const long kh = (long)f->kernel_h, kw = (long)f->kernel_w;
    long a0, a1, b0, b1;
    xe_tap_range((long)(oh * f->stride_h) - (long)f->pad_h, f->kernel_h, f->in_h, &a0, &a1);
    xe_tap_range((long)(ow * f->stride_w) - (long)f->pad_w, f->kernel_w, f->in_w, &b0, &b1);
    const long valid = (a1 - a0) * (b1 - b0);
    if (valid == kh * kw) return (int32_t)(f->in_c * (size_t)valid);
    if (pl->ops->pad_corr) {
        const size_t rc = axis_class(oh, pl->oh_lo, pl->oh_hi);
        const size_t cc = axis_class(ow, pl->ow_lo, pl->ow_hi);
        const int32_t *cv = pl->ops->pad_corr + (rc * pl->ncc + cc) * oc + o0;
        for (size_t o = 0; o < ncols; o++) pr[o] -= cv[o];
        return (int32_t)(f->in_c * (size_t)valid);
    }
    for (long i = 0; i < kh; i++)
        for (long jj = 0; jj < kw; jj++) {
            if (i >= a0 && i < a1 && jj >= b0 && jj < b1) continue;
            const int32_t *wp = wpop + ((size_t)i * (size_t)kw + (size_t)jj) * oc + o0;
            for (size_t o = 0; o < ncols; o++) pr[o] -= wp[o]; /* exact: integers */
        }
    return (int32_t)(f->in_c * (size_t)valid);
}

/* OUT_BITS's float formula, the one the thresholds must reproduce. */
static int out_bit(int32_t dot, float scale, float bias) {
    const float v = (float)dot * scale + bias;
    return v < 0.0f;
}

/* The smallest d in [lo, hi] with out_bit(d) == want, given that out_bit is
 * monotone there and out_bit(hi + 1) is taken as want; hi + 1 if none. */
static int32_t first_bit(int32_t lo, int32_t hi, float s, float b, int want) {
    int32_t a = lo, z = hi + 1; /* answer in [a, z] */
    while (a < z) {
        const int32_t mid = a + (z - a) / 2;
        if (out_bit(mid, s, b) == want)
            z = mid;
        else
            a = mid + 1;
    }
    return a;
}

int xe_bconv_thresholds(const float *scale, const float *bias, size_t oc, int32_t n, int32_t *st,
                        int32_t *m) {
    for (size_t o = 0; o < oc; o++)
        if (!isfinite(scale[o]) || !isfinite(bias[o])) return 0;
    for (size_t o = 0; o < oc; o++) {
        const float s = scale[o], b = bias[o];
        if (s > 0.0f) { /* bit is 1 then 0 as dot grows: dot < first 0 */
            m[o] = 0;
            st[o] = first_bit(-n, n, s, b, 0);
        } else if (s < 0.0f) { /* 0 then 1: -dot < -(first 1) + 1 */
            m[o] = -1;
            st[o] = 1 - first_bit(-n, n, s, b, 1);
        } else { /* +-0: the bit does not depend on dot */
            m[o] = 0;
            st[o] = out_bit(0, s, b) ? INT32_MAX : INT32_MIN;
        }
    }
    return 1;
}

/* The epilogue of output position p, channels [o0, o0 + ncols). */
static void epilogue(const bconv_plan *pl, size_t p, size_t o0, size_t ncols, const int32_t *pr,
                     int32_t nreal, float *row) {
    const xe_node *n = pl->n;
    const xe_node_info *f = &n->info;
    const size_t oc = f->out_c;
    const float *scale = pl->ops->scale + o0;
    const float *bias = pl->ops->bias + o0;
    if (f->flags & XE_FLAG_OUT_BITS) {
        uint32_t *yw = (uint32_t *)pl->out + p * ((oc + 31) / 32) + o0 / 32;
        if (pl->ops->thr) {
            const int32_t *st = pl->ops->thr + o0, *m = pl->ops->thr + oc + o0;
            for (size_t o = 0; o < ncols; o += 32) {
                uint32_t word = 0;
                const size_t lim = ncols - o < 32 ? ncols - o : 32;
                for (size_t b = 0; b < lim; b++)
                    word |= (uint32_t)xe_thr_bit(nreal - 2 * pr[o + b], st[o + b], m[o + b]) << b;
                yw[o / 32] = word;
            }
            return;
        }
        for (size_t o = 0; o < ncols; o += 32) {
            uint32_t word = 0;
            const size_t lim = ncols - o < 32 ? ncols - o : 32;
            for (size_t b = 0; b < lim; b++) {
                const float v = (float)(nreal - 2 * pr[o + b]) * scale[o + b] + bias[o + b];
                word |= (uint32_t)(v < 0.0f) << b;
            }
            yw[o / 32] = word;
        }
        return;
    }
    /* Fused element-wise ops (fuse.c) at this position's columns. */
    const xe_exec *ex = pl->ex;
    xe_post_op post[XE_MAX_POST_OPS];
    for (uint32_t i = 0; i < ex->npost; i++) {
        post[i] = ex->post[i];
        if (post[i].kind == XE_POST_AFFINE)
            post[i].a += o0, post[i].b += o0;
        else
            post[i].a += p * oc + o0;
    }
    float *y = ex->pack_out ? row : (float *)pl->out + p * oc + o0;
    xe_k_epilogue(ex->k)(ncols, pr, nreal, scale, bias, pl->kmap ? &pl->kmap[p] : NULL,
                         (f->flags & XE_FLAG_RELU) != 0, post, ex->npost, y);
    if (ex->pack_out) { /* a fused sign (o0 is a multiple of 32) */
        const size_t ocw = (oc + 31) / 32;
        ex->k->pack(1, ncols, row, ncols, (uint32_t *)pl->out + p * ocw + o0 / 32, ocw);
    }
}

/* One kernel row of a window: constant-size copies for the common 3-wide rows
 * of 1-16 words per pixel, which the compiler inlines (a memcpy call cost more
 * than the copy at 64 channels). */
static inline void copy_words(uint32_t *dst, const uint32_t *src, size_t n) {
    switch (n) {
    case 3:
        memcpy(dst, src, 12);
        break;
    case 6:
        memcpy(dst, src, 24);
        break;
    case 12:
        memcpy(dst, src, 48);
        break;
    case 24:
        memcpy(dst, src, 96);
        break;
    case 48:
        memcpy(dst, src, 192);
        break;
    default:
        memcpy(dst, src, n * 4);
        break;
    }
}

/* Row chunks: XE_CHUNK_ROWS at one thread; with more, a multiple of the
 * thread count of equal chunks (a multiple of 4 rows, the usual bgemm tile)
 * when there are enough rows, so that each thread's own range of tasks
 * (threadpool.c) covers one contiguous slice of positions, the slice the
 * element-wise nodes around it give that thread. */
static size_t chunk_rows(size_t m, uint32_t threads) {
    size_t nch = (m + XE_CHUNK_ROWS - 1) / XE_CHUNK_ROWS;
    if (threads < 2 || m < 8u * threads) return XE_CHUNK_ROWS;
    nch = (nch + threads - 1) / threads * threads;
    const size_t rows = ((m + nch - 1) / nch + 3) / 4 * 4;
    return rows < XE_CHUNK_ROWS ? rows : XE_CHUNK_ROWS;
}

/* Channel tasks: split at multiples of `step` when there are few rows. */
static size_t oc_split(size_t m, size_t oc, size_t step, size_t rows) {
    const size_t mchunks = (m + rows - 1) / rows;
    return (mchunks < 8 && oc > step) ? (oc + step - 1) / step : 1;
}

/* The window popcounts of positions [p0, p0 + rows) read in place from the
 * padded buffer (no im2col): one segmented GEMM per stretch of positions
 * within an output row, whose windows lie stride_w pixels apart. */
static void window_popcounts_seg(const bconv_plan *pl, size_t p0, size_t rows, size_t o0,
                                 size_t ncols, int32_t *pc) {
    const xe_node_info *f = &pl->n->info;
    const size_t cw = pl->n->cw, rowwords = pl->pw_full * cw;
    size_t oh = p0 / f->out_w, ow = p0 % f->out_w;
    for (size_t r = 0; r < rows;) {
        const size_t run = rows - r < f->out_w - ow ? rows - r : f->out_w - ow;
        const uint32_t *src = pl->pbuf + oh * f->stride_h * rowwords + ow * f->stride_w * cw;
        pl->ops->popcounts_seg(pl->n, pl->ex, run, o0, ncols, f->kernel_w * cw, rowwords, src,
                               f->stride_w * cw, pc + r * ncols, ncols);
        r += run;
        ow = 0, oh++;
    }
}

/* Pass 3, one task per chunk of output rows (x channel chunk): im2col of
 * packed words, the op's popcounts, epilogue. */
static void gemm_task(void *ctx, size_t task, uint32_t thread) {
    const bconv_plan *pl = ctx;
    const xe_node *n = pl->n;
    const xe_node_info *f = &n->info;
    const size_t m = (size_t)f->out_h * f->out_w, oc = f->out_c, cw = n->cw;
    const size_t kh = f->kernel_h, kw = f->kernel_w, segw = pl->segw, kwords = kh * segw;
    const size_t crows = chunk_rows(m, xe_pool_threads(pl->ex->pool));
    const size_t step = pl->ops->oc_step, split = oc_split(m, oc, step, crows);
    const size_t p0 = (task / split) * crows, o0 = (task % split) * step;
    const size_t rows = m - p0 < crows ? m - p0 : crows;
    const size_t ncols = split == 1 ? oc : (oc - o0 < step ? oc - o0 : step);

    uint8_t *scratch = pl->ex->thread_scratch[thread];
    uint8_t *const col_at = scratch;
    if (!xe_is_pointwise(f)) scratch += xe_align_up(kwords * XE_CHUNK_ROWS * 4);
    int32_t *pc = (int32_t *)(void *)scratch;
    scratch += xe_align_up(oc * XE_CHUNK_ROWS * 4);
    float *row = (float *)(void *)scratch;
    scratch += xe_align_up(oc * 4);
    if (xe_is_pointwise(f)) {
        pl->ops->popcounts(n, pl->ex, rows, o0, ncols, pl->pbuf + p0 * cw, cw, pc, scratch);
    } else if (pl->ops->popcounts_rows) {
        const uint32_t *arow[XE_CHUNK_ROWS]; /* rows <= crows <= XE_CHUNK_ROWS */
        size_t oh = p0 / f->out_w, ow = p0 % f->out_w;
        for (size_t r = 0; r < rows; r++) {
            arow[r] = pl->pbuf + ((oh * f->stride_h) * pl->pw_full + ow * f->stride_w) * cw;
            if (++ow == f->out_w) ow = 0, oh++;
        }
        pl->ops->popcounts_rows(n, pl->ex, rows, o0, ncols, arow, kw * cw, pl->pw_full * cw, pc);
    } else if (pl->seg) {
        window_popcounts_seg(pl, p0, rows, o0, ncols, pc);
    } else {
        uint32_t *col = (uint32_t *)(void *)col_at;
        for (size_t r = 0; r < rows; r++) {
            const size_t p = p0 + r, oh = p / f->out_w, ow = p % f->out_w;
            const uint32_t *src =
                pl->pbuf + ((oh * f->stride_h) * pl->pw_full + ow * f->stride_w) * cw;
            for (size_t i = 0; i < kh; i++) {
                uint32_t *dst = col + r * kwords + i * segw;
                copy_words(dst, src + i * pl->pw_full * cw, kw * cw);
                for (size_t u = kw * cw; u < segw; u++) dst[u] = 0;
            }
        }
        pl->ops->popcounts(n, pl->ex, rows, o0, ncols, col, kwords, pc, scratch);
    }

    const int zero_pad = !(f->flags & XE_FLAG_PAD_ONE);
    const int32_t full_n = (int32_t)(f->in_c * kh * kw);
    size_t oh = p0 / f->out_w, ow = p0 % f->out_w;
    for (size_t r = 0; r < rows; r++) {
        int32_t *pr = pc + r * ncols;
        const int border = oh < pl->oh_lo || oh >= pl->oh_hi || ow < pl->ow_lo || ow >= pl->ow_hi;
        const int32_t nreal =
            zero_pad && border ? zero_pad_correct(pl, oh, ow, o0, ncols, pr) : full_n;
        epilogue(pl, p0 + r, o0, ncols, pr, nreal, row);
        if (++ow == f->out_w) ow = 0, oh++;
    }
}

void xe_bconv_run(const xe_node *n, const xe_exec *ex, const void *in, void *out,
                  const xe_bconv_ops *ops) {
    const xe_node_info *f = &n->info;
    bconv_plan pl = {.n = n,
                     .ex = ex,
                     .ops = ops,
                     .in = in,
                     .out = out,
                     .pw_full = (size_t)f->in_w + 2u * f->pad_w};
    uint8_t *sh = ex->shared;
    if (needs_pbuf(f)) {
        const size_t cw = n->cw, rowwords = pl.pw_full * cw;
        uint32_t *pbuf = (uint32_t *)(void *)sh;
        sh += xe_align_up(((size_t)f->in_h + 2u * f->pad_h) * rowwords * 4);
        memset(pbuf, 0, (size_t)f->pad_h * rowwords * 4);
        memset(pbuf + ((size_t)f->pad_h + f->in_h) * rowwords, 0, (size_t)f->pad_h * rowwords * 4);
        pl.pbuf = pbuf;
    } else {
        pl.pbuf = in;
    }
    pl.segw = ops->popcounts_seg ? bconv_seg_words(n, ex->k) : (size_t)f->kernel_w * n->cw;
    pl.seg = ops->popcounts_seg && bconv_seg_layout(n, ex->k) && f->out_w >= XE_SEG_MIN_OUT_W &&
             (ex->k->bgemm_cfg.kr == 1 || (size_t)f->kernel_w * n->cw <= XE_SEG_MAX_ROW_WORDS_KR);
    interior(f->pad_h, f->kernel_h, f->stride_h, f->in_h, f->out_h, &pl.oh_lo, &pl.oh_hi);
    interior(f->pad_w, f->kernel_w, f->stride_w, f->in_w, f->out_w, &pl.ow_lo, &pl.ow_hi);
    pl.ncc = pl.ow_lo + 1 + (f->out_w - pl.ow_hi);
    if (f->flags & XE_FLAG_USE_K) {
        const size_t arows = (size_t)f->in_h + 2u * f->pad_h, pad_floats = f->pad_h * pl.pw_full;
        pl.amap = (float *)(void *)sh;
        sh += xe_align_up(arows * pl.pw_full * 4);
        pl.kmap = (float *)(void *)sh;
        for (size_t i = 0; i < pad_floats; i++)
            pl.amap[i] = pl.amap[(arows - f->pad_h) * pl.pw_full + i] = 0.0f;
    }
    /* Cost hints (ns, one thread, rough): the float pack with its |x| sums
     * about 1 ns per value, a bit copy 8 bytes/ns, K one add per tap; passes
     * below XE_POOL_MIN_PARALLEL_NS run inline (no hand-off, no barrier). */
    const uint64_t in_vals = (uint64_t)f->in_h * f->in_w * f->in_c;
    const uint64_t pack_ns = f->in_dtype == XE_DTYPE_F32 ? (pl.amap ? in_vals : in_vals / 8)
                                                         : (uint64_t)f->in_h * f->in_w * n->cw / 2;
    if (needs_pbuf(f)) xe_pool_run_work(ex->pool, f->in_h, pack_row_task, &pl, pack_ns);
    if (pl.kmap)
        xe_pool_run_work(ex->pool, f->out_h, kmap_row_task, &pl,
                         (uint64_t)f->out_h * f->out_w * f->kernel_h * f->kernel_w);
    const size_t m = (size_t)f->out_h * f->out_w, crows = chunk_rows(m, xe_pool_threads(ex->pool));
    const size_t tasks = (m + crows - 1) / crows * oc_split(m, f->out_c, ops->oc_step, crows);
    xe_pool_run_work(ex->pool, tasks, gemm_task, &pl, f->macs / 128); /* ~128 binary MACs/ns */
}

/* bconv2d's popcounts: the bgemm of the rows with the filters of the channels,
 * packed once for the session's kernel set (bconv_session_prepare). */
static void bconv_popcounts_seg(const xe_node *n, const xe_exec *ex, size_t rows, size_t o0,
                                size_t ncols, size_t seglen, size_t segstride, const uint32_t *a,
                                size_t lda, int32_t *pc, size_t ldc) {
    xe_bgemm_seg(ex->k, rows, o0, ncols, n->info.kernel_h, seglen, segstride, a, lda, ex->prepared,
                 pc, ldc);
}

static void bconv_popcounts(const xe_node *n, const xe_exec *ex, size_t rows, size_t o0,
                            size_t ncols, const uint32_t *a, size_t lda, int32_t *pc,
                            uint8_t *scratch) {
    xe_bgemm(ex->k, rows, o0, ncols, bconv_packed_kw(n, ex->k), a, lda, ex->prepared, pc, ncols);
}

static void bconv_scratch(const xe_node *n, size_t *shared, size_t *per_thread, int *ovf) {
    xe_bconv_scratch(n, 0, shared, per_thread, ovf);
}

/* The session block: the packed filters, then at this byte offset the
 * driver's tables (xe_bconv_tables_fill). */
static size_t bconv_tables_offset(const xe_node *n, const xe_kernels *k) {
    return xe_align_up(xe_bgemm_packed_words(k, n->info.out_c, bconv_packed_kw(n, k)) * 4);
}

static int has_thr(const xe_node *n, const float *s, const float *b) {
    if (!(n->info.flags & XE_FLAG_OUT_BITS)) return 0;
    for (size_t o = 0; o < n->info.out_c; o++)
        if (!isfinite(s[o]) || !isfinite(b[o])) return 0;
    return 1;
}

size_t xe_bconv_tables_bytes(const xe_node *n, const float *scale, const float *bias, int *ovf) {
    size_t bytes = xe_add(XE_ALIGN, xe_align_up(xe_bconv_corr_bytes(n)), ovf);
    return has_thr(n, scale, bias) ? xe_add(bytes, xe_mul(n->info.out_c, 8, ovf), ovf) : bytes;
}

void xe_bconv_tables_fill(const xe_node *n, const float *scale, const float *bias,
                          const int32_t *wpop, uint8_t *at) {
    const xe_node_info *f = &n->info;
    const int thr = has_thr(n, scale, bias);
    *(int32_t *)(void *)at = thr;
    at += XE_ALIGN;
    xe_bconv_corr_fill(n, wpop, (int32_t *)(void *)at);
    if (thr) {
        int32_t *st = (int32_t *)(void *)(at + xe_align_up(xe_bconv_corr_bytes(n)));
        /* n: the largest |dot| of the node, every window tap real */
        xe_bconv_thresholds(scale, bias, f->out_c,
                            (int32_t)((size_t)f->in_c * f->kernel_h * f->kernel_w), st,
                            st + f->out_c);
    }
}

void xe_bconv_tables_get(const xe_node *n, const uint8_t *at, const int32_t **corr,
                         const int32_t **thr) {
    const size_t corr_bytes = xe_bconv_corr_bytes(n);
    const int has = *(const int32_t *)(const void *)at;
    at += XE_ALIGN;
    *corr = corr_bytes ? (const int32_t *)(const void *)at : NULL;
    *thr = has ? (const int32_t *)(const void *)(at + xe_align_up(corr_bytes)) : NULL;
}

static void bconv_run(const xe_node *n, const xe_exec *ex, const void *in, const void *in1,
                      void *out) {
    const int32_t *corr, *thr;
    xe_bconv_tables_get(n, (const uint8_t *)ex->prepared + bconv_tables_offset(n, ex->k), &corr,
                        &thr);
    const xe_bconv_ops ops = {n->pre,      n->params[SCALE],    n->params[BIAS],
                              XE_CHUNK_OC, bconv_popcounts,     corr,
                              thr,         bconv_popcounts_seg, NULL};
    xe_bconv_run(n, ex, in, out, &ops);
}

xe_status xe_bconv_check(xe_loader *ld, const xe_node *n) {
    const xe_node_info *f = &n->info;
    if ((f->flags & XE_FLAG_USE_K) && f->in_dtype != XE_DTYPE_F32)
        return xe_node_fail(ld, "USE_K needs a float32 input, value %u is bits", f->input0);
    if ((f->flags & XE_FLAG_OUT_BITS) && (f->flags & (XE_FLAG_USE_K | XE_FLAG_RELU)))
        return xe_node_fail(ld, "OUT_BITS excludes USE_K and RELU");
    return XE_OK;
}

void xe_bconv_infer(const xe_node *n, uint32_t rec_c, xe_out_shape *o) {
    o->c = rec_c;
    if (n->info.flags & XE_FLAG_OUT_BITS) o->dtype = XE_DTYPE_BITS;
}

void xe_bconv_wpop(const xe_node *n, const uint32_t *bits, int32_t *wpop) {
    const xe_node_info *f = &n->info;
    const size_t taps = (size_t)f->kernel_h * f->kernel_w, oc = f->out_c;
    for (size_t o = 0; o < oc; o++)
        for (size_t t = 0; t < taps; t++) {
            const uint32_t *w = bits + (o * taps + t) * n->cw;
            int32_t pc = 0;
            for (size_t c = 0; c < n->cw; c++) pc += xe_popcount32(w[c]);
            wpop[t * oc + o] = pc;
        }
}

/* n->pre = wpop[KH*KW][OC], the popcount of each tap's weight words: the
 * zero-padding correction (bitpacking rule 7). */
static xe_status bconv_precompute(xe_loader *ld, xe_node *n) {
    const xe_node_info *f = &n->info;
    int ovf = 0;
    const size_t bytes =
        xe_mul(xe_mul((size_t)f->kernel_h * f->kernel_w, f->out_c, &ovf), sizeof(int32_t), &ovf);
    int32_t *wpop = ovf ? NULL : malloc(bytes);
    if (!wpop) return xe_node_oom(ld, "");
    xe_bconv_wpop(n, n->params[W], wpop);
    n->pre = wpop;
    return XE_OK;
}

/* The session keeps the filters packed for its kernel set (kernels.h):
 * OC rows of KH*KW*CW words, packed once at session creation. */

static size_t bconv_session_bytes(const xe_node *n, const xe_kernels *k) {
    const xe_node_info *f = &n->info;
    int ovf = 0;
    (void)xe_mul((size_t)f->kernel_h * f->kernel_w, n->cw, &ovf); /* the window fits size_t */
    const size_t kp = ovf ? 0 : bconv_packed_kw(n, k);
    size_t bytes = xe_align_up(xe_mul(xe_bgemm_packed_words(k, f->out_c, kp), 4, &ovf));
    bytes = xe_add(bytes, xe_bconv_tables_bytes(n, n->params[SCALE], n->params[BIAS], &ovf), &ovf);
    return ovf ? SIZE_MAX : bytes;
}

static void bconv_session_prepare(const xe_node *n, const xe_kernels *k, void *dst) {
    const xe_node_info *f = &n->info;
    const size_t kw = (size_t)f->kernel_h * f->kernel_w * n->cw;
    if (bconv_seg_layout(n, k))
        xe_bgemm_pack_seg(k, f->out_c, f->kernel_h, (size_t)f->kernel_w * n->cw, n->params[W], kw,
                          dst);
    else
        xe_bgemm_pack(k, f->out_c, kw, n->params[W], kw, dst);
    xe_bconv_tables_fill(n, n->params[SCALE], n->params[BIAS], n->pre,
                         (uint8_t *)dst + bconv_tables_offset(n, k));
}

const xe_op_def xe_op_bconv2d = {
    .op = XE_OP_BCONV2D,
    .name = "bconv2d",
    .flags = XE_FLAG_RELU | XE_FLAG_PAD_ONE | XE_FLAG_USE_K | XE_FLAG_OUT_BITS,
    .n_params = 3,
    .param_dtypes = {XE_DTYPE_BITS, XE_DTYPE_F32, XE_DTYPE_F32},
    .windowed = 1,
    .bits_input = 1,
    .check = xe_bconv_check,
    .infer = xe_bconv_infer,
    .param_sizes = xe_binary_weight_sizes,
    .bind = xe_binary_weight_bind,
    .precompute = bconv_precompute,
    .destroy = xe_free_pre,
    .scratch = bconv_scratch,
    .session_bytes = bconv_session_bytes,
    .session_prepare = bconv_session_prepare,
    .run = bconv_run,
    .fuse_post = 1,
    .fuse_pre = 1,
};
