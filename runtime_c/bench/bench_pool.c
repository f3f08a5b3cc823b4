/*
 * bench_pool.c - what handing out a job costs, and whole-model latency by
 * thread count (issue 14: two threads were slower than one).
 *
 *   bench_pool jobs [THREADS...]            ns per job: empty (2 tasks doing
 *                                           nothing) and small (8 tasks of ~250 ns)
 *   bench_pool model MODEL THREADS [RUNS]   median latency of RUNS inferences
 *
 * Medians of repeated rounds; run old and new builds interleaved from a shell
 * loop for A/B comparisons. Building with -DBENCH_POOL_OLD_API measures a
 * thread pool without xe_pool_begin/end (the one before issue 14).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "xe_internal.h"
#include "xnor_edge.h"

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b) {
    const uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t median(uint64_t *v, size_t n) {
    qsort(v, n, sizeof *v, cmp_u64);
    return v[n / 2];
}

/* One result slot per thread, 128 bytes apart: tasks must not share a line. */
#define BENCH_MAX_THREADS 64
static volatile uint32_t g_sink[BENCH_MAX_THREADS * 32];
static uint32_t g_work_iters; /* busy-work per small task */

static void empty_task(void *ctx, size_t task, uint32_t thread) {}

static void small_task(void *ctx, size_t task, uint32_t thread) {
    uint32_t x = (uint32_t)task;
    for (uint32_t i = 0; i < g_work_iters; i++) x = x * 1664525u + 1013904223u;
    g_sink[thread * 32] = x;
}

/* Median over rounds of the mean ns per job of `jobs` back-to-back jobs. */
static uint64_t time_jobs(xe_pool *p, size_t tasks, xe_task_fn fn, int region) {
    enum { ROUNDS = 15, JOBS = 2000 };
    uint64_t r[ROUNDS];
    for (int k = 0; k < ROUNDS; k++) {
#ifndef BENCH_POOL_OLD_API
        if (region) xe_pool_begin(p);
#endif
        const uint64_t t0 = now_ns();
        for (int j = 0; j < JOBS; j++) xe_pool_run(p, tasks, fn, NULL);
        r[k] = (now_ns() - t0) / JOBS;
#ifndef BENCH_POOL_OLD_API
        if (region) xe_pool_end(p);
#endif
    }
    return median(r, ROUNDS);
}

static int bench_jobs(int argc, char **argv) {
    /* Calibrate the small task to ~250 ns on this machine (fastest of 9 tries:
     * the machine may be busy). */
    g_work_iters = 1000;
    uint64_t per = UINT64_MAX;
    for (int k = 0; k < 9; k++) {
        const uint64_t t0 = now_ns();
        for (int i = 0; i < 2000; i++) small_task(NULL, (size_t)i, 0);
        const uint64_t d = (now_ns() - t0) / 2000;
        if (d < per) per = d;
    }
    g_work_iters = (uint32_t)(250u * 1000u / (per ? per : 1));
    if (g_work_iters == 0) g_work_iters = 1;
    printf("threads  empty job (ns)  small job (ns)  small job in a region (ns)\n");
    for (int a = 0; a < argc || (argc == 0 && a < 2); a++) {
        const uint32_t threads = argc ? (uint32_t)strtoul(argv[a], NULL, 10) : (uint32_t)a + 1;
        xe_pool *p = NULL;
        if (threads > BENCH_MAX_THREADS || xe_pool_create(threads, &p) != XE_OK) {
            fprintf(stderr, "cannot create a pool of %u\n", threads);
            return 1;
        }
        const uint64_t e = time_jobs(p, 2, empty_task, 0), s = time_jobs(p, 8, small_task, 0);
#ifndef BENCH_POOL_OLD_API
        const uint64_t sr = time_jobs(p, 8, small_task, 1);
        printf("%7u  %14llu  %14llu  %26llu\n", threads, (unsigned long long)e,
               (unsigned long long)s, (unsigned long long)sr);
#else
        printf("%7u  %14llu  %14llu  %26s\n", threads, (unsigned long long)e, (unsigned long long)s,
               "-");
#endif
        xe_pool_destroy(p);
    }
    return 0;
}

static int bench_model(const char *path, uint32_t threads, int runs) {
    char why[256];
    xe_model *m = NULL;
    if (xe_model_load_file(path, &m, why, sizeof why) != XE_OK) {
        fprintf(stderr, "cannot load %s: %s\n", path, why);
        return 1;
    }
    uint32_t h, w, c;
    xe_model_input_shape(m, &h, &w, &c);
    const size_t in_n = (size_t)h * w * c;
    xe_model_output_shape(m, &h, &w, &c);
    const size_t out_n = (size_t)h * w * c;
    float *in = calloc(in_n, 4), *out = calloc(out_n, 4);
    uint64_t *t = calloc((size_t)runs, sizeof *t);
    xe_session_options o;
    memset(&o, 0, sizeof o);
    o.num_threads = threads;
    xe_session *s = NULL;
    int rc = 1;
    if (in && out && t && xe_session_create(m, &o, &s) == XE_OK) {
        for (size_t i = 0; i < in_n; i++) in[i] = (float)(i % 255) / 255.0f - 0.5f;
        for (int r = 0; r < 10; r++) xe_session_run(s, in, in_n, out, out_n);
        for (int r = 0; r < runs; r++) {
            const uint64_t t0 = now_ns();
            xe_session_run(s, in, in_n, out, out_n);
            t[r] = now_ns() - t0;
        }
        printf("%s threads %u runs %d median_us %.1f\n", path, threads, runs,
               (double)median(t, (size_t)runs) / 1000.0);
        rc = 0;
    }
    xe_session_destroy(s);
    xe_model_destroy(m);
    free(in);
    free(out);
    free(t);
    return rc;
}

int main(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "jobs") == 0) return bench_jobs(argc - 2, argv + 2);
    if (argc >= 4 && strcmp(argv[1], "model") == 0)
        return bench_model(argv[2], (uint32_t)strtoul(argv[3], NULL, 10),
                           argc > 4 ? atoi(argv[4]) : 200);
    fprintf(stderr, "usage: %s jobs [THREADS...] | model MODEL THREADS [RUNS]\n", argv[0]);
    return 2;
}
