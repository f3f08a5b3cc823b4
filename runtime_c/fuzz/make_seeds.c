/*
 * make_seeds.c - writes a seed corpus for fuzz_model_load: small valid models
 * covering every op and flag, so the fuzzer starts from deep inside the
 * loader instead of at the magic check.  Usage: make_seeds DIR
 */
#include <stdio.h>

#include "xe_test_model.h"

static float g_f[4096];
static uint32_t g_b[4096];

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
    return 0;
}
