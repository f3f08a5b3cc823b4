/*
 * test_loader.c - the loader treats every file as hostile (docs/format.md).
 *
 * A valid file loads (memory, in place and copied; from a file). Then: every
 * truncation length, every single-bit flip over the header and tables (and a
 * sample over the data), wrong magic and versions, and a list of targeted
 * structural corruptions with the CRC recomputed so the structural check is
 * what fires. Each must give the expected status and a reason, never a crash
 * (run it under ASan+UBSan: -DXE_SANITIZE=address,undefined).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "xe_test_model.h"
#include "xnor_edge.h"

static float g_f[8192];
static uint32_t g_w[8192];
static uint8_t *g_file;
static size_t g_size;
static uint64_t g_nodes_off, g_params_off;

/* Loads buf and, if it loads, runs a session on zeros. Returns the status;
 * checks the contract of a failure (NULL model, non-empty reason). */
static xe_status load(const uint8_t *buf, size_t size, char *err, size_t cap) {
    xe_model *m = (xe_model *)1;
    err[0] = 0;
    xe_status st = xe_model_load_memory(buf, size, 1, &m, err, cap);
    if (st != XE_OK) {
        CHECK(m == NULL, "failed load left a model");
        CHECK(err[0] != 0, "failed load (%s) gave no reason", xe_status_string(st));
        return st;
    }
    uint32_t h, w, c;
    xe_model_input_shape(m, &h, &w, &c);
    const size_t in_n = (size_t)h * w * c;
    xe_model_output_shape(m, &h, &w, &c);
    const size_t out_n = (size_t)h * w * c;
    if (in_n < (1u << 20) && out_n < (1u << 20)) {
        float *in = calloc(in_n, 4), *out = calloc(out_n, 4);
        xe_session *s = NULL;
        if (xe_session_create(m, NULL, &s) == XE_OK)
            CHECK(xe_session_run(s, in, in_n, out, out_n) == XE_OK, "run of a loaded model failed");
        xe_session_destroy(s);
        free(in);
        free(out);
    }
    xe_model_destroy(m);
    return st;
}

static void build_valid(void) {
    for (int i = 0; i < 8192; i++) {
        g_f[i] = (float)(i % 11) * 0.125f - 0.5f;
        g_w[i] = (uint32_t)i * 2654435761u & 0x7FFFu; /* low 15 bits: valid for IC >= 15 */
    }
    xtm t;
    xtm_init(&t, 7, 6, 20);
    t.meta = "{\"name\": \"loader-test\", \"labels\": [\"a\", \"b\", \"c\"]}";
    uint32_t p0 = xtm_param(&t, XTM_F32, g_f, 20);
    xtm_param(&t, XTM_F32, g_f + 1, 20);
    uint32_t v = xtm_node(&t, XE_OP_BATCHNORM, 0, 0, XTM_NONE, 0, 0, 0, 0, 0, 0, 0, p0, 2);
    p0 = xtm_param(&t, XTM_BITS, g_w, 24 * 9);
    xtm_param(&t, XTM_F32, g_f + 2, 24);
    xtm_param(&t, XTM_F32, g_f + 3, 24);
    v = xtm_node(&t, XE_OP_BCONV2D, XE_FLAG_OUT_BITS, v, XTM_NONE, 3, 3, 1, 1, 1, 1, 24, p0, 3);
    v = xtm_node(&t, XE_OP_MAXPOOL, 0, v, XTM_NONE, 2, 2, 2, 2, 0, 0, 0, 0, 0);
    p0 = xtm_param(&t, XTM_BITS, g_w + 7, 16 * 9);
    xtm_param(&t, XTM_F32, g_f + 4, 16);
    xtm_param(&t, XTM_F32, g_f + 5, 16);
    v = xtm_node(&t, XE_OP_BCONV2D, XE_FLAG_RELU, v, XTM_NONE, 3, 3, 1, 1, 1, 1, 16, p0, 3);
    p0 = xtm_param(&t, XTM_F32, g_f + 6, 3 * 3 * 3 * 16);
    xtm_param(&t, XTM_F32, g_f + 7, 3);
    v = xtm_node(&t, XE_OP_DENSE, 0, v, XTM_NONE, 0, 0, 0, 0, 0, 0, 3, p0, 2);
    xtm_node(&t, XE_OP_SOFTMAX, 0, v, XTM_NONE, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    g_file = xtm_write(&t, &g_size);
    xtm_free(&t);
    g_nodes_off = xtm_get64(g_file + 72);
    g_params_off = xtm_get64(g_file + 80);
}

static void test_valid(void) {
    char err[256];
    xe_model *m = NULL;
    xe_status st = xe_model_load_memory(g_file, g_size, 0, &m, err, sizeof err);
    CHECK(st == XE_OK, "valid model: %s", err);
    if (st != XE_OK) return;
    size_t len = 0;
    const char *meta = xe_model_metadata(m, &len);
    CHECK(meta && strlen(meta) == len && strstr(meta, "loader-test"), "metadata");
    CHECK(xe_model_num_nodes(m) == 6, "num_nodes %u", xe_model_num_nodes(m));
    xe_node_info info;
    CHECK(xe_model_node_info(m, 1, &info) == XE_OK && info.op == XE_OP_BCONV2D &&
              info.out_dtype == XE_DTYPE_BITS && info.out_c == 24 && info.out_h == 7 &&
              info.in_c == 20 && info.binary_params == 24 * 9 * 20 &&
              info.macs == 7ull * 6 * 24 * 9 * 20,
          "node_info of the bconv");
    CHECK(xe_model_node_info(m, 6, &info) == XE_ERR_INVALID_ARGUMENT, "node_info out of range");
    uint32_t h, w, c;
    xe_model_output_shape(m, &h, &w, &c);
    CHECK(h == 1 && w == 1 && c == 3, "output shape %ux%ux%u", h, w, c);
    xe_model_destroy(m);
    CHECK(load(g_file, g_size, err, sizeof err) == XE_OK, "valid model (copied): %s", err);

    /* From a file (mmap path), and a missing file. */
    char path[] = "/tmp/xe_test_loader_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp");
    if (fd >= 0) {
        CHECK(write(fd, g_file, g_size) == (ssize_t)g_size, "write");
        close(fd);
        st = xe_model_load_file(path, &m, err, sizeof err);
        CHECK(st == XE_OK, "load_file: %s", err);
        xe_model_destroy(m);
        unlink(path);
    }
    st = xe_model_load_file("/nonexistent/model.xem", &m, err, sizeof err);
    CHECK(st == XE_ERR_IO && m == NULL && strstr(err, "nonexistent"), "missing file: %s", err);
    st = xe_model_load_file("/tmp", &m, err, sizeof err);
    CHECK(st == XE_ERR_IO, "directory: %s", xe_status_string(st));
    CHECK(xe_model_load_memory(NULL, 10, 1, &m, err, sizeof err) == XE_ERR_INVALID_ARGUMENT,
          "NULL data");
    /* NULL with size 0 is an empty file, not a pointer to read (UBSan: memcmp(NULL, ...)). */
    for (int copy = 0; copy <= 1; copy++) {
        m = (xe_model *)1;
        st = xe_model_load_memory(NULL, 0, copy, &m, err, sizeof err);
        CHECK(st == XE_ERR_TRUNCATED && m == NULL && strstr(err, "0 bytes"),
              "NULL, 0 bytes (copy %d): %s \"%s\"", copy, xe_status_string(st), err);
    }
    CHECK(xe_model_load_memory(g_file + 1, g_size - 1, 0, &m, err, sizeof err) ==
              XE_ERR_INVALID_ARGUMENT,
          "misaligned in-place data");
    /* A tiny err_cap truncates the reason but never overflows. */
    char small[4] = {'x', 'x', 'x', 'x'};
    CHECK(xe_model_load_memory(g_file, 100, 1, &m, small, 3) == XE_ERR_TRUNCATED && small[2] == 0 &&
              small[3] == 'x',
          "err_cap respected");
    xe_model_destroy(NULL);
}

