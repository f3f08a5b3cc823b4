/*
 * test_threads.c - thread-count independence and concurrent sessions.
 *
 * The same model and input must give byte-identical outputs with 1, 2, 3 and
 * 4 threads (work is cut into fixed chunks, never by thread count); a batch
 * run must equal single runs; several sessions of one shared model must run
 * in parallel threads and agree with the single-threaded results. Also
 * checks the session's argument validation and per-node timings.
 *
 * The pool itself (threadpool.c) is tested directly: every task of jobs of
 * many sizes runs exactly once at 1-8 threads, with and without parallel
 * regions and cost hints; idle workers park; pools are destroyed while their
 * workers spin, park or sit in an open region; 10,000 tiny jobs; several
 * pools driven from several threads at once. CI also runs it under
 * ThreadSanitizer (-DXE_SANITIZE=thread -DCMAKE_C_COMPILER=clang).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "xe_internal.h"
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

/* ---- the pool on its own ---- */

typedef struct count_job {
    uint32_t *hits; /* per task, atomically incremented */
    uint32_t threads;
    uint32_t bad_thread; /* set when a task sees thread >= threads */
    uint32_t spin;       /* busy-work per task, to vary task lengths */
} count_job;

static uint32_t g_task_sink;

static void count_task(void *ctx, size_t task, uint32_t thread) {
    count_job *j = ctx;
    uint32_t x = (uint32_t)task;
    for (uint32_t i = 0; i < j->spin; i++) x = x * 1664525u + 1013904223u;
    __atomic_store_n(&g_task_sink, x, __ATOMIC_RELAXED);
    if (thread >= j->threads) __atomic_store_n(&j->bad_thread, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&j->hits[task], 1, __ATOMIC_RELAXED);
}

