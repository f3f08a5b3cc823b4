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
    float *amap;          /* [IH][IW] when USE_K */
    float *kmap;          /* [OH][OW] when USE_K */
} bconv_plan;

static int needs_pbuf(const xe_node_info *f) {
    return f->in_dtype == XE_DTYPE_F32 || f->pad_h || f->pad_w;
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
        sh = xe_add(sh, xe_align_up(xe_mul((size_t)f->in_h * f->in_w, 4, ovf)), ovf);
        sh = xe_add(sh, xe_align_up(xe_mul((size_t)f->out_h * f->out_w, 4, ovf)), ovf);
    }
    size_t pt = 0;
    if (!xe_is_pointwise(f))
        pt = xe_align_up(xe_mul(xe_mul(taps * cw, XE_CHUNK_ROWS, ovf), 4, ovf));
    pt = xe_add(pt, xe_align_up(xe_mul(oc, XE_CHUNK_ROWS * 4, ovf)), ovf); /* popcounts */
    pt = xe_add(pt, xe_align_up(xe_mul(oc, 4, ovf)), ovf);                 /* corrections */
    pt = xe_add(pt, xe_align_up(extra), ovf);                              /* the op's own */
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
    long a0, a1;
    xe_tap_range(h0, f->kernel_h, f->in_h, &a0, &a1);
    for (size_t ow = 0; ow < f->out_w; ow++) {
        const long w0 = (long)(ow * f->stride_w) - (long)f->pad_w;
        long b0, b1;
        xe_tap_range(w0, f->kernel_w, f->in_w, &b0, &b1);
        float s = 0.0f;
        for (long a = h0 + a0; a < h0 + a1; a++)
            for (long b = w0 + b0; b < w0 + b1; b++) s += pl->amap[(size_t)a * f->in_w + (size_t)b];
        pl->kmap[oh * f->out_w + ow] = s * inv;
    }
}

/* Zero padding: removes the pad taps of output position p from its popcounts
 * pr[0..ncols) and returns the number of real +-1 pairs of its window. */
static int32_t zero_pad_correct(const xe_node *n, const int32_t *wpop, size_t p, size_t o0,
                                size_t ncols, int32_t *pr, int32_t *corr) {
    const xe_node_info *f = &n->info;
    const size_t oh = p / f->out_w, ow = p % f->out_w, oc = f->out_c;
    const long kh = (long)f->kernel_h, kw = (long)f->kernel_w;
    long a0, a1, b0, b1;
    xe_tap_range((long)(oh * f->stride_h) - (long)f->pad_h, f->kernel_h, f->in_h, &a0, &a1);
    xe_tap_range((long)(ow * f->stride_w) - (long)f->pad_w, f->kernel_w, f->in_w, &b0, &b1);
    const long valid = (a1 - a0) * (b1 - b0);
    if (valid == kh * kw) return (int32_t)(f->in_c * (size_t)valid);
    memset(corr, 0, ncols * 4);
    for (long i = 0; i < kh; i++)
        for (long jj = 0; jj < kw; jj++) {
            if (i >= a0 && i < a1 && jj >= b0 && jj < b1) continue;
            const int32_t *wp = wpop + ((size_t)i * (size_t)kw + (size_t)jj) * oc + o0;
            for (size_t o = 0; o < ncols; o++) corr[o] += wp[o];
        }
    for (size_t o = 0; o < ncols; o++) pr[o] -= corr[o];
    return (int32_t)(f->in_c * (size_t)valid);
}

