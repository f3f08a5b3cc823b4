/*
 * test_session.c - what a session promises (xnor_edge.h, "sessions" and
 * "kernel dispatch"): its kernel set is fixed when it is created, from the
 * process-wide choice or from xe_session_options.kernel_isa, and a later
 * xe_set_kernel_isa does not reach it. And the load contracts the header
 * recommends for files that may change: a copied load does not see its source
 * buffer change, a mapped file may be replaced by rename.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "xe_test_model.h"
#include "xnor_edge.h"

static float g_f[4096];
static uint32_t g_w[4096];

/* A small XNOR model: conv -> sign -> bconv -> global pool -> dense. */
static uint8_t *build_model(size_t *size) {
    for (int i = 0; i < 4096; i++) {
        g_f[i] = (float)(i % 13) * 0.125f - 0.75f;
        g_w[i] = (uint32_t)i * 2654435761u & 0xFFu; /* low 8 bits: valid for IC >= 8 */
    }
    xtm t;
    xtm_init(&t, 9, 8, 3);
    uint32_t p0 = xtm_param(&t, XTM_F32, g_f, 16 * 9 * 3);
    xtm_param(&t, XTM_F32, g_f + 1, 16);
    uint32_t v = xtm_node(&t, XE_OP_CONV2D, 0, 0, XTM_NONE, 3, 3, 1, 1, 1, 1, 16, p0, 2);
    v = xtm_node(&t, XE_OP_SIGN, 0, v, XTM_NONE, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    p0 = xtm_param(&t, XTM_BITS, g_w, 40 * 9);
    xtm_param(&t, XTM_F32, g_f + 2, 40);
    xtm_param(&t, XTM_F32, g_f + 3, 40);
    v = xtm_node(&t, XE_OP_BCONV2D, XE_FLAG_RELU, v, XTM_NONE, 3, 3, 1, 1, 1, 1, 40, p0, 3);
    v = xtm_node(&t, XE_OP_GLOBAL_AVGPOOL, 0, v, XTM_NONE, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    p0 = xtm_param(&t, XTM_F32, g_f + 4, 40 * 5);
    xtm_param(&t, XTM_F32, g_f + 5, 5);
    xtm_node(&t, XE_OP_DENSE, 0, v, XTM_NONE, 0, 0, 0, 0, 0, 0, 5, p0, 2);
    uint8_t *file = xtm_write(&t, size);
    xtm_free(&t);
    return file;
}

#define IN_N (9 * 8 * 3)
#define OUT_N 5

static xe_status run(xe_session *s, float *out) {
    float in[IN_N];
    for (int i = 0; i < IN_N; i++) in[i] = (float)((i * 7) % 17) * 0.25f - 2.0f;
    return xe_session_run(s, in, IN_N, out, OUT_N);
}

static xe_session *create(const xe_model *m, uint32_t kernel_isa, xe_status *st) {
    xe_session_options o;
    memset(&o, 0, sizeof o);
    o.num_threads = 2;
    o.kernel_isa = kernel_isa;
    xe_session *s = NULL;
    *st = xe_session_create(m, &o, &s);
    return s;
}

/* A session created before xe_set_kernel_isa("ref") keeps its kernel set. */
static void test_kernel_set_fixed_at_creation(const xe_model *m, const char *best) {
    xe_status st;
    CHECK(xe_set_kernel_isa("auto") == XE_OK, "auto");
    xe_session *before = create(m, 0, &st);
    CHECK(st == XE_OK && before, "create before: %s", xe_status_string(st));
    CHECK(xe_set_kernel_isa("ref") == XE_OK, "set ref");
    xe_session *after = create(m, 0, &st);
    CHECK(st == XE_OK && after, "create after: %s", xe_status_string(st));
    if (before && after) {
        CHECK(strcmp(xe_session_kernel_isa(before), best) == 0, "session before the switch runs %s",
              xe_session_kernel_isa(before));
        CHECK(strcmp(xe_session_kernel_isa(after), "ref") == 0, "session after the switch runs %s",
              xe_session_kernel_isa(after));
        float a[OUT_N], b[OUT_N];
        CHECK(run(before, a) == XE_OK && run(after, b) == XE_OK, "runs");
        CHECK(memcmp(a, b, sizeof a) == 0, "kernel sets disagree");
        CHECK(strcmp(xe_session_kernel_isa(before), best) == 0, "a run changed the kernel set");
    }
    xe_session_destroy(before);
    xe_session_destroy(after);
    CHECK(xe_set_kernel_isa("auto") == XE_OK, "auto");
    CHECK(xe_session_kernel_isa(NULL) == NULL, "NULL session");
}

/* kernel_isa = i picks the i-th available set; 0 the process-wide one; others are refused. */
static void test_kernel_set_option(const xe_model *m, const char **names, size_t count) {
    xe_status st;
    float first[OUT_N], out[OUT_N];
    for (size_t i = 0; i < count; i++) {
        xe_session *s = create(m, (uint32_t)i + 1, &st);
        CHECK(st == XE_OK && s, "kernel_isa %zu (%s): %s", i + 1, names[i], xe_status_string(st));
        if (!s) continue;
        CHECK(strcmp(xe_session_kernel_isa(s), names[i]) == 0, "kernel_isa %zu runs %s", i + 1,
              xe_session_kernel_isa(s));
        CHECK(run(s, i ? out : first) == XE_OK, "run with %s", names[i]);
        if (i) CHECK(memcmp(first, out, sizeof out) == 0, "%s differs from %s", names[i], names[0]);
        xe_session_destroy(s);
    }
    xe_session *s = create(m, 0, &st);
    CHECK(st == XE_OK && s && strcmp(xe_session_kernel_isa(s), xe_kernel_isa()) == 0,
          "kernel_isa 0 is the process-wide choice");
    xe_session_destroy(s);
    s = create(m, (uint32_t)count + 1, &st);
    CHECK(st == XE_ERR_INVALID_ARGUMENT && s == NULL, "kernel_isa past the list: %s",
          xe_status_string(st));
    s = create(m, 0xFFFFFFFFu, &st);
    CHECK(st == XE_ERR_INVALID_ARGUMENT && s == NULL, "kernel_isa 0xFFFFFFFF");
    xe_session_options o;
    memset(&o, 0, sizeof o);
    o.reserved[5] = 1;
    CHECK(xe_session_create(m, &o, &s) == XE_ERR_INVALID_ARGUMENT && s == NULL,
          "reserved must be zero");
}

static void run_fresh(const xe_model *m, float *out) {
    xe_status st;
    xe_session *s = create(m, 0, &st);
    CHECK(st == XE_OK && s && run(s, out) == XE_OK, "run: %s", xe_status_string(st));
    xe_session_destroy(s);
}

/* copy != 0: the model owns its bytes; scribbling over the source changes nothing. */
static void test_copied_load_is_independent(const uint8_t *file, size_t size) {
    uint8_t *buf = malloc(size);
    memcpy(buf, file, size);
    xe_model *m = NULL;
    char err[256];
    CHECK(xe_model_load_memory(buf, size, 1, &m, err, sizeof err) == XE_OK, "copied load: %s", err);
    float a[OUT_N], b[OUT_N];
    if (m) {
        run_fresh(m, a);
        memset(buf, 0xA5, size);
        run_fresh(m, b);
        CHECK(memcmp(a, b, sizeof a) == 0, "a copied model changed with its source buffer");
    }
    xe_model_destroy(m);
    free(buf);
}

/* A mapped model survives its file being replaced by rename (the old inode stays mapped). */
static void test_mapped_file_replaced_by_rename(const uint8_t *file, size_t size) {
    char path[] = "/tmp/xe_test_session_XXXXXX", repl[64];
    const int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp");
    if (fd < 0) return;
    CHECK(write(fd, file, size) == (ssize_t)size, "write");
    close(fd);
    xe_model *m = NULL;
    char err[256];
    CHECK(xe_model_load_file(path, &m, err, sizeof err) == XE_OK, "load_file: %s", err);
    snprintf(repl, sizeof repl, "%s.new", path);
    FILE *fp = fopen(repl, "wb");
    CHECK(fp != NULL, "fopen");
    if (m && fp) {
        float a[OUT_N], b[OUT_N];
        run_fresh(m, a);
        uint8_t *junk = malloc(size);
        memset(junk, 0x5A, size);
        CHECK(fwrite(junk, 1, size, fp) == size, "fwrite");
        fclose(fp);
        fp = NULL;
        free(junk);
        CHECK(rename(repl, path) == 0, "rename");
        run_fresh(m, b);
        CHECK(memcmp(a, b, sizeof a) == 0, "a mapped model changed when its file was renamed over");
    }
    if (fp) fclose(fp);
    xe_model_destroy(m);
    unlink(repl);
    unlink(path);
}

int main(void) {
    size_t size;
    uint8_t *file = build_model(&size);
    char err[256];
    xe_model *m = NULL;
    xe_status st = xe_model_load_memory(file, size, 0, &m, err, sizeof err);
    CHECK(st == XE_OK, "load: %s", err);
    const char *names[16];
    const size_t count = xe_available_isas(names, 16);
    CHECK(count >= 1 && count <= 16 && strcmp(names[0], "ref") == 0, "available isas");
    if (m) {
        test_kernel_set_fixed_at_creation(m, names[count - 1]);
        test_kernel_set_option(m, names, count);
    }
    test_copied_load_is_independent(file, size);
    test_mapped_file_replaced_by_rename(file, size);
    xe_model_destroy(m);
    free(file);
    printf("%s: %d failure(s)\n", g_fail ? "FAIL" : "ok", g_fail);
    return g_fail ? 1 : 0;
}
