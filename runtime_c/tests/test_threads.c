/*
 * test_threads.c - thread-count independence and concurrent sessions.
 *
 * The same model and input must give byte-identical outputs with 1, 2, 3 and
 * 4 threads (work is cut into fixed chunks, never by thread count); a batch
 * run must equal single runs; several sessions of one shared model must run
 * in parallel threads and agree with the single-threaded results. Also
 * checks the session's argument validation and per-node timings.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xe_test_model.h"
#include "xnor_edge.h"

static uint32_t g_seed = 12345;
static uint32_t rnd(void) {
    g_seed = g_seed * 1103515245u + 12345u;
    return g_seed >> 8;
}
/* Non-dyadic values on purpose: float rounding must still not depend on threads. */
static float rndf(void) { return (float)(rnd() % 20001) / 10000.0f - 1.0f; }

static void *store[64];
static int nstore;
static void *keep(size_t bytes) {
    void *p = calloc(bytes, 1);
    if (!p) exit(2);
    store[nstore++] = p;
    return p;
}
static float *fl(size_t n) {
    float *f = keep(n * 4);
    for (size_t i = 0; i < n; i++) f[i] = rndf();
    return f;
}
static uint32_t conv(xtm *t, uint32_t op, uint32_t flags, uint32_t in, uint32_t k, uint32_t s,
                     uint32_t p, uint32_t oc) {
    const uint32_t ic = t->values[in].c, taps = k * k, cw = (ic + 31) / 32;
    if (op == XE_OP_CONV2D) {
        uint32_t p0 = xtm_param(t, XTM_F32, fl((size_t)oc * taps * ic), (uint64_t)oc * taps * ic);
        xtm_param(t, XTM_F32, fl(oc), oc);
        return xtm_node(t, op, flags, in, XTM_NONE, k, k, s, s, p, p, oc, p0, 2);
    }
    uint32_t *w = keep((size_t)oc * taps * cw * 4);
    for (size_t i = 0; i < (size_t)oc * taps; i++)
        for (uint32_t c = 0; c < ic; c++)
            if (rnd() & 1) w[i * cw + c / 32] |= 1u << (c % 32);
    uint32_t p0 = xtm_param(t, XTM_BITS, w, (uint64_t)oc * taps * cw);
    xtm_param(t, XTM_F32, fl(oc), oc);
    xtm_param(t, XTM_F32, fl(oc), oc);
    return xtm_node(t, op, flags, in, XTM_NONE, k, k, s, s, p, p, oc, p0, 3);
}

typedef struct par_arg {
    const xe_model *m;
    const float *in;
    const float *expect;
    size_t in_n, out_n;
    int ok;
} par_arg;

static void *par_main(void *p) {
    par_arg *a = p;
    xe_session_options o;
    memset(&o, 0, sizeof o);
    o.num_threads = 2;
    xe_session *s = NULL;
    float *out = malloc(a->out_n * 4);
    a->ok = out && xe_session_create(a->m, &o, &s) == XE_OK;
    for (int r = 0; a->ok && r < 5; r++) {
        a->ok = xe_session_run(s, a->in, a->in_n, out, a->out_n) == XE_OK &&
                memcmp(out, a->expect, a->out_n * 4) == 0;
    }
    xe_session_destroy(s);
    free(out);
    return NULL;
}

