/*
 * bench_pool.c - what handing out a job costs, and whole-model latency by
 * thread count (issue 14: two threads were slower than one).
 *
 *   bench_pool jobs [THREADS...]            ns per job: empty (2 tasks doing
 *                                           nothing) and small (8 tasks of ~250 ns)
 *   bench_pool model MODEL THREADS [RUNS]   median latency of RUNS inferences
 *   bench_pool nodes MODEL [RUNS [THREADS]] per-node median time at 1 thread and
 *                                           at THREADS (default 2), blocks of 10 runs
 *                                           of the two sessions alternated, and the
 *                                           ratio: which nodes do not scale
 *   bench_pool wake [ROUNDS]                how long a parked (or spinning) worker
 *                                           takes to join a job that starts after an
 *                                           idle gap of 0.1 to 20 ms (median, p90, and
 *                                           how often it missed a 20 ms window)
 *   bench_pool cpus MODEL [SAMPLES]         per sample: 1-thread median pinned to each
 *                                           CPU in turn, then the 2-thread median (Linux):
 *                                           is one CPU slower than the other right now?
 *   bench_pool gaps MODEL [ROUNDS]          one inference after idle gaps of 0 to 100 ms
 *                                           (a camera app's frames), 1 and 2 threads
 *                                           interleaved: median latency per gap
 *   bench_pool pingpong [ROUND_TRIPS]       ns per round trip of a cache line between
 *                                           threads pinned to the first two CPUs (Linux):
 *                                           how far apart the host placed them right now
 *   bench_pool burst [ROUNDS [TASK_US]]     after idle gaps of 1 ms to 0.8 s, a burst
 *                                           of 40 jobs of two TASK_US tasks (default
 *                                           40): burst time over 40 tasks' time (1.0 =
 *                                           both threads worked throughout, 2.0 = one
 *                                           thread's time) and how many jobs ran both
 *                                           tasks on one CPU (Linux)
 *
 * Medians of repeated rounds; run old and new builds interleaved from a shell
 * loop for A/B comparisons. Building with -DBENCH_POOL_OLD_API measures a
 * thread pool without xe_pool_begin/end (the one before issue 14).
 */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* sched_getcpu */
#endif
#include <pthread.h>
#include <sched.h>
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

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
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

typedef struct node_bench {
    xe_model *m;
    size_t in_n, out_n;
    float *in, *out;
} node_bench;

static int node_bench_open(node_bench *b, const char *path) {
    char why[256];
    memset(b, 0, sizeof *b);
    if (xe_model_load_file(path, &b->m, why, sizeof why) != XE_OK) {
        fprintf(stderr, "cannot load %s: %s\n", path, why);
        return 1;
    }
    uint32_t h, w, c;
    xe_model_input_shape(b->m, &h, &w, &c);
    b->in_n = (size_t)h * w * c;
    xe_model_output_shape(b->m, &h, &w, &c);
    b->out_n = (size_t)h * w * c;
    b->in = calloc(b->in_n, 4);
    b->out = calloc(b->out_n, 4);
    if (!b->in || !b->out) return 1;
    for (size_t i = 0; i < b->in_n; i++) b->in[i] = (float)(i % 255) / 255.0f - 0.5f;
    return 0;
}

static void print_node(const xe_model *m, uint32_t i, uint64_t t1, uint64_t tn) {
    xe_node_info f;
    xe_model_node_info(m, i, &f);
    printf("%3u %-15s %3ux%-3u %4u->%-4u k%ux%u/%u %10.1f %10.1f %6.2f\n", i, xe_op_name(f.op),
           f.out_h, f.out_w, f.in_c, f.out_c, f.kernel_h, f.kernel_w, f.stride_h,
           (double)t1 / 1000.0, (double)tn / 1000.0, tn ? (double)t1 / (double)tn : 0.0);
}

