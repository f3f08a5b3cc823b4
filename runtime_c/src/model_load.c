/*
 * model_load.c - reads and validates a model file (docs/format.md) and does
 * the per-node precomputation that sessions share.
 *
 * Nothing here knows an op: each node is checked against its op's record
 * (ops.h) by generic code (flags, params, window, inputs, output shape), and
 * the record's hooks do the op's own checks, binding and precomputation.
 *
 * Every file is hostile: every field is range-checked before use, every
 * offset + length is checked against the file without overflow (all file
 * arithmetic is in uint64_t against a uint64_t limit), and every failure
 * returns a status with a reason naming the field, byte offset or node. The
 * order of checks is fixed so a given corruption always gives the same
 * status: magic, versions, size, trailer, CRC-32, then structure.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ops.h"

struct xe_loader {
    char *err;
    size_t cap;
    uint32_t node, op; /* the node being loaded, for xe_node_fail */
};

static xe_status fail(xe_loader *ld, xe_status st, const char *fmt, ...) {
    if (ld->err && ld->cap > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ld->err, ld->cap, fmt, ap);
        va_end(ap);
    }
    return st;
}

static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

/* CRC-32 (IEEE 802.3, reflected 0xEDB88320, as zlib), table-driven. The table
 * is a compile-time constant so the library keeps no mutable global state. */
static const uint32_t crc_table[256] = {
    0x00000000u, 0x77073096u, 0xee0e612cu, 0x990951bau, 0x076dc419u, 0x706af48fu, 0xe963a535u,
    0x9e6495a3u, 0x0edb8832u, 0x79dcb8a4u, 0xe0d5e91eu, 0x97d2d988u, 0x09b64c2bu, 0x7eb17cbdu,
    0xe7b82d07u, 0x90bf1d91u, 0x1db71064u, 0x6ab020f2u, 0xf3b97148u, 0x84be41deu, 0x1adad47du,
    0x6ddde4ebu, 0xf4d4b551u, 0x83d385c7u, 0x136c9856u, 0x646ba8c0u, 0xfd62f97au, 0x8a65c9ecu,
    0x14015c4fu, 0x63066cd9u, 0xfa0f3d63u, 0x8d080df5u, 0x3b6e20c8u, 0x4c69105eu, 0xd56041e4u,
    0xa2677172u, 0x3c03e4d1u, 0x4b04d447u, 0xd20d85fdu, 0xa50ab56bu, 0x35b5a8fau, 0x42b2986cu,
    0xdbbbc9d6u, 0xacbcf940u, 0x32d86ce3u, 0x45df5c75u, 0xdcd60dcfu, 0xabd13d59u, 0x26d930acu,
    0x51de003au, 0xc8d75180u, 0xbfd06116u, 0x21b4f4b5u, 0x56b3c423u, 0xcfba9599u, 0xb8bda50fu,
    0x2802b89eu, 0x5f058808u, 0xc60cd9b2u, 0xb10be924u, 0x2f6f7c87u, 0x58684c11u, 0xc1611dabu,
    0xb6662d3du, 0x76dc4190u, 0x01db7106u, 0x98d220bcu, 0xefd5102au, 0x71b18589u, 0x06b6b51fu,
    0x9fbfe4a5u, 0xe8b8d433u, 0x7807c9a2u, 0x0f00f934u, 0x9609a88eu, 0xe10e9818u, 0x7f6a0dbbu,
    0x086d3d2du, 0x91646c97u, 0xe6635c01u, 0x6b6b51f4u, 0x1c6c6162u, 0x856530d8u, 0xf262004eu,
    0x6c0695edu, 0x1b01a57bu, 0x8208f4c1u, 0xf50fc457u, 0x65b0d9c6u, 0x12b7e950u, 0x8bbeb8eau,
    0xfcb9887cu, 0x62dd1ddfu, 0x15da2d49u, 0x8cd37cf3u, 0xfbd44c65u, 0x4db26158u, 0x3ab551ceu,
    0xa3bc0074u, 0xd4bb30e2u, 0x4adfa541u, 0x3dd895d7u, 0xa4d1c46du, 0xd3d6f4fbu, 0x4369e96au,
    0x346ed9fcu, 0xad678846u, 0xda60b8d0u, 0x44042d73u, 0x33031de5u, 0xaa0a4c5fu, 0xdd0d7cc9u,
    0x5005713cu, 0x270241aau, 0xbe0b1010u, 0xc90c2086u, 0x5768b525u, 0x206f85b3u, 0xb966d409u,
    0xce61e49fu, 0x5edef90eu, 0x29d9c998u, 0xb0d09822u, 0xc7d7a8b4u, 0x59b33d17u, 0x2eb40d81u,
    0xb7bd5c3bu, 0xc0ba6cadu, 0xedb88320u, 0x9abfb3b6u, 0x03b6e20cu, 0x74b1d29au, 0xead54739u,
    0x9dd277afu, 0x04db2615u, 0x73dc1683u, 0xe3630b12u, 0x94643b84u, 0x0d6d6a3eu, 0x7a6a5aa8u,
    0xe40ecf0bu, 0x9309ff9du, 0x0a00ae27u, 0x7d079eb1u, 0xf00f9344u, 0x8708a3d2u, 0x1e01f268u,
    0x6906c2feu, 0xf762575du, 0x806567cbu, 0x196c3671u, 0x6e6b06e7u, 0xfed41b76u, 0x89d32be0u,
    0x10da7a5au, 0x67dd4accu, 0xf9b9df6fu, 0x8ebeeff9u, 0x17b7be43u, 0x60b08ed5u, 0xd6d6a3e8u,
    0xa1d1937eu, 0x38d8c2c4u, 0x4fdff252u, 0xd1bb67f1u, 0xa6bc5767u, 0x3fb506ddu, 0x48b2364bu,
    0xd80d2bdau, 0xaf0a1b4cu, 0x36034af6u, 0x41047a60u, 0xdf60efc3u, 0xa867df55u, 0x316e8eefu,
    0x4669be79u, 0xcb61b38cu, 0xbc66831au, 0x256fd2a0u, 0x5268e236u, 0xcc0c7795u, 0xbb0b4703u,
    0x220216b9u, 0x5505262fu, 0xc5ba3bbeu, 0xb2bd0b28u, 0x2bb45a92u, 0x5cb36a04u, 0xc2d7ffa7u,
    0xb5d0cf31u, 0x2cd99e8bu, 0x5bdeae1du, 0x9b64c2b0u, 0xec63f226u, 0x756aa39cu, 0x026d930au,
    0x9c0906a9u, 0xeb0e363fu, 0x72076785u, 0x05005713u, 0x95bf4a82u, 0xe2b87a14u, 0x7bb12baeu,
    0x0cb61b38u, 0x92d28e9bu, 0xe5d5be0du, 0x7cdcefb7u, 0x0bdbdf21u, 0x86d3d2d4u, 0xf1d4e242u,
    0x68ddb3f8u, 0x1fda836eu, 0x81be16cdu, 0xf6b9265bu, 0x6fb077e1u, 0x18b74777u, 0x88085ae6u,
    0xff0f6a70u, 0x66063bcau, 0x11010b5cu, 0x8f659effu, 0xf862ae69u, 0x616bffd3u, 0x166ccf45u,
    0xa00ae278u, 0xd70dd2eeu, 0x4e048354u, 0x3903b3c2u, 0xa7672661u, 0xd06016f7u, 0x4969474du,
    0x3e6e77dbu, 0xaed16a4au, 0xd9d65adcu, 0x40df0b66u, 0x37d83bf0u, 0xa9bcae53u, 0xdebb9ec5u,
    0x47b2cf7fu, 0x30b5ffe9u, 0xbdbdf21cu, 0xcabac28au, 0x53b39330u, 0x24b4a3a6u, 0xbad03605u,
    0xcdd70693u, 0x54de5729u, 0x23d967bfu, 0xb3667a2eu, 0xc4614ab8u, 0x5d681b02u, 0x2a6f2b94u,
    0xb40bbe37u, 0xc30c8ea1u, 0x5a05df1bu, 0x2d02ef8du};