/* The epilogue of output position p, channels [o0, o0 + ncols). */
static void epilogue(const bconv_plan *pl, size_t p, size_t o0, size_t ncols, const int32_t *pr,
                     int32_t nreal) {
    const xe_node *n = pl->n;
    const xe_node_info *f = &n->info;
    const size_t oc = f->out_c;
    const float *scale = pl->ops->scale + o0;
    const float *bias = pl->ops->bias + o0;
    if (f->flags & XE_FLAG_OUT_BITS) {
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
        return;
    }
    float *y = (float *)pl->out + p * oc + o0;
    if (pl->kmap) {
        const float kp = pl->kmap[p];
        for (size_t o = 0; o < ncols; o++)
            y[o] = (float)(nreal - 2 * pr[o]) * scale[o] * kp + bias[o];
    } else {
        for (size_t o = 0; o < ncols; o++) y[o] = (float)(nreal - 2 * pr[o]) * scale[o] + bias[o];
    }
    if (f->flags & XE_FLAG_RELU)
        for (size_t o = 0; o < ncols; o++) y[o] = y[o] < 0.0f ? 0.0f : y[o];
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

/* Pass 3, one task per chunk of output rows (x channel chunk): im2col of
 * packed words, the op's popcounts, epilogue. */
static void gemm_task(void *ctx, size_t task, uint32_t thread) {
    const bconv_plan *pl = ctx;
    const xe_node *n = pl->n;
    const xe_node_info *f = &n->info;
    const size_t m = (size_t)f->out_h * f->out_w, oc = f->out_c, cw = n->cw;
    const size_t kh = f->kernel_h, kw = f->kernel_w, kwords = kh * kw * cw;
    const size_t crows = chunk_rows(m, xe_pool_threads(pl->ex->pool));
    const size_t step = pl->ops->oc_step, split = oc_split(m, oc, step, crows);
    const size_t p0 = (task / split) * crows, o0 = (task % split) * step;
    const size_t rows = m - p0 < crows ? m - p0 : crows;
    const size_t ncols = split == 1 ? oc : (oc - o0 < step ? oc - o0 : step);

    uint8_t *scratch = pl->ex->thread_scratch[thread];
    const uint32_t *a;
    size_t lda;
    if (xe_is_pointwise(f)) {
        a = pl->pbuf + p0 * cw;
        lda = cw;
    } else {
        uint32_t *col = (uint32_t *)(void *)scratch;
        scratch += xe_align_up(kwords * XE_CHUNK_ROWS * 4);
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
    scratch += xe_align_up(oc * XE_CHUNK_ROWS * 4);
    int32_t *corr = (int32_t *)(void *)scratch;
    scratch += xe_align_up(oc * 4);
    pl->ops->popcounts(n, pl->ex, rows, o0, ncols, a, lda, pc, scratch);

    const int zero_pad = !(f->flags & XE_FLAG_PAD_ONE);
    const int32_t full_n = (int32_t)(f->in_c * kh * kw);
    for (size_t r = 0; r < rows; r++) {
        int32_t *pr = pc + r * ncols;
        const int32_t nreal =
            zero_pad ? zero_pad_correct(n, pl->ops->wpop, p0 + r, o0, ncols, pr, corr) : full_n;
        epilogue(pl, p0 + r, o0, ncols, pr, nreal);
    }
}

void xe_bconv_run(const xe_node *n, const xe_exec *ex, const void *in, void *out,
                  const xe_bconv_ops *ops) {
    const xe_node_info *f = &n->info;
    bconv_plan pl = {n, ex, ops, in, out, NULL, (size_t)f->in_w + 2u * f->pad_w, NULL, NULL};
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
    if (f->flags & XE_FLAG_USE_K) {
        pl.amap = (float *)(void *)sh;
        sh += xe_align_up((size_t)f->in_h * f->in_w * 4);
        pl.kmap = (float *)(void *)sh;
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
static void bconv_popcounts(const xe_node *n, const xe_exec *ex, size_t rows, size_t o0,
                            size_t ncols, const uint32_t *a, size_t lda, int32_t *pc,
                            uint8_t *scratch) {
    const size_t kwords = (size_t)n->info.kernel_h * n->info.kernel_w * n->cw;
    xe_bgemm(ex->k, rows, o0, ncols, kwords, a, lda, ex->prepared, pc, ncols);
}

static void bconv_scratch(const xe_node *n, size_t *shared, size_t *per_thread, int *ovf) {
    xe_bconv_scratch(n, 0, shared, per_thread, ovf);
}

static void bconv_run(const xe_node *n, const xe_exec *ex, const void *in, const void *in1,
                      void *out) {
    const xe_bconv_ops ops = {n->pre, n->params[SCALE], n->params[BIAS], XE_CHUNK_OC,
                              bconv_popcounts};
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
            for (size_t c = 0; c < n->cw; c++) {
                uint32_t v = w[c]; /* SWAR popcount (portable; no per-bit loop at load) */
                v = v - ((v >> 1) & 0x55555555u);
                v = (v & 0x33333333u) + ((v >> 2) & 0x33333333u);
                v = (v + (v >> 4)) & 0x0F0F0F0Fu;
                pc += (int32_t)((v * 0x01010101u) >> 24);
            }
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
    const size_t kw = xe_mul((size_t)f->kernel_h * f->kernel_w, n->cw, &ovf);
    const size_t bytes = xe_mul(xe_bgemm_packed_words(k, f->out_c, kw), 4, &ovf);
    return ovf ? SIZE_MAX : bytes;
}

static void bconv_session_prepare(const xe_node *n, const xe_kernels *k, void *dst) {
    const xe_node_info *f = &n->info;
    const size_t kw = (size_t)f->kernel_h * f->kernel_w * n->cw;
    xe_bgemm_pack(k, f->out_c, kw, n->params[W], kw, dst);
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
};
