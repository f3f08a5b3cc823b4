/*
 * xe_test_model.h - writes model files (docs/format.md) from C, for tests.
 *
 * An independent writer: it shares no code with the loader (its CRC-32 is the
 * bitwise form, its shape inference its own), so a misreading of the spec on
 * one side shows up as a test failure instead of cancelling out.
 *
 *   xtm t; xtm_init(&t, h, w, c);
 *   uint32_t p = xtm_param(&t, XTM_F32, data, count);          (params first)
 *   uint32_t v = xtm_node(&t, XE_OP_CONV2D, flags, in0, in1,
 *                         kh, kw, sh, sw, ph, pw, oc, p, 2);    (returns its value id)
 *   size_t n; uint8_t *file = xtm_write(&t, &n);                (malloc'ed; free it)
 *   xtm_free(&t);
 */
#ifndef XE_TEST_MODEL_H
#define XE_TEST_MODEL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xnor_edge.h"

/* Test-failure counter and a CHECK that records a failure with its line and
 * keeps going, for the tests that share this header. */
static int g_fail __attribute__((unused)) = 0; /* make_seeds.c includes this too */
#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            printf("FAIL line %d: ", __LINE__);                                                    \
            printf(__VA_ARGS__);                                                                   \
            printf("\n");                                                                          \
            g_fail++;                                                                              \
        }                                                                                          \
    } while (0)

#define XTM_F32 0u
#define XTM_BITS 1u
#define XTM_NONE 0xFFFFFFFFu

/* bconv2d_mst (docs/format.md): ids 32+ are compressed forms of binary ops. */
#define XTM_OP_BCONV2D_MST 32u
/* Ops after format version 1's xe_op enum: their ids from docs/format.md. */
#define XTM_OP_PRELU 13u
#define XTM_OP_CLIP 14u
#define XTM_OP_SIGN_SHIFT 15u
#define XTM_OP_CONCAT 16u
#define XTM_OP_FLATTEN 17u
#define XTM_OP_DWCONV2D 18u
#define XTM_OP_PAD 19u
/* Window padding (top, left) from the pad fields, (bottom, right) from the
 * output size, which the writer's symmetric rule does not know: the caller
 * sets oh/ow and the value's h/w (test_ops.c, add_avg_excl). */
#define XTM_OP_AVGPOOL_EXCL_PAD 20u
/* Grouped, dilated conv: kernel fields = the dilated extent, params config
 * (u32 groups, dilation h, dilation w, 0), weights [OC][KH][KW][IC/G], bias. */
#define XTM_OP_GCONV2D 21u

typedef struct xtm_param_rec {
    uint32_t dtype;
    uint64_t count;
    const void *data; /* count 4-byte elements, owned by the caller */
} xtm_param_rec;

typedef struct xtm_node_rec {
    uint32_t op, flags, in0, in1, kh, kw, sh, sw, ph, pw, oc, oh, ow, pfirst, pcount;
} xtm_node_rec;

typedef struct xtm_value {
    uint32_t h, w, c, dtype;
} xtm_value;

typedef struct xtm {
    uint32_t ih, iw, ic;
    const char *meta;
    uint32_t nn, np, cap_n, cap_p;
    xtm_node_rec *nodes;
    xtm_param_rec *params;
    xtm_value *values; /* nn + 1 */
    /* uint8 input (header flag U8_INPUT): the param holding the [C][256]
     * table, or XTM_NONE for a float-only model. */
    uint32_t u8_table;
} xtm;

static inline void xtm_init(xtm *t, uint32_t h, uint32_t w, uint32_t c) {
    memset(t, 0, sizeof *t);
    t->ih = h;
    t->iw = w;
    t->ic = c;
    t->meta = "{\"name\": \"test\"}";
    t->cap_n = t->cap_p = 64;
    t->nodes = calloc(t->cap_n, sizeof *t->nodes);
    t->params = calloc(t->cap_p, sizeof *t->params);
    t->values = calloc(t->cap_n + 1, sizeof *t->values);
    if (!t->nodes || !t->params || !t->values) {
        fprintf(stderr, "xtm: out of memory\n");
        exit(2);
    }
    t->values[0] = (xtm_value){h, w, c, XTM_F32};
    t->u8_table = XTM_NONE;
}