/* Per-node medians: 1 thread against `threads`, runs alternated. */
static int bench_nodes(const char *path, int runs, uint32_t threads) {
    node_bench b;
    xe_session *s[2] = {NULL, NULL};
    uint64_t *t[2] = {NULL, NULL}, *col = calloc((size_t)runs, sizeof *col);
    int rc = node_bench_open(&b, path);
    const uint32_t nn = rc ? 0 : xe_model_num_nodes(b.m);
    for (int k = 0; rc == 0 && k < 2; k++) {
        xe_session_options o;
        memset(&o, 0, sizeof o);
        o.num_threads = k ? threads : 1;
        t[k] = calloc((size_t)runs * (nn + 1), sizeof *t[k]);
        if (!t[k] || !col || xe_session_create(b.m, &o, &s[k]) != XE_OK) rc = 1;
    }
    /* Blocks of NODE_BLOCK back-to-back runs per session, alternated: a
     * session is measured as it is used (its workers still awake from the
     * previous run), and slow phases of a shared machine hit both. */
    enum { NODE_BLOCK = 10 };
    for (int r0 = -NODE_BLOCK; rc == 0 && r0 < runs; r0 += NODE_BLOCK)
        for (int k = 0; k < 2; k++)
            for (int r = r0; r < r0 + NODE_BLOCK && r < runs; r++) {
                const uint64_t t0 = now_ns();
                xe_session_run(s[k], b.in, b.in_n, b.out, b.out_n);
                const uint64_t wall = now_ns() - t0;
                if (r < 0) continue;
                for (uint32_t i = 0; i < nn; i++)
                    xe_session_node_time_ns(s[k], i, &t[k][(size_t)i * runs + r]);
                t[k][(size_t)nn * runs + r] = wall;
            }
    if (rc == 0) {
        printf("%s: %d runs, kernel set %s, medians in us, 1 thread vs %u\n", path, runs,
               xe_kernel_isa(), threads);
        uint64_t med[2], sum[2] = {0, 0};
        for (uint32_t i = 0; i <= nn; i++) {
            for (int k = 0; k < 2; k++) {
                memcpy(col, t[k] + (size_t)i * runs, (size_t)runs * sizeof *col);
                med[k] = median(col, (size_t)runs);
                if (i < nn) sum[k] += med[k];
            }
            if (i < nn)
                print_node(b.m, i, med[0], med[1]);
            else
                printf("sum of node medians %.1f %.1f (%.2fx); median wall %.1f %.1f (%.2fx)\n",
                       (double)sum[0] / 1e3, (double)sum[1] / 1e3, (double)sum[0] / (double)sum[1],
                       (double)med[0] / 1e3, (double)med[1] / 1e3, (double)med[0] / (double)med[1]);
        }
    }
    for (int k = 0; k < 2; k++) {
        xe_session_destroy(s[k]);
        free(t[k]);
    }
    xe_model_destroy(b.m);
    free(b.in);
    free(b.out);
    free(col);
    return rc;
}

/* wake: task 0 (the caller's own range) waits up to 20 ms for task 1 (the
 * worker's range) to start, and the start time is the worker's wake latency. */
typedef struct wake_ctx {
    uint64_t t0, joined;
    int flag;
} wake_ctx;

static void wake_task(void *ctx, size_t task, uint32_t thread) {
    wake_ctx *w = ctx;
    if (task == 1) {
        if (thread != 0) w->joined = now_ns() - w->t0;
        __atomic_store_n(&w->flag, 1, __ATOMIC_RELEASE);
        return;
    }
    while (!__atomic_load_n(&w->flag, __ATOMIC_ACQUIRE) && now_ns() - w->t0 < 20000000u) {
    }
}

static int bench_wake(int rounds) {
    xe_pool *p = NULL;
    if (xe_pool_create(2, &p) != XE_OK) return 1;
    static const uint32_t gaps_us[] = {100, 500, 2000, 5000, 20000};
    printf("gap_us  join_median_us  join_p90_us  missed(of %d)\n", rounds);
    for (size_t g = 0; g < sizeof gaps_us / sizeof *gaps_us; g++) {
        uint64_t *v = calloc((size_t)rounds, sizeof *v);
        int n = 0, missed = 0;
        for (int r = 0; r < rounds; r++) {
            const struct timespec ts = {0, (long)gaps_us[g] * 1000};
            nanosleep(&ts, NULL);
            wake_ctx w = {now_ns(), 0, 0};
            xe_pool_begin(p);
            xe_pool_run(p, 2, wake_task, &w);
            xe_pool_end(p);
            if (w.joined)
                v[n++] = w.joined;
            else
                missed++;
        }
        if (n) {
            qsort(v, (size_t)n, sizeof *v, cmp_u64);
            printf("%6u  %14.1f  %11.1f  %d\n", gaps_us[g], v[n / 2] / 1e3, v[n * 9 / 10] / 1e3,
                   missed);
        } else {
            printf("%6u  %14s  %11s  %d\n", gaps_us[g], "-", "-", missed);
        }
        free(v);
    }
    xe_pool_destroy(p);
    return 0;
}

