/*
 * threadpool.c - a per-session pool: num_threads - 1 pthreads plus the caller.
 *
 * A job is n_tasks independent tasks; threads take task indices from atomic
 * counters until none are left (below). Which thread runs which task varies,
 * but the order of arithmetic inside each output element does not (the ops'
 * kernels fix it), so results are bit-identical for any thread count.
 *
 * Why not sleep between jobs: a network is dozens of nodes and each node
 * several jobs, many of them a few microseconds long. Waking a worker from a
 * condition variable takes tens of microseconds, so a pool that parks between
 * jobs and waits for every worker to check in makes two threads slower than
 * one (issue 14: a small node 2.4 us at 1 thread, 48 us at 2).
 *
 * Hand-off. A job (fn, ctx, n_tasks) sits in one cache line that only the
 * caller writes, guarded by a sequence word (a seqlock: odd while the caller
 * rewrites it), so a worker's first miss on a job brings all of it. A worker
 * reads the job, checks the sequence word again, takes tasks, and stores the
 * number it finished in a line of its own; the caller waits until those
 * counts cover the tasks it did not run itself. Nothing is reset between
 * jobs and nothing is counted on a shared line, so a job costs the minimum
 * of line transfers between threads: the job to each worker, each worker's
 * count back (the protocol until 2026-12-03, with a workers-inside count in
 * the job word, range counters rewritten by the caller and one shared
 * `done` counter, cost about twice as many: `bench_pool jobs`, an empty job
 * at 2 threads 250 -> 122 ns).
 *
 * Which tasks: thread t first takes tasks from its own contiguous range
 * [t*n/T, (t+1)*n/T), then steals what is left of the others' ranges. Each
 * range has a claim word on its own line: the job's generation and the
 * number of tasks taken from the range, bumped by compare-and-swap, so a
 * task is claimed exactly once; a claim word carrying an older generation
 * counts as none taken, so nobody resets it, and a thread takes its own
 * tasks from a line it already holds. A worker that read a job and was then
 * held up until the caller moved on finds its claims refused (the word
 * carries a later generation, or a used-up range), so it never runs a task
 * of a finished job. Ops number tasks in output order, so a thread keeps
 * the same slice of the activations from node to node and mostly reads what
 * it wrote itself, from its own cache, instead of lines the other core holds.
 * A late or preempted worker costs nothing extra: the others steal its
 * range, and the caller waits only for tasks that were claimed, never for a
 * worker that took none. It spins for them, blocking only after spin_us (a
 * long task, or a worker preempted on a loaded machine, is better waited for
 * with the core given away; the worker signals only when the caller says it
 * blocked).
 *
 * Idle workers spin on the sequence word (pause on x86, yield on ARM) for spin_us
 * (XE_POOL_SPIN_US, 1000 us by default), then park on a condition variable, so
 * a pool between inferences costs at most that much CPU per worker. (At 100 us,
 * on the 2-vCPU development VM, a 2-thread ResNet-18 at 96 px ran no faster
 * than 1 thread whenever inferences came in short bursts after idle, as in
 * tools/bench_peers.py: 1.18x vs 1.70x at 1000 us, --gap-ms 100, one run; a
 * parked worker's wake-up took milliseconds there, for the reason below.)
 * Outside a parallel region (below) the caller broadcasts only when some
 * worker is parked (a seq_cst store of the sequence word, then a seq_cst
 * load of the sleeper count; the worker increments the count, then
 * re-checks the sequence word under the mutex: one of the two always sees
 * the other); inside one no worker parks, so the caller publishes with a
 * plain release store and checks nothing. Jobs of
 * one task run inline without touching shared state, as do jobs whose
 * estimated cost (xe_pool_run_work) is below XE_POOL_MIN_PARALLEL_NS.
 *
 * Napping instead of parking where parking is slow, and never on the
 * caller's CPU. On the 2-vCPU KVM development VM a parked worker woken by the
 * caller landed on the caller's own vCPU (the scheduler's "wake affine"
 * choice) and waited there behind it until the next tick or load balancing:
 * `bench_pool wake` measured a median join of 2.9-3.9 ms after a 20 ms idle
 * gap. Two measures, both measured there (`bench_pool wake 20` and `bench_pool
 * burst 8`, the machine otherwise quiet):
 * - a worker parks with its caller's CPU taken out of its affinity, restored
 *   when it wakes, and moves off its caller's CPU when it finds itself there
 *   at a job (move_off_caller_cpu): join after 2-20 ms gaps 28-56 us median;
 * - where a wake-up from parking is measured slow (over XE_POOL_SLOW_WAKE_US,
 *   300 us, from the caller's first broadcast after the worker parked), the
 *   worker first naps: its wait on the condition variable times out every
 *   XE_POOL_NAP_US (200 us) for up to XE_POOL_NAP_TOTAL_US (1 s), so its vCPU
 *   never idles long enough to be slow to wake; a broadcast still wakes it at
 *   once. Where wake-ups are measured fast it parks at once, so there a pool
 *   naps only for its first idle second.
 * Bursts of 40 jobs of two 40 us tasks after idle gaps of 1 ms to 0.8 s take
 * 1.03-1.06x the two-thread ideal (median; 2.0 would be one thread's time;
 * before: 2.67x after 400 and 800 ms gaps). Without the naps the medians
 * stay there but the p90 after 800 ms reaches 3.8x. Cost while idle, one
 * worker, on the VM: 8% of a core with inferences 200 ms apart (process CPU
 * time, the shipped ResNet-18 at 2 threads). (Until 2026-12-03 wake-ups were
 * timed from the caller's latest broadcast, repeated by every job while a
 * worker is still parked, so milliseconds measured as microseconds and the
 * pool stopped napping; naps were plain sleeps, which a broadcast cannot cut
 * short, and lasted 50 ms.)
 *
 * Parallel regions. xe_pool_begin/xe_pool_end bracket one inference: begin
 * wakes parked workers at once (their wake-up overlaps the caller's first
 * node), inside the region idle workers keep spinning (yielding the CPU once
 * spin_us has passed, so an oversubscribed core still gets shared), and after
 * end they park once idle for XE_POOL_TAIL_US (or spin_us if shorter) instead
 * of spinning spin_us: the region says where the inference ends, and a
 * 2-thread session on a 2-core board must not keep the other core busy
 * between inferences; but the short tail lets back-to-back inferences (a
 * benchmark loop, a video stream) find the workers awake. (Parking at once
 * made every inference start with a wake-up: the MNIST models, about 75 us a
 * run, were slower at 2 threads than at 1.) Jobs outside any region get the
 * spin-then-park behaviour above.
 */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* sched_getcpu, sched_setaffinity: see move_off_caller_cpu */
