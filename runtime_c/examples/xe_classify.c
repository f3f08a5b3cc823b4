/*
 * xe_classify.c - the smallest complete use of the C API: load a model, run
 * it once on an input read from a raw float32 file (or zeros), print the
 * top outputs and the time per node. The README's C example is this file.
 *
 *   xe_classify MODEL [INPUT.f32] [THREADS]
 */
#include <stdio.h>
#include <stdlib.h>

#include <xnor_edge.h>

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL [INPUT.f32] [THREADS]\n", argv[0]);
        return 2;
    }
    char why[256];
    xe_model *model = NULL;
    if (xe_model_load_file(argv[1], &model, why, sizeof why) != XE_OK) {
        fprintf(stderr, "cannot load %s: %s\n", argv[1], why);
        return 1;
    }
    uint32_t h, w, c, oh, ow, oc;
    xe_model_input_shape(model, &h, &w, &c);
    xe_model_output_shape(model, &oh, &ow, &oc);
    const size_t in_n = (size_t)h * w * c, out_n = (size_t)oh * ow * oc;
    float *input = calloc(in_n, sizeof *input), *output = calloc(out_n, sizeof *output);
    int rc = 1;
    xe_session *session = NULL;
    if (!input || !output) {
        fprintf(stderr, "out of memory\n");
        goto done;
    }
    if (argc > 2 && argv[2][0]) { /* H*W*C float32 values, NHWC, normalised; "" = zeros */
        FILE *f = fopen(argv[2], "rb");
        size_t got = f ? fread(input, sizeof *input, in_n, f) : 0;
        if (f) fclose(f);
        if (got != in_n) {
            fprintf(stderr, "%s: expected %zu float32 values (%ux%ux%u)\n", argv[2], in_n, h, w, c);
            goto done;
        }
    }
    xe_session_options options = {0};
    options.num_threads = argc > 3 ? (uint32_t)strtoul(argv[3], NULL, 10) : 1;
    xe_status st = xe_session_create(model, &options, &session);
    if (st == XE_OK) st = xe_session_run(session, input, in_n, output, out_n);
    if (st != XE_OK) {
        fprintf(stderr, "%s\n", xe_status_string(st));
        goto done;
    }
    size_t best = 0;
    for (size_t i = 1; i < out_n; i++)
        if (output[i] > output[best]) best = i;
    printf("kernels %s, %u thread(s), output %ux%ux%u, argmax %zu (%g)\n", xe_kernel_isa(),
           xe_session_num_threads(session), oh, ow, oc, best, output[best]);
    for (uint32_t i = 0; i < xe_model_num_nodes(model); i++) {
        xe_node_info info;
        uint64_t ns = 0;
        xe_model_node_info(model, i, &info);
        xe_session_node_time_ns(session, i, &ns);
        printf("  %2u %-15s %8.3f ms\n", i, xe_op_name(info.op), ns / 1e6);
    }
    rc = 0;
done:
    xe_session_destroy(session);
    xe_model_destroy(model);
    free(input);
    free(output);
    return rc;
}
