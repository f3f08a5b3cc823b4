/*
 * op_bconv2d_mst.c - bconv2d with MST-coded weights (docs/format.md, op 32;
 * method and rationale in docs/mst.md).
 *
 * Semantics: decode the filters, then exactly bconv2d (same flags, inputs,
 * outputs, epilogue); the driver, padding correction and epilogue are
 * op_bconv2d.c's (xe_bconv_run), only the window popcounts differ.
 *
 * Maths, bit 1 = -1, d = popcount(a XOR w) over the padded window. For a child
 * c of parent p with m = w_c XOR w_p and D = popcount(m): off m the filters
 * agree; on m, a XOR w_c = NOT(a XOR w_p), so with x = popcount((a XOR w_p) AND m)
 *   d_c = (d_p - x) + (D - x) = d_p + D - 2x,
 * exact integer arithmetic on the same padded window bconv2d uses, so the
 * zero-padding correction with the child's own per-tap popcounts (computed
 * from the decoded filters) and the epilogue are unchanged. Per differing word
 * j, (a XOR w_p) AND m = (a AND m_j) XOR v_j with v_j = w_p[j] AND m_j stored
 * at load: no gather from the parent at run time. 0 <= d <= 32*L < 2^28: int32.
 *
 * Work: a task holds whole chunks (a child's parent is in its chunk), and the
 * channel split is at multiples of lcm(chunk, 32) so OUT_BITS writes whole
 * words; the split depends only on the shape, never on the thread count, and
 * every value is an exact integer, so the result is the same for any thread
 * count and kernel set. Within a chunk the runtime order is its roots (one
 * bgemm, the file's roots in place) then its children, both in the file's
 * order, so a parent is always computed before its child.
 */
#include <stdlib.h>
#include <string.h>

#include "ops.h"

enum { TREE, ROOTS, OFFSETS, INDEX, MASK, SCALE, BIAS };
enum { ENC_WORDS = 1, ENC_BITS = 2, HDR = 8 };
#define NO_PARENT 0xFFFFFFFFu

/* word index, mask of m there, parent's bits under the mask (kernels.h) */
typedef xe_mst_entry mst_entry;
/* parent's runtime position (NO_PARENT: a root), D = popcount(m), entries [e0, e1) */
typedef xe_mst_child mst_child;

typedef struct mst_pre {
    int32_t *wpop;        /* [KH*KW][OC] of the decoded filters */
    uint32_t *perm;       /* runtime position -> channel */
    uint32_t *rperm;      /* runtime position -> channel - its chunk's first channel */
    xe_mst_chunk *cdesc;  /* per chunk: the whole-chunk kernels' description */
    uint32_t *root_first; /* per chunk, + 1: index of its first root in ROOTS */
    mst_child *pos;       /* per runtime position */
    mst_entry *ent;       /* all children's entries */
    uint32_t chunk, step; /* channels per chunk; task split granularity */
} mst_pre;

static void mst_destroy(xe_node *n) {
    mst_pre *p = n->pre;
    if (!p) return;
    free(p->wpop);
    free(p->perm);
    free(p->rperm);
    free(p->cdesc);
    free(p->root_first);
    free(p->pos);
    free(p->ent);
    free(p);
    n->pre = NULL;
}

static void mst_params(const xe_node *n, uint64_t need[XE_MAX_OP_PARAMS]) {
    for (uint32_t k = TREE; k <= MASK; k++) need[k] = XE_COUNT_FROM_FILE;
    need[SCALE] = need[BIAS] = n->info.out_c;
}

/* The real (non-channel-padding) bits of word w of a [KH][KW][CW] filter. */
static uint32_t real_bits(const xe_node *n, uint64_t w) {
    const uint32_t rem = n->info.in_c % 32;
    return (w % n->cw == n->cw - 1 && rem) ? ((uint32_t)1 << rem) - 1 : 0xFFFFFFFFu;
}

static uint32_t index_at(const uint32_t *index, uint32_t width, uint64_t e) {
    return width == 16 ? (index[e / 2] >> (16 * (e % 2))) & 0xFFFFu : index[e];
}