#endif
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "xe_internal.h"

#ifndef XE_POOL_SPIN_US
#define XE_POOL_SPIN_US 1000u
#endif
#ifndef XE_POOL_TAIL_US
#define XE_POOL_TAIL_US 1000u
#endif
/* Napping (below): a worker whose last wake-up from parking took longer than
 * XE_POOL_SLOW_WAKE_US sleeps XE_POOL_NAP_US at a time, checking for work in
 * between, for up to XE_POOL_NAP_TOTAL_US before it parks again. */
#ifndef XE_POOL_SLOW_WAKE_US
#define XE_POOL_SLOW_WAKE_US 300u
#endif
#ifndef XE_POOL_NAP_US
#define XE_POOL_NAP_US 200u
#endif
#ifndef XE_POOL_NAP_TOTAL_US
#define XE_POOL_NAP_TOTAL_US 1000000u
#endif
#ifndef XE_POOL_MOVE_EVERY_US
#define XE_POOL_MOVE_EVERY_US 10000u
#endif
#ifndef XE_POOL_MIN_PARALLEL_NS
#define XE_POOL_MIN_PARALLEL_NS 2000u
#endif
#define XE_POOL_LINE 128 /* two 64-byte lines: adjacent-line prefetchers pair them */

/* Claim words: job generation << CLAIM_BITS | claims taken from the range. */
#define CLAIM_BITS 16
/* At most this many claims per job; more tasks are claimed in blocks. */
#define CLAIM_MAX 0xffffu

