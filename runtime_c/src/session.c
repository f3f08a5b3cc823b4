/*
 * session.c - plans every buffer at creation and runs the graph.
 *
 * Value buffers are reused by liveness: walking the nodes in order, a value's
 * buffer returns to a free list after its last reader, and each new value
 * takes the smallest free buffer that fits (or grows the largest). The model
 * input is read in place from the caller's array and the last node writes
 * straight into the caller's output, so a run copies nothing and allocates
 * nothing (a uint8 input is first converted into a buffer of the session's).
 * Scratch (packed input, im2col rows, K/A maps) is sized to the
 * largest node: one node-wide block plus one block per thread.
 *
 * Fusion (fuse.c) runs first: a node folded into another is not run and its
 * value gets no buffer; the node it joined reads and writes the values of the
 * whole chain in one step, and the buffer plan counts those reads at that
 * step. Its time is the fused step's; folded nodes report 0 ns.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ops.h"

#define XE_MAX_THREADS 256u
/* More kernel sets than any build has (xe_available_isas). */
#define XE_MAX_KERNEL_SETS 32u

struct xe_session {
    const xe_model *m;
    const xe_kernels *k; /* fixed at creation */
    xe_pool *pool;
    uint32_t threads;
    size_t nbufs;
    void **bufs;  /* value buffers */
    size_t *slot; /* value id -> buffer index (values 1..num_nodes-1) */
    uint8_t *shared;
    uint8_t **thread_scratch;
    void **prepared; /* per node: its session_prepare block, or NULL */
    uint64_t *times;
    xe_fused *fused; /* per node (fuse.c) */
    float *u8_input; /* uint8 input converted through the model's table, or NULL */
};

static void *alloc_aligned(size_t bytes) {
    void *p = NULL;
    if (posix_memalign(&p, XE_ALIGN, bytes ? bytes : XE_ALIGN) != 0) return NULL;
    return p;
}

void xe_session_destroy(xe_session *s) {
    if (!s) return;
    xe_pool_destroy(s->pool);
    if (s->bufs)
        for (size_t i = 0; i < s->nbufs; i++) free(s->bufs[i]);
    free(s->bufs);
    free(s->slot);
    free(s->shared);
    if (s->thread_scratch)
        for (uint32_t t = 0; t < s->threads; t++) free(s->thread_scratch[t]);
    free(s->thread_scratch);
    if (s->prepared)
        for (uint32_t i = 0; i < s->m->num_nodes; i++) free(s->prepared[i]);
    free(s->prepared);
    free(s->times);
    free(s->fused);
    free(s->u8_input);
    free(s);
}

/* Value v is read at step i (the fused node that reads it). */
static void note_read(size_t *last, uint32_t v, uint32_t i) {
    if (v != XE_INPUT_NONE && last[v] < i) last[v] = i;
}

/* Last step reading each value (a value lives at least while written). */
static void last_reads(const xe_session *s, size_t *last) {
    const xe_model *m = s->m;
    const xe_fused *fu = s->fused;
    for (uint32_t v = 0; v <= m->num_nodes; v++) last[v] = v ? v - 1 : 0;
    for (uint32_t i = 0; i < m->num_nodes; i++) {
        if (fu[i].skip) continue;
        note_read(last, fu[i].in0, i);
        note_read(last, m->nodes[i].info.input1, i);
        for (uint32_t k = 0; k < fu[i].npost; k++)
            if (fu[i].post[k].kind != XE_POST_AFFINE) note_read(last, fu[i].other[k], i);
    }
}

/* Liveness-based assignment of the values the steps write to buffers; fills
 * s->slot and sizes[] (bytes per buffer), returns the buffer count or
 * (size_t)-1 on OOM. */
