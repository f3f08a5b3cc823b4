/*
 * fuse.c - folds element-wise nodes into their neighbours at session creation
 * (docs/executor.md, "Fusion"), without changing a single output bit.
 *
 * Post-ops: a node whose op has fuse_post (bconv2d, bconv2d_mst) and a float32 output
 * absorbs the chain of element-wise consumers after it (batchnorm, add, relu,
 * each through its op's post_op hook) while the value between them has
 * exactly one reader and is not the model output, the chain has at most
 * XE_MAX_POST_OPS ops, and an add's other operand is computed before the
 * node runs. The node then writes the chain's last value and the absorbed
 * nodes are skipped. A sign may end the chain (its post_op answers
 * XE_POST_SIGN): the node then writes the sign-packed bits of its result, so
 * activations stay packed between binary layers. Prologue: a batchnorm without ReLU whose output
 * has one reader, input0 of an op with fuse_pre (bconv2d or bconv2d_mst, float32 input), runs
 * inside that op's input pass (pre_affine hook); the op reads the batchnorm's input.
 *
 * Exactness: the fused code performs the same float operations in the same
 * order, each rounded (the kernel-set epilogue and pack_abs, kernels.h), so
 * outputs are bit-identical to the unfused graph; tests/test_fusion.py and
 * test_golden_outputs.py check it. XE_FUSE=0 in the environment at session
 * creation turns fusion off (comparisons, bisecting).
 */
#include <stdlib.h>
#include <string.h>

#include "ops.h"

/* Readers of each value (an add of x + x reads x twice). */
static uint32_t *count_readers(const xe_model *m) {
    uint32_t *r = calloc((size_t)m->num_nodes + 1, sizeof *r);
    if (!r) return NULL;
    for (uint32_t i = 0; i < m->num_nodes; i++) {
        const xe_node_info *f = &m->nodes[i].info;
        r[f->input0]++;
        if (f->input1 != XE_INPUT_NONE) r[f->input1]++;
    }
    return r;
}

/* The first node after `after` that reads value v. */
static uint32_t reader_of(const xe_model *m, uint32_t v, uint32_t after) {
    for (uint32_t j = after + 1; j < m->num_nodes; j++) {
        const xe_node_info *f = &m->nodes[j].info;
        if (f->input0 == v || f->input1 == v) return j;
    }
    return UINT32_MAX;
}

/* Folds the element-wise consumers after node i into its epilogue. */
static void fuse_post(const xe_model *m, const uint32_t *readers, xe_fused *fu, uint32_t i) {
    if (!m->nodes[i].def->fuse_post || m->values[i + 1].dtype != XE_DTYPE_F32) return;
    xe_fused *h = &fu[i];
    for (uint32_t v = i + 1; v < m->num_nodes && readers[v] == 1;) {
        const uint32_t j = reader_of(m, v, v - 1);
        if (j == UINT32_MAX || fu[j].skip) return;
        const xe_node *c = &m->nodes[j];
        xe_post_op op = {0, 0, NULL, NULL};
        uint32_t other = XE_INPUT_NONE;
        if (!c->def->post_op || !c->def->post_op(c, v, &op, &other)) return;
        if (op.kind == XE_POST_SIGN) { /* the bits of the result: the end of the chain */
            h->pack_out = 1;
            fu[j].skip = 1;
            h->out = j + 1;
            return;
        }
        if (op.kind == 0) { /* a ReLU alone: the last op's ReLU (applying it twice is once) */
            if (h->npost == 0) return;
            h->post[h->npost - 1].relu = 1;
        } else {
            if (h->npost == XE_MAX_POST_OPS) return;
            if (op.kind != XE_POST_AFFINE && (other == XE_INPUT_NONE || other > i)) return;
            h->post[h->npost] = op;
            h->other[h->npost++] = other;
        }
        fu[j].skip = 1;
        h->out = v = j + 1;
    }
}

/* Runs each lone batchnorm feeding a fuse_pre op inside that op's input pass. */
static void fuse_pre(const xe_model *m, const uint32_t *readers, xe_fused *fu) {
    const uint32_t nn = m->num_nodes;
    for (uint32_t b = 0; b + 1 < nn; b++) {
        const xe_node *bn = &m->nodes[b];
        const float *scale, *shift;
        const uint32_t v = b + 1;
        if (fu[b].skip || fu[b].npost || readers[v] != 1 || !bn->def->pre_affine) continue;
        const uint32_t j = reader_of(m, v, b);
        if (j == UINT32_MAX || fu[j].skip || fu[j].pre_scale) continue;
        const xe_node *c = &m->nodes[j];
        if (!c->def->fuse_pre || c->info.input0 != v || c->info.in_dtype != XE_DTYPE_F32) continue;
        if (!bn->def->pre_affine(bn, &scale, &shift)) continue;
        fu[j].in0 = fu[b].in0;
        fu[j].pre_scale = scale;
        fu[j].pre_shift = shift;
        fu[b].skip = 1;
    }
}

xe_fused *xe_fuse_plan(const xe_model *m) {
    const uint32_t nn = m->num_nodes;
    xe_fused *fu = calloc(nn ? nn : 1, sizeof *fu);
    if (!fu) return NULL;
    for (uint32_t i = 0; i < nn; i++) {
        fu[i].in0 = m->nodes[i].info.input0;
        fu[i].out = i + 1;
    }
    const char *env = getenv("XE_FUSE");
    if (env && strcmp(env, "0") == 0) return fu;
    uint32_t *readers = count_readers(m);
    if (!readers) {
        free(fu);
        return NULL;
    }
    for (uint32_t i = 0; i < nn; i++)
        if (!fu[i].skip) fuse_post(m, readers, fu, i);
    fuse_pre(m, readers, fu);
    free(readers);
    return fu;
}