struct xe_pool {
    /* Written by the caller once per job, read by every worker: the whole
     * job in one line, so a worker's first miss brings all of it. */
    union {
        struct {
            uint64_t seq; /* 2 * generation; odd while the caller rewrites the job */
            xe_task_fn fn;
            void *ctx;
            size_t n_tasks;
            int32_t caller_cpu; /* the CPU the caller published it from, or -1 */
        } v;
        char pad[XE_POOL_LINE];
    } job;
    struct slot *slots; /* per thread: its claim word and its finished count */
    /* Rarely written. */
    uint64_t wake_ns;   /* the caller's first broadcast since a worker last parked */
    uint64_t park_ns;   /* when a worker last parked */
    uint32_t slow_wake; /* the last measured wake-up from parking was slow: nap */
    uint32_t sleepers;  /* workers parked, or about to park */
    uint32_t waiting;   /* the caller is blocked on `finished` */
    uint32_t region;    /* bumped by begin and end: odd while a region is open */
    uint32_t shutdown;
    uint32_t spin_us;
    uint32_t depth;   /* caller only: nesting of xe_pool_begin */
    uint32_t threads; /* including the caller */
    uint32_t started;
    pthread_t *tids;
    struct worker_arg *args;
    pthread_mutex_t mu;
    pthread_cond_t wake;     /* a new job, a region, or shutdown */
    pthread_cond_t finished; /* workers' tasks of the current job are done */
};

/* Thread t's two lines. `claim` counts the units (make_job) taken from t's
 * range [t*U/T, (t+1)*U/T) of the job whose generation it carries (a claim
 * word of an older job means none taken yet), so nobody resets it between
 * jobs: t takes its own units from a line it holds, and a thief touches it
 * only once t's range is nearly done. `fin` is the number of units t
 * finished in the job it names (workers only), read by the caller. */
struct slot {
    union {
        uint64_t v;
        char pad[XE_POOL_LINE];
    } claim, fin;
};

typedef struct worker_arg {
    xe_pool *pool;
    uint32_t index;
    uint64_t moved_ns; /* when it last moved off the caller's CPU */
} worker_arg;

static void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__) || (defined(__arm__) && defined(__ARM_ARCH) && __ARM_ARCH >= 7)
    __asm__ __volatile__("yield" ::: "memory");
#else
    __asm__ __volatile__("" ::: "memory");
#endif
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t seq_gen(uint64_t seq) { return (seq + 1) >> 1; }

/* The job a snapshot describes: tasks claimed in units of `unit` tasks, so a
 * job never has more than CLAIM_MAX units (claim and fin words count units). */
typedef struct job {
    uint64_t gen;
    xe_task_fn fn;
    void *ctx;
    size_t n_tasks, unit, n_units;
} job;

static job make_job(uint64_t gen, xe_task_fn fn, void *ctx, size_t n_tasks) {
    const size_t unit = n_tasks <= CLAIM_MAX ? 1 : (n_tasks + CLAIM_MAX - 1) / CLAIM_MAX;
    return (job){gen, fn, ctx, n_tasks, unit, (n_tasks + unit - 1) / unit};
}

/* Takes the next unit of range r for job j: its index, or SIZE_MAX when the
 * range is used up for j or already carries a later job (a worker that read
 * j and was then held up: its claims must fail). Generations are compared
 * modulo 2^(64 - CLAIM_BITS). */