/* Rules 1-6 of docs/format.md (bconv2d_mst): counts, before any array is read. */
static xe_status check_header(xe_loader *ld, const xe_node *n, const uint64_t need[]) {
    const uint64_t oc = n->info.out_c, L = (uint64_t)n->info.kernel_h * n->info.kernel_w * n->cw;
    if (need[TREE] != HDR + 2 * oc)
        return xe_node_fail(ld, "bconv2d_mst: tree param count is not 8 + 2*OC");
    const uint32_t *t = n->params[TREE];
    if (t[0] != ENC_WORDS && t[0] != ENC_BITS)
        return xe_node_fail(ld, "bconv2d_mst: unknown encoding");
    if (t[6] || t[7]) return xe_node_fail(ld, "bconv2d_mst: reserved tree field is not zero");
    if (t[1] < 1 || t[1] > 65535 || t[2] >= oc || t[3] < 1 || t[3] > oc)
        return xe_node_fail(ld, "bconv2d_mst: chunk, max_depth or root count out of range");
    const uint64_t span = t[0] == ENC_WORDS ? L : 32 * L, width = span <= 65536 ? 16 : 32;
    if (t[5] != width)
        return xe_node_fail(ld, "bconv2d_mst: index width is not the one the encoding needs");
    const uint64_t nent = t[4];
    if (need[ROOTS] != t[3] * L)
        return xe_node_fail(ld, "bconv2d_mst: roots param count is not what the tree header gives");
    if (need[OFFSETS] != oc + 1)
        return xe_node_fail(ld,
                            "bconv2d_mst: offsets param count is not what the tree header gives");
    if (need[INDEX] != (nent * width + 31) / 32)
        return xe_node_fail(ld, "bconv2d_mst: index param count is not what the tree header gives");
    if (need[MASK] != (t[0] == ENC_WORDS ? nent : 0))
        return xe_node_fail(ld, "bconv2d_mst: mask param count is not what the tree header gives");
    if (oc * L > XE_MAX_ELEMS)
        return xe_node_fail(ld, "bconv2d_mst: decoded filters exceed 2^28 words");
    if (width == 16 && nent % 2 && (((const uint32_t *)n->params[INDEX])[nent / 2] >> 16))
        return xe_node_fail(ld, "bconv2d_mst: unused index halfword is not zero");
    return XE_OK;
}

/* Rules 7-10: order, root count, offsets, root padding bits. */
static xe_status check_tables(xe_loader *ld, const xe_node *n, uint8_t *seen) {
    const uint32_t oc = n->info.out_c, *t = n->params[TREE], chunk = t[1];
    const uint32_t *order = t + HDR, *parent = order + oc, *off = n->params[OFFSETS];
    for (uint32_t q = 0; q < oc; q++) {
        if (order[q] >= oc || seen[order[q]])
            return xe_node_fail(ld, "bconv2d_mst: order is not a permutation of the output "
                                    "channels");
        seen[order[q]] = 1;
    }
    for (uint32_t q = 0; q < oc; q++)
        if (order[q] / chunk != q / chunk)
            return xe_node_fail(ld, "bconv2d_mst: a channel is ordered outside its chunk");
    uint32_t roots = 0;
    for (uint32_t c = 0; c < oc; c++) roots += parent[c] == NO_PARENT;
    if (roots != t[3])
        return xe_node_fail(ld, "bconv2d_mst: root count does not match the roots param");
    if (off[0] != 0) return xe_node_fail(ld, "bconv2d_mst: offsets not non-decreasing from 0");
    for (uint32_t c = 0; c < oc; c++)
        if (off[c + 1] < off[c])
            return xe_node_fail(ld, "bconv2d_mst: offsets not non-decreasing from 0");
    if (off[oc] != t[4]) return xe_node_fail(ld, "bconv2d_mst: entry counts inconsistent");
    const uint64_t L = (uint64_t)n->info.kernel_h * n->info.kernel_w * n->cw;
    const uint32_t *rw = n->params[ROOTS];
    for (uint64_t i = 0; i < (uint64_t)t[3] * L; i++)
        if (rw[i] & ~real_bits(n, i % L))
            return xe_node_fail(ld, "bconv2d_mst: a root sets a channel-padding bit");
    return XE_OK;
}

/* One child's difference: checks rule 11's entry rules, writes its mask into
 * m[L] (zeroed by the caller) and its runtime entries at *ent. */