static size_t plan_buffers(xe_session *s, size_t **sizes_out) {
    const xe_model *m = s->m;
    const uint32_t nn = m->num_nodes;
    size_t *last = calloc((size_t)nn + 1, sizeof *last);
    size_t *sizes = calloc(nn, sizeof *sizes);
    unsigned char *busy = calloc(nn, 1), *held = calloc((size_t)nn + 1, 1);
    size_t *head = malloc(((size_t)nn + 1) * sizeof *head);
    size_t *next = malloc(((size_t)nn + 1) * sizeof *next);
    s->slot = calloc((size_t)nn + 1, sizeof *s->slot);
    size_t nb = (size_t)-1;
    if (!last || !sizes || !busy || !held || !head || !next || !s->slot) goto done;
    last_reads(s, last);
    /* Values whose last reader is step k - 1 form a list: head[k], then next[v]. */
    for (uint32_t i = 0; i <= nn; i++) head[i] = (size_t)-1;
    for (uint32_t v = 1; v < nn; v++) {
        next[v] = head[last[v] + 1];
        head[last[v] + 1] = v;
    }
    nb = 0;
    for (uint32_t i = 0, freed = 0; i < nn; i++) {
        if (s->fused[i].skip) continue;
        /* Free the buffers of values whose last reader came before step i. */
        for (; freed <= i; freed++)
            for (size_t v = head[freed]; v != (size_t)-1; v = next[v])
                if (held[v]) busy[s->slot[v]] = 0, held[v] = 0;
        const uint32_t w = s->fused[i].out;
        if (w == nn) continue; /* the caller's output */
        const size_t need = m->values[w].units * 4;
        size_t best = (size_t)-1, largest = (size_t)-1;
        for (size_t b = 0; b < nb; b++) {
            if (busy[b]) continue;
            if (sizes[b] >= need && (best == (size_t)-1 || sizes[b] < sizes[best])) best = b;
            if (largest == (size_t)-1 || sizes[b] > sizes[largest]) largest = b;
        }
        if (best == (size_t)-1) best = largest;
        if (best == (size_t)-1) best = nb++;
        if (sizes[best] < need) sizes[best] = need;
        busy[best] = 1;
        held[w] = 1;
        s->slot[w] = best;
    }
done:
    free(head);
    free(next);
    free(last);
    free(busy);
    free(held);
    if (nb == (size_t)-1) free(sizes);
    *sizes_out = nb == (size_t)-1 ? NULL : sizes;
    return nb;
}

/* Thread count and kernel set from the options (NULL: defaults). */
static xe_status read_options(const xe_session_options *o, uint32_t *threads,
                              const xe_kernels **k) {
    *threads = 1;
    *k = xe_kernels_active();
    if (!o) return XE_OK;
    for (size_t i = 0; i < sizeof o->reserved / sizeof o->reserved[0]; i++)
        if (o->reserved[i]) return XE_ERR_INVALID_ARGUMENT;
    if (o->num_threads > XE_MAX_THREADS) return XE_ERR_INVALID_ARGUMENT;
    if (o->num_threads > 1) *threads = o->num_threads;
    if (o->kernel_isa != 0) {
        const char *names[XE_MAX_KERNEL_SETS];
        const size_t count = xe_available_isas(names, XE_MAX_KERNEL_SETS);
        if (o->kernel_isa > count || o->kernel_isa > XE_MAX_KERNEL_SETS)
            return XE_ERR_INVALID_ARGUMENT;
        *k = xe_kernels_find(names[o->kernel_isa - 1]);
        if (!*k) return XE_ERR_INVALID_ARGUMENT;
    }
    return XE_OK;
}

/* Value buffers, planned by liveness. */
static xe_status alloc_values(xe_session *s) {
    size_t *sizes = NULL;
    const size_t nb = plan_buffers(s, &sizes);
    if (nb == (size_t)-1) return XE_ERR_OUT_OF_MEMORY;
    xe_status st = XE_OK;
    s->bufs = calloc(nb ? nb : 1, sizeof *s->bufs);
    if (!s->bufs) st = XE_ERR_OUT_OF_MEMORY;
    for (size_t b = 0; st == XE_OK && b < nb; b++) {
        s->bufs[b] = alloc_aligned(sizes[b]);
        if (!s->bufs[b]) st = XE_ERR_OUT_OF_MEMORY;
        s->nbufs = b + 1;
    }
    free(sizes);
    return st;
}