static size_t claim(xe_pool *p, const job *j, uint32_t r) {
    uint64_t *word = &p->slots[r].claim.v;
    const size_t lo = j->n_units * r / p->threads, hi = j->n_units * (r + 1) / p->threads;
    uint64_t w = __atomic_load_n(word, __ATOMIC_RELAXED);
    for (;;) {
        const int64_t d = (int64_t)(((w >> CLAIM_BITS) - j->gen) << CLAIM_BITS);
        if (d > 0) return SIZE_MAX;
        const size_t k = d == 0 ? (size_t)(w & CLAIM_MAX) : 0;
        if (lo + k >= hi) return SIZE_MAX;
        const uint64_t next = j->gen << CLAIM_BITS | (uint64_t)(k + 1);
        if (__atomic_compare_exchange_n(word, &w, next, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
            return lo + k;
    }
}

/* Runs the units of range r until it is used up; returns how many. */
static size_t drain_range(xe_pool *p, const job *j, uint32_t r, uint32_t thread) {
    size_t ran = 0;
    for (size_t u; (u = claim(p, j, r)) != SIZE_MAX; ran++) {
        const size_t t0 = u * j->unit, t1 = t0 + j->unit < j->n_tasks ? t0 + j->unit : j->n_tasks;
        for (size_t t = t0; t < t1; t++) j->fn(j->ctx, t, thread);
    }
    return ran;
}

/* Units taken from the others' ranges in turn, after the thread's own. */
static size_t steal(xe_pool *p, const job *j, uint32_t thread) {
    size_t ran = 0;
    for (uint32_t k = 1; k < p->threads; k++)
        ran += drain_range(p, j, (thread + k) % p->threads, thread);
    return ran;
}

static int current_cpu(void) {
#if defined(__linux__)
    return sched_getcpu();
#else
    return -1;
#endif
}

/* Keeping a worker off its caller's CPU (Linux). The scheduler wakes a
 * sleeping thread where its waker runs when it judges that cheaper ("wake
 * affine"), and there the worker waits behind the busy caller until the next
 * tick or load balancing moves it. On the 2-vCPU development VM that made a
 * parked worker join a job 3.9 ms after the caller's broadcast (median, after
 * a 20 ms idle gap; `bench_pool wake`). So a worker parks with its caller's
 * CPU taken out of its affinity (the wake-up must then go to another CPU) and
 * restores its affinity when it wakes: join 26-37 us at every gap. And a
 * worker that finds itself on its caller's CPU at a job (woken by its own nap
 * timer while the caller slept, or moved by the scheduler) moves off it the
 * same way, narrowing and at once restoring its affinity (the kernel migrates
 * a running thread before the call returns); at most once per
 * XE_POOL_MOVE_EVERY_US, so a pool with more threads than CPUs does not
 * migrate on every job. Threads allowed only one CPU are left alone, and the
 * affinity restored is the one read just before, so a mask the application
 * sets stays in force. The per-job check is a load of the CPU number (rseq). */
#if defined(__linux__)
static int exclude_cpu(int cpu, cpu_set_t *saved) {
    if (cpu < 0 || cpu >= CPU_SETSIZE || sched_getaffinity(0, sizeof *saved, saved) != 0) return 0;
    if (!CPU_ISSET(cpu, saved) || CPU_COUNT(saved) < 2) return 0;
    cpu_set_t others = *saved;
    CPU_CLR(cpu, &others);
    return sched_setaffinity(0, sizeof others, &others) == 0;
}
#endif

static void move_off_caller_cpu(worker_arg *wa, int cpu) {
#if defined(__linux__)
    if (cpu < 0 || sched_getcpu() != cpu) return;
    const uint64_t t = now_ns();
    if (t - wa->moved_ns < (uint64_t)XE_POOL_MOVE_EVERY_US * 1000u) return;
    wa->moved_ns = t;
    cpu_set_t saved;
    if (exclude_cpu(cpu, &saved)) sched_setaffinity(0, sizeof saved, &saved);
#else
    (void)wa;
    (void)cpu;
#endif
}

static void wake_parked(xe_pool *p) {
    if (__atomic_load_n(&p->sleepers, __ATOMIC_SEQ_CST) == 0) return;
    /* Only the first broadcast after a worker parked is the time its wake-up
     * is measured from: every job broadcasts again until the worker has
     * decremented `sleepers`, and timing from the latest one made wake-ups of
     * milliseconds look like tens of microseconds. */
    if (__atomic_load_n(&p->wake_ns, __ATOMIC_RELAXED) <=
        __atomic_load_n(&p->park_ns, __ATOMIC_RELAXED))
        __atomic_store_n(&p->wake_ns, now_ns(), __ATOMIC_RELAXED);
    pthread_mutex_lock(&p->mu);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
}

/* Parks until the generation moves past `seen`, the region state moves from
 * `region`, or shutdown; returns 0 when one of them had already happened.
 * Where parking was measured slow (slow_wake) it first naps: timed waits of
 * XE_POOL_NAP_US on the same condition variable, re-checking between them,
 * for up to XE_POOL_NAP_TOTAL_US, then waits untimed. A napping worker counts
 * as parked, so the caller's broadcast wakes it at once rather than at its
 * next timeout. A wake-up from the untimed wait by the caller's broadcast is
 * timed: slower than XE_POOL_SLOW_WAKE_US sets slow_wake, faster clears it. */
static int park(xe_pool *p, uint64_t seen, uint32_t region) {
    int slept = 0, untimed = 0;
#if defined(__linux__)
    cpu_set_t saved;
    const int narrowed =
        exclude_cpu(__atomic_load_n(&p->job.v.caller_cpu, __ATOMIC_RELAXED), &saved);
#endif
    const uint64_t parked_at = now_ns();
    const uint64_t nap_ns = __atomic_load_n(&p->slow_wake, __ATOMIC_RELAXED)
                                ? (uint64_t)XE_POOL_NAP_TOTAL_US * 1000u
                                : 0;
    pthread_mutex_lock(&p->mu);
    __atomic_store_n(&p->park_ns, parked_at, __ATOMIC_RELAXED);
    __atomic_add_fetch(&p->sleepers, 1, __ATOMIC_SEQ_CST);
    while (seq_gen(__atomic_load_n(&p->job.v.seq, __ATOMIC_SEQ_CST)) == seen &&
           __atomic_load_n(&p->region, __ATOMIC_SEQ_CST) == region &&
           !__atomic_load_n(&p->shutdown, __ATOMIC_SEQ_CST)) {
        if (now_ns() - parked_at < nap_ns) {
            /* CLOCK_REALTIME, the condition variable's default clock: a clock
             * step only lengthens or shortens one poll interval. */
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += (long)XE_POOL_NAP_US * 1000;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&p->wake, &p->mu, &ts);
        } else {
            untimed = 1;
            pthread_cond_wait(&p->wake, &p->mu);
        }
        slept = 1;
    }
    __atomic_sub_fetch(&p->sleepers, 1, __ATOMIC_SEQ_CST);
    pthread_mutex_unlock(&p->mu);
#if defined(__linux__)
    if (narrowed) sched_setaffinity(0, sizeof saved, &saved);
#endif
    const uint64_t woken = __atomic_load_n(&p->wake_ns, __ATOMIC_RELAXED);
    if (untimed && woken > parked_at) {
        const int slow = now_ns() - woken > (uint64_t)XE_POOL_SLOW_WAKE_US * 1000u;
        __atomic_store_n(&p->slow_wake, (uint32_t)slow, __ATOMIC_RELAXED);
    }
    return slept;
}

/* Waits for a published job of a generation other than `seen`; returns its
 * (even) sequence word, or 0 at shutdown (generation 0 is never published).
 * *ended is the region count this worker last parked in: a region that ended
 * since parks it after XE_POOL_TAIL_US idle. */
static uint64_t wait_job(xe_pool *p, uint64_t seen, uint32_t *ended) {
    uint64_t t0 = now_ns();
    for (uint32_t spins = 1;; spins++) {
        const uint64_t s = __atomic_load_n(&p->job.v.seq, __ATOMIC_ACQUIRE);
        if (!(s & 1) && seq_gen(s) != seen) return s;
        if (__atomic_load_n(&p->shutdown, __ATOMIC_RELAXED)) return 0;
        if (spins % 64 == 0) {
            const uint32_t region = __atomic_load_n(&p->region, __ATOMIC_RELAXED);
            const uint64_t budget =
                (uint64_t)__atomic_load_n(&p->spin_us, __ATOMIC_RELAXED) * 1000u;
            const uint64_t idle = now_ns() - t0;
            const int over = idle >= budget;
            if (region & 1) {
                if (over) sched_yield();
            } else if (over || (region != *ended && idle >= XE_POOL_TAIL_US * 1000u)) {
                if (park(p, seen, region)) *ended = region;
                t0 = now_ns();
            }
        }
        cpu_relax();
    }
}

/* Units of job `gen` that the workers have finished, as their `fin` words say. */
static size_t finished(xe_pool *p, uint64_t gen, int order) {
    size_t n = 0;
    for (uint32_t t = 1; t < p->threads; t++) {
        const uint64_t w = __atomic_load_n(&p->slots[t].fin.v, order);
        if (w >> CLAIM_BITS == (gen & (UINT64_MAX >> CLAIM_BITS))) n += (size_t)(w & CLAIM_MAX);
    }
    return n;
}

/* The caller waits until the workers have finished `want` units of job
 * `gen` (every unit is claimed by then, so that is all of theirs): it spins
 * for spin_us, then blocks (a long task in flight, or a worker preempted on a
 * loaded machine: the caller's core is better given away). Same handshake as
 * parking: the caller sets `waiting`, then re-reads the counts; a worker
 * stores its count, then reads `waiting`. */
static void wait_tasks(xe_pool *p, uint64_t gen, size_t want) {
    if (want == 0 || finished(p, gen, __ATOMIC_ACQUIRE) >= want) return;
    const uint64_t t0 = now_ns();
    const uint64_t budget = (uint64_t)__atomic_load_n(&p->spin_us, __ATOMIC_RELAXED) * 1000u;
    for (uint32_t spins = 1;; spins++) {
        if (finished(p, gen, __ATOMIC_ACQUIRE) >= want) return;
        if (spins % 64 == 0 && now_ns() - t0 >= budget) break;
        cpu_relax();
    }
    pthread_mutex_lock(&p->mu);
    __atomic_store_n(&p->waiting, 1, __ATOMIC_SEQ_CST);
    while (finished(p, gen, __ATOMIC_SEQ_CST) < want) pthread_cond_wait(&p->finished, &p->mu);
    __atomic_store_n(&p->waiting, 0, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&p->mu);
}

/* A worker's count of finished units, for the caller's wait_tasks. */
static void publish(xe_pool *p, uint32_t index, uint64_t gen, size_t units) {
    __atomic_store_n(&p->slots[index].fin.v, gen << CLAIM_BITS | (uint64_t)units, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&p->waiting, __ATOMIC_SEQ_CST)) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_signal(&p->finished);
        pthread_mutex_unlock(&p->mu);
    }
}