static xe_status decode_child(xe_loader *ld, const xe_node *n, uint32_t c, uint32_t *m,
                              mst_entry *ent, uint32_t *nent) {
    const uint32_t *t = n->params[TREE], *off = n->params[OFFSETS], enc = t[0];
    const uint32_t *index = n->params[INDEX], *mask = n->params[MASK];
    const uint64_t L = (uint64_t)n->info.kernel_h * n->info.kernel_w * n->cw;
    const uint64_t span = enc == ENC_WORDS ? L : 32 * L;
    uint32_t k = 0;
    for (uint64_t e = off[c]; e < off[c + 1]; e++) {
        const uint32_t i = index_at(index, t[5], e);
        if (i >= span) return xe_node_fail(ld, "bconv2d_mst: difference index out of range");
        if (e > off[c] && i <= index_at(index, t[5], e - 1))
            return xe_node_fail(ld, "bconv2d_mst: difference indices not strictly increasing");
        const uint32_t j = enc == ENC_WORDS ? i : i / 32;
        const uint32_t bits = enc == ENC_WORDS ? mask[e] : (uint32_t)1 << (i % 32);
        if (!bits) return xe_node_fail(ld, "bconv2d_mst: zero word mask");
        if (bits & ~real_bits(n, j))
            return xe_node_fail(ld, "bconv2d_mst: difference on a channel-padding bit");
        if (k == 0 || ent[k - 1].j != j) ent[k++] = (mst_entry){j, 0, 0};
        ent[k - 1].m |= bits;
        m[j] |= bits;
    }
    *nent = k;
    return XE_OK;
}

/* Temporary blocks of a load. */
typedef struct mst_tmp {
    uint32_t *dec;   /* [OC][L] decoded filters */
    uint32_t *depth; /* [OC] */
    uint32_t *m;     /* [L] one child's difference */
    uint8_t *done;   /* [OC] */
    mst_child *byc;  /* [OC] child records by channel */
} mst_tmp;

/* Rule 11: walks `order` checking parents, depths and differences; decodes
 * every filter into tmp->dec and each child's entries into p->ent. */
static xe_status walk(xe_loader *ld, const xe_node *n, mst_pre *p, mst_tmp *tmp) {
    const uint32_t oc = n->info.out_c, *t = n->params[TREE], chunk = t[1];
    const uint32_t *order = t + HDR, *parent = order + oc, *rw = n->params[ROOTS];
    const uint32_t *off = n->params[OFFSETS];
    const size_t L = (size_t)n->info.kernel_h * n->info.kernel_w * n->cw;
    uint32_t nroot = 0, nent = 0, *dec = tmp->dec, *depth = tmp->depth;
    for (uint32_t q = 0; q < oc; q++) {
        const uint32_t c = order[q], pa = parent[c];
        if (q % chunk == 0) p->root_first[q / chunk] = nroot;
        tmp->byc[c] = (mst_child){NO_PARENT, 0, 0, 0};
        if (pa == NO_PARENT) {
            if (off[c + 1] != off[c])
                return xe_node_fail(ld, "bconv2d_mst: a root has difference entries");
            memcpy(dec + (size_t)c * L, rw + (size_t)nroot++ * L, L * 4);
            depth[c] = 0;
            tmp->done[c] = 1;
            continue;
        }
        if (pa >= oc) return xe_node_fail(ld, "bconv2d_mst: parent index out of range");
        if (pa / chunk != c / chunk)
            return xe_node_fail(ld, "bconv2d_mst: parent in another chunk");
        if (!tmp->done[pa]) return xe_node_fail(ld, "bconv2d_mst: parent not earlier in the order");
        depth[c] = depth[pa] + 1;
        if (depth[c] > t[2]) return xe_node_fail(ld, "bconv2d_mst: depth exceeds max_depth");
        uint32_t k = 0;
        memset(tmp->m, 0, L * 4);
        const xe_status st = decode_child(ld, n, c, tmp->m, p->ent + nent, &k);
        if (st != XE_OK) return st;
        int32_t d = 0;
        for (uint32_t e = nent; e < nent + k; e++) {
            p->ent[e].v = dec[(size_t)pa * L + p->ent[e].j] & p->ent[e].m;
            d += xe_popcount32(p->ent[e].m);
        }
        for (size_t j = 0; j < L; j++) dec[(size_t)c * L + j] = dec[(size_t)pa * L + j] ^ tmp->m[j];
        tmp->byc[c] = (mst_child){pa, d, nent, nent + k};
        nent += k;
        tmp->done[c] = 1;
    }
    p->root_first[(oc + chunk - 1) / chunk] = nroot;
    return XE_OK;
}