/* Runs one job of n tasks; 1 when every task ran exactly once. */
static int run_counted(xe_pool *p, count_job *j, size_t n, int how) {
    memset(j->hits, 0, n * sizeof *j->hits);
    if (how == 0)
        xe_pool_run(p, n, count_task, j);
    else
        xe_pool_run_work(p, n, count_task, j, how == 1 ? 0 : 1000000);
    int ok = !__atomic_load_n(&j->bad_thread, __ATOMIC_RELAXED);
    for (size_t t = 0; t < n; t++) ok &= j->hits[t] == 1;
    return ok;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Waits up to 5 s for `want` workers to be parked. */
static int parks(xe_pool *p, uint32_t want) {
    /* One read per step: a worker that wakes for a job it then finds taken
     * counts itself a sleeper for an instant on its way through park(), so a
     * second read could see one fewer (seen under qemu-arm: "1 of 2"). */
    for (int i = 0; i < 5000; i++) {
        if (xe_pool_parked(p) == want) return 1;
        sleep_ms(1);
    }
    return 0;
}

static void inline_task(void *ctx, size_t task, uint32_t thread) {
    if (thread != 0) __atomic_store_n((uint32_t *)ctx, 1, __ATOMIC_RELAXED);
}

typedef struct pool_par_arg {
    uint32_t threads, seed;
    int ok;
} pool_par_arg;

/* A pool per thread, many jobs of varying size each. */
static void *pool_par_main(void *arg) {
    pool_par_arg *a = arg;
    uint32_t hits[40];
    count_job j = {hits, a->threads, 0, 0};
    xe_pool *p = NULL;
    a->ok = xe_pool_create(a->threads, &p) == XE_OK;
    for (int r = 0; a->ok && r < 2000; r++) {
        a->seed = a->seed * 1103515245u + 12345u;
        if (r % 100 == 0) xe_pool_begin(p);
        a->ok = run_counted(p, &j, (a->seed >> 8) % 40, 0);
        if (r % 100 == 99) xe_pool_end(p);
    }
    xe_pool_destroy(p);
    return NULL;
}

static void pool_tests(void) {
    /* 65535 and up: more tasks than a claim word counts, claimed in blocks. */
    static const size_t sizes[] = {0, 1, 2, 3, 5, 7, 8, 9, 31, 64, 100, 1000, 65535, 65536, 200003};
    const size_t nsizes = sizeof sizes / sizeof sizes[0];
    uint32_t *hits = calloc(200003, sizeof *hits);
    for (uint32_t threads = 1; threads <= 8; threads++) {
        xe_pool *p = NULL;
        CHECK(xe_pool_create(threads, &p) == XE_OK, "pool of %u", threads);
        if (!p) continue;
        CHECK(xe_pool_threads(p) == threads, "pool threads %u", xe_pool_threads(p));
        count_job j = {hits, threads, 0, 0};
        for (int rep = 0; rep < 3; rep++) {
            j.spin = rep * 200; /* tasks of different lengths */
            /* spin_us 0: workers park at once and the caller blocks for tasks in flight. */
            xe_pool_set_spin_us(p, rep == 1 ? 0 : 100);
            for (size_t i = 0; i < nsizes; i++) {
                const uint32_t spin = j.spin;
                if (sizes[i] > 1000) j.spin = 0; /* the big jobs: many short tasks */
                CHECK(run_counted(p, &j, sizes[i], 0), "%u threads, %zu tasks", threads, sizes[i]);
                CHECK(run_counted(p, &j, sizes[i], 2), "%u threads, %zu tasks, costly", threads,
                      sizes[i]);
                j.spin = spin;
            }
            /* One region around many jobs, nested once. */
            xe_pool_begin(p);
            xe_pool_begin(p);
            for (size_t i = 0; i < nsizes; i++)
                CHECK(run_counted(p, &j, sizes[nsizes - 1 - i], 0), "%u threads, %zu in region",
                      threads, sizes[nsizes - 1 - i]);
            xe_pool_end(p);
            CHECK(run_counted(p, &j, 77, 0), "%u threads, nested region", threads);
            xe_pool_end(p);
            CHECK(run_counted(p, &j, 77, 0), "%u threads, after region", threads);
        }
        /* A cheap job runs on the caller only; so does a one-task job. */
        uint32_t other = 0;
        xe_pool_run_work(p, 50, inline_task, &other, 10);
        xe_pool_run(p, 1, inline_task, &other);
        CHECK(other == 0, "%u threads: a cheap job left the caller", threads);
        CHECK(parks(p, threads - 1), "%u threads: %u of %u workers parked after spinning", threads,
              xe_pool_parked(p), threads - 1);
        /* After a region, idle workers park soon (XE_POOL_TAIL_US), however
         * long spin_us is. */
        xe_pool_set_spin_us(p, 100000000);
        xe_pool_begin(p);
        CHECK(run_counted(p, &j, 64, 0), "%u threads, region after parking", threads);
        xe_pool_end(p);
        CHECK(parks(p, threads - 1), "%u threads: %u of %u workers parked after a region", threads,
              xe_pool_parked(p), threads - 1);
        xe_pool_set_spin_us(p, 100);
        /* Jobs reach parked workers, and the pool is destroyed while they park. */
        for (int r = 0; r < 20; r++) CHECK(run_counted(p, &j, 64, 0), "%u threads, woken", threads);
        CHECK(parks(p, threads - 1), "%u threads: workers parked again", threads);
        xe_pool_destroy(p);
    }
    xe_pool_destroy(NULL);
    xe_pool_run(NULL, 3, inline_task, &(uint32_t){0});
    xe_pool_begin(NULL);
    xe_pool_end(NULL);

    /* Without regions, idle workers spin spin_us, then park. */
    {
        xe_pool *p = NULL;
        CHECK(xe_pool_create(3, &p) == XE_OK, "pool of 3");
        xe_pool_set_spin_us(p, 2000);
        count_job j = {hits, 3, 0, 0};
        CHECK(run_counted(p, &j, 100, 0), "spin then park");
        CHECK(parks(p, 2), "workers parked after the spin: %u of 2", xe_pool_parked(p));
        xe_pool_destroy(p);
    }
    /* The caller blocks for long tasks in flight, then is signalled. */
    {
        xe_pool *p = NULL;
        CHECK(xe_pool_create(4, &p) == XE_OK, "pool of 4");
        xe_pool_set_spin_us(p, 0);
        count_job j = {hits, 4, 0, 20000};
        int ok = 1;
        for (int r = 0; r < 200 && ok; r++) ok = run_counted(p, &j, 1 + r % 9, 0);
        CHECK(ok, "long tasks, caller blocks");
        xe_pool_destroy(p);
    }
    /* Destroyed while spinning, while in an open region, and never used. */
    {
        xe_pool *p = NULL;
        CHECK(xe_pool_create(4, &p) == XE_OK, "pool of 4");
        xe_pool_set_spin_us(p, 10000000);
        count_job j = {hits, 4, 0, 0};
        CHECK(run_counted(p, &j, 100, 0), "spinning pool");
        xe_pool_destroy(p);
        p = NULL;
        CHECK(xe_pool_create(4, &p) == XE_OK, "pool of 4");
        xe_pool_begin(p);
        CHECK(run_counted(p, &j, 100, 0), "pool in a region");
        xe_pool_destroy(p);
        p = NULL;
        CHECK(xe_pool_create(8, &p) == XE_OK, "pool of 8");
        xe_pool_destroy(p);
    }
    /* 10,000 tiny jobs of 1-17 tasks, at 2 and 4 threads. */
    for (uint32_t threads = 2; threads <= 4; threads += 2) {
        xe_pool *p = NULL;
        CHECK(xe_pool_create(threads, &p) == XE_OK, "pool of %u", threads);
        count_job j = {hits, threads, 0, 0};
        int ok = 1;
        uint32_t seed = threads;
        for (int r = 0; r < 10000 && ok; r++) {
            seed = seed * 1103515245u + 12345u;
            ok = run_counted(p, &j, 1 + (seed >> 8) % 17, 0);
        }
        CHECK(ok, "10,000 tiny jobs at %u threads", threads);
        xe_pool_destroy(p);
    }
    /* Four pools driven from four threads at once. */
    {
        enum { NP = 4 };
        pthread_t tids[NP];
        pool_par_arg args[NP];
        for (int i = 0; i < NP; i++) {
            args[i] = (pool_par_arg){2 + (uint32_t)i % 3, 77u * (uint32_t)i + 1, 0};
            CHECK(pthread_create(&tids[i], NULL, pool_par_main, &args[i]) == 0, "pthread_create");
        }
        for (int i = 0; i < NP; i++) {
            pthread_join(tids[i], NULL);
            CHECK(args[i].ok, "concurrent pool %d", i);
        }
    }
    free(hits);
}

int main(void) {
    pool_tests();
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