/* burst: the pattern of a camera app or of tools/bench_peers.py (inferences in
 * short bursts after idle gaps): does the worker join, and on its own CPU? */
typedef struct burst_ctx {
    uint64_t work_ns;
    int cpu[2];
} burst_ctx;

static void burst_task(void *ctx, size_t task, uint32_t thread) {
    burst_ctx *b = ctx;
    (void)thread;
    const uint64_t t0 = now_ns();
    while (now_ns() - t0 < b->work_ns) {
    }
#if defined(__linux__)
    b->cpu[task] = sched_getcpu();
#else
    b->cpu[task] = (int)task; /* unknown: never counted as one CPU */
#endif
}

static int bench_burst(int rounds, uint32_t task_us) {
    enum { JOBS = 40 };
    xe_pool *p = NULL;
    if (rounds < 1 || xe_pool_create(2, &p) != XE_OK) return 1;
    static const uint32_t gaps_ms[] = {1, 5, 20, 60, 150, 400, 800};
    double *r = calloc((size_t)rounds, sizeof *r);
    if (!r) return 1;
    printf("gap_ms  burst/ideal_median  p90   jobs_both_tasks_on_one_cpu\n");
    for (size_t g = 0; g < sizeof gaps_ms / sizeof *gaps_ms; g++) {
        int same = 0;
        for (int k = 0; k < rounds; k++) {
            const struct timespec ts = {(time_t)(gaps_ms[g] / 1000),
                                        (long)(gaps_ms[g] % 1000) * 1000000L};
            nanosleep(&ts, NULL);
            const uint64_t t0 = now_ns();
            for (int j = 0; j < JOBS; j++) {
                burst_ctx b = {(uint64_t)task_us * 1000u, {0, 1}};
                xe_pool_begin(p);
                xe_pool_run(p, 2, burst_task, &b);
                xe_pool_end(p);
                same += b.cpu[0] == b.cpu[1];
            }
            r[k] = (double)(now_ns() - t0) / (JOBS * (double)task_us * 1000.0);
        }
        qsort(r, (size_t)rounds, sizeof *r, cmp_double);
        printf("%6u  %18.2f  %4.2f  %d/%d\n", gaps_ms[g], r[rounds / 2], r[rounds * 9 / 10], same,
               rounds * JOBS);
    }
    free(r);
    xe_pool_destroy(p);
    return 0;
}

/* cpus: on a VM the vCPUs need not run at the same speed at the same time;
 * this shows it (and whether 2 threads gain) sample by sample. */
static uint64_t median_runs(xe_session *s, const node_bench *b, int runs, uint64_t *t) {
    for (int r = 0; r < runs; r++) {
        const uint64_t t0 = now_ns();
        xe_session_run(s, b->in, b->in_n, b->out, b->out_n);
        t[r] = now_ns() - t0;
    }
    return median(t, (size_t)runs);
}

#if defined(__linux__)
static void pin_self(int cpu) {
    cpu_set_t m;
    CPU_ZERO(&m);
    CPU_SET(cpu, &m);
    sched_setaffinity(0, sizeof m, &m);
}

/* The first two CPUs of this process's affinity mask (*all); 0 when it has
 * fewer, after saying so under the mode's name. */
static int first_two_cpus(const char *mode, cpu_set_t *all, int cpus[2]) {
    int n = 0;
    if (sched_getaffinity(0, sizeof *all, all) != 0) return 0;
    for (int c = 0; c < CPU_SETSIZE && n < 2; c++)
        if (CPU_ISSET(c, all)) cpus[n++] = c;
    if (n < 2) fprintf(stderr, "%s: this process may run on one CPU only\n", mode);
    return n == 2;
}
#endif