static void *worker_main(void *arg) {
    worker_arg *wa = arg;
    xe_pool *p = wa->pool;
    const uint32_t index = wa->index;
    uint64_t seen = 0;
    uint32_t ended = 0;
    for (;;) {
        const uint64_t s = wait_job(p, seen, &ended);
        if (s == 0) break;
        /* Read the job, then check that the caller did not rewrite it
         * meanwhile (a seqlock: the caller makes seq odd first). */
        xe_task_fn fn = __atomic_load_n(&p->job.v.fn, __ATOMIC_RELAXED);
        void *ctx = __atomic_load_n(&p->job.v.ctx, __ATOMIC_RELAXED);
        const size_t n_tasks = __atomic_load_n(&p->job.v.n_tasks, __ATOMIC_RELAXED);
        const int cpu = __atomic_load_n(&p->job.v.caller_cpu, __ATOMIC_RELAXED);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(&p->job.v.seq, __ATOMIC_RELAXED) != s) continue;
        seen = seq_gen(s);
        const job j = make_job(seen, fn, ctx, n_tasks);
        move_off_caller_cpu(wa, cpu);
        /* Its own range, then publish (the caller is usually waiting for
         * just that), then the others'. */
        const size_t own = drain_range(p, &j, index, index);
        if (own) publish(p, index, j.gen, own);
        const size_t more = steal(p, &j, index);
        if (more) publish(p, index, j.gen, own + more);
    }
    return NULL;
}