static inline void xtm_free(xtm *t) {
    free(t->nodes);
    free(t->params);
    free(t->values);
    memset(t, 0, sizeof *t);
}

static inline uint32_t xtm_param(xtm *t, uint32_t dtype, const void *data, uint64_t count) {
    if (t->np == t->cap_p) {
        t->cap_p *= 2;
        t->params = realloc(t->params, t->cap_p * sizeof *t->params);
        if (!t->params) exit(2);
    }
    t->params[t->np] = (xtm_param_rec){dtype, count, data};
    return t->np++;
}

/* Adds a node; out_c is used by conv-like ops and dense and ignored (taken
 * from the input) by the others. Output shape and type follow docs/format.md. */
static inline uint32_t xtm_node(xtm *t, uint32_t op, uint32_t flags, uint32_t in0, uint32_t in1,
                                uint32_t kh, uint32_t kw, uint32_t sh, uint32_t sw, uint32_t ph,
                                uint32_t pw, uint32_t out_c, uint32_t pfirst, uint32_t pcount) {
    if (t->nn == t->cap_n) {
        t->cap_n *= 2;
        t->nodes = realloc(t->nodes, t->cap_n * sizeof *t->nodes);
        t->values = realloc(t->values, (t->cap_n + 1) * sizeof *t->values);
        if (!t->nodes || !t->values) exit(2);
    }
    const xtm_value in = t->values[in0 <= t->nn ? in0 : 0];
    xtm_value o = in;
    if (kh) {
        o.h = (in.h + 2 * ph - kh) / sh + 1;
        o.w = (in.w + 2 * pw - kw) / sw + 1;
    }
    switch (op) {
    case XE_OP_CONV2D:
    case XE_OP_BWN_CONV2D:
    case XTM_OP_DWCONV2D:
    case XTM_OP_GCONV2D:
        o.c = out_c;
        o.dtype = XTM_F32;
        break;
    case XE_OP_BCONV2D:
    case XTM_OP_BCONV2D_MST:
        o.c = out_c;
        o.dtype = (flags & XE_FLAG_OUT_BITS) ? XTM_BITS : XTM_F32;
        break;
    case XE_OP_DENSE:
        o = (xtm_value){1, 1, out_c, XTM_F32};
        break;
    case XE_OP_GLOBAL_AVGPOOL:
        o.h = o.w = 1;
        break;
    case XE_OP_SIGN:
    case XTM_OP_SIGN_SHIFT:
        o.dtype = XTM_BITS;
        break;
    case XTM_OP_FLATTEN:
        o = (xtm_value){1, 1, in.h * in.w * in.c, XTM_F32};
        break;
    case XTM_OP_CONCAT:
        o.c = in.c + t->values[in1 <= t->nn ? in1 : 0].c;
        break;
    case XTM_OP_PAD: /* window (1 + top + bottom, 1 + left + right), pad (top, left) */
        o.h = in.h + kh - 1;
        o.w = in.w + kw - 1;
        break;
    default:
        break;
    }
    t->nodes[t->nn] =
        (xtm_node_rec){op, flags, in0, in1, kh, kw, sh, sw, ph, pw, o.c, o.h, o.w, pfirst, pcount};
    t->values[t->nn + 1] = o;
    return ++t->nn;
}

static inline uint32_t xtm_crc32(const uint8_t *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
    }
    return ~c;
}

static inline void xtm_put32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static inline void xtm_put64(uint8_t *p, uint64_t v) {
    xtm_put32(p, (uint32_t)v);
    xtm_put32(p + 4, (uint32_t)(v >> 32));
}