/* Slicing-by-8 (Intel's "slicing-by-N" CRC): t[k][b] is the CRC of byte b
 * followed by k zero bytes, so eight table lookups advance the CRC by eight
 * bytes with no dependency between them. Bytewise, the table lookup's latency
 * made the CRC 40% of loading the shipped ResNet-18 (2.2 MB); sliced it costs
 * a fraction of a millisecond. The tables are built on the caller's stack
 * (8 KiB, about 2,000 table steps) only for inputs large enough to repay it,
 * so the library still keeps no mutable global state. */
enum { CRC_SLICE_MIN = 4096 };

static uint32_t crc_bytes(uint32_t c, const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++) c = crc_table[(c ^ p[i]) & 0xFFu] ^ (c >> 8);
    return c;
}

uint32_t xe_crc32(const uint8_t *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    if (n < CRC_SLICE_MIN) return crc_bytes(c, p, n) ^ 0xFFFFFFFFu;
    uint32_t t[8][256];
    for (int b = 0; b < 256; b++) {
        uint32_t v = crc_table[b];
        t[0][b] = v;
        for (int k = 1; k < 8; k++) {
            v = crc_table[v & 0xFFu] ^ (v >> 8);
            t[k][b] = v;
        }
    }
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const uint32_t lo = c ^ rd32(p + i), hi = rd32(p + i + 4);
        c = t[7][lo & 0xFFu] ^ t[6][(lo >> 8) & 0xFFu] ^ t[5][(lo >> 16) & 0xFFu] ^ t[4][lo >> 24] ^
            t[3][hi & 0xFFu] ^ t[2][(hi >> 8) & 0xFFu] ^ t[1][(hi >> 16) & 0xFFu] ^ t[0][hi >> 24];
    }
    return crc_bytes(c, p + i, n - i) ^ 0xFFFFFFFFu;
}