/* Runtime order: per chunk its roots, then its children, each in file order;
 * a child's parent becomes a runtime position. */
static void runtime_order(const xe_node *n, mst_pre *p, mst_tmp *tmp) {
    const uint32_t oc = n->info.out_c, *t = n->params[TREE], chunk = t[1];
    const uint32_t *order = t + HDR;
    uint32_t *rpos = tmp->depth; /* depths are no longer needed */
    for (uint32_t c0 = 0; c0 < oc; c0 += chunk) {
        const uint32_t c1 = oc - c0 < chunk ? oc : c0 + chunk;
        uint32_t at = c0;
        for (uint32_t kids = 0; kids < 2; kids++)
            for (uint32_t q = c0; q < c1; q++)
                if ((tmp->byc[order[q]].ppos != NO_PARENT) == kids) {
                    rpos[order[q]] = at;
                    p->perm[at++] = order[q];
                }
    }
    for (uint32_t q = 0; q < oc; q++) {
        p->rperm[q] = p->perm[q] - q / chunk * chunk;
        p->pos[q] = tmp->byc[p->perm[q]];
        if (p->pos[q].ppos != NO_PARENT) p->pos[q].ppos = rpos[p->pos[q].ppos];
    }
}

/* The whole-chunk kernels' chunk records (kernels.h, xe_mst_chunk): roots
 * in place in ROOTS, children and columns in runtime-position order. */
static void chunk_descs(const xe_node *n, mst_pre *p) {
    const uint32_t oc = n->info.out_c, chunk = p->chunk;
    const size_t L = (size_t)n->info.kernel_h * n->info.kernel_w * n->cw;
    const uint32_t *roots = n->params[ROOTS];
    for (uint32_t j = 0, c0 = 0; c0 < oc; j++, c0 += chunk) {
        const uint32_t c1 = oc - c0 < chunk ? oc : c0 + chunk;
        const uint32_t r0 = p->root_first[j], nr = p->root_first[j + 1] - r0;
        p->cdesc[j] = (xe_mst_chunk){
            nr, c1 - c0 - nr, roots + (size_t)r0 * L, &p->pos[c0 + nr], p->rperm + c0, c0};
    }
}

static uint32_t gcd32(uint32_t a, uint32_t b) {
    while (b) {
        const uint32_t r = a % b;
        a = b;
        b = r;
    }
    return a;
}

/* Validates every rule, then decodes to the runtime form in n->pre. */
static xe_status mst_bind(xe_loader *ld, xe_node *n, const uint64_t need[XE_MAX_OP_PARAMS]) {
    xe_node_info *f = &n->info;
    xe_status st = check_header(ld, n, need);
    if (st != XE_OK) return st;
    const uint32_t oc = f->out_c, *t = n->params[TREE], chunk = t[1];
    const size_t taps = (size_t)f->kernel_h * f->kernel_w, L = taps * n->cw;
    const size_t nchunks = (oc + chunk - 1) / chunk;
    mst_pre *p = calloc(1, sizeof *p);
    mst_tmp tmp = {malloc(oc * L * 4 + 4), malloc(oc * 4), malloc(L * 4), calloc(oc, 1),
                   malloc(oc * sizeof(mst_child))};
    n->pre = p;
    if (p) {
        p->wpop = malloc(taps * oc * 4);
        p->perm = malloc(oc * 4);
        p->rperm = malloc(oc * 4);
        p->cdesc = malloc(nchunks * sizeof(xe_mst_chunk));
        p->root_first = malloc((nchunks + 1) * 4);
        p->pos = malloc(oc * sizeof(mst_child));
        int ovf = 0;
        const size_t eb = xe_mul(t[4], sizeof(mst_entry), &ovf);
        p->ent = ovf ? NULL : malloc(eb + 1);
        p->chunk = chunk;
        const uint64_t step = (uint64_t)chunk / gcd32(chunk, 32) * 32;
        p->step = step > oc ? oc : (uint32_t)step;
    }
    if (!p || !p->wpop || !p->perm || !p->rperm || !p->cdesc || !p->root_first || !p->pos ||
        !p->ent || !tmp.dec || !tmp.depth || !tmp.m || !tmp.done || !tmp.byc)
        st = xe_node_oom(ld, " for the MST tree");
    if (st == XE_OK) st = check_tables(ld, n, tmp.done);
    if (st == XE_OK) {
        memset(tmp.done, 0, oc);
        st = walk(ld, n, p, &tmp);
    }
    if (st == XE_OK) {
        runtime_order(n, p, &tmp);
        chunk_descs(n, p);
        xe_bconv_wpop(n, tmp.dec, p->wpop);
    }
    free(tmp.dec);
    free(tmp.depth);
    free(tmp.m);
    free(tmp.done);
    free(tmp.byc);
    const uint64_t k = taps * f->in_c;
    f->binary_params = (uint64_t)oc * k;
    f->float_params = 2ull * oc;
    f->macs = (uint64_t)f->out_h * f->out_w * oc * k;
    return st;
}

