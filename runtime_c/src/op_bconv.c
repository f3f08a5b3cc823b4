/*
 * op_bconv.c - the XNOR convolution (bconv2d) and sign.
 *
 * Maths. With bit 1 = -1 and n real +-1 pairs, dot = n - 2*popcount(x XOR w)
 * (docs/bitpacking.md rule 6). The input is packed once into a spatially
 * padded buffer whose pad words are 0 (= +1 in every channel); each output
 * position's window is then KH rows of KW*CW contiguous words, copied with
 * one memcpy per kernel row (im2col of packed words), and the bgemm kernel
 * gives pc[p][oc] = popcount over the whole window, pad taps included.
 *   +1 padding:   dot = IC*KH*KW - 2*pc            (pad taps are real +1s)
 *   zero padding: a pad tap must contribute 0. Its term in pc is
 *                 popcount(0 XOR w_tap) = wpop[tap][oc] (precomputed at load),
 *                 so pc' = pc - sum_{pad taps} wpop[tap][oc], n = IC * t_valid,
 *                 dot = n - 2*pc'. Only border positions pay for the sum.
 * Channel-padding bits are 0 in both operands and never count (rule 5).
 * Epilogue: y = dot * scale[oc] * K[p] + bias[oc], then optional ReLU; or with
 * OUT_BITS, bit = (dot * scale[oc] + bias[oc] < 0). K = box(A), A = mean_c |x|,
 * the box over the same window with zero padding and divisor KH*KW.
 * Bounds: a window holds at most 64*64*65535 bits < 2^28, so int32 is exact;
 * (float)dot is exact below 2^24 and deterministic above.
 */
#include <math.h>
#include <string.h>

#include "ops.h"

typedef struct bconv_plan {
    const xe_node *n;
    const xe_exec *ex;
    const void *in;
    void *out;
    const uint32_t *pbuf; /* padded packed input [PH][PW][CW] */
    size_t pw_full;       /* PW: padded width */
    float *amap;          /* [IH][IW] when USE_K */
    float *kmap;          /* [OH][OW] when USE_K */
} bconv_plan;

static size_t align_up(size_t v) { return (v + XE_ALIGN - 1) / XE_ALIGN * XE_ALIGN; }

static int needs_pbuf(const xe_node_info *f) {
    return f->in_dtype == XE_DTYPE_F32 || f->pad_h || f->pad_w;
}

static int is_pointwise(const xe_node_info *f) {
    return f->kernel_h == 1 && f->kernel_w == 1 && f->stride_h == 1 && f->stride_w == 1;
}

void xe_bconv_scratch(const xe_node *n, size_t *shared, size_t *per_thread, int *ovf) {
    const xe_node_info *f = &n->info;
    const size_t taps = (size_t)f->kernel_h * f->kernel_w, cw = n->cw, oc = f->out_c;
    size_t sh = 0;
    if (needs_pbuf(f)) {
        const size_t ph = (size_t)f->in_h + 2u * f->pad_h, pw = (size_t)f->in_w + 2u * f->pad_w;
        sh = align_up(xe_mul(xe_mul(xe_mul(ph, pw, ovf), cw, ovf), 4, ovf));
    }
    if (f->flags & XE_FLAG_USE_K) {
        sh = xe_add(sh, align_up(xe_mul((size_t)f->in_h * f->in_w, 4, ovf)), ovf);
        sh = xe_add(sh, align_up(xe_mul((size_t)f->out_h * f->out_w, 4, ovf)), ovf);
    }
    size_t pt = 0;
    if (!is_pointwise(f)) pt = align_up(xe_mul(xe_mul(taps * cw, XE_CHUNK_ROWS, ovf), 4, ovf));
    pt = xe_add(pt, align_up(xe_mul(oc, XE_CHUNK_ROWS * 4, ovf)), ovf); /* popcounts */
    pt = xe_add(pt, align_up(xe_mul(oc, 4, ovf)), ovf);                 /* corrections */
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
        pl->ex->k->pack(iw, ic, x, ic, row + pw * cw, cw);
        if (pl->amap) {
            const float inv = 1.0f / (float)ic;
            for (size_t w = 0; w < iw; w++) {
                float s = 0.0f;
                for (size_t c = 0; c < ic; c++) s += fabsf(x[w * ic + c]);
                pl->amap[h * iw + w] = s * inv;
            }
        }
    } else {
        memcpy(row + pw * cw, (const uint32_t *)pl->in + h * iw * cw, iw * cw * 4);
    }
}