/* A node error: "node 3 (bconv2d): <reason>". */
xe_status xe_node_fail(xe_loader *ld, const char *fmt, ...) {
    char reason[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    return fail(ld, XE_ERR_BAD_MODEL, "node %u (%s): %s", ld->node, xe_op_name(ld->op), reason);
}

xe_status xe_node_oom(xe_loader *ld, const char *what) {
    return fail(ld, XE_ERR_OUT_OF_MEMORY, "node %u: out of memory%s", ld->node, what);
}

/* Where the header puts things, once checked. */
typedef struct layout {
    uint32_t ih, iw, ic, nn, np;
    uint32_t flags, input_table; /* header flags; the uint8 input table's param */
    uint64_t limit;              /* data ends before the trailer */
    uint64_t meta_off, meta_size, nodes_off, params_off, params_end;
} layout;

/* Magic, versions, size, trailer and CRC-32, in that order. */
static xe_status check_envelope(const xe_model *m, xe_loader *ld) {
    const uint8_t *d = m->data;
    const size_t size = m->size;
    static const char magic[8] = {'X', 'N', 'O', 'R', 'E', 'D', 'G', 'E'};

    if (size < 8) {
        /* size 0 may come with d == NULL, which memcmp must not see. */
        if (size == 0 || memcmp(d, magic, size) == 0)
            return fail(ld, XE_ERR_TRUNCATED,
                        "truncated: file is %zu bytes, too short for the magic", size);
        return fail(ld, XE_ERR_BAD_MAGIC, "bad magic: not an xnor-edge model file");
    }
    if (memcmp(d, magic, 8) != 0)
        return fail(ld, XE_ERR_BAD_MAGIC,
                    "bad magic: not an xnor-edge model file (expected XNOREDGE)");
    if (size < 16)
        return fail(ld, XE_ERR_TRUNCATED, "truncated: file is %zu bytes, header is 128", size);
    if (rd32(d + 8) != XE_FORMAT_VERSION)
        return fail(ld, XE_ERR_UNSUPPORTED_VERSION,
                    "format_version %u is not supported (this library reads %u)", rd32(d + 8),
                    (unsigned)XE_FORMAT_VERSION);
    if (rd32(d + 12) != XE_PACKING_VERSION)
        return fail(ld, XE_ERR_UNSUPPORTED_VERSION,
                    "packing_version %u is not supported (this library reads %u)", rd32(d + 12),
                    (unsigned)XE_PACKING_VERSION);
    if (size < XE_HEADER_SIZE + XE_TRAILER_SIZE)
        return fail(ld, XE_ERR_TRUNCATED,
                    "truncated: file is %zu bytes, smaller than header and trailer (136)", size);
    const uint64_t file_size = rd64(d + 16);
    if (file_size > (uint64_t)size)
        return fail(ld, XE_ERR_TRUNCATED, "truncated: file is %zu bytes, header says %llu", size,
                    (unsigned long long)file_size);
    if (file_size < (uint64_t)size)
        return fail(ld, XE_ERR_BAD_MODEL,
                    "file is %zu bytes, header says %llu (extra bytes at the end)", size,
                    (unsigned long long)file_size);
    if (memcmp(d + size - 4, "XEND", 4) != 0)
        return fail(ld, XE_ERR_BAD_MODEL, "trailer: bytes at offset %zu are not XEND", size - 4);
    const uint32_t crc_stored = rd32(d + size - 8), crc = xe_crc32(d, size - 8);
    if (crc != crc_stored)
        return fail(ld, XE_ERR_CHECKSUM, "checksum: stored CRC-32 0x%08x, computed 0x%08x",
                    crc_stored, crc);
    return XE_OK;
}

/* The header's structural fields: sizes, flags, reserved bytes, input shape, counts. */
static xe_status check_header(const xe_model *m, xe_loader *ld, layout *L) {
    const uint8_t *d = m->data;
    if (rd32(d + 24) != XE_HEADER_SIZE)
        return fail(ld, XE_ERR_BAD_MODEL, "header: header_size (byte offset 24) is %u, must be 128",
                    rd32(d + 24));
    const uint32_t flags = rd32(d + 28), table = rd32(d + 52);
    if (flags & ~XE_HEADER_U8_INPUT)
        return fail(ld, XE_ERR_BAD_MODEL,
                    "header: flags (byte offset 28) 0x%x has unknown bits (known: 0x1, U8_INPUT)",
                    flags);
    if (!(flags & XE_HEADER_U8_INPUT) && table != 0)
        return fail(ld, XE_ERR_BAD_MODEL,
                    "header: input_table (byte offset 52) is %u without the U8_INPUT flag, must "
                    "be 0",
                    table);
    for (uint32_t off = 88; off < 128; off++)
        if (d[off])
            return fail(ld, XE_ERR_BAD_MODEL, "header: reserved byte at offset %u is not zero",
                        off);
    const uint32_t ih = rd32(d + 32), iw = rd32(d + 36), ic = rd32(d + 40);
    if (ih < 1 || ih > XE_MAX_DIM || iw < 1 || iw > XE_MAX_DIM || ic < 1 || ic > XE_MAX_DIM)
        return fail(ld, XE_ERR_BAD_MODEL, "header: input shape %ux%ux%u out of range 1..65535", ih,
                    iw, ic);
    if ((uint64_t)ih * iw * ic > XE_MAX_ELEMS)
        return fail(ld, XE_ERR_BAD_MODEL, "header: input %ux%ux%u has more than 2^28 elements", ih,
                    iw, ic);
    const uint32_t nn = rd32(d + 44), np = rd32(d + 48);
    if (nn < 1 || nn > XE_MAX_NODES)
        return fail(ld, XE_ERR_BAD_MODEL, "header: num_nodes %u out of range 1..65536", nn);
    if (np > XE_MAX_PARAMS)
        return fail(ld, XE_ERR_BAD_MODEL, "header: num_params %u out of range 0..1048576", np);
    *L = (layout){ih,
                  iw,
                  ic,
                  nn,
                  np,
                  0,
                  0,
                  (uint64_t)m->size - XE_TRAILER_SIZE,
                  rd64(d + 56),
                  rd64(d + 64),
                  rd64(d + 72),
                  rd64(d + 80),
                  0};
    L->flags = flags;
    L->input_table = table;
    return XE_OK;
}

/* Placement of the metadata, node table and param table; metadata termination. */
static xe_status check_tables(const xe_model *m, xe_loader *ld, layout *L) {
    const uint8_t *d = m->data;
    const uint64_t limit = L->limit, meta_off = L->meta_off, meta_size = L->meta_size;
    const uint64_t nodes_off = L->nodes_off, params_off = L->params_off;
    if (meta_off < XE_HEADER_SIZE || meta_off > limit || meta_size >= limit - meta_off)
        return fail(
            ld, XE_ERR_BAD_MODEL,
            "header: metadata at offset %llu size %llu does not fit in the file (%zu bytes)",
            (unsigned long long)meta_off, (unsigned long long)meta_size, m->size);
    if (d[meta_off + meta_size] != 0)
        return fail(ld, XE_ERR_BAD_MODEL,
                    "metadata: byte at offset %llu must be the NUL terminator",
                    (unsigned long long)(meta_off + meta_size));
    if (memchr(d + meta_off, 0, (size_t)meta_size) != NULL)
        return fail(ld, XE_ERR_BAD_MODEL, "metadata: contains a NUL byte before its end");
    if (nodes_off % 8 != 0 || nodes_off < meta_off + meta_size + 1 || nodes_off > limit ||
        (uint64_t)L->nn * XE_NODE_SIZE > limit - nodes_off)
        return fail(ld, XE_ERR_BAD_MODEL,
                    "header: node table at offset %llu (%u nodes) is misaligned, overlaps the "
                    "metadata or does not fit in the file",
                    (unsigned long long)nodes_off, L->nn);
    const uint64_t nodes_end = nodes_off + (uint64_t)L->nn * XE_NODE_SIZE;
    if (params_off % 8 != 0 || params_off < nodes_end || params_off > limit ||
        (uint64_t)L->np * XE_PARAM_SIZE > limit - params_off)
        return fail(ld, XE_ERR_BAD_MODEL,
                    "header: param table at offset %llu (%u params) is misaligned, overlaps the "
                    "node table or does not fit in the file",
                    (unsigned long long)params_off, L->np);
    L->params_end = params_off + (uint64_t)L->np * XE_PARAM_SIZE;
    return XE_OK;
}

/* Every param entry: dtype, reserved fields, data placement, finite floats. */
static xe_status check_param_table(const xe_model *m, xe_loader *ld, const layout *L) {
    const uint8_t *d = m->data;
    for (uint32_t p = 0; p < L->np; p++) {
        const uint64_t eoff = L->params_off + (uint64_t)p * XE_PARAM_SIZE;
        const uint8_t *e = d + eoff;
        const uint32_t dt = rd32(e);
        const uint64_t off = rd64(e + 8), cnt = rd64(e + 16);
        if (dt > 1)
            return fail(ld, XE_ERR_BAD_MODEL, "param %u (byte offset %llu): dtype %u is not 0 or 1",
                        p, (unsigned long long)eoff, dt);
        if (rd32(e + 4) != 0 || rd64(e + 24) != 0)
            return fail(ld, XE_ERR_BAD_MODEL,
                        "param %u (byte offset %llu): reserved field is not zero", p,
                        (unsigned long long)eoff);
        if (off % 64 != 0 || off < L->params_end || off > L->limit || cnt > (L->limit - off) / 4)
            return fail(
                ld, XE_ERR_BAD_MODEL,
                "param %u (byte offset %llu): data at offset %llu count %llu is misaligned or "
                "outside the parameter data",
                p, (unsigned long long)eoff, (unsigned long long)off, (unsigned long long)cnt);
        if (dt == 0) {
            const float *f = (const float *)(const void *)(d + off);
            for (uint64_t k = 0; k < cnt; k++)
                if (!isfinite(f[k]))
                    return fail(ld, XE_ERR_BAD_MODEL,
                                "param %u: element %llu (byte offset %llu) is not a finite float",
                                p, (unsigned long long)k, (unsigned long long)(off + 4 * k));
        }
    }
    return XE_OK;
}

/* Generic checks of a node record against its op's record: flags, reserved
 * field, inputs, window, input dtypes; then the op's own check. */
static xe_status check_node(const xe_model *m, xe_loader *ld, xe_node *n, uint32_t i,
                            uint64_t rec_off, uint32_t reserved) {
    const xe_op_def *def = n->def;
    xe_node_info *f = &n->info;
    if (f->flags & ~def->flags)
        return xe_node_fail(ld, "bad flags 0x%x (allowed 0x%x)", f->flags, def->flags);
    if (reserved != 0)
        return xe_node_fail(ld, "reserved field at byte offset %llu is not zero",
                            (unsigned long long)(rec_off + 60));
    if (f->input0 > i) return xe_node_fail(ld, "input0 is value %u, must be <= %u", f->input0, i);
    if (def->input1 ? f->input1 > i : f->input1 != XE_INPUT_NONE)
        return xe_node_fail(ld, "input1 is %u, must be %s", f->input1,
                            def->input1 ? "an earlier value" : "0xFFFFFFFF (unused)");
    if (def->windowed) {
        if (f->kernel_h < 1 || f->kernel_h > XE_MAX_KERNEL || f->kernel_w < 1 ||
            f->kernel_w > XE_MAX_KERNEL || f->stride_h < 1 || f->stride_h > XE_MAX_STRIDE ||
            f->stride_w < 1 || f->stride_w > XE_MAX_STRIDE || f->pad_h >= f->kernel_h ||
            f->pad_w >= f->kernel_w)
            return xe_node_fail(ld,
                                "window kernel %ux%u stride %ux%u pad %ux%u out of range (kernel "
                                "and stride 1..64, pad < kernel)",
                                f->kernel_h, f->kernel_w, f->stride_h, f->stride_w, f->pad_h,
                                f->pad_w);
    } else if (f->kernel_h | f->kernel_w | f->stride_h | f->stride_w | f->pad_h | f->pad_w) {
        return xe_node_fail(ld, "kernel, stride and pad must be 0 for an op without a window");
    }
    const xe_value_desc in = m->values[f->input0];
    f->in_h = in.h;
    f->in_w = in.w;
    f->in_c = in.c;
    f->in_dtype = in.dtype;
    n->cw = (in.c + 31) / 32;
    if (in.dtype == XE_DTYPE_BITS && !def->bits_input)
        return xe_node_fail(ld, "input value %u is bits, this op needs float32", f->input0);
    if (def->input1) {
        const xe_value_desc b = m->values[f->input1];
        if (b.dtype != XE_DTYPE_F32)
            return xe_node_fail(ld, "input1 value %u is bits, %s needs float32", f->input1,
                                def->name);
        if (b.h != in.h || b.w != in.w || (def->input1 == XE_IN1_SAME_SHAPE && b.c != in.c))
            return xe_node_fail(ld, "input %s differ: %ux%ux%u and %ux%ux%u",
                                def->input1 == XE_IN1_SAME_SHAPE ? "shapes" : "heights or widths",
                                in.h, in.w, in.c, b.h, b.w, b.c);
        n->in1_c = b.c;
    }
    return def->check ? def->check(ld, n) : XE_OK;
}

/* Output shape from the window and the op's infer hook, checked against the
 * shape the node records; fills out_* and the value descriptor. */
static xe_status infer_output(xe_model *m, xe_loader *ld, xe_node *n, uint32_t i,
                              const uint32_t rec[3]) {
    xe_node_info *f = &n->info;
    xe_out_shape o = {f->in_h, f->in_w, f->in_c, XE_DTYPE_F32};
    if (n->def->windowed) {
        const uint64_t ph = (uint64_t)f->in_h + 2ull * f->pad_h,
                       pw = (uint64_t)f->in_w + 2ull * f->pad_w;
        if (ph < f->kernel_h || pw < f->kernel_w)
            return xe_node_fail(ld, "kernel %ux%u is larger than the padded input %llux%llu",
                                f->kernel_h, f->kernel_w, (unsigned long long)ph,
                                (unsigned long long)pw);
        o.h = (ph - f->kernel_h) / f->stride_h + 1;
        o.w = (pw - f->kernel_w) / f->stride_w + 1;
    }
    f->out_h = rec[0]; /* what the record says, for infer (ops.h) */
    f->out_w = rec[1];
    if (n->def->infer) n->def->infer(n, rec[2], &o);
    if (o.c < 1 || o.c > XE_MAX_DIM)
        return xe_node_fail(ld, "out_c %llu out of range 1..65535", (unsigned long long)o.c);
    if (o.h != rec[0] || o.w != rec[1] || o.c != rec[2])
        return xe_node_fail(ld,
                            "output shape is %llux%llux%llu (from input %ux%ux%u), node records "
                            "%ux%ux%u",
                            (unsigned long long)o.h, (unsigned long long)o.w,
                            (unsigned long long)o.c, f->in_h, f->in_w, f->in_c, rec[0], rec[1],
                            rec[2]);
    if (o.h > XE_MAX_DIM || o.w > XE_MAX_DIM || o.h * o.w * o.c > XE_MAX_ELEMS)
        return xe_node_fail(ld, "output %llux%llux%llu exceeds the limits", (unsigned long long)o.h,
                            (unsigned long long)o.w, (unsigned long long)o.c);
    f->out_h = (uint32_t)o.h;
    f->out_w = (uint32_t)o.w;
    f->out_c = (uint32_t)o.c;
    f->out_dtype = o.dtype;
    const uint64_t units =
        o.dtype == XE_DTYPE_BITS ? o.h * o.w * ((o.c + 31) / 32) : o.h * o.w * o.c;
    m->values[i + 1] = (xe_value_desc){f->out_h, f->out_w, f->out_c, o.dtype, (size_t)units};
    return XE_OK;
}

/* The node's params: count, range, single use, dtype and length from the op's
 * record; then the op's bind hook on the views into the file. */
static xe_status bind_params(xe_model *m, xe_loader *ld, const layout *L, xe_node *n,
                             uint32_t pfirst, uint32_t pcount, uint8_t *used) {
    const xe_op_def *def = n->def;
    if (pcount != def->n_params)
        return xe_node_fail(ld, "param_count is %u, op takes %u", pcount, def->n_params);
    if ((uint64_t)pfirst + pcount > L->np)
        return xe_node_fail(ld, "params %u..%u are outside the param table (%u entries)", pfirst,
                            pfirst + pcount, L->np);
    uint64_t need[XE_MAX_OP_PARAMS] = {0};
    if (def->param_sizes) def->param_sizes(n, need);
    uint64_t total = 0;
    for (uint32_t k = 0; k < pcount; k++) {
        const uint32_t p = pfirst + k;
        const uint8_t *e = m->data + L->params_off + (uint64_t)p * XE_PARAM_SIZE;
        if (used[p]) return xe_node_fail(ld, "param %u is already used by another node", p);
        used[p] = 1;
        const uint32_t dt = def->param_dtypes[k];
        if (need[k] == XE_COUNT_FROM_FILE) need[k] = rd64(e + 16); /* bind checks it */
        total += need[k];
        if (rd32(e) != dt || rd64(e + 16) != need[k])
            return xe_node_fail(ld, "param %u (#%u of the op) is %s x %llu, op needs %s x %llu", p,
                                k, rd32(e) ? "bits" : "f32", (unsigned long long)rd64(e + 16),
                                dt ? "bits" : "f32", (unsigned long long)need[k]);
        n->params[k] = m->data + rd64(e + 8);
    }
    if (def->bind) {
        const xe_status st = def->bind(ld, n, need);
        if (st != XE_OK) return st;
    }
    n->info.param_bytes = 4 * total;
    return XE_OK;
}

/* One node record: read, find its op, run the generic checks and the op's hooks. */
static xe_status load_node(xe_model *m, xe_loader *ld, const layout *L, uint32_t i, uint8_t *used) {
    const uint64_t rec_off = L->nodes_off + (uint64_t)i * XE_NODE_SIZE;
    const uint8_t *r = m->data + rec_off;
    xe_node *n = &m->nodes[i];
    xe_node_info *f = &n->info;
    f->op = rd32(r);
    f->flags = rd32(r + 4);
    f->input0 = rd32(r + 8);
    f->input1 = rd32(r + 12);
    f->kernel_h = rd32(r + 16);
    f->kernel_w = rd32(r + 20);
    f->stride_h = rd32(r + 24);
    f->stride_w = rd32(r + 28);
    f->pad_h = rd32(r + 32);
    f->pad_w = rd32(r + 36);
    const uint32_t rec[3] = {rd32(r + 44), rd32(r + 48), rd32(r + 40)}; /* h, w, c */
    n->def = xe_op_find(f->op);
    if (!n->def)
        return fail(ld, XE_ERR_BAD_MODEL, "node %u (byte offset %llu): unknown op %u", i,
                    (unsigned long long)rec_off, f->op);
    ld->node = i;
    ld->op = f->op;
    xe_status st = check_node(m, ld, n, i, rec_off, rd32(r + 60));
    if (st == XE_OK) st = infer_output(m, ld, n, i, rec);
    if (st == XE_OK) st = bind_params(m, ld, L, n, rd32(r + 52), rd32(r + 56), used);
    return st;
}

/* The uint8 input table named by the header (U8_INPUT): an f32 param of
 * 256 * input_c floats, used by no node (finite: check_param_table). */
static xe_status bind_input_table(xe_model *m, xe_loader *ld, const layout *L, uint8_t *used) {
    if (!(L->flags & XE_HEADER_U8_INPUT)) return XE_OK;
    const uint32_t p = L->input_table;
    if (p >= L->np)
        return fail(ld, XE_ERR_BAD_MODEL,
                    "header: input_table %u is outside the param table (%u entries)", p, L->np);
    const uint8_t *e = m->data + L->params_off + (uint64_t)p * XE_PARAM_SIZE;
    const uint64_t need = (uint64_t)XE_U8_LEVELS * L->ic;
    if (rd32(e) != XE_DTYPE_F32 || rd64(e + 16) != need)
        return fail(ld, XE_ERR_BAD_MODEL,
                    "header: input_table param %u is %s x %llu, needs f32 x %llu (256 per channel)",
                    p, rd32(e) ? "bits" : "f32", (unsigned long long)rd64(e + 16),
                    (unsigned long long)need);
    used[p] = 1;
    m->input_table = (const float *)(const void *)(m->data + rd64(e + 8));
    return XE_OK;
}

static xe_status load_nodes(xe_model *m, xe_loader *ld, const layout *L) {
    const uint32_t nn = L->nn, np = L->np;
    m->nodes = calloc(nn, sizeof *m->nodes);
    m->values = calloc((size_t)nn + 1, sizeof *m->values);
    uint8_t *used = calloc(np ? np : 1, 1);
    if (!m->nodes || !m->values || !used) {
        free(used);
        return fail(ld, XE_ERR_OUT_OF_MEMORY, "out of memory for %u nodes", nn);
    }
    m->num_nodes = nn;
    m->values[0] =
        (xe_value_desc){L->ih, L->iw, L->ic, XE_DTYPE_F32, (size_t)L->ih * L->iw * L->ic};
    xe_status st = bind_input_table(m, ld, L, used);
    for (uint32_t i = 0; i < nn && st == XE_OK; i++) st = load_node(m, ld, L, i, used);
    for (uint32_t p = 0; st == XE_OK && p < np; p++)
        if (!used[p]) st = fail(ld, XE_ERR_BAD_MODEL, "param %u is not referenced by any node", p);
    free(used);
    if (st == XE_OK && m->values[nn].dtype != XE_DTYPE_F32)
        st = fail(ld, XE_ERR_BAD_MODEL, "node %u (%s): the model output must be float32, not bits",
                  nn - 1, xe_op_name(m->nodes[nn - 1].info.op));
    return st;
}

/* Validates m->data and builds the nodes: envelope, header, tables, nodes. */
static xe_status parse(xe_model *m, xe_loader *ld) {
    layout L = {0};
    xe_status st = check_envelope(m, ld);
    if (st == XE_OK) st = check_header(m, ld, &L);
    if (st == XE_OK) st = check_tables(m, ld, &L);
    if (st == XE_OK) {
        m->meta = (const char *)m->data + L.meta_off;
        m->meta_len = (size_t)L.meta_size;
        st = check_param_table(m, ld, &L);
    }
    if (st == XE_OK) st = load_nodes(m, ld, &L);
    return st;
}

/* Load-time precomputation, so that sessions only read. */
static xe_status precompute(xe_model *m, xe_loader *ld) {
    for (uint32_t i = 0; i < m->num_nodes; i++) {
        xe_node *n = &m->nodes[i];
        ld->node = i;
        ld->op = n->info.op;
        if (n->def->precompute) {
            const xe_status st = n->def->precompute(ld, n);
            if (st != XE_OK) return st;
        }
    }
    return XE_OK;
}

void xe_model_destroy(xe_model *model) {
    if (!model) return;
    if (model->nodes) {
        for (uint32_t i = 0; i < model->num_nodes; i++) {
            xe_node *n = &model->nodes[i];
            if (n->def && n->def->destroy) n->def->destroy(n);
        }
    }
    free(model->nodes);
    free(model->values);
    if (model->map) munmap(model->map, model->map_size);
    free(model->owned);
    free(model);
}

static xe_status finish_load(xe_model *m, xe_model **out, xe_loader *ld) {
    xe_status st;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    st = fail(ld, XE_ERR_UNSUPPORTED, "big-endian hosts are not supported");
#else
    st = parse(m, ld);
    if (st == XE_OK) st = precompute(m, ld);
#endif
    if (st != XE_OK) {
        xe_model_destroy(m);
        return st;
    }
    if (ld->err && ld->cap > 0) ld->err[0] = 0;
    *out = m;
    return XE_OK;
}

xe_status xe_model_load_memory(const void *data, size_t size, int copy, xe_model **out, char *err,
                               size_t err_cap) {
    xe_loader ld = {err, err_cap, 0, 0};
    if (out) *out = NULL;
    if (!out || (!data && size > 0))
        return fail(&ld, XE_ERR_INVALID_ARGUMENT, "invalid argument: NULL data or out pointer");
    if (!copy && ((uintptr_t)data % 4) != 0)
        return fail(&ld, XE_ERR_INVALID_ARGUMENT,
                    "invalid argument: data must be 4-byte aligned when not copied");
    xe_model *m = calloc(1, sizeof *m);
    if (!m) return fail(&ld, XE_ERR_OUT_OF_MEMORY, "out of memory");
    if (copy) {
        if (posix_memalign(&m->owned, XE_ALIGN, size ? size : 1) != 0) {
            m->owned = NULL;
            xe_model_destroy(m);
            return fail(&ld, XE_ERR_OUT_OF_MEMORY, "out of memory copying %zu bytes", size);
        }
        if (size) memcpy(m->owned, data, size);
        m->data = m->owned;
    } else {
        m->data = data;
    }
    m->size = size;
    return finish_load(m, out, &ld);
}

xe_status xe_model_load_file(const char *path, xe_model **out, char *err, size_t err_cap) {
    xe_loader ld = {err, err_cap, 0, 0};
    if (out) *out = NULL;
    if (!path || !out)
        return fail(&ld, XE_ERR_INVALID_ARGUMENT, "invalid argument: NULL path or out");
    int fd = open(path, O_RDONLY);
    if (fd < 0) return fail(&ld, XE_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return fail(&ld, XE_ERR_IO, "cannot read %s: not a regular file", path);
    }
    if ((uint64_t)sb.st_size > (uint64_t)SIZE_MAX / 2) {
        close(fd);
        return fail(&ld, XE_ERR_IO, "cannot read %s: file too large for this platform", path);
    }
    const size_t size = (size_t)sb.st_size;
    xe_model *m = calloc(1, sizeof *m);
    if (!m) {
        close(fd);
        return fail(&ld, XE_ERR_OUT_OF_MEMORY, "out of memory");
    }
    void *p = size ? mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0) : MAP_FAILED;
    if (p != MAP_FAILED) {
        m->map = p;
        m->map_size = size;
        m->data = p;
    } else {
        /* No mmap (empty file, some filesystems): read it into aligned memory. */
        if (posix_memalign(&m->owned, XE_ALIGN, size ? size : 1) != 0) {
            m->owned = NULL;
            close(fd);
            xe_model_destroy(m);
            return fail(&ld, XE_ERR_OUT_OF_MEMORY, "out of memory reading %zu bytes", size);
        }
        size_t got = 0;
        while (got < size) {
            ssize_t r = read(fd, (uint8_t *)m->owned + got, size - got);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) break;
            got += (size_t)r;
        }
        if (got != size) {
            close(fd);
            xe_model_destroy(m);
            return fail(&ld, XE_ERR_IO, "cannot read %s: short read (%zu of %zu bytes)", path, got,
                        size);
        }
        m->data = m->owned;
    }
    close(fd);
    m->size = size;
    return finish_load(m, out, &ld);
}