/* The session block: each chunk's roots packed for its kernel set, chunk
 * after chunk (the roots of a chunk are contiguous in ROOTS; none for a set
 * with a whole-chunk kernel, which reads them unpacked), then at
 * mst_tables_offset the driver's tables (xe_bconv_tables_fill, the pad-tap
 * popcounts from the decoded filters' wpop): bconv2d's tables, the same
 * integers. */
static size_t mst_chunks(const xe_node *n) {
    const mst_pre *p = n->pre;
    return (n->info.out_c + p->chunk - 1) / p->chunk;
}

static size_t mst_tables_offset(const xe_node *n, const xe_kernels *k, int *ovf) {
    const mst_pre *p = n->pre;
    const size_t L = (size_t)n->info.kernel_h * n->info.kernel_w * n->cw;
    size_t words = 0;
    for (size_t j = 0; !k->mst_chunk && j < mst_chunks(n); j++)
        words = xe_add(words, xe_bgemm_packed_words(k, p->root_first[j + 1] - p->root_first[j], L),
                       ovf);
    return xe_align_up(xe_mul(words, 4, ovf));
}

static size_t mst_session_bytes(const xe_node *n, const xe_kernels *k) {
    int ovf = 0;
    const size_t bytes =
        xe_add(mst_tables_offset(n, k, &ovf),
               xe_bconv_tables_bytes(n, n->params[SCALE], n->params[BIAS], &ovf), &ovf);
    return ovf ? SIZE_MAX : bytes;
}

static void mst_session_prepare(const xe_node *n, const xe_kernels *k, void *dst) {
    const mst_pre *p = n->pre;
    const size_t L = (size_t)n->info.kernel_h * n->info.kernel_w * n->cw;
    const uint32_t *roots = n->params[ROOTS];
    uint32_t *out = dst;
    int ovf = 0;
    for (size_t j = 0; !k->mst_chunk && j < mst_chunks(n); j++) {
        const size_t r0 = p->root_first[j], nr = p->root_first[j + 1] - r0;
        xe_bgemm_pack(k, nr, L, roots + r0 * L, L, out);
        out += xe_bgemm_packed_words(k, nr, L);
    }
    xe_bconv_tables_fill(n, n->params[SCALE], n->params[BIAS], p->wpop,
                         (uint8_t *)dst + mst_tables_offset(n, k, &ovf));
}

/* A set's whole-chunk kernel (kernels.h, mst_chunk) over channels
 * [o0, o0 + ncols), whole chunks, in one call (the rows' layout is made once
 * for all of them): per chunk its roots on the file's unpacked words and its
 * children, each position written straight to its channel's column (rperm);
 * row r's window is segs segments of seglen words at arow[r], segstride apart. */
static void mst_chunks_run(const xe_node *n, const xe_exec *ex, size_t rows, size_t o0,
                           size_t ncols, const uint32_t *const *arow, size_t segs, size_t seglen,
                           size_t segstride, int32_t *pc) {
    const mst_pre *p = n->pre;
    const size_t j0 = o0 / p->chunk, j1 = (o0 + ncols + p->chunk - 1) / p->chunk;
    ex->k->mst_chunk(rows, arow, segs, seglen, segstride, j1 - j0, p->cdesc + j0, p->ent, pc, ncols,
                     o0);
}

/* The driver's in-place windows (xe_bconv_ops.popcounts_rows), for sets with
 * a whole-chunk kernel: no im2col copy. */
static void mst_popcounts_rows(const xe_node *n, const xe_exec *ex, size_t rows, size_t o0,
                               size_t ncols, const uint32_t *const *arow, size_t seglen,
                               size_t segstride, int32_t *pc) {
    mst_chunks_run(n, ex, rows, o0, ncols, arow, n->info.kernel_h, seglen, segstride, pc);
}