/* Scratch sized to the largest node: one shared block, one block per thread. */
static xe_status alloc_scratch(xe_session *s) {
    const xe_model *m = s->m;
    size_t shared = 0, per_thread = 0;
    int ovf = 0;
    for (uint32_t i = 0; i < m->num_nodes; i++) {
        const xe_node *n = &m->nodes[i];
        size_t a = 0, b = 0;
        if (n->def->scratch) n->def->scratch(n, &a, &b, &ovf);
        if (a > shared) shared = a;
        if (b > per_thread) per_thread = b;
    }
    if (ovf) return XE_ERR_OUT_OF_MEMORY;
    s->shared = alloc_aligned(shared);
    s->thread_scratch = calloc(s->threads, sizeof *s->thread_scratch);
    if (!s->shared || !s->thread_scratch) return XE_ERR_OUT_OF_MEMORY;
    for (uint32_t t = 0; t < s->threads; t++) {
        s->thread_scratch[t] = alloc_aligned(per_thread);
        if (!s->thread_scratch[t]) return XE_ERR_OUT_OF_MEMORY;
    }
    return XE_OK;
}

/* Per-node data for this session's kernel set (ops.h: session_bytes/prepare). */
static xe_status prepare_nodes(xe_session *s) {
    const xe_model *m = s->m;
    s->prepared = calloc(m->num_nodes, sizeof *s->prepared);
    if (!s->prepared) return XE_ERR_OUT_OF_MEMORY;
    for (uint32_t i = 0; i < m->num_nodes; i++) {
        const xe_node *n = &m->nodes[i];
        const size_t bytes = n->def->session_bytes ? n->def->session_bytes(n, s->k) : 0;
        if (bytes == 0) continue;
        if (bytes == SIZE_MAX || !(s->prepared[i] = alloc_aligned(bytes)))
            return XE_ERR_OUT_OF_MEMORY;
        n->def->session_prepare(n, s->k, s->prepared[i]);
    }
    return XE_OK;
}

xe_status xe_session_create(const xe_model *model, const xe_session_options *options,
                            xe_session **out) {
    if (out) *out = NULL;
    if (!model || !out) return XE_ERR_INVALID_ARGUMENT;
    uint32_t threads;
    const xe_kernels *k;
    xe_status st = read_options(options, &threads, &k);
    if (st != XE_OK) return st;
    xe_session *s = calloc(1, sizeof *s);
    if (!s) return XE_ERR_OUT_OF_MEMORY;
    s->m = model;
    s->k = k;
    s->threads = threads;
    s->fused = xe_fuse_plan(model);
    st = s->fused ? alloc_values(s) : XE_ERR_OUT_OF_MEMORY;
    if (st == XE_OK) st = alloc_scratch(s);
    if (st == XE_OK) st = prepare_nodes(s);
    if (st == XE_OK) {
        s->times = calloc(model->num_nodes, sizeof *s->times);
        if (!s->times) st = XE_ERR_OUT_OF_MEMORY;
    }
    if (st == XE_OK && model->input_table) {
        s->u8_input = alloc_aligned(model->values[0].units * sizeof(float));
        if (!s->u8_input) st = XE_ERR_OUT_OF_MEMORY;
    }
    if (st == XE_OK) st = xe_pool_create(threads, &s->pool);
    if (st != XE_OK) {
        xe_session_destroy(s);
        return st;
    }
    *out = s;
    return XE_OK;
}

const char *xe_session_kernel_isa(const xe_session *session) {
    return session ? session->k->name : NULL;
}