/* Pass 2 (USE_K), one task per output row: K = box(A). */
static void kmap_row_task(void *ctx, size_t oh, uint32_t thread) {
    const bconv_plan *pl = ctx;
    const xe_node_info *f = &pl->n->info;
    const float inv = 1.0f / (float)(f->kernel_h * f->kernel_w);
    const long h0 = (long)(oh * f->stride_h) - (long)f->pad_h;
    for (size_t ow = 0; ow < f->out_w; ow++) {
        const long w0 = (long)(ow * f->stride_w) - (long)f->pad_w;
        float s = 0.0f;
        for (long a = h0 < 0 ? 0 : h0; a < h0 + (long)f->kernel_h && a < (long)f->in_h; a++)
            for (long b = w0 < 0 ? 0 : w0; b < w0 + (long)f->kernel_w && b < (long)f->in_w; b++)
                s += pl->amap[(size_t)a * f->in_w + (size_t)b];
        pl->kmap[oh * f->out_w + ow] = s * inv;
    }
}

/* Pass 3, one task per chunk of output rows (x channel chunk): im2col of
 * packed words, bgemm, epilogue. */
static void gemm_task(void *ctx, size_t task, uint32_t thread) {
    const bconv_plan *pl = ctx;
    const xe_node *n = pl->n;
    const xe_node_info *f = &n->info;
    const size_t m = (size_t)f->out_h * f->out_w, oc = f->out_c, cw = n->cw;
    const size_t kh = f->kernel_h, kw = f->kernel_w, taps = kh * kw, kwords = taps * cw;
    const size_t split = xe_oc_split(m, oc);
    const size_t p0 = (task / split) * XE_CHUNK_ROWS, o0 = (task % split) * XE_CHUNK_OC;
    const size_t rows = m - p0 < XE_CHUNK_ROWS ? m - p0 : XE_CHUNK_ROWS;
    const size_t ncols = split == 1 ? oc : (oc - o0 < XE_CHUNK_OC ? oc - o0 : XE_CHUNK_OC);

    uint8_t *scratch = pl->ex->thread_scratch[thread];
    const uint32_t *a;
    size_t lda;
    if (is_pointwise(f)) {
        a = pl->pbuf + p0 * cw;
        lda = cw;
    } else {
        uint32_t *col = (uint32_t *)(void *)scratch;
        scratch += align_up(kwords * XE_CHUNK_ROWS * 4);
        for (size_t r = 0; r < rows; r++) {
            const size_t p = p0 + r, oh = p / f->out_w, ow = p % f->out_w;
            const uint32_t *src =
                pl->pbuf + ((oh * f->stride_h) * pl->pw_full + ow * f->stride_w) * cw;
            for (size_t i = 0; i < kh; i++)
                memcpy(col + r * kwords + i * kw * cw, src + i * pl->pw_full * cw, kw * cw * 4);
        }
        a = col;
        lda = kwords;
    }
    int32_t *pc = (int32_t *)(void *)scratch;
    scratch += align_up(oc * XE_CHUNK_ROWS * 4);
    int32_t *corr = (int32_t *)(void *)scratch;
    pl->ex->k->bgemm(rows, ncols, kwords, a, lda, n->w_bits + o0 * kwords, kwords, pc, ncols);

    const int zero_pad = !(f->flags & XE_FLAG_PAD_ONE);
    const int relu = (f->flags & XE_FLAG_RELU) != 0;
    const int out_bits = (f->flags & XE_FLAG_OUT_BITS) != 0;
    const float *scale = n->scale + o0, *bias = n->bias + o0;
    const int32_t full_n = (int32_t)(f->in_c * taps);
    for (size_t r = 0; r < rows; r++) {
        const size_t p = p0 + r, oh = p / f->out_w, ow = p % f->out_w;
        int32_t *pr = pc + r * ncols;
        int32_t nreal = full_n;
        if (zero_pad) {
            /* Valid tap ranges [a0, a1) x [b0, b1) of this window. */
            const long h0 = (long)(oh * f->stride_h) - (long)f->pad_h;
            const long w0 = (long)(ow * f->stride_w) - (long)f->pad_w;
            const long a0 = h0 < 0 ? -h0 : 0, b0 = w0 < 0 ? -w0 : 0;
            const long a1 = (long)f->in_h - h0 < (long)kh ? (long)f->in_h - h0 : (long)kh;
            const long b1 = (long)f->in_w - w0 < (long)kw ? (long)f->in_w - w0 : (long)kw;
            const long valid = (a1 - a0) * (b1 - b0);
            if (valid != (long)taps) {
                memset(corr, 0, ncols * 4);
                for (long i = 0; i < (long)kh; i++)
                    for (long jj = 0; jj < (long)kw; jj++) {
                        if (i >= a0 && i < a1 && jj >= b0 && jj < b1) continue;
                        const int32_t *wp = n->wpop + ((size_t)i * kw + (size_t)jj) * oc + o0;
                        for (size_t o = 0; o < ncols; o++) corr[o] += wp[o];
                    }
                for (size_t o = 0; o < ncols; o++) pr[o] -= corr[o];
                nreal = (int32_t)(f->in_c * (size_t)valid);
            }
        }
        if (out_bits) {
            uint32_t *yw = (uint32_t *)pl->out + p * ((oc + 31) / 32) + o0 / 32;
            for (size_t o = 0; o < ncols; o += 32) {
                uint32_t word = 0;
                const size_t lim = ncols - o < 32 ? ncols - o : 32;
                for (size_t b = 0; b < lim; b++) {
                    const float v = (float)(nreal - 2 * pr[o + b]) * scale[o + b] + bias[o + b];
                    word |= (uint32_t)(v < 0.0f) << b;
                }
                yw[o / 32] = word;
            }
        } else {
            float *y = (float *)pl->out + p * oc + o0;
            const float kp = pl->kmap ? pl->kmap[p] : 1.0f;
            if (pl->kmap) {
                for (size_t o = 0; o < ncols; o++)
                    y[o] = (float)(nreal - 2 * pr[o]) * scale[o] * kp + bias[o];
            } else {
                for (size_t o = 0; o < ncols; o++)
                    y[o] = (float)(nreal - 2 * pr[o]) * scale[o] + bias[o];
            }
            if (relu)
                for (size_t o = 0; o < ncols; o++) y[o] = y[o] < 0.0f ? 0.0f : y[o];
        }
    }
}

