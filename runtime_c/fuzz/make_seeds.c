/*
 * make_seeds.c - writes a seed corpus for fuzz_model_load: small valid models
 * covering every op and flag, so the fuzzer starts from deep inside the
 * loader instead of at the magic check.  Usage: make_seeds DIR
 *
 * Two kinds: hand-built chains of several ops, and one model per op record
 * of the runtime (ops.inc) and per flag it accepts, built from the record
 * itself (its window, inputs, inferred output and param sizes), so a new op
 * gets seeds without an edit here. Every seed is loaded before it is saved.
 */
#include <stdio.h>

#include "ops.h"
#include "xe_test_model.h"

static float g_f[4096];
static uint32_t g_b[4096];
static const uint32_t g_zero[4096]; /* zero params: finite floats, valid bits */
static uint8_t g_seeded[256];       /* op ids with a saved seed */

static void save(const char *dir, const char *name, const xtm *t) {
    char path[512];
    size_t n;
    uint8_t *f = xtm_write(t, &n);
    snprintf(path, sizeof path, "%s/%s.xem", dir, name);
    FILE *fp = fopen(path, "wb");
    if (!fp || fwrite(f, 1, n, fp) != n) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
    fclose(fp);
    /* The same model with CRC field 0: fuzz_model_load fills in the real CRC,
     * so mutations of this copy reach the structural checks. */
    memset(f + n - 8, 0, 4);
    snprintf(path, sizeof path, "%s/%s-crc0.xem", dir, name);
    fp = fopen(path, "wb");
    if (!fp || fwrite(f, 1, n, fp) != n) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
    fclose(fp);
    free(f);
    for (uint32_t i = 0; i < t->nn; i++) g_seeded[t->nodes[i].op & 255u] = 1;
}

static uint32_t conv(xtm *t, uint32_t op, uint32_t flags, uint32_t in, uint32_t k, uint32_t s,
                     uint32_t p, uint32_t oc) {
    const uint32_t ic = t->values[in].c, taps = k * k, cw = (ic + 31) / 32;
    if (op == XE_OP_CONV2D) {
        uint32_t p0 = xtm_param(t, XTM_F32, g_f, (uint64_t)oc * taps * ic);
        xtm_param(t, XTM_F32, g_f, oc);
        return xtm_node(t, op, flags, in, XTM_NONE, k, k, s, s, p, p, oc, p0, 2);
    }
    uint32_t p0 = xtm_param(t, XTM_BITS, g_b, (uint64_t)oc * taps * cw);
    xtm_param(t, XTM_F32, g_f, oc);
    xtm_param(t, XTM_F32, g_f, oc);
    return xtm_node(t, op, flags, in, XTM_NONE, k, k, s, s, p, p, oc, p0, 3);
}

/* The op's node on value `in` (shape iv), from its record: 3x3 window, stride
 * 1, pad 1; out_c 8; zero params of the sizes the record asks for. Returns
 * the new value id, or 0 when the record rejects this input. */
static uint32_t op_node(xtm *t, const xe_op_def *def, uint32_t flags, uint32_t in) {
    const xtm_value iv = t->values[in];
    xe_node n;
    memset(&n, 0, sizeof n);
    n.def = def;
    n.info = (xe_node_info){def->op, flags, in, def->input1 ? in : XTM_NONE};
    if (def->windowed) {
        n.info.kernel_h = n.info.kernel_w = 3;
        n.info.stride_h = n.info.stride_w = n.info.pad_h = n.info.pad_w = 1;
    }
    n.info.in_h = iv.h;
    n.info.in_w = iv.w;
    n.info.in_c = iv.c;
    n.info.in_dtype = iv.dtype;
    n.cw = (iv.c + 31) / 32;
    n.in1_c = def->input1 ? iv.c : 0;
    xe_out_shape o = {iv.h, iv.w, iv.c, XE_DTYPE_F32};
    if (def->infer) def->infer(&n, 8, &o);
    n.info.out_h = (uint32_t)o.h;
    n.info.out_w = (uint32_t)o.w;
    n.info.out_c = (uint32_t)o.c;
    uint64_t need[XE_MAX_OP_PARAMS] = {0};
    if (def->param_sizes) def->param_sizes(&n, need);
    uint32_t p0 = t->np;
    for (uint32_t k = 0; k < def->n_params; k++) {
        if (need[k] > 4096) return 0;
        xtm_param(t, def->param_dtypes[k], g_zero, need[k]);
    }
    const xe_node_info *f = &n.info;
    const uint32_t v =
        xtm_node(t, def->op, flags, in, f->input1, f->kernel_h, f->kernel_w, f->stride_h,
                 f->stride_w, f->pad_h, f->pad_w, f->out_c, p0, def->n_params);
    /* The record's output, not the test writer's guess (it may not know the op). */
    t->nodes[v - 1].oh = f->out_h;
    t->nodes[v - 1].ow = f->out_w;
    t->nodes[v - 1].oc = f->out_c;
    t->values[v] = (xtm_value){f->out_h, f->out_w, f->out_c, o.dtype};
    return v;
}

