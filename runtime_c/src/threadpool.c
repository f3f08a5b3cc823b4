/*
 * threadpool.c - a per-session pool: num_threads - 1 pthreads plus the caller.
 *
 * A job is n_tasks independent tasks; threads take the next task index from a
 * shared counter until none are left. Which thread runs which task varies, but
 * the tasks themselves (fixed-size chunks chosen by the ops, independent of the
 * thread count) and the order of arithmetic inside each do not, so results are
 * bit-identical for any thread count. Workers sleep on a condition variable
 * between jobs: on a small board sharing cores, spinning would steal time.
 */
#include <pthread.h>
#include <stdlib.h>

#include "xe_internal.h"

struct xe_pool {
    uint32_t threads; /* including the caller */
    pthread_t *tids;
    uint32_t started;
    pthread_mutex_t mu;
    pthread_cond_t wake; /* a new job, or shutdown */
    pthread_cond_t done; /* a worker finished its share of the job */
    uint64_t generation; /* bumped per job */
    int shutdown;
    uint32_t busy; /* workers still inside the current job */
    /* The current job. */
    xe_task_fn fn;
    void *ctx;
    size_t n_tasks;
    size_t next; /* next task index, under mu */
};

typedef struct worker_arg {
    xe_pool *pool;
    uint32_t index;
} worker_arg;

/* Takes task indices until the job is exhausted. A mutex-guarded counter is
 * portable C99 + pthreads; tasks are large (a chunk of a gemm), so the lock is
 * taken rarely compared with the work. */
static void drain(xe_pool *p, uint32_t thread) {
    for (;;) {
        pthread_mutex_lock(&p->mu);
        size_t t = p->next;
        if (t < p->n_tasks) p->next = t + 1;
        pthread_mutex_unlock(&p->mu);
        if (t >= p->n_tasks) return;
        p->fn(p->ctx, t, thread);
    }
}

static void *worker_main(void *arg) {
    worker_arg *wa = arg;
    xe_pool *p = wa->pool;
    const uint32_t index = wa->index;
    free(wa);
    uint64_t seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->shutdown && p->generation == seen) pthread_cond_wait(&p->wake, &p->mu);
        if (p->shutdown) break;
        seen = p->generation;
        pthread_mutex_unlock(&p->mu);
        drain(p, index);
        pthread_mutex_lock(&p->mu);
        if (--p->busy == 0) pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static void stop_workers(xe_pool *p) {
    pthread_mutex_lock(&p->mu);
    p->shutdown = 1;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (uint32_t i = 0; i < p->started; i++) pthread_join(p->tids[i], NULL);
    p->started = 0;
}

xe_status xe_pool_create(uint32_t num_threads, xe_pool **out) {
    *out = NULL;
    if (num_threads < 1) num_threads = 1;
    xe_pool *p = calloc(1, sizeof *p);
    if (!p) return XE_ERR_OUT_OF_MEMORY;
    p->threads = num_threads;
    if (pthread_mutex_init(&p->mu, NULL) != 0) {
        free(p);
        return XE_ERR_THREAD;
    }
    if (pthread_cond_init(&p->wake, NULL) != 0) {
        pthread_mutex_destroy(&p->mu);
        free(p);
        return XE_ERR_THREAD;
    }
    if (pthread_cond_init(&p->done, NULL) != 0) {
        pthread_cond_destroy(&p->wake);
        pthread_mutex_destroy(&p->mu);
        free(p);
        return XE_ERR_THREAD;
    }
    xe_status st = XE_OK;
    if (num_threads > 1) {
        p->tids = calloc(num_threads - 1, sizeof *p->tids);
        if (!p->tids) st = XE_ERR_OUT_OF_MEMORY;
        for (uint32_t i = 0; st == XE_OK && i < num_threads - 1; i++) {
            worker_arg *wa = malloc(sizeof *wa);
            if (!wa) {
                st = XE_ERR_OUT_OF_MEMORY;
                break;
            }
            wa->pool = p;
            wa->index = i + 1; /* the caller is thread 0 */
            if (pthread_create(&p->tids[i], NULL, worker_main, wa) != 0) {
                free(wa);
                st = XE_ERR_THREAD;
                break;
            }
            p->started++;
        }
    }
    if (st != XE_OK) {
        xe_pool_destroy(p);
        return st;
    }
    *out = p;
    return XE_OK;
}

void xe_pool_destroy(xe_pool *pool) {
    if (!pool) return;
    stop_workers(pool);
    free(pool->tids);
    pthread_cond_destroy(&pool->done);
    pthread_cond_destroy(&pool->wake);
    pthread_mutex_destroy(&pool->mu);
    free(pool);
}

uint32_t xe_pool_threads(const xe_pool *pool) { return pool ? pool->threads : 1; }

void xe_pool_run(xe_pool *p, size_t n_tasks, xe_task_fn fn, void *ctx) {
    if (n_tasks == 0) return;
    if (!p || p->threads == 1 || n_tasks == 1) {
        for (size_t t = 0; t < n_tasks; t++) fn(ctx, t, 0);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->n_tasks = n_tasks;
    p->next = 0;
    p->busy = p->started;
    p->generation++;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    drain(p, 0);
    pthread_mutex_lock(&p->mu);
    while (p->busy > 0) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