void xe_run_bconv(const xe_node *n, const xe_exec *ex, const void *in, void *out) {
    const xe_node_info *f = &n->info;
    bconv_plan pl = {n, ex, in, out, NULL, (size_t)f->in_w + 2u * f->pad_w, NULL, NULL};
    uint8_t *sh = ex->shared;
    if (needs_pbuf(f)) {
        const size_t cw = n->cw, rowwords = pl.pw_full * cw;
        uint32_t *pbuf = (uint32_t *)(void *)sh;
        sh += align_up(((size_t)f->in_h + 2u * f->pad_h) * rowwords * 4);
        memset(pbuf, 0, (size_t)f->pad_h * rowwords * 4);
        memset(pbuf + ((size_t)f->pad_h + f->in_h) * rowwords, 0, (size_t)f->pad_h * rowwords * 4);
        pl.pbuf = pbuf;
    } else {
        pl.pbuf = in;
    }
    if (f->flags & XE_FLAG_USE_K) {
        pl.amap = (float *)(void *)sh;
        sh += align_up((size_t)f->in_h * f->in_w * 4);
        pl.kmap = (float *)(void *)sh;
    }
    if (needs_pbuf(f)) xe_pool_run(ex->pool, f->in_h, pack_row_task, &pl);
    if (pl.kmap) xe_pool_run(ex->pool, f->out_h, kmap_row_task, &pl);
    const size_t m = (size_t)f->out_h * f->out_w;
    const size_t tasks = (m + XE_CHUNK_ROWS - 1) / XE_CHUNK_ROWS * xe_oc_split(m, f->out_c);
    xe_pool_run(ex->pool, tasks, gemm_task, &pl);
}

typedef struct sign_job {
    const xe_node *n;
    const xe_exec *ex;
    const float *in;
    uint32_t *out;
} sign_job;

static void sign_task(void *ctx, size_t h, uint32_t thread) {
    const sign_job *j = ctx;
    const xe_node_info *f = &j->n->info;
    const size_t iw = f->in_w, ic = f->in_c, cw = j->n->cw;
    j->ex->k->pack(iw, ic, j->in + h * iw * ic, ic, j->out + h * iw * cw, cw);
}

void xe_run_sign(const xe_node *n, const xe_exec *ex, const float *in, uint32_t *out) {
    sign_job j = {n, ex, in, out};
    xe_pool_run(ex->pool, n->info.in_h, sign_task, &j);
}