/* Saves t if it loads (a seed the loader rejects would start the fuzzer at
 * one error); returns whether it did. */
static int save_if_valid(const char *dir, const char *name, const xtm *t) {
    size_t n;
    uint8_t *f = xtm_write(t, &n);
    xe_model *m = NULL;
    char err[256];
    const xe_status st = xe_model_load_memory(f, n, 0, &m, err, sizeof err);
    xe_model_destroy(m);
    free(f);
    if (st != XE_OK) {
        fprintf(stderr, "make_seeds: skipped %s: %s\n", name, err);
        return 0;
    }
    save(dir, name, t);
    return 1;
}

/* bconv2d_mst, whose params the record cannot size (they follow the tree):
 * a valid tree in each encoding (chunks of 4, a chain and a duplicate), so
 * mutations reach every rule of the walk. */
static void mst_seeds(const char *dir) {
    static const uint32_t order[8] = {1, 0, 2, 3, 4, 6, 7, 5};
    static const uint32_t parent[8] = {1, XTM_NONE, 0, 2, XTM_NONE, 7, 4, 6};
    static uint32_t w[8 * 9];
    for (uint32_t i = 0; i < 8 * 9; i++) w[i] = g_b[i];
    w[9 * 3] = w[9 * 2]; /* channel 3 duplicates its parent: no entries */
    for (uint32_t enc = 1; enc <= 2; enc++) {
        xtm t;
        xtm_mst code;
        xtm_init(&t, 6, 5, 3);
        xtm_mst_encode(w, 8, 9, enc, 4, 3, order, parent, &code);
        const uint32_t p0 = xtm_mst_params(&t, &code, g_f, g_f, 8);
        const uint32_t fl = enc == 1 ? XE_FLAG_RELU : XE_FLAG_USE_K;
        xtm_node(&t, XTM_OP_BCONV2D_MST, fl, 0, XTM_NONE, 3, 3, 1, 1, 1, 1, 8, p0, 7);
        if (!save_if_valid(dir, enc == 1 ? "mst-words" : "mst-bits", &t)) exit(1);
        xtm_mst_free(&code);
        xtm_free(&t);
    }
}

/* gconv2d, whose weight count follows its config param: 2 groups at dilation
 * 2x1 (a 5x3 extent of 3x3 taps), with and without RELU. */
static void gconv_seeds(const char *dir) {
    static const uint32_t cfg[4] = {2, 2, 1, 0};
    for (uint32_t fl = 0; fl <= XE_FLAG_RELU; fl += XE_FLAG_RELU) {
        xtm t;
        xtm_init(&t, 6, 5, 4);
        const uint32_t p0 = xtm_param(&t, XTM_BITS, cfg, 4);
        xtm_param(&t, XTM_F32, g_f, 6 * 9 * 2);
        xtm_param(&t, XTM_F32, g_f, 6);
        xtm_node(&t, XTM_OP_GCONV2D, fl, 0, XTM_NONE, 5, 3, 1, 1, 2, 1, 6, p0, 3);
        if (!save_if_valid(dir, fl ? "gconv2d-relu" : "gconv2d", &t)) exit(1);
        xtm_free(&t);
    }
}

/* One seed per op record and flag bit (float input, then bits through sign
 * when the op takes bits); a bits output is decoded by a 1x1 bconv2d. */