static int bench_cpus(const char *path, int samples) {
#if defined(__linux__)
    enum { RUNS = 40 };
    node_bench b;
    xe_session *s1 = NULL, *s2 = NULL;
    uint64_t t[RUNS];
    cpu_set_t all;
    int cpus[2];
    if (!first_two_cpus("cpus", &all, cpus) || node_bench_open(&b, path)) return 1;
    xe_session_options o;
    memset(&o, 0, sizeof o);
    o.num_threads = 1;
    if (xe_session_create(b.m, &o, &s1) != XE_OK) return 1;
    o.num_threads = 2;
    if (xe_session_create(b.m, &o, &s2) != XE_OK) return 1;
    printf("%s, kernel set %s: medians of %d runs (us)\n", path, xe_kernel_isa(), RUNS);
    printf("sample  1thr_cpu%d  1thr_cpu%d  slower/faster  2thr  faster_1thr/2thr\n", cpus[0],
           cpus[1]);
    int uneven = 0;
    for (int k = 0; k < samples; k++) {
        uint64_t one[2];
        for (int i = 0; i < 2; i++) {
            pin_self(cpus[i]);
            median_runs(s1, &b, 5, t);
            one[i] = median_runs(s1, &b, RUNS, t);
        }
        sched_setaffinity(0, sizeof all, &all);
        median_runs(s2, &b, 5, t);
        const uint64_t two = median_runs(s2, &b, RUNS, t);
        const uint64_t lo = one[0] < one[1] ? one[0] : one[1], hi = one[0] + one[1] - lo;
        uneven += (double)hi > 1.3 * (double)lo;
        printf("%6d  %9.1f  %9.1f  %13.2f  %4.1f  %16.2f\n", k, one[0] / 1e3, one[1] / 1e3,
               (double)hi / (double)lo, two / 1e3, (double)lo / (double)two);
    }
    printf("samples with one CPU over 1.3x slower than the other: %d of %d\n", uneven, samples);
    xe_session_destroy(s1);
    xe_session_destroy(s2);
    xe_model_destroy(b.m);
    free(b.in);
    free(b.out);
    return 0;
#else
    (void)path;
    (void)samples;
    fprintf(stderr, "cpus: Linux only\n");
    return 1;
#endif
}

static void cpu_relax_bench(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#else
    __asm__ __volatile__("" ::: "memory");
#endif
}

/* pingpong: on the 2-vCPU development VM the host sometimes places the two
 * vCPUs near each other (a cache line's round trip 70-110 ns) and sometimes
 * far apart (380-470 ns); 2-thread inferences run 1.7-1.8x faster than 1
 * thread in the first case and about 1.15x in the second (docs/contributing.md).
 * tools/bench_peers.py runs this before each request to label it. */
typedef struct pp_arg {
    int cpu;
    long trips;
    uint64_t *flag;
} pp_arg;

#if defined(__linux__)
static void *pp_thread(void *arg) {
    const pp_arg *a = arg;
    pin_self(a->cpu);
    for (uint64_t i = 1; i < 2u * (uint64_t)a->trips; i += 2) {
        while (__atomic_load_n(a->flag, __ATOMIC_ACQUIRE) != i) cpu_relax_bench();
        __atomic_store_n(a->flag, i + 1, __ATOMIC_RELEASE);
    }
    return NULL;
}
#endif

static int bench_pingpong(long trips) {
#if defined(__linux__)
    cpu_set_t all;
    int cpus[2];
    if (trips < 1) {
        fprintf(stderr, "pingpong: TRIPS must be at least 1\n");
        return 2;
    }
    if (!first_two_cpus("pingpong", &all, cpus)) return 1;
    void *mem = NULL;
    if (posix_memalign(&mem, 128, 128) != 0) return 1;
    uint64_t *flag = mem;
    *flag = 0;
    pp_arg a = {cpus[1], trips, flag};
    pthread_t t;
    pin_self(cpus[0]);
    if (pthread_create(&t, NULL, pp_thread, &a) != 0) return 1;
    const uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < 2u * (uint64_t)trips; i += 2) {
        while (__atomic_load_n(flag, __ATOMIC_ACQUIRE) != i) cpu_relax_bench();
        __atomic_store_n(flag, i + 1, __ATOMIC_RELEASE);
    }
    const uint64_t dt = now_ns() - t0;
    pthread_join(t, NULL);
    sched_setaffinity(0, sizeof all, &all);
    free(mem);
    printf("%.0f ns per round trip, CPUs %d and %d\n", (double)dt / (double)trips, cpus[0],
           cpus[1]);
    return 0;
#else
    (void)trips;
    fprintf(stderr, "pingpong: Linux only\n");
    return 1;
#endif
}

/* gaps: the first inference after an idle gap, as a camera app runs one per
 * frame; the sessions of 1 and 2 threads take turns, each after its own gap. */