static inline uint32_t xtm_get32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t xtm_get64(const uint8_t *p) {
    return (uint64_t)xtm_get32(p) | (uint64_t)xtm_get32(p + 4) << 32;
}

/* Recomputes the CRC-32 after a test edits a file, so that the structural
 * check (not the checksum) is what rejects it. */
static inline void xtm_fix_crc(uint8_t *file, size_t size) {
    xtm_put32(file + size - 8, xtm_crc32(file, size - 8));
}

/* Serialises the model: header, metadata, node table, param table, data
 * blobs at multiples of 64, trailer. Returns a malloc'ed buffer (64-aligned). */
static inline uint8_t *xtm_write(const xtm *t, size_t *size_out) {
    const uint64_t meta_size = strlen(t->meta);
    const uint64_t nodes_off = (128 + meta_size + 1 + 7) / 8 * 8;
    const uint64_t params_off = nodes_off + 64ull * t->nn;
    uint64_t off = (params_off + 32ull * t->np + 63) / 64 * 64;
    uint64_t *offs = calloc(t->np + 1, sizeof *offs);
    for (uint32_t i = 0; i < t->np; i++) {
        offs[i] = off;
        off = (off + 4 * t->params[i].count + 63) / 64 * 64;
    }
    const uint64_t size = off + 8;
    uint8_t *f = NULL;
    if (posix_memalign((void **)&f, 64, (size_t)size) != 0) exit(2);
    memset(f, 0, (size_t)size);
    memcpy(f, "XNOREDGE", 8);
    xtm_put32(f + 8, XE_FORMAT_VERSION);
    xtm_put32(f + 12, XE_PACKING_VERSION);
    xtm_put64(f + 16, size);
    xtm_put32(f + 24, 128);
    if (t->u8_table != XTM_NONE) {
        xtm_put32(f + 28, 1u);
        xtm_put32(f + 52, t->u8_table);
    }
    xtm_put32(f + 32, t->ih);
    xtm_put32(f + 36, t->iw);
    xtm_put32(f + 40, t->ic);
    xtm_put32(f + 44, t->nn);
    xtm_put32(f + 48, t->np);
    xtm_put64(f + 56, 128);
    xtm_put64(f + 64, meta_size);
    xtm_put64(f + 72, nodes_off);
    xtm_put64(f + 80, params_off);
    memcpy(f + 128, t->meta, (size_t)meta_size);
    for (uint32_t i = 0; i < t->nn; i++) {
        const xtm_node_rec *n = &t->nodes[i];
        uint8_t *r = f + nodes_off + 64ull * i;
        const uint32_t fields[15] = {n->op, n->flags, n->in0, n->in1,    n->kh,
                                     n->kw, n->sh,    n->sw,  n->ph,     n->pw,
                                     n->oc, n->oh,    n->ow,  n->pfirst, n->pcount};
        for (int k = 0; k < 15; k++) xtm_put32(r + 4 * k, fields[k]);
    }
    for (uint32_t i = 0; i < t->np; i++) {
        uint8_t *e = f + params_off + 32ull * i;
        xtm_put32(e, t->params[i].dtype);
        xtm_put64(e + 8, offs[i]);
        xtm_put64(e + 16, t->params[i].count);
        const uint8_t *src = t->params[i].data;
        for (uint64_t k = 0; k < t->params[i].count; k++) {
            uint32_t v;
            memcpy(&v, src + 4 * k, 4);
            xtm_put32(f + offs[i] + 4 * k, v);
        }
    }
    memcpy(f + size - 4, "XEND", 4);
    xtm_fix_crc(f, (size_t)size);
    free(offs);
    *size_out = (size_t)size;
    return f;
}

/* The five u32 MST params (tree, roots, offsets, index, mask) of a bconv2d_mst
 * node, written from docs/format.md alone. */
typedef struct xtm_mst {
    uint32_t *p[5];
    uint64_t n[5];
} xtm_mst;