void xe_model_input_shape(const xe_model *model, uint32_t *h, uint32_t *w, uint32_t *c) {
    const xe_value_desc *v = model ? &model->values[0] : NULL;
    if (h) *h = v ? v->h : 0;
    if (w) *w = v ? v->w : 0;
    if (c) *c = v ? v->c : 0;
}

void xe_model_output_shape(const xe_model *model, uint32_t *h, uint32_t *w, uint32_t *c) {
    const xe_value_desc *v = model ? &model->values[model->num_nodes] : NULL;
    if (h) *h = v ? v->h : 0;
    if (w) *w = v ? v->w : 0;
    if (c) *c = v ? v->c : 0;
}

const float *xe_model_input_u8_table(const xe_model *model) {
    return model ? model->input_table : NULL;
}

const char *xe_model_metadata(const xe_model *model, size_t *len) {
    if (!model) {
        if (len) *len = 0;
        return NULL;
    }
    if (len) *len = model->meta_len;
    return model->meta;
}

uint32_t xe_model_num_nodes(const xe_model *model) { return model ? model->num_nodes : 0; }

xe_status xe_model_node_info(const xe_model *model, uint32_t index, xe_node_info *out) {
    if (!model || !out || index >= model->num_nodes) return XE_ERR_INVALID_ARGUMENT;
    *out = model->nodes[index].info;
    return XE_OK;
}