static void test_truncation(void) {
    char err[256];
    int bad = 0;
    for (size_t n = 0; n < g_size; n += (n < 300 ? 1 : 7)) {
        xe_status st = load(g_file, n, err, sizeof err);
        if (st != XE_ERR_TRUNCATED) {
            if (bad++ < 3) printf("FAIL truncated to %zu: %s (%s)\n", n, xe_status_string(st), err);
        }
        if (st == XE_ERR_TRUNCATED && n >= 136 && !strstr(err, "truncated")) bad++;
    }
    CHECK(bad == 0, "%d truncations misreported", bad);
    /* Extra bytes at the end. */
    uint8_t *big = calloc(g_size + 16, 1);
    memcpy(big, g_file, g_size);
    CHECK(load(big, g_size + 16, err, sizeof err) == XE_ERR_BAD_MODEL, "trailing bytes: %s", err);
    free(big);
}

/* Expected status of a single-bit flip at byte `at` (CRC not fixed). */
static xe_status flip_expect(size_t at, const uint8_t *buf) {
    if (at < 8) return XE_ERR_BAD_MAGIC;
    if (at < 16) return XE_ERR_UNSUPPORTED_VERSION;
    if (at < 24) return xtm_get64(buf + 16) > g_size ? XE_ERR_TRUNCATED : XE_ERR_BAD_MODEL;
    if (at >= g_size - 4) return XE_ERR_BAD_MODEL; /* XEND */
    return XE_ERR_CHECKSUM;
}

static void test_bit_flips(void) {
    char err[256];
    uint8_t *buf = malloc(g_size);
    const size_t tables_end = (size_t)g_params_off + 32 * 13;
    int bad = 0, fixed_ok = 0, fixed_fail = 0;
    for (size_t at = 0; at < g_size; at++) {
        const int sampled = at < tables_end || at >= g_size - 8 || at % 37 == 0;
        if (!sampled) continue;
        for (int bit = 0; bit < 8; bit++) {
            memcpy(buf, g_file, g_size);
            buf[at] ^= (uint8_t)(1u << bit);
            const xe_status want = flip_expect(at, buf);
            const xe_status st = load(buf, g_size, err, sizeof err);
            if (st != want && bad++ < 5)
                printf("FAIL flip byte %zu bit %d: %s, expected %s (%s)\n", at, bit,
                       xe_status_string(st), xe_status_string(want), err);
            /* The same flip with the CRC recomputed: the structural checks must
             * reject it or the model must load and run cleanly. */
            if (at >= 24 && at < g_size - 8) {
                xtm_fix_crc(buf, g_size);
                if (load(buf, g_size, err, sizeof err) == XE_OK)
                    fixed_ok++;
                else
                    fixed_fail++;
            }
        }
    }
    CHECK(bad == 0, "%d bit flips misreported", bad);
    printf("bit flips with CRC fixed: %d rejected, %d harmless (e.g. metadata, float values)\n",
           fixed_fail, fixed_ok);
    CHECK(fixed_fail > 1000, "too few structural rejections: %d", fixed_fail);
    free(buf);
}

typedef struct edit {
    const char *what;
    uint64_t off; /* absolute byte offset */
    int width;    /* 4 or 8 */
    uint64_t value;
    xe_status want;
    const char *msg; /* substring expected in the reason */
} edit;

#define NODE(i, f) (g_nodes_off + 64u * (i) + (f))
#define PARAM(i, f) (g_params_off + 32u * (i) + (f))

/* Loads t and checks the load fails with BAD_MODEL and a reason containing msg. */
static void expect_bad(xtm *t, const char *what, const char *msg) {
    char err[256];
    size_t n;
    uint8_t *f = xtm_write(t, &n);
    const xe_status st = load(f, n, err, sizeof err);
    CHECK(st == XE_ERR_BAD_MODEL && strstr(err, msg), "%s: got %s \"%s\", expected \"%s\"", what,
          xe_status_string(st), err, msg);
    free(f);
    xtm_free(t);
}