static void per_op_seeds(const char *dir) {
    for (size_t i = 0; xe_op_at(i) != NULL; i++) {
        const xe_op_def *def = xe_op_at(i);
        int saved = 0;
        for (uint32_t bit = 0; bit <= 32; bit++) {
            const uint32_t flags = bit == 32 ? 0 : (1u << bit);
            if (flags & ~def->flags) continue;
            for (int bits_in = 0; bits_in <= def->bits_input; bits_in++) {
                xtm t;
                xtm_init(&t, 6, 5, 8);
                uint32_t v = 0;
                if (bits_in)
                    v = xtm_node(&t, XE_OP_SIGN, 0, 0, XTM_NONE, 0, 0, 0, 0, 0, 0, 0, 0, 0);
                v = op_node(&t, def, flags, v);
                if (v && t.values[v].dtype == XTM_BITS) {
                    const uint32_t p0 =
                        xtm_param(&t, XTM_BITS, g_zero, 8 * ((t.values[v].c + 31) / 32));
                    xtm_param(&t, XTM_F32, g_f, 8);
                    xtm_param(&t, XTM_F32, g_f, 8);
                    xtm_node(&t, XE_OP_BCONV2D, 0, v, XTM_NONE, 1, 1, 1, 1, 0, 0, 8, p0, 3);
                }
                char name[96];
                snprintf(name, sizeof name, "op-%s-flags%x%s", def->name, flags,
                         bits_in ? "-bits" : "");
                if (v) saved += save_if_valid(dir, name, &t);
                xtm_free(&t);
            }
        }
        if (!saved && !g_seeded[def->op & 255u]) {
            fprintf(stderr, "make_seeds: no valid seed for op %s\n", def->name);
            exit(1);
        }
    }
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: make_seeds DIR\n");
        return 2;
    }
    for (int i = 0; i < 4096; i++) {
        g_f[i] = (float)(i % 7) * 0.25f - 0.75f;
        g_b[i] = (uint32_t)i * 2654435761u & 0x5u; /* low bits only: valid for IC >= 3 */
    }
    xtm t;
    /* conv -> bn -> sign -> bconv(out bits) -> maxpool -> bconv(K) ... */
    xtm_init(&t, 6, 6, 3);
    uint32_t v = conv(&t, XE_OP_CONV2D, XE_FLAG_RELU, 0, 3, 1, 1, 8);
    uint32_t p0 = xtm_param(&t, XTM_F32, g_f, 8);
    xtm_param(&t, XTM_F32, g_f, 8);
    uint32_t bn = xtm_node(&t, XE_OP_BATCHNORM, 0, v, XTM_NONE, 0, 0, 0, 0, 0, 0, 0, p0, 2);
    v = xtm_node(&t, XE_OP_SIGN, 0, bn, XTM_NONE, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    v = conv(&t, XE_OP_BCONV2D, XE_FLAG_OUT_BITS, v, 3, 1, 1, 8);
    v = xtm_node(&t, XE_OP_MAXPOOL, 0, v, XTM_NONE, 2, 2, 2, 2, 0, 0, 0, 0, 0);
    v = conv(&t, XE_OP_BCONV2D, XE_FLAG_PAD_ONE | XE_FLAG_RELU, v, 3, 1, 1, 8);
    save(argv[1], "xnor_chain", &t);
    xtm_free(&t);

    xtm_init(&t, 5, 5, 4);
    v = conv(&t, XE_OP_BCONV2D, XE_FLAG_USE_K | XE_FLAG_RELU, 0, 3, 2, 1, 4);
    uint32_t r = xtm_node(&t, XE_OP_RELU, 0, v, XTM_NONE, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    v = xtm_node(&t, XE_OP_ADD, XE_FLAG_RELU, v, r, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    v = xtm_node(&t, XE_OP_AVGPOOL, 0, v, XTM_NONE, 3, 3, 1, 1, 1, 1, 0, 0, 0);
    v = conv(&t, XE_OP_BWN_CONV2D, 0, v, 1, 1, 0, 6);
    v = xtm_node(&t, XE_OP_GLOBAL_AVGPOOL, 0, v, XTM_NONE, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    p0 = xtm_param(&t, XTM_F32, g_f, 5 * 6);
    xtm_param(&t, XTM_F32, g_f, 5);
    v = xtm_node(&t, XE_OP_DENSE, XE_FLAG_RELU, v, XTM_NONE, 0, 0, 0, 0, 0, 0, 5, p0, 2);
    xtm_node(&t, XE_OP_SOFTMAX, 0, v, XTM_NONE, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    save(argv[1], "k_residual_head", &t);
    xtm_free(&t);

    xtm_init(&t, 1, 1, 1);
    xtm_node(&t, XE_OP_RELU, 0, 0, XTM_NONE, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    save(argv[1], "tiny", &t);
    xtm_free(&t);

    /* uint8 input: header flag U8_INPUT and its table (param 0, 3 x 256). */
    xtm_init(&t, 4, 4, 3);
    t.u8_table = xtm_param(&t, XTM_F32, g_f, 3 * 256);
    conv(&t, XE_OP_CONV2D, XE_FLAG_RELU, 0, 3, 1, 1, 4);
    if (!save_if_valid(argv[1], "u8_input", &t)) return 1;
    xtm_free(&t);

    mst_seeds(argv[1]);
    gconv_seeds(argv[1]);
    per_op_seeds(argv[1]);
    return 0;
}
