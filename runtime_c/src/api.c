/*
 * api.c - library-level queries: status strings, versions, op names.
 */
#include "xe_internal.h"

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
    switch (op) {
    case XE_OP_CONV2D:
        return "conv2d";
    case XE_OP_BWN_CONV2D:
        return "bwn_conv2d";
    case XE_OP_BCONV2D:
        return "bconv2d";
    case XE_OP_BATCHNORM:
        return "batchnorm";
    case XE_OP_RELU:
        return "relu";
    case XE_OP_MAXPOOL:
        return "maxpool";
    case XE_OP_AVGPOOL:
        return "avgpool";
    case XE_OP_GLOBAL_AVGPOOL:
        return "global_avgpool";
    case XE_OP_DENSE:
        return "dense";
    case XE_OP_ADD:
        return "add";
    case XE_OP_SOFTMAX:
        return "softmax";
    case XE_OP_SIGN:
        return "sign";
    }
    return "unknown";
}