/* Rejections specific to pad (op 19): stride, bits value, output shape. */
static void test_pad_rejections(void) {
    static const float half = 0.5f;
    xtm t;
    xtm_init(&t, 4, 4, 3);
    uint32_t p0 = xtm_param(&t, XTM_F32, g_f, 1);
    xtm_node(&t, XTM_OP_PAD, 0, 0, XTM_NONE, 2, 2, 2, 1, 0, 0, 0, p0, 1);
    expect_bad(&t, "pad stride", "node 0 (pad): stride 2x1, must be 1x1");
    xtm_init(&t, 4, 4, 3);
    xtm_node(&t, XE_OP_SIGN, 0, 0, XTM_NONE, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    p0 = xtm_param(&t, XTM_F32, &half, 1);
    xtm_node(&t, XTM_OP_PAD, 0, 1, XTM_NONE, 2, 2, 1, 1, 0, 1, 0, p0, 1);
    expect_bad(&t, "pad bits value", "node 1 (pad): value 0.5 on a bits input: must be +1 or -1");
    xtm_init(&t, 4, 4, 3);
    p0 = xtm_param(&t, XTM_F32, g_f, 1);
    xtm_node(&t, XTM_OP_PAD, 0, 0, XTM_NONE, 2, 3, 1, 1, 1, 0, 0, p0, 1);
    t.nodes[0].oh = 4;
    expect_bad(&t, "pad out_h", "node 0 (pad): output shape is 5x6x3");
}

/* uint8 input (header flag U8_INPUT, input_table at byte offset 52). */
static void test_u8_input(void) {
    static float inf_table[256];
    inf_table[7] = INFINITY;
    xtm t;
    xtm_init(&t, 4, 4, 3);
    xtm_param(&t, XTM_F32, g_f, 768);
    t.u8_table = 1;
    xtm_node(&t, XE_OP_RELU, 0, 0, XTM_NONE, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    expect_bad(&t, "u8 table index",
               "header: input_table 1 is outside the param table (1 entries)");
    xtm_init(&t, 4, 4, 3);
    t.u8_table = xtm_param(&t, XTM_F32, g_f, 256);
    xtm_node(&t, XE_OP_RELU, 0, 0, XTM_NONE, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    expect_bad(&t, "u8 table count", "input_table param 0 is f32 x 256, needs f32 x 768");
    xtm_init(&t, 4, 4, 1);
    t.u8_table = xtm_param(&t, XTM_BITS, g_f, 256);
    xtm_node(&t, XE_OP_RELU, 0, 0, XTM_NONE, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    expect_bad(&t, "u8 table dtype", "input_table param 0 is bits x 256, needs f32 x 256");
    xtm_init(&t, 4, 4, 1);
    t.u8_table = xtm_param(&t, XTM_F32, inf_table, 256);
    xtm_node(&t, XE_OP_RELU, 0, 0, XTM_NONE, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    expect_bad(&t, "u8 table infinite", "param 0");
    /* 1x1x1 input: a dense layer to 256 outputs has weights of the table's size. */
    xtm_init(&t, 1, 1, 1);
    t.u8_table = xtm_param(&t, XTM_F32, g_f, 256);
    xtm_param(&t, XTM_F32, g_f, 256);
    xtm_node(&t, XE_OP_DENSE, 0, 0, XTM_NONE, 0, 0, 0, 0, 0, 0, 256, 0, 2);
    expect_bad(&t, "u8 table shared", "node 0 (dense): param 0 is already used by another node");
    /* Valid: the table is the file's, the float model has none and refuses uint8. */
    xtm_init(&t, 2, 2, 2);
    t.u8_table = xtm_param(&t, XTM_F32, g_f, 512);
    xtm_node(&t, XE_OP_RELU, 0, 0, XTM_NONE, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    size_t n;
    uint8_t *f = xtm_write(&t, &n);
    xe_model *m = NULL, *mf = NULL;
    xe_session *s = NULL;
    const uint8_t px[8] = {0, 1, 2, 3, 255, 254, 7, 8};
    float y[8];
    CHECK(xe_model_load_memory(f, n, 0, &m, NULL, 0) == XE_OK, "u8 model loads");
    const float *table = xe_model_input_u8_table(m);
    CHECK(table && memcmp(table, g_f, 512 * 4) == 0, "u8 table is the file's");
    CHECK(xe_session_create(m, NULL, &s) == XE_OK && xe_session_run_u8(s, px, 8, y, 8) == XE_OK,
          "u8 run");
    for (int i = 0; i < 8; i++)
        CHECK(y[i] == (g_f[(i % 2) * 256 + px[i]] < 0 ? 0.0f : g_f[(i % 2) * 256 + px[i]]),
              "u8 relu output %d is %g", i, (double)y[i]);
    xe_session_destroy(s);
    xe_model_destroy(m);
    free(f);
    t.u8_table = XTM_NONE;
    f = xtm_write(&t, &n); /* a float-only model with an unused param */
    CHECK(xe_model_load_memory(f, n, 0, &mf, NULL, 0) == XE_ERR_BAD_MODEL, "unreferenced table");
    free(f);
    xtm_free(&t);
    xtm_init(&t, 2, 2, 2);
    xtm_node(&t, XE_OP_RELU, 0, 0, XTM_NONE, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    f = xtm_write(&t, &n);
    CHECK(xe_model_load_memory(f, n, 0, &mf, NULL, 0) == XE_OK && !xe_model_input_u8_table(mf) &&
              xe_session_create(mf, NULL, &s) == XE_OK &&
              xe_session_run_u8(s, px, 8, y, 8) == XE_ERR_INVALID_ARGUMENT,
          "a float-only model refuses uint8 input");
    CHECK(xe_model_input_u8_table(NULL) == NULL, "NULL model has no table");
    xe_session_destroy(s);
    xe_model_destroy(mf);
    free(f);
    xtm_free(&t);
}

/* avgpool_excl_pad (op 20): the recorded output size must come from a
 * padding after the input in [0, kernel); bits inputs are refused. */
static void test_avgpool_excl_pad_rejections(void) {
    static const struct {
        uint32_t oh, ow;
        const char *msg;
    } cases[] = {
        {4, 4,
         "node 0 (avgpool_excl_pad): output shape is 3x4x3 (from input 5x6x3), node records "
         "4x4x3"},                       /* bottom 3 >= kernel 3 */
        {1, 4, "output shape is 3x4x3"}, /* after padding -3 <= -stride: 3 rows in no window */
        {3, 5, "node records 3x5x3"},    /* right 4 */
        {3, 0, "output shape is 3x3x3"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        xtm t;
        xtm_init(&t, 5, 6, 3);
        xtm_node(&t, XTM_OP_AVGPOOL_EXCL_PAD, 0, 0, XTM_NONE, 3, 3, 2, 2, 1, 1, 0, 0, 0);
        t.nodes[0].oh = t.values[1].h = cases[i].oh;
        t.nodes[0].ow = t.values[1].w = cases[i].ow;
        expect_bad(&t, "avgpool_excl_pad output size", cases[i].msg);
    }
    xtm t;
    xtm_init(&t, 5, 6, 3);
    xtm_node(&t, XE_OP_SIGN, 0, 0, XTM_NONE, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    xtm_node(&t, XTM_OP_AVGPOOL_EXCL_PAD, 0, 1, XTM_NONE, 3, 3, 2, 2, 1, 1, 0, 0, 0);
    expect_bad(&t, "avgpool_excl_pad bits", "node 1 (avgpool_excl_pad): input value 1 is bits");
    /* Valid: out_h 3 (bottom 2) and 2 (bottom 0). */
    for (uint32_t oh = 2; oh <= 3; oh++) {
        xtm_init(&t, 5, 6, 3);
        xtm_node(&t, XTM_OP_AVGPOOL_EXCL_PAD, 0, 0, XTM_NONE, 3, 3, 2, 2, 0, 1, 0, 0, 0);
        t.nodes[0].oh = t.values[1].h = oh;
        size_t n;
        char err[256];
        uint8_t *f = xtm_write(&t, &n);
        CHECK(load(f, n, err, sizeof err) == XE_OK, "avgpool_excl_pad out_h %u: %s", oh, err);
        free(f);
        xtm_free(&t);
    }
}

/* gconv2d (op 21): config (groups, dilation, reserved) and the weight count it
 * implies; 6x6x4 input, 6 outputs, extent 5x3 (3x2 taps at dilation 2x2). */
static void test_gconv2d_rejections(void) {
    static const struct {
        uint32_t cfg[4];
        uint64_t nw;
        const char *msg;
    } cases[] = {
        {{2, 2, 2, 0}, 6 * 6 * 2, NULL},
        {{0, 2, 2, 0}, 6 * 6 * 2, "groups 0 does not divide the 4 input and 6 output channels"},
        {{3, 2, 2, 0}, 6 * 6 * 2, "groups 3 does not divide"},
        {{4, 2, 2, 0}, 6 * 6 * 1, "groups 4 does not divide the 4 input and 6 output"},
        {{2, 0, 2, 0}, 6 * 6 * 2, "dilation 0x2 does not divide the window extent 5x3"},
        {{2, 3, 2, 0}, 6 * 6 * 2, "dilation 3x2 does not divide"},
        {{2, 2, 2, 1}, 6 * 6 * 2, "config word 3 (reserved) is not zero"},
        {{2, 2, 2, 0},
         6 * 6 * 4,
         "weights have 144 floats, 2 groups of 3x2 taps need OC*KH*KW*IC/G = 72"},
        {{1, 2, 2, 0}, 6 * 6 * 2, "1 groups of 3x2 taps need OC*KH*KW*IC/G = 144"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        xtm t;
        xtm_init(&t, 6, 6, 4);
        const uint32_t p0 = xtm_param(&t, XTM_BITS, cases[i].cfg, 4);
        xtm_param(&t, XTM_F32, g_f, cases[i].nw);
        xtm_param(&t, XTM_F32, g_f, 6);
        xtm_node(&t, XTM_OP_GCONV2D, 0, 0, XTM_NONE, 5, 3, 1, 1, 2, 1, 6, p0, 3);
        if (cases[i].msg) {
            expect_bad(&t, "gconv2d config", cases[i].msg);
            continue;
        }
        size_t n;
        char err[256];
        uint8_t *f = xtm_write(&t, &n);
        CHECK(load(f, n, err, sizeof err) == XE_OK, "gconv2d valid: %s", err);
        free(f);
        xtm_free(&t);
    }
    xtm t;
    xtm_init(&t, 6, 6, 4);
    xtm_param(&t, XTM_F32, g_f, 4);
    xtm_param(&t, XTM_F32, g_f, 6 * 9 * 4);
    xtm_param(&t, XTM_F32, g_f, 6);
    xtm_node(&t, XTM_OP_GCONV2D, 0, 0, XTM_NONE, 3, 3, 1, 1, 1, 1, 6, 0, 3);
    expect_bad(&t, "gconv2d f32 config",
               "node 0 (gconv2d): param 0 (#0 of the op) is f32 x 4, op needs bits x 4");
    xtm_init(&t, 6, 6, 4);
    xtm_node(&t, XE_OP_SIGN, 0, 0, XTM_NONE, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    static const uint32_t one[4] = {1, 1, 1, 0};
    xtm_param(&t, XTM_BITS, one, 4);
    xtm_param(&t, XTM_F32, g_f, 6 * 9 * 4);
    xtm_param(&t, XTM_F32, g_f, 6);
    xtm_node(&t, XTM_OP_GCONV2D, 0, 1, XTM_NONE, 3, 3, 1, 1, 1, 1, 6, 0, 3);
    expect_bad(&t, "gconv2d bits input", "node 1 (gconv2d): input value 1 is bits");
}

/* Rejections specific to prelu, clip, sign_shift, concat, flatten and dwconv2d. */
static void test_new_op_rejections(void) {
    static const float inverted[2] = {1.0f, -1.0f};
    xtm t;
    xtm_init(&t, 2, 2, 3);
    uint32_t p0 = xtm_param(&t, XTM_F32, inverted, 2);
    xtm_node(&t, XTM_OP_CLIP, 0, 0, XTM_NONE, 0, 0, 0, 0, 0, 0, 0, p0, 1);
    expect_bad(&t, "clip min > max", "node 0 (clip): bounds [1, -1]: min > max");
    xtm_init(&t, 2, 2, 3);
    p0 = xtm_param(&t, XTM_F32, g_f, 2);
    xtm_node(&t, XTM_OP_PRELU, 0, 0, XTM_NONE, 0, 0, 0, 0, 0, 0, 0, p0, 1);
    expect_bad(&t, "prelu slope count", "node 0 (prelu): param 0 (#0 of the op) is f32 x 2");
    xtm_init(&t, 2, 2, 3);
    xtm_node(&t, XTM_OP_SIGN_SHIFT, 0, 0, XTM_NONE, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    expect_bad(&t, "sign_shift without shift", "node 0 (sign_shift): param_count is 0, op takes 1");
    xtm_init(&t, 2, 2, 3);
    p0 = xtm_param(&t, XTM_F32, g_f, 3);
    xtm_node(&t, XTM_OP_SIGN_SHIFT, XE_FLAG_RELU, 0, XTM_NONE, 0, 0, 0, 0, 0, 0, 0, p0, 1);
    expect_bad(&t, "sign_shift flags", "node 0 (sign_shift): bad flags");
    xtm_init(&t, 4, 4, 3);
    xtm_node(&t, XE_OP_MAXPOOL, 0, 0, XTM_NONE, 2, 2, 2, 2, 0, 0, 0, 0, 0);
    xtm_node(&t, XTM_OP_CONCAT, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    expect_bad(&t, "concat h/w", "node 1 (concat): input heights or widths differ");
    xtm_init(&t, 4, 4, 3);
    xtm_node(&t, XE_OP_SIGN, 0, 0, XTM_NONE, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    xtm_node(&t, XTM_OP_CONCAT, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    expect_bad(&t, "concat bits input1", "node 1 (concat): input1 value 1 is bits");
    xtm_init(&t, 4, 4, 3);
    xtm_node(&t, XTM_OP_CONCAT, 0, 0, XTM_NONE, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    expect_bad(&t, "concat without input1", "node 0 (concat): input1 is 4294967295");
    xtm_init(&t, 4, 4, 3);
    xtm_node(&t, XTM_OP_CONCAT, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    t.nodes[0].oc = 3;
    expect_bad(&t, "concat out_c", "node 0 (concat): output shape is 4x4x6");
    xtm_init(&t, 300, 300, 1);
    xtm_node(&t, XTM_OP_FLATTEN, 0, 0, XTM_NONE, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    expect_bad(&t, "flatten past 65535 channels", "node 0 (flatten): out_c 90000 out of range");
    xtm_init(&t, 3, 4, 5);
    xtm_node(&t, XTM_OP_FLATTEN, 0, 0, XTM_NONE, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    t.nodes[0].oh = 3;
    expect_bad(&t, "flatten out_h", "node 0 (flatten): output shape is 1x1x60");
    xtm_init(&t, 5, 5, 4);
    p0 = xtm_param(&t, XTM_F32, g_f, 9 * 6);
    xtm_param(&t, XTM_F32, g_f, 6);
    xtm_node(&t, XTM_OP_DWCONV2D, 0, 0, XTM_NONE, 3, 3, 1, 1, 1, 1, 6, p0, 2);
    expect_bad(&t, "dwconv2d out_c", "node 0 (dwconv2d): out_c 6 is not a multiple of the 4 input");
    xtm_init(&t, 5, 5, 4);
    p0 = xtm_param(&t, XTM_F32, g_f, 9 * 4 * 4);
    xtm_param(&t, XTM_F32, g_f, 4);
    xtm_node(&t, XTM_OP_DWCONV2D, 0, 0, XTM_NONE, 3, 3, 1, 1, 1, 1, 4, p0, 2);
    expect_bad(&t, "dwconv2d full weights",
               "node 0 (dwconv2d): param 0 (#0 of the op) is f32 x 144");
    xtm_init(&t, 5, 5, 4);
    xtm_node(&t, XE_OP_SIGN, 0, 0, XTM_NONE, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    p0 = xtm_param(&t, XTM_F32, g_f, 9 * 4);
    xtm_param(&t, XTM_F32, g_f, 4);
    xtm_node(&t, XTM_OP_DWCONV2D, 0, 1, XTM_NONE, 3, 3, 1, 1, 1, 1, 4, p0, 2);
    xtm_node(&t, XE_OP_RELU, 0, 2, XTM_NONE, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    expect_bad(&t, "dwconv2d bits input", "node 1 (dwconv2d): input value 1 is bits");
    test_pad_rejections();
    test_avgpool_excl_pad_rejections();
    test_gconv2d_rejections();
}

static void test_structural(void) {
    const uint64_t big = 0xFFFFFFFFFFFFFFF0ull;
    const edit edits[] = {
        {"format version", 8, 4, 2, XE_ERR_UNSUPPORTED_VERSION, "format_version"},
        {"packing version", 12, 4, 7, XE_ERR_UNSUPPORTED_VERSION, "packing_version"},
        {"header_size", 24, 4, 64, XE_ERR_BAD_MODEL, "header_size"},
        {"header flags", 28, 4, 2, XE_ERR_BAD_MODEL, "flags (byte offset 28) 0x2 has unknown"},
        {"input_table without U8_INPUT", 52, 4, 1, XE_ERR_BAD_MODEL,
         "input_table (byte offset 52) is 1 without the U8_INPUT flag"},
        {"U8_INPUT table is a conv's", 28, 4, 1, XE_ERR_BAD_MODEL, "header: input_table param 0"},
        {"reserved 100", 100, 4, 1, XE_ERR_BAD_MODEL, "reserved"},
        {"input_h 0", 32, 4, 0, XE_ERR_BAD_MODEL, "input"},
        {"input_w huge", 36, 4, 70000, XE_ERR_BAD_MODEL, "input"},
        {"input_c 0xFFFFFFFF", 40, 4, 0xFFFFFFFFu, XE_ERR_BAD_MODEL, "input"},
        {"num_nodes 0", 44, 4, 0, XE_ERR_BAD_MODEL, "num_nodes"},
        {"num_nodes huge", 44, 4, 0x7FFFFFFFu, XE_ERR_BAD_MODEL, "num_nodes"},
        {"num_nodes past end", 44, 4, 60000, XE_ERR_BAD_MODEL, "node table"},
        {"num_params huge", 48, 4, 0xFFFFFFFFu, XE_ERR_BAD_MODEL, "num_params"},
        {"num_params past end", 48, 4, 1000000, XE_ERR_BAD_MODEL, "param table"},
        {"meta_offset past end", 56, 8, 1u << 30, XE_ERR_BAD_MODEL, "metadata"},
        {"meta_offset small", 56, 8, 64, XE_ERR_BAD_MODEL, "metadata"},
        {"meta_size overflow", 64, 8, big, XE_ERR_BAD_MODEL, "metadata"},
        {"meta not terminated", 64, 8, 5, XE_ERR_BAD_MODEL, "metadata"},
        {"nodes_offset misaligned", 72, 8, 0, XE_ERR_BAD_MODEL, "node table"},
        {"nodes_offset overflow", 72, 8, big, XE_ERR_BAD_MODEL, "node table"},
        {"params_offset overflow", 80, 8, big, XE_ERR_BAD_MODEL, "param table"},
        {"params_offset odd", 80, 8, 1001, XE_ERR_BAD_MODEL, "param table"},
        {"op unknown", NODE(0, 0), 4, 99, XE_ERR_BAD_MODEL, "unknown op 99"},
        {"op zero", NODE(2, 0), 4, 0, XE_ERR_BAD_MODEL, "unknown op"},
        {"flags for batchnorm", NODE(0, 4), 4, XE_FLAG_USE_K, XE_ERR_BAD_MODEL,
         "node 0 (batchnorm): bad flags"},
        {"OUT_BITS with RELU", NODE(1, 4), 4, XE_FLAG_OUT_BITS | XE_FLAG_RELU, XE_ERR_BAD_MODEL,
         "OUT_BITS"},
        {"USE_K on bits input", NODE(3, 4), 4, XE_FLAG_USE_K, XE_ERR_BAD_MODEL, "USE_K"},
        {"input0 forward", NODE(1, 8), 4, 5, XE_ERR_BAD_MODEL, "input0"},
        {"input1 set", NODE(1, 12), 4, 0, XE_ERR_BAD_MODEL, "input1"},
        {"kernel 0", NODE(1, 16), 4, 0, XE_ERR_BAD_MODEL, "node 1 (bconv2d): window"},
        {"kernel 65", NODE(1, 20), 4, 65, XE_ERR_BAD_MODEL, "window"},
        {"stride 0", NODE(2, 24), 4, 0, XE_ERR_BAD_MODEL, "window"},
        {"pad >= kernel", NODE(1, 32), 4, 3, XE_ERR_BAD_MODEL, "window"},
        {"window on relu-like op", NODE(0, 16), 4, 3, XE_ERR_BAD_MODEL, "kernel, stride and pad"},
        {"out_c mismatch", NODE(0, 40), 4, 21, XE_ERR_BAD_MODEL,
         "node 0 (batchnorm): output shape"},
        {"out_h mismatch", NODE(1, 44), 4, 6, XE_ERR_BAD_MODEL, "node 1 (bconv2d): output shape"},
        {"out_w huge", NODE(2, 48), 4, 0xFFFFFFFFu, XE_ERR_BAD_MODEL, "output shape"},
        {"bconv out_c 0", NODE(1, 40), 4, 0, XE_ERR_BAD_MODEL, "out_c"},
        {"param_count", NODE(1, 56), 4, 2, XE_ERR_BAD_MODEL, "param_count"},
        {"param_first past table", NODE(1, 52), 4, 0xFFFFFFFEu, XE_ERR_BAD_MODEL,
         "outside the param table"},
        {"param reused", NODE(1, 52), 4, 0, XE_ERR_BAD_MODEL, "param"},
        {"reserved node field", NODE(4, 60), 4, 1, XE_ERR_BAD_MODEL, "reserved"},
        {"param dtype 2", PARAM(0, 0), 4, 2, XE_ERR_BAD_MODEL, "dtype"},
        {"param dtype swapped", PARAM(2, 0), 4, 0, XE_ERR_BAD_MODEL, "op needs bits"},
        {"param reserved", PARAM(1, 4), 4, 1, XE_ERR_BAD_MODEL, "reserved"},
        {"param reserved 24", PARAM(1, 24), 8, 1, XE_ERR_BAD_MODEL, "reserved"},
        {"param offset misaligned", PARAM(0, 8), 8, 1, XE_ERR_BAD_MODEL, "misaligned"},
        {"param offset past end", PARAM(0, 8), 8, 1ull << 40, XE_ERR_BAD_MODEL, "outside"},
        {"param offset overflow", PARAM(0, 8), 8, 0xFFFFFFFFFFFFFFC0ull, XE_ERR_BAD_MODEL,
         "outside"},
        {"param count overflow", PARAM(0, 16), 8, 1ull << 62, XE_ERR_BAD_MODEL, "outside"},
        {"param count wrong", PARAM(0, 16), 8, 19, XE_ERR_BAD_MODEL, "op needs f32 x 20"},
        {"last output bits", NODE(5, 0), 4, XE_OP_SIGN, XE_ERR_BAD_MODEL, "float32, not bits"},
    };
    char err[256];
    uint8_t *buf = malloc(g_size);
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        const edit *e = &edits[i];
        memcpy(buf, g_file, g_size);
        if (e->width == 4)
            xtm_put32(buf + e->off, (uint32_t)e->value);
        else
            xtm_put64(buf + e->off, e->value);
        xtm_fix_crc(buf, g_size);
        const xe_status st = load(buf, g_size, err, sizeof err);
        CHECK(st == e->want && strstr(err, e->msg), "%s: got %s \"%s\", expected %s \"%s\"",
              e->what, xe_status_string(st), err, xe_status_string(e->want), e->msg);
    }
    /* Data-level corruptions. */
    const uint64_t f32_off = xtm_get64(buf + PARAM(0, 8)),
                   bits_off = xtm_get64(g_file + PARAM(2, 8));
    memcpy(buf, g_file, g_size);
    xtm_put32(buf + f32_off + 8, 0x7FC00000u); /* NaN */
    xtm_fix_crc(buf, g_size);
    CHECK(load(buf, g_size, err, sizeof err) == XE_ERR_BAD_MODEL && strstr(err, "finite"),
          "NaN: %s", err);
    memcpy(buf, g_file, g_size);
    xtm_put32(buf + f32_off, 0x7F800000u); /* +inf */
    xtm_fix_crc(buf, g_size);
    CHECK(load(buf, g_size, err, sizeof err) == XE_ERR_BAD_MODEL && strstr(err, "finite"),
          "inf: %s", err);
    memcpy(buf, g_file, g_size);
    buf[bits_off + 4 * 5 + 3] |= 0x80; /* channel-padding bit (IC = 20) of a weight word */
    xtm_fix_crc(buf, g_size);
    CHECK(load(buf, g_size, err, sizeof err) == XE_ERR_BAD_MODEL && strstr(err, "padding bits"),
          "weight padding bit: %s", err);
    memcpy(buf, g_file, g_size);
    memcpy(buf, "XNOREDGF", 8);
    CHECK(load(buf, g_size, err, sizeof err) == XE_ERR_BAD_MAGIC && strstr(err, "magic"),
          "magic: %s", err);
    memcpy(buf, g_file, g_size);
    memcpy(buf + g_size - 4, "XEN?", 4);
    CHECK(load(buf, g_size, err, sizeof err) == XE_ERR_BAD_MODEL && strstr(err, "XEND"),
          "trailer: %s", err);
    memcpy(buf, g_file, g_size);
    buf[200] ^= 1;
    CHECK(load(buf, g_size, err, sizeof err) == XE_ERR_CHECKSUM && strstr(err, "CRC"), "crc: %s",
          err);
    free(buf);

    /* An unreferenced param and a shape mismatch between an add's inputs. */
    xtm t;
    xtm_init(&t, 2, 2, 3);
    xtm_param(&t, XTM_F32, g_f, 4);
    xtm_node(&t, XE_OP_RELU, 0, 0, XTM_NONE, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    size_t n;
    uint8_t *f = xtm_write(&t, &n);
    CHECK(load(f, n, err, sizeof err) == XE_ERR_BAD_MODEL && strstr(err, "not referenced"),
          "unused: %s", err);
    free(f);
    xtm_free(&t);
    xtm_init(&t, 4, 4, 3);
    xtm_node(&t, XE_OP_MAXPOOL, 0, 0, XTM_NONE, 2, 2, 2, 2, 0, 0, 0, 0, 0);
    xtm_node(&t, XE_OP_ADD, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    f = xtm_write(&t, &n);
    CHECK(load(f, n, err, sizeof err) == XE_ERR_BAD_MODEL &&
              strstr(err, "node 1 (add): input shapes differ"),
          "add shapes: %s", err);
    free(f);
    xtm_free(&t);
    test_new_op_rejections();
    /* Input with more than 2^28 elements, dims individually in range. */
    xtm_init(&t, 65535, 65535, 1);
    xtm_node(&t, XE_OP_RELU, 0, 0, XTM_NONE, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    f = xtm_write(&t, &n);
    CHECK(load(f, n, err, sizeof err) == XE_ERR_BAD_MODEL && strstr(err, "2^28"), "2^28: %s", err);
    free(f);
    xtm_free(&t);
}

static void test_api(void) {
    CHECK(xe_version_number() ==
              XE_VERSION_MAJOR * 10000 + XE_VERSION_MINOR * 100 + XE_VERSION_PATCH,
          "version");
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", XE_VERSION_MAJOR, XE_VERSION_MINOR, XE_VERSION_PATCH);
    CHECK(strcmp(xe_version_string(), want) == 0, "version string %s", xe_version_string());
    CHECK(xe_format_version() == XE_FORMAT_VERSION && xe_packing_version() == XE_PACKING_VERSION,
          "versions");
    CHECK(strcmp(xe_op_name(XE_OP_BCONV2D), "bconv2d") == 0 &&
              strcmp(xe_op_name(0), "unknown") == 0 && strcmp(xe_op_name(99), "unknown") == 0 &&
              strcmp(xe_op_name(XTM_OP_PRELU), "prelu") == 0 &&
              strcmp(xe_op_name(XTM_OP_CLIP), "clip") == 0 &&
              strcmp(xe_op_name(XTM_OP_SIGN_SHIFT), "sign_shift") == 0 &&
              strcmp(xe_op_name(XTM_OP_CONCAT), "concat") == 0 &&
              strcmp(xe_op_name(XTM_OP_FLATTEN), "flatten") == 0 &&
              strcmp(xe_op_name(XTM_OP_DWCONV2D), "dwconv2d") == 0 &&
              strcmp(xe_op_name(XTM_OP_AVGPOOL_EXCL_PAD), "avgpool_excl_pad") == 0 &&
              strcmp(xe_op_name(XTM_OP_GCONV2D), "gconv2d") == 0,
          "op names");
    for (int s = 0; s <= XE_ERR_UNSUPPORTED; s++)
        CHECK(strcmp(xe_status_string((xe_status)s), "unknown status") != 0,
              "status %d has a string", s);
    CHECK(strcmp(xe_status_string((xe_status)99), "unknown status") == 0, "unknown status");
}

/* bconv2d_mst: one valid model per encoding (8 channels of a 3x3x20 filter,
 * chunks of 4, trees 1->0->2->3 and 4->6->7->5, channel 3 a duplicate), then
 * one broken file per rule of docs/format.md, each with its named reason. */
typedef struct mst_case {
    int enc, id;
    const char *want;
} mst_case;

static void mst_mutate(xtm_mst *c, int id) {
    uint32_t *t = c->p[0], *order = t + 8, *parent = order + 8, *off = c->p[2], *idx = c->p[3];
    switch (id) {
    case 1:
        c->n[0]--;
        break;
    case 2:
        t[0] = 3;
        break;
    case 3:
        t[6] = 1;
        break;
    case 4:
        t[1] = 0;
        break;
    case 5:
        t[2] = 8;
        break;
    case 6:
        t[3] = 0;
        break;
    case 7:
        t[5] = 32;
        break;
    case 8:
        c->n[1]--;
        break;
    case 9:
        c->n[2]++;
        break;
    case 10:
        c->n[3]++;
        break;
    case 11:
        c->n[4] = c->n[4] ? c->n[4] - 1 : 1;
        break;
    case 12:
        idx[c->n[3] - 1] |= 1u << 16;
        break; /* N is odd */
    case 13:
        order[1] = order[0];
        break;
    case 14:
        order[3] = 4, order[4] = 3;
        break;
    case 15:
        parent[3] = 0xFFFFFFFFu;
        break;
    case 16:
        off[0] = 1;
        break;
    case 17:
        off[8]--;
        break;
    case 18:
        c->p[1][0] |= 1u << 25;
        break;
    case 19:
        off[1] = off[0] + 1;
        break; /* root 1 gets channel 0's last entry */
    case 20:
        parent[0] = 99;
        break;
    case 21:
        parent[2] = 4;
        break;
    case 22:
        parent[0] = 2;
        break;
    case 23:
        parent[0] = 0;
        break;
    case 24:
        t[2] = 1;
        break;
    case 25:
        idx[0] = (idx[0] & 0xFFFF0000u) | (t[0] == 1 ? 9u : 288u);
        break;
    case 26:
        idx[0] = (idx[0] & 0xFFFFu) | (idx[0] << 16);
        break;
    case 27:
        c->p[4][0] = 0;
        break;
    case 28:
        c->p[4][0] |= 1u << 30;
        break;
    case 29:
        idx[0] = (idx[0] & 0xFFFF0000u) | 25u;
        break;
    default:
        break;
    }
}

static void test_mst(void) {
    static const uint32_t order[8] = {1, 0, 2, 3, 4, 6, 7, 5};
    static const uint32_t parent[8] = {1, 0xFFFFFFFFu, 0, 2, 0xFFFFFFFFu, 7, 4, 6};
    static const mst_case cases[] = {
        {1, 0, NULL},
        {2, 0, NULL},
        {1, 1, "tree param count is not 8 + 2*OC"},
        {1, 2, "unknown encoding"},
        {1, 3, "reserved tree field is not zero"},
        {1, 4, "chunk, max_depth or root count out of range"},
        {1, 5, "chunk, max_depth or root count out of range"},
        {1, 6, "chunk, max_depth or root count out of range"},
        {1, 7, "index width is not the one the encoding needs"},
        {1, 8, "roots param count is not what the tree header gives"},
        {1, 9, "offsets param count is not what the tree header gives"},
        {1, 10, "index param count is not what the tree header gives"},
        {1, 11, "mask param count is not what the tree header gives"},
        {2, 11, "mask param count is not what the tree header gives"},
        {1, 12, "unused index halfword is not zero"},
        {1, 13, "order is not a permutation of the output channels"},
        {1, 14, "a channel is ordered outside its chunk"},
        {1, 15, "root count does not match the roots param"},
        {1, 16, "offsets not non-decreasing from 0"},
        {1, 17, "entry counts inconsistent"},
        {1, 18, "a root sets a channel-padding bit"},
        {1, 19, "a root has difference entries"},
        {1, 20, "parent index out of range"},
        {1, 21, "parent in another chunk"},
        {1, 22, "parent not earlier in the order"},
        {1, 23, "parent not earlier in the order"},
        {1, 24, "depth exceeds max_depth"},
        {1, 25, "difference index out of range"},
        {2, 25, "difference index out of range"},
        {1, 26, "difference indices not strictly increasing"},
        {2, 26, "difference indices not strictly increasing"},
        {1, 27, "zero word mask"},
        {1, 28, "difference on a channel-padding bit"},
        {2, 29, "difference on a channel-padding bit"},
    };
    uint32_t w[8 * 9];
    for (uint32_t c = 0; c < 8; c++)
        for (uint32_t j = 0; j < 9; j++) w[c * 9 + j] = g_w[100 + c * 9 + j] & 0xFFFFFu;
    for (int k = 0; k < 8; k++) { /* children along the order: few, known differences */
        const uint32_t c = order[k];
        if (parent[c] == 0xFFFFFFFFu) continue;
        memcpy(w + c * 9, w + parent[c] * 9, 36);
        if (c != 3) w[c * 9 + c] ^= 1u << c;
        if (c == 0) w[5] ^= 3u;         /* channel 0: entries in words 0 and 5 */
        if (c == 6) w[6 * 9 + 4] ^= 8u; /* 7 word entries in all: odd */
    }
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        xtm t;
        xtm_mst code;
        xtm_init(&t, 5, 4, 20);
        xtm_mst_encode(w, 8, 9, (uint32_t)cases[i].enc, 4, 3, order, parent, &code);
        mst_mutate(&code, cases[i].id);
        const uint32_t p0 = xtm_mst_params(&t, &code, g_f, g_f, 8);
        xtm_node(&t, XTM_OP_BCONV2D_MST, 0, 0, XTM_NONE, 3, 3, 1, 1, 1, 1, 8, p0, 7);
        size_t n;
        uint8_t *f = xtm_write(&t, &n);
        char err[256];
        const xe_status st = load(f, n, err, sizeof err);
        if (!cases[i].want)
            CHECK(st == XE_OK, "mst enc %d: valid model rejected: %s", cases[i].enc, err);
        else
            CHECK(st == XE_ERR_BAD_MODEL && strstr(err, cases[i].want) &&
                      strstr(err, "node 0 (bconv2d_mst): bconv2d_mst: "),
                  "mst enc %d case %d: want \"%s\", got %s: %s", cases[i].enc, cases[i].id,
                  cases[i].want, xe_status_string(st), err);
        free(f);
        xtm_mst_free(&code);
        xtm_free(&t);
    }
}

/* The library's sliced CRC-32 (model_load.c) against the bitwise oracle, on
 * lengths around the slicing threshold and at every alignment. */
uint32_t xe_crc32(const uint8_t *p, size_t n); /* internal (xe_internal.h) */

static void test_crc32(void) {
    enum { MAX = 3 * 4096 + 64 };
    uint8_t *buf = malloc(MAX + 8);
    if (!buf) return;
    uint32_t seed = 12345u;
    for (size_t i = 0; i < MAX + 8; i++) {
        seed = seed * 1103515245u + 12345u;
        buf[i] = (uint8_t)(seed >> 16);
    }
    const size_t lens[] = {0, 1, 7, 8, 9, 4095, 4096, 4097, 4103, 4104, 8191, 3 * 4096 + 63};
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++)
        for (size_t off = 0; off < 8; off++) {
            const uint32_t got = xe_crc32(buf + off, lens[li]),
                           want = xtm_crc32(buf + off, lens[li]);
            CHECK(got == want, "crc32 of %zu bytes at offset %zu: 0x%08x, want 0x%08x", lens[li],
                  off, got, want);
        }
    CHECK(xe_crc32((const uint8_t *)"123456789", 9) == 0xCBF43926u, "crc32 check value");
    free(buf);
}

int main(void) {
    test_crc32();
    build_valid();
    test_mst();
    test_api();
    test_u8_input();
    test_valid();
    test_truncation();
    test_bit_flips();
    test_structural();
    free(g_file);
    if (g_fail) {
        printf("test_loader: %d failure(s)\n", g_fail);
        return 1;
    }
    printf("test_loader: all passed\n");
    return 0;
}