static int bench_gaps(const char *path, int rounds) {
    static const uint32_t gaps_us[] = {0, 200, 1000, 5000, 20000, 100000};
    enum { NG = sizeof gaps_us / sizeof gaps_us[0] };
    node_bench b;
    xe_session *s[2] = {NULL, NULL};
    if (rounds < 1) {
        fprintf(stderr, "gaps: ROUNDS must be at least 1\n");
        return 2;
    }
    if (node_bench_open(&b, path)) return 1;
    for (uint32_t t = 0; t < 2; t++) {
        xe_session_options o;
        memset(&o, 0, sizeof o);
        o.num_threads = t + 1;
        if (xe_session_create(b.m, &o, &s[t]) != XE_OK) return 1;
        for (int i = 0; i < 20; i++) xe_session_run(s[t], b.in, b.in_n, b.out, b.out_n);
    }
    uint64_t *t_ns = calloc((size_t)rounds * NG * 2, sizeof *t_ns);
    if (!t_ns) return 1;
    for (int r = 0; r < rounds; r++)
        for (int g = 0; g < NG; g++)
            for (uint32_t t = 0; t < 2; t++) {
                const struct timespec ts = {0, (long)gaps_us[g] * 1000};
                if (gaps_us[g]) nanosleep(&ts, NULL);
                const uint64_t t0 = now_ns();
                xe_session_run(s[t], b.in, b.in_n, b.out, b.out_n);
                t_ns[((size_t)g * 2 + t) * (size_t)rounds + (size_t)r] = now_ns() - t0;
            }
    printf("%s, kernel set %s: median of %d inferences after each gap (us)\n", path,
           xe_kernel_isa(), rounds);
    printf("gap_ms  1thr     2thr     1thr/2thr\n");
    for (int g = 0; g < NG; g++) {
        const uint64_t one = median(t_ns + (size_t)g * 2 * (size_t)rounds, (size_t)rounds);
        const uint64_t two = median(t_ns + ((size_t)g * 2 + 1) * (size_t)rounds, (size_t)rounds);
        printf("%6.1f  %7.1f  %7.1f  %9.2f\n", gaps_us[g] / 1e3, one / 1e3, two / 1e3,
               (double)one / (double)two);
    }
    free(t_ns);
    xe_session_destroy(s[0]);
    xe_session_destroy(s[1]);
    xe_model_destroy(b.m);
    free(b.in);
    free(b.out);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "jobs") == 0) return bench_jobs(argc - 2, argv + 2);
    if (argc >= 4 && strcmp(argv[1], "model") == 0)
        return bench_model(argv[2], (uint32_t)strtoul(argv[3], NULL, 10),
                           argc > 4 ? atoi(argv[4]) : 200);
    if (argc >= 3 && strcmp(argv[1], "nodes") == 0)
        return bench_nodes(argv[2], argc > 3 ? atoi(argv[3]) : 50,
                           argc > 4 ? (uint32_t)strtoul(argv[4], NULL, 10) : 2);
    if (argc >= 2 && strcmp(argv[1], "wake") == 0) return bench_wake(argc > 2 ? atoi(argv[2]) : 50);
    if (argc >= 3 && strcmp(argv[1], "cpus") == 0)
        return bench_cpus(argv[2], argc > 3 ? atoi(argv[3]) : 20);
    if (argc >= 3 && strcmp(argv[1], "gaps") == 0)
        return bench_gaps(argv[2], argc > 3 ? atoi(argv[3]) : 30);
    if (argc >= 2 && strcmp(argv[1], "pingpong") == 0)
        return bench_pingpong(argc > 2 ? atol(argv[2]) : 20000);
    if (argc >= 2 && strcmp(argv[1], "burst") == 0)
        return bench_burst(argc > 2 ? atoi(argv[2]) : 15,
                           argc > 3 ? (uint32_t)strtoul(argv[3], NULL, 10) : 40u);
    fprintf(
        stderr,
        "usage: %s jobs [THREADS...] | model MODEL THREADS [RUNS] | nodes MODEL [RUNS [THREADS]] "
        "| wake [ROUNDS] | burst [ROUNDS [TASK_US]] | cpus MODEL [SAMPLES] | gaps MODEL [ROUNDS] | "
        "pingpong [TRIPS]\n",
        argv[0]);
    return 2;
}