int main(void) {
    xtm t;
    xtm_init(&t, 33, 29, 5);
    uint32_t v = conv(&t, XE_OP_CONV2D, XE_FLAG_RELU, 0, 3, 1, 1, 48);
    uint32_t p0 = xtm_param(&t, XTM_F32, fl(48), 48);
    xtm_param(&t, XTM_F32, fl(48), 48);
    v = xtm_node(&t, XE_OP_BATCHNORM, 0, v, XTM_NONE, 0, 0, 0, 0, 0, 0, 0, p0, 2);
    const uint32_t bn = v;
    v = conv(&t, XE_OP_BCONV2D, XE_FLAG_USE_K, v, 3, 1, 1, 48);
    v = xtm_node(&t, XE_OP_ADD, 0, v, bn, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    v = conv(&t, XE_OP_BCONV2D, XE_FLAG_OUT_BITS, v, 5, 2, 2, 96);
    v = xtm_node(&t, XE_OP_MAXPOOL, 0, v, XTM_NONE, 3, 3, 2, 2, 1, 1, 0, 0, 0);
    v = conv(&t, XE_OP_BCONV2D, XE_FLAG_RELU | XE_FLAG_PAD_ONE, v, 3, 1, 1, 200);
    v = conv(&t, XE_OP_BWN_CONV2D, XE_FLAG_RELU, v, 3, 1, 1, 64);
    v = xtm_node(&t, XE_OP_AVGPOOL, 0, v, XTM_NONE, 2, 2, 1, 1, 0, 0, 0, 0, 0);
    v = xtm_node(&t, XE_OP_GLOBAL_AVGPOOL, 0, v, XTM_NONE, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    p0 = xtm_param(&t, XTM_F32, fl(300 * 64), 300 * 64);
    xtm_param(&t, XTM_F32, fl(300), 300);
    v = xtm_node(&t, XE_OP_DENSE, 0, v, XTM_NONE, 0, 0, 0, 0, 0, 0, 300, p0, 2);
    xtm_node(&t, XE_OP_SOFTMAX, 0, v, XTM_NONE, 0, 0, 0, 0, 0, 0, 0, 0, 0);

    size_t size;
    uint8_t *file = xtm_write(&t, &size);
    char err[256];
    xe_model *m = NULL;
    xe_status st = xe_model_load_memory(file, size, 1, &m, err, sizeof err);
    free(file); /* copied */
    if (st != XE_OK) {
        printf("FAIL: load: %s\n", err);
        return 1;
    }
    uint32_t h, w, c;
    xe_model_input_shape(m, &h, &w, &c);
    const size_t in_n = (size_t)h * w * c;
    xe_model_output_shape(m, &h, &w, &c);
    const size_t out_n = (size_t)h * w * c;
    const int nin = 3;
    float *in = malloc(in_n * 4 * nin), *ref = malloc(out_n * 4 * nin),
          *out = malloc(out_n * 4 * nin);
    for (size_t i = 0; i < in_n * nin; i++) in[i] = rndf();

    for (uint32_t threads = 1; threads <= 4; threads++) {
        xe_session_options o;
        memset(&o, 0, sizeof o);
        o.num_threads = threads;
        xe_session *s = NULL;
        st = xe_session_create(m, &o, &s);
        CHECK(st == XE_OK, "session with %u threads: %s", threads, xe_status_string(st));
        if (st != XE_OK) continue;
        CHECK(xe_session_num_threads(s) == threads, "num_threads %u", xe_session_num_threads(s));
        for (int b = 0; b < nin; b++) {
            st = xe_session_run(s, in + b * in_n, in_n, out + b * out_n, out_n);
            CHECK(st == XE_OK, "run: %s", xe_status_string(st));
        }
        if (threads == 1)
            memcpy(ref, out, out_n * 4 * nin);
        else
            CHECK(memcmp(ref, out, out_n * 4 * nin) == 0, "%u threads differ from 1 thread",
                  threads);
        /* Batch equals single runs; the same session gives the same bytes again. */
        memset(out, 0, out_n * 4 * nin);
        st = xe_session_run_batch(s, nin, in, in_n * nin, out, out_n * nin);
        CHECK(st == XE_OK && memcmp(ref, out, out_n * 4 * nin) == 0, "batch of %d with %u threads",
              nin, threads);
        uint64_t total = 0, ns = 0;
        for (uint32_t i = 0; i < xe_model_num_nodes(m); i++) {
            CHECK(xe_session_node_time_ns(s, i, &ns) == XE_OK, "node_time_ns(%u)", i);
            total += ns;
        }
        CHECK(total > 0, "node times are all zero");
        CHECK(xe_session_node_time_ns(s, xe_model_num_nodes(m), &ns) == XE_ERR_INVALID_ARGUMENT,
              "node_time_ns out of range");
        /* Argument checks. */
        CHECK(xe_session_run(s, in, in_n - 1, out, out_n) == XE_ERR_INVALID_ARGUMENT,
              "short input");
        CHECK(xe_session_run(s, in, in_n, out, out_n + 1) == XE_ERR_INVALID_ARGUMENT,
              "long output");
        CHECK(xe_session_run(s, NULL, in_n, out, out_n) == XE_ERR_INVALID_ARGUMENT, "NULL input");
        CHECK(xe_session_run(NULL, in, in_n, out, out_n) == XE_ERR_INVALID_ARGUMENT,
              "NULL session");
        xe_session_destroy(s);
    }
    /* Softmax outputs sum to one: a sanity check that the run did real work. */
    double sum = 0;
    for (size_t i = 0; i < out_n; i++) sum += ref[i];
    CHECK(sum > 0.999 && sum < 1.001, "softmax sums to %f", sum);

    {
        xe_session_options o;
        memset(&o, 0, sizeof o);
        o.reserved[3] = 1;
        xe_session *s = (xe_session *)1;
        CHECK(xe_session_create(m, &o, &s) == XE_ERR_INVALID_ARGUMENT && s == NULL,
              "reserved option");
        o.reserved[3] = 0;
        o.num_threads = 100000;
        CHECK(xe_session_create(m, &o, &s) == XE_ERR_INVALID_ARGUMENT, "absurd thread count");
        CHECK(xe_session_create(NULL, NULL, &s) == XE_ERR_INVALID_ARGUMENT, "NULL model");
        xe_session_destroy(NULL);
    }

    /* Four sessions of one model in four threads at once. */
    enum { NPAR = 4 };
    pthread_t tids[NPAR];
    par_arg args[NPAR];
    for (int i = 0; i < NPAR; i++) {
        args[i] = (par_arg){m, in + (i % nin) * in_n, ref + (i % nin) * out_n, in_n, out_n, 0};
        CHECK(pthread_create(&tids[i], NULL, par_main, &args[i]) == 0, "pthread_create");
    }
    for (int i = 0; i < NPAR; i++) {
        pthread_join(tids[i], NULL);
        CHECK(args[i].ok, "parallel session %d gave a different result", i);
    }

    xe_model_destroy(m);
    free(in);
    free(ref);
    free(out);
    xtm_free(&t);
    for (int i = 0; i < nstore; i++) free(store[i]);
    if (g_fail) {
        printf("test_threads: %d failure(s)\n", g_fail);
        return 1;
    }
    printf("test_threads: all passed\n");
    return 0;
}