/* Codes filters w [oc][L] (L = taps*cw words) along the tree given by `order`
 * (chunk by chunk, parents first) and parent[] (0xFFFFFFFF: root), in
 * encoding 1 (word masks) or 2 (bit indices); max_depth is stored as given. */
static inline void xtm_mst_encode(const uint32_t *w, uint32_t oc, uint64_t L, uint32_t enc,
                                  uint32_t chunk, uint32_t max_depth, const uint32_t *order,
                                  const uint32_t *parent, xtm_mst *c) {
    const uint64_t span = enc == 1 ? L : 32 * L, width = span <= 65536 ? 16 : 32;
    uint64_t nroots = 0, nent = 0;
    for (uint32_t q = 0; q < oc; q++) {
        const uint32_t ch = order[q];
        if (parent[ch] == XTM_NONE) {
            nroots++;
            continue;
        }
        for (uint64_t j = 0; j < L; j++) {
            const uint32_t m = w[(uint64_t)ch * L + j] ^ w[(uint64_t)parent[ch] * L + j];
            nent += enc == 1 ? (m != 0) : (uint64_t)__builtin_popcount(m);
        }
    }
    c->n[0] = 8 + 2ull * oc;
    c->n[1] = nroots * L;
    c->n[2] = oc + 1ull;
    c->n[3] = (nent * width + 31) / 32;
    c->n[4] = enc == 1 ? nent : 0;
    for (int k = 0; k < 5; k++) c->p[k] = calloc(c->n[k] + 1, 4);
    uint32_t *t = c->p[0], *idx16 = c->p[3];
    const uint32_t hdr[8] = {
        enc, chunk, max_depth, (uint32_t)nroots, (uint32_t)nent, (uint32_t)width, 0, 0};
    memcpy(t, hdr, sizeof hdr);
    memcpy(t + 8, order, 4ull * oc);
    memcpy(t + 8 + oc, parent, 4ull * oc);
    uint64_t r = 0, e = 0;
    /* Entries are stored by channel (offsets index channels), roots by order. */
    for (uint32_t q = 0; q < oc; q++)
        if (parent[order[q]] == XTM_NONE)
            memcpy(c->p[1] + (r++) * L, w + (uint64_t)order[q] * L, 4 * L);
    for (uint32_t ch = 0; ch < oc; ch++) {
        c->p[2][ch] = (uint32_t)e;
        if (parent[ch] == XTM_NONE) continue;
        for (uint64_t j = 0; j < L; j++) {
            const uint32_t m = w[(uint64_t)ch * L + j] ^ w[(uint64_t)parent[ch] * L + j];
            for (uint32_t b = 0; b < 32; b++) {
                if (enc == 1 ? (b > 0 || !m) : !((m >> b) & 1u)) continue;
                const uint32_t v = enc == 1 ? (uint32_t)j : (uint32_t)(32 * j + b);
                if (enc == 1) c->p[4][e] = m;
                if (width == 16)
                    idx16[e / 2] |= v << (16 * (e % 2));
                else
                    c->p[3][e] = v;
                e++;
            }
        }
    }
    c->p[2][oc] = (uint32_t)e;
}

static inline void xtm_mst_free(xtm_mst *c) {
    for (int k = 0; k < 5; k++) free(c->p[k]);
}

/* Adds the five MST params then scale and bias; returns the first. */
static inline uint32_t xtm_mst_params(xtm *t, const xtm_mst *c, const float *scale,
                                      const float *bias, uint32_t oc) {
    const uint32_t p0 = xtm_param(t, XTM_BITS, c->p[0], c->n[0]);
    for (int k = 1; k < 5; k++) xtm_param(t, XTM_BITS, c->p[k], c->n[k]);
    xtm_param(t, XTM_F32, scale, oc);
    xtm_param(t, XTM_F32, bias, oc);
    return p0;
}

#endif /* XE_TEST_MODEL_H */
