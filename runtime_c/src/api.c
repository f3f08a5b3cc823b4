/*
 * api.c - library-level queries: status strings, versions, op names; and the
 * table of op records built from ops.inc.
 */
#include "ops.h"

#define XE_OP(def) extern const xe_op_def def;
#include "ops.inc"
#undef XE_OP

static const xe_op_def *const xe_op_table[] = {
#define XE_OP(def) &def,
#include "ops.inc"
#undef XE_OP
};
#define XE_NUM_OPS (sizeof xe_op_table / sizeof xe_op_table[0])

const xe_op_def *xe_op_at(size_t i) { return i < XE_NUM_OPS ? xe_op_table[i] : NULL; }

const xe_op_def *xe_op_find(uint32_t op) {
    for (size_t i = 0; i < XE_NUM_OPS; i++)
        if (xe_op_table[i]->op == op) return xe_op_table[i];
    return NULL;
}

#define XE_STR2(x) #x
#define XE_STR(x) XE_STR2(x)

const char *xe_status_string(xe_status status) {
    switch (status) {
    case XE_OK:
        return "ok";
    case XE_ERR_INVALID_ARGUMENT:
        return "invalid argument";
    case XE_ERR_OUT_OF_MEMORY:
        return "out of memory";
    case XE_ERR_IO:
        return "i/o error";
    case XE_ERR_BAD_MAGIC:
        return "not an xnor-edge model file (bad magic)";
    case XE_ERR_UNSUPPORTED_VERSION:
        return "unsupported format or packing version";
    case XE_ERR_TRUNCATED:
        return "truncated file";
    case XE_ERR_CHECKSUM:
        return "checksum mismatch";
    case XE_ERR_BAD_MODEL:
        return "invalid model";
    case XE_ERR_THREAD:
        return "could not start a worker thread";
    case XE_ERR_UNSUPPORTED:
        return "unsupported by this build";
    }
    return "unknown status";
}

uint32_t xe_version_number(void) {
    return XE_VERSION_MAJOR * 10000u + XE_VERSION_MINOR * 100u + XE_VERSION_PATCH;
}

const char *xe_version_string(void) {
    return XE_STR(XE_VERSION_MAJOR) "." XE_STR(XE_VERSION_MINOR) "." XE_STR(XE_VERSION_PATCH);
}

uint32_t xe_format_version(void) { return XE_FORMAT_VERSION; }

uint32_t xe_packing_version(void) { return XE_PACKING_VERSION; }

const char *xe_op_name(uint32_t op) {
    const xe_op_def *def = xe_op_find(op);
    return def ? def->name : "unknown";
}