/* The window popcounts of channels [o0, o0 + ncols) (whole chunks) on
 * gathered rows: with a whole-chunk kernel as above (one segment a row);
 * otherwise the chunk's roots by the session's bgemm on its packed roots, its
 * children from their parents by the set's child kernel, in runtime
 * positions, then scattered to channel order. */
static void mst_popcounts(const xe_node *n, const xe_exec *ex, size_t rows, size_t o0, size_t ncols,
                          const uint32_t *a, size_t lda, int32_t *pc, uint8_t *scratch) {
    const mst_pre *p = n->pre;
    const size_t L = (size_t)n->info.kernel_h * n->info.kernel_w * n->cw, chunk = p->chunk;
    if (ex->k->mst_chunk) {
        const uint32_t *arow[XE_CHUNK_ROWS]; /* the driver's rows <= XE_CHUNK_ROWS */
        for (size_t r = 0; r < rows; r++) arow[r] = a + r * lda;
        mst_chunks_run(n, ex, rows, o0, ncols, arow, 1, L, 0, pc);
        return;
    }
    const uint32_t *packed = ex->prepared;
    for (size_t j = 0; j < o0 / chunk; j++)
        packed += xe_bgemm_packed_words(ex->k, p->root_first[j + 1] - p->root_first[j], L);
    int32_t *pp = (int32_t *)(void *)scratch; /* [rows][ncols] by runtime position */
    const xe_mst_children_fn children = xe_mst_children_for(ex->k);
    for (size_t c0 = o0; c0 < o0 + ncols; c0 += chunk) {
        const size_t j = c0 / chunk, r0 = p->root_first[j], nr = p->root_first[j + 1] - r0;
        const size_t c1 = o0 + ncols - c0 < chunk ? o0 + ncols : c0 + chunk;
        xe_bgemm(ex->k, rows, 0, nr, L, a, lda, packed, pp + (c0 - o0), ncols);
        packed += xe_bgemm_packed_words(ex->k, nr, L);
        children(rows, c1 - (c0 + nr), &p->pos[c0 + nr], p->ent, a, lda, pp, ncols, c0 + nr - o0,
                 o0);
    }
    for (size_t r = 0; r < rows; r++)
        for (size_t q = 0; q < ncols; q++) pc[r * ncols + p->perm[o0 + q] - o0] = pp[r * ncols + q];
}

static void mst_scratch(const xe_node *n, size_t *shared, size_t *per_thread, int *ovf) {
    xe_bconv_scratch(n, xe_mul(n->info.out_c, XE_CHUNK_ROWS * 4, ovf), shared, per_thread, ovf);
}

static void mst_run(const xe_node *n, const xe_exec *ex, const void *in, const void *in1,
                    void *out) {
    const mst_pre *p = n->pre;
    int ovf = 0;
    const int32_t *corr, *thr;
    xe_bconv_tables_get(n, (const uint8_t *)ex->prepared + mst_tables_offset(n, ex->k, &ovf), &corr,
                        &thr);
    const xe_bconv_ops ops = {p->wpop,
                              n->params[SCALE],
                              n->params[BIAS],
                              p->step,
                              mst_popcounts,
                              corr,
                              thr,
                              NULL,
                              ex->k->mst_chunk ? mst_popcounts_rows : NULL};
    xe_bconv_run(n, ex, in, out, &ops);
}

const xe_op_def xe_op_bconv2d_mst = {
    .op = 32,
    .name = "bconv2d_mst",
    .flags = XE_FLAG_RELU | XE_FLAG_PAD_ONE | XE_FLAG_USE_K | XE_FLAG_OUT_BITS,
    .n_params = 7,
    .param_dtypes = {XE_DTYPE_BITS, XE_DTYPE_BITS, XE_DTYPE_BITS, XE_DTYPE_BITS, XE_DTYPE_BITS,
                     XE_DTYPE_F32, XE_DTYPE_F32},
    .windowed = 1,
    .bits_input = 1,
    .check = xe_bconv_check,
    .infer = xe_bconv_infer,
    .param_sizes = mst_params,
    .bind = mst_bind,
    .destroy = mst_destroy,
    .scratch = mst_scratch,
    .session_bytes = mst_session_bytes,
    .session_prepare = mst_session_prepare,
    .run = mst_run,
    /* xe_bconv_run's input pass and epilogue, so the same fusion as bconv2d. */
    .fuse_post = 1,
    .fuse_pre = 1,
};
