/*
 * test_op_records.c - the op records (runtime_c/src/ops.h, ops.inc) are
 * consistent, and the session hands each node its session-prepared block.
 *
 * The records drive the loader and the session generically, so a record that
 * contradicts itself (params without sizes, a prepare hook without a size
 * hook, two ops with one id) would misbehave far from its cause; this test
 * names it. The prepared-data check swaps a loaded node's record for a test
 * record whose hooks ask for a block, fill it, and read it back in run.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "xe_test_model.h"

static void test_records(void) {
    size_t count = 0;
    for (size_t i = 0; xe_op_at(i) != NULL; i++, count++) {
        const xe_op_def *d = xe_op_at(i);
        CHECK(d->op != 0 && d->name && d->name[0], "record %zu: id and name", i);
        CHECK(xe_op_find(d->op) == d, "%s: id %u is not unique", d->name, d->op);
        CHECK(strcmp(xe_op_name(d->op), d->name) == 0, "%s: xe_op_name", d->name);
        for (size_t j = 0; j < i; j++)
            CHECK(strcmp(xe_op_at(j)->name, d->name) != 0, "%s: name not unique", d->name);
        CHECK(d->n_params <= XE_MAX_OP_PARAMS, "%s: %u params", d->name, d->n_params);
        CHECK((d->n_params > 0) == (d->param_sizes != NULL), "%s: params need param_sizes",
              d->name);
        for (uint32_t k = 0; k < XE_MAX_OP_PARAMS; k++)
            CHECK(d->param_dtypes[k] <= XE_DTYPE_BITS && (k < d->n_params || !d->param_dtypes[k]),
                  "%s: param %u dtype", d->name, k);
        CHECK(!d->precompute || d->destroy, "%s: precompute without destroy", d->name);
        CHECK((d->session_bytes != NULL) == (d->session_prepare != NULL),
              "%s: session_bytes and session_prepare come together", d->name);
        CHECK(d->run != NULL, "%s: no run hook", d->name);
        CHECK(d->input1 == XE_IN1_NONE || d->input1 == XE_IN1_SAME_SHAPE ||
                  d->input1 == XE_IN1_SAME_HW,
              "%s: input1 kind %u", d->name, d->input1);
        CHECK((d->flags &
               ~(uint32_t)(XE_FLAG_RELU | XE_FLAG_PAD_ONE | XE_FLAG_USE_K | XE_FLAG_OUT_BITS)) == 0,
              "%s: flags 0x%x outside XE_FLAG_*", d->name, d->flags);
    }
    /* Every op the public header names has a record; nothing else answers. */
    for (uint32_t op = XE_OP_CONV2D; op <= XE_OP_SIGN; op++)
        CHECK(xe_op_find(op) != NULL, "xe_op %u has no record", op);
    CHECK(count >= XE_OP_SIGN, "%zu records", count);
    CHECK(xe_op_find(0) == NULL && strcmp(xe_op_name(0), "unknown") == 0, "op 0");
    CHECK(strcmp(xe_op_name(0xFFFFFFFFu), "unknown") == 0, "op 0xFFFFFFFF");
}

/* A record that asks for a session block, fills it from the kernel set's
 * name, and whose run copies the input after checking the block. */
#define PREP_BYTES 1000u
static int g_prepared_calls, g_run_ok;

static size_t prep_bytes(const xe_node *n, const xe_kernels *k) { return PREP_BYTES; }

static void prep_fill(const xe_node *n, const xe_kernels *k, void *dst) {
    g_prepared_calls++;
    memset(dst, 0x3C, PREP_BYTES);
    memcpy(dst, k->name, strlen(k->name) + 1);
}

static void prep_run(const xe_node *n, const xe_exec *ex, const void *in0, const void *in1,
                     void *out) {
    const uint8_t *p = ex->prepared;
    g_run_ok = p != NULL && (uintptr_t)p % XE_ALIGN == 0 &&
               strcmp((const char *)p, ex->k->name) == 0 && p[PREP_BYTES - 1] == 0x3C;
    memcpy(out, in0, (size_t)n->info.in_h * n->info.in_w * n->info.in_c * sizeof(float));
}

static void test_session_prepared_data(void) {
    xtm t;
    xtm_init(&t, 2, 3, 4);
    xtm_node(&t, XE_OP_RELU, 0, 0, XTM_NONE, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    size_t size;
    uint8_t *file = xtm_write(&t, &size);
    xtm_free(&t);
    xe_model *m = NULL;
    char err[256];
    CHECK(xe_model_load_memory(file, size, 0, &m, err, sizeof err) == XE_OK, "load: %s", err);
    xe_op_def rec; /* outlives the model, which reads its destroy hook */
    if (m) {
        rec = *m->nodes[0].def;
        rec.session_bytes = prep_bytes;
        rec.session_prepare = prep_fill;
        rec.run = prep_run;
        m->nodes[0].def = &rec;
        xe_session_options o;
        memset(&o, 0, sizeof o);
        o.kernel_isa = 1; /* "ref" */
        xe_session *s = NULL;
        CHECK(xe_session_create(m, &o, &s) == XE_OK, "create");
        CHECK(g_prepared_calls == 1, "session_prepare called %d times at creation",
              g_prepared_calls);
        float in[24], out[24];
        for (int i = 0; i < 24; i++) in[i] = (float)i - 12.0f;
        for (int r = 0; r < 2 && s; r++) {
            g_run_ok = 0;
            CHECK(xe_session_run(s, in, 24, out, 24) == XE_OK && g_run_ok,
                  "run %d did not get its aligned, filled block for the session's kernel set", r);
        }
        CHECK(g_prepared_calls == 1, "session_prepare ran again at run time");
        xe_session_destroy(s);
    }
    xe_model_destroy(m);
    free(file);
}

int main(void) {
    test_records();
    test_session_prepared_data();
    printf("%s: %d failure(s)\n", g_fail ? "FAIL" : "ok", g_fail);
    return g_fail ? 1 : 0;
}
