/*
 * fuzz_model_load.c - libFuzzer target for the model loader.
 *
 * Loads the input as a model from memory; if it loads, creates a session and runs it on zeros
 * (and on zero bytes when the model takes uint8 input), so
 * that whatever the loader accepts is also safe to plan and execute. Models whose run would take
 * long (many MACs or large values) are loaded but not run, to keep executions fast; that bound is
 * far above what the fuzzer's inputs
 * (<= 64 KiB) usually reach.
 *
 * A mutated file almost never keeps a valid CRC-32, which would stop the
 * fuzzer at the checksum. So, by a convention of this target only, an input
 * whose stored CRC field is 0 gets its real CRC written into a copy before
 * loading (reaching the structural checks); other inputs load as they are
 * (exercising the checksum path). The seed corpus has both kinds.
 *
 * Build and run: see runtime_c/fuzz/README.md.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "xnor_edge.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
uint32_t xe_crc32(const uint8_t *p, size_t n); /* model_load.c (internal) */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[256];
    xe_model *m = NULL;
    uint8_t *fixed = NULL;
    if (size >= 136 && !(data[size - 8] | data[size - 7] | data[size - 6] | data[size - 5])) {
        fixed = malloc(size);
        if (!fixed) return 0;
        memcpy(fixed, data, size);
        const uint32_t crc = xe_crc32(fixed, size - 8);
        for (int i = 0; i < 4; i++) fixed[size - 8 + i] = (uint8_t)(crc >> (8 * i));
        data = fixed;
    }
    const int copy = ((uintptr_t)data % 4) != 0;
    xe_status st = xe_model_load_memory(data, size, copy, &m, err, sizeof err);
    if (st != XE_OK) {
        free(fixed);
        if (m != NULL || err[0] == 0) abort(); /* a failure must explain itself */
        return 0;
    }
    uint64_t macs = 0, elems = 0;
    uint32_t h, w, c;
    for (uint32_t i = 0; i < xe_model_num_nodes(m); i++) {
        xe_node_info info;
        if (xe_model_node_info(m, i, &info) != XE_OK) abort();
        macs += info.macs;
        elems += (uint64_t)info.out_h * info.out_w * info.out_c +
                 (uint64_t)info.in_h * info.in_w * info.in_c;
    }
    if (macs < 50000000u && elems < (1u << 22)) {
        xe_model_input_shape(m, &h, &w, &c);
        const size_t in_n = (size_t)h * w * c;
        xe_model_output_shape(m, &h, &w, &c);
        const size_t out_n = (size_t)h * w * c;
        float *in = calloc(in_n, sizeof(float)), *out = calloc(out_n, sizeof(float));
        xe_session_options o = {0};
        o.num_threads = (uint32_t)(size % 3); /* 0, 1 or 2 threads */
        xe_session *s = NULL;
        if (in && out && xe_session_create(m, &o, &s) == XE_OK) {
            if (xe_session_run(s, in, in_n, out, out_n) != XE_OK) abort();
            /* uint8 input: the zero floats' bytes serve as pixels. */
            if (xe_model_input_u8_table(m) &&
                xe_session_run_u8(s, (const uint8_t *)in, in_n, out, out_n) != XE_OK)
                abort();
        }
        xe_session_destroy(s);
        free(in);
        free(out);
    }
    xe_model_destroy(m);
    free(fixed);
    return 0;
}