static void stop_workers(xe_pool *p) {
    __atomic_store_n(&p->shutdown, 1, __ATOMIC_SEQ_CST);
    pthread_mutex_lock(&p->mu);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (uint32_t i = 0; i < p->started; i++) pthread_join(p->tids[i], NULL);
    p->started = 0;
}

xe_status xe_pool_create(uint32_t num_threads, xe_pool **out) {
    *out = NULL;
    if (num_threads < 1) num_threads = 1;
    void *mem = NULL;
    if (posix_memalign(&mem, XE_POOL_LINE, sizeof(xe_pool)) != 0) return XE_ERR_OUT_OF_MEMORY;
    xe_pool *p = mem;
    memset(p, 0, sizeof *p);
    p->threads = num_threads;
    p->spin_us = XE_POOL_SPIN_US;
    p->slow_wake = 1; /* nap until a wake-up from parking is measured fast */
    p->job.v.caller_cpu = -1;
    if (posix_memalign(&mem, XE_POOL_LINE, num_threads * sizeof(struct slot)) != 0) {
        free(p);
        return XE_ERR_OUT_OF_MEMORY;
    }
    p->slots = mem;
    memset(p->slots, 0, num_threads * sizeof(struct slot));
    if (pthread_mutex_init(&p->mu, NULL) != 0) {
        free(p->slots);
        free(p);
        return XE_ERR_THREAD;
    }
    if (pthread_cond_init(&p->wake, NULL) != 0) {
        pthread_mutex_destroy(&p->mu);
        free(p->slots);
        free(p);
        return XE_ERR_THREAD;
    }
    if (pthread_cond_init(&p->finished, NULL) != 0) {
        pthread_cond_destroy(&p->wake);
        pthread_mutex_destroy(&p->mu);
        free(p->slots);
        free(p);
        return XE_ERR_THREAD;
    }
    xe_status st = XE_OK;
    if (num_threads > 1) {
        p->tids = calloc(num_threads - 1, sizeof *p->tids);
        p->args = calloc(num_threads - 1, sizeof *p->args);
        if (!p->tids || !p->args) st = XE_ERR_OUT_OF_MEMORY;
        for (uint32_t i = 0; st == XE_OK && i < num_threads - 1; i++) {
            p->args[i].pool = p;
            p->args[i].index = i + 1; /* the caller is thread 0 */
            if (pthread_create(&p->tids[i], NULL, worker_main, &p->args[i]) != 0) {
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
    free(pool->args);
    pthread_cond_destroy(&pool->finished);
    pthread_cond_destroy(&pool->wake);
    pthread_mutex_destroy(&pool->mu);
    free(pool->slots);
    free(pool);
}

uint32_t xe_pool_threads(const xe_pool *pool) { return pool ? pool->threads : 1; }

void xe_pool_run(xe_pool *p, size_t n_tasks, xe_task_fn fn, void *ctx) {
    if (n_tasks == 0) return;
    if (!p || p->started == 0 || n_tasks < 2) {
        for (size_t t = 0; t < n_tasks; t++) fn(ctx, t, 0);
        return;
    }
    /* Publish: seq odd, the job, seq even. No worker can still be running a
     * task of the previous job (the caller waited for all of them), and one
     * that read it late finds its claims refused (claim). Ranges that get
     * no units this time are stamped with this generation so that no claim
     * word falls far behind the current one. */
    const uint64_t seq = __atomic_load_n(&p->job.v.seq, __ATOMIC_RELAXED) + 2;
    const job j = make_job(seq_gen(seq), fn, ctx, n_tasks);
    __atomic_store_n(&p->job.v.seq, seq - 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    __atomic_store_n(&p->job.v.fn, fn, __ATOMIC_RELAXED);
    __atomic_store_n(&p->job.v.ctx, ctx, __ATOMIC_RELAXED);
    __atomic_store_n(&p->job.v.n_tasks, n_tasks, __ATOMIC_RELAXED);
    __atomic_store_n(&p->job.v.caller_cpu, current_cpu(), __ATOMIC_RELAXED);
    for (uint32_t t = 0; j.n_units < p->threads && t < p->threads; t++)
        if (j.n_units * t / p->threads == j.n_units * (t + 1) / p->threads)
            __atomic_store_n(&p->slots[t].claim.v, j.gen << CLAIM_BITS, __ATOMIC_RELAXED);
    if (p->depth > 0) {
        /* Inside a region no worker parks (wait_job), so no wake-up check
         * and no full fence: the store need not wait for the line to leave
         * the workers' caches. */
        __atomic_store_n(&p->job.v.seq, seq, __ATOMIC_RELEASE);
    } else {
        __atomic_store_n(&p->job.v.seq, seq, __ATOMIC_SEQ_CST);
        wake_parked(p);
    }
    const size_t mine = drain_range(p, &j, 0, 0) + steal(p, &j, 0);
    wait_tasks(p, j.gen, j.n_units - mine);
}

void xe_pool_run_work(xe_pool *p, size_t n_tasks, xe_task_fn fn, void *ctx, uint64_t work_ns) {
    if (work_ns < XE_POOL_MIN_PARALLEL_NS) p = NULL;
    xe_pool_run(p, n_tasks, fn, ctx);
}

void xe_pool_begin(xe_pool *p) {
    if (!p || p->started == 0 || p->depth++ > 0) return;
    __atomic_add_fetch(&p->region, 1, __ATOMIC_SEQ_CST);
    wake_parked(p);
}

void xe_pool_end(xe_pool *p) {
    if (!p || p->started == 0 || p->depth == 0 || --p->depth > 0) return;
    __atomic_add_fetch(&p->region, 1, __ATOMIC_SEQ_CST);
}

void xe_pool_set_spin_us(xe_pool *p, uint32_t us) {
    if (p) __atomic_store_n(&p->spin_us, us, __ATOMIC_RELAXED);
}

uint32_t xe_pool_parked(const xe_pool *p) {
    return p ? __atomic_load_n(&p->sleepers, __ATOMIC_SEQ_CST) : 0;
}