uint32_t xe_session_num_threads(const xe_session *session) {
    return session ? session->threads : 0;
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int overlaps(const void *a, size_t an, const void *b, size_t bn) {
    const uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
    return x < y + bn && y < x + an;
}

/* The buffer of value v during a run (value 0: the caller's input). */
static const void *value_ptr(const xe_session *s, const float *input, uint32_t v) {
    return v == 0 ? (const void *)input : s->bufs[s->slot[v]];
}

static void run_one(xe_session *s, xe_exec *ex, const float *input, float *output) {
    const xe_model *m = s->m;
    const uint32_t nn = m->num_nodes;
    xe_post_op post[XE_MAX_POST_OPS];
    for (uint32_t i = 0; i < nn; i++) {
        const xe_fused *fu = &s->fused[i];
        if (fu->skip) {
            s->times[i] = 0;
            continue;
        }
        const xe_node_info *f = &m->nodes[i].info;
        const void *in0 = value_ptr(s, input, fu->in0);
        const void *in1 = f->input1 == XE_INPUT_NONE ? NULL : value_ptr(s, input, f->input1);
        void *out = fu->out == nn ? (void *)output : s->bufs[s->slot[fu->out]];
        const xe_node *n = &m->nodes[i];
        for (uint32_t k = 0; k < fu->npost; k++) {
            post[k] = fu->post[k];
            if (post[k].kind != XE_POST_AFFINE) post[k].a = value_ptr(s, input, fu->other[k]);
        }
        ex->prepared = s->prepared[i];
        ex->pre_scale = fu->pre_scale;
        ex->pre_shift = fu->pre_shift;
        ex->post = post;
        ex->npost = fu->npost;
        ex->pack_out = fu->pack_out;
        const uint64_t t0 = now_ns();
        n->def->run(n, ex, in0, in1, out);
        s->times[i] = now_ns() - t0;
    }
}

/* uint8 input through the model's table: one pass, fixed blocks of
 * XE_EW_BLOCK elements (element i is channel i % C). */
typedef struct u8_job {
    const float *table;
    const uint8_t *x;
    float *y;
    size_t c, count;
} u8_job;

static void u8_task(void *ctx, size_t task, uint32_t thread) {
    const u8_job *j = ctx;
    size_t i, e;
    xe_ew_range(j->count, task, &i, &e);
    for (size_t c = i % j->c; i < e; i++) {
        j->y[i] = j->table[c * XE_U8_LEVELS + j->x[i]];
        if (++c == j->c) c = 0;
    }
}

static void convert_u8(xe_session *s, const uint8_t *x) {
    const xe_value_desc *v = &s->m->values[0];
    u8_job j = {s->m->input_table, x, s->u8_input, v->c, v->units};
    xe_pool_run_work(s->pool, xe_ew_tasks(j.count), u8_task, &j, j.count / 2);
}

/* Runs n images of `elem` bytes per input element (4: float, 1: uint8,
 * converted first); checks counts and that input and output do not overlap. */
static xe_status run_images(xe_session *s, size_t n, const void *input, size_t input_count,
                            size_t elem, float *output, size_t output_count) {
    if (!s || !input || !output || n == 0) return XE_ERR_INVALID_ARGUMENT;
    if (elem == 1 && !s->u8_input) return XE_ERR_INVALID_ARGUMENT;
    const size_t in_n = s->m->values[0].units, out_n = s->m->values[s->m->num_nodes].units;
    int ovf = 0;
    const size_t in_total = xe_mul(in_n, n, &ovf), out_total = xe_mul(out_n, n, &ovf);
    if (ovf || input_count != in_total || output_count != out_total) return XE_ERR_INVALID_ARGUMENT;
    if (overlaps(input, in_total * elem, output, out_total * 4)) return XE_ERR_INVALID_ARGUMENT;
    xe_exec ex = {
        .k = s->k, .pool = s->pool, .shared = s->shared, .thread_scratch = s->thread_scratch};
    /* One parallel region per call: workers stay awake between the nodes of
     * the run and park after it (threadpool.c). */
    xe_pool_begin(s->pool);
    for (size_t b = 0; b < n; b++) {
        const uint8_t *x = (const uint8_t *)input + b * in_n * elem;
        if (elem == 1) convert_u8(s, x);
        const float *in = elem == 1 ? s->u8_input : (const float *)(const void *)x;
        run_one(s, &ex, in, output + b * out_n);
    }
    xe_pool_end(s->pool);
    return XE_OK;
}

xe_status xe_session_run_batch(xe_session *s, size_t n, const float *input, size_t input_count,
                               float *output, size_t output_count) {
    return run_images(s, n, input, input_count, 4, output, output_count);
}

xe_status xe_session_run_batch_u8(xe_session *s, size_t n, const uint8_t *input, size_t input_count,
                                  float *output, size_t output_count) {
    return run_images(s, n, input, input_count, 1, output, output_count);
}

xe_status xe_session_run_u8(xe_session *s, const uint8_t *input, size_t input_count, float *output,
                            size_t output_count) {
    return run_images(s, 1, input, input_count, 1, output, output_count);
}

xe_status xe_session_run(xe_session *s, const float *input, size_t input_count, float *output,
                         size_t output_count) {
    return xe_session_run_batch(s, 1, input, input_count, output, output_count);
}

xe_status xe_session_node_time_ns(const xe_session *s, uint32_t index, uint64_t *ns) {
    if (!s || !ns || index >= s->m->num_nodes) return XE_ERR_INVALID_ARGUMENT;
    *ns = s->times[index];
    return XE_OK;
}
