/* Harness for LCE's binary GEMM kernel (float output, fused back-transform):
 * aarch64 8x4 (LCE_ROWS 8) or armv7 4x4 (LCE_ROWS 4), on the ResNet-18
 * binary layer shapes: M = OH*OW pixels (LCE's columns, 4 per block),
 * N = OC (LCE's rows, LCE_ROWS per block), K = 9*IC/32 words padded to 4
 * (128 bits), packed as ruy packs them.
 * usage: harness LAYER REPS  (one warm-up call, then REPS calls; exit 1 on a wrong value) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__aarch64__)
#define LCE_ROWS 8
#else
#define LCE_ROWS 4
#endif

typedef struct {
    const int32_t *lhs, *rhs;
    float *dst;
    int32_t start_row, start_col, last_row, last_col, dst_rows, dst_cols;
    int32_t lhs_stride, rhs_stride, dst_stride, depth;
    int32_t clamp_min, clamp_max;
    const float *multiplier, *bias;
    float tmp[LCE_ROWS * 4];
} params_t; /* BinaryKernelParams<float, LCE_ROWS, 4>'s layout */
void lce_bgemm_float(void *params);
unsigned long lce_params_size(void);

static uint64_t rng = 88172645463325252ull;
static uint32_t rnd32(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 32);
}

int main(int argc, char **argv) {
    static const int shapes[4][4] = {
        {56, 56, 64, 64}, {28, 28, 128, 128}, {14, 14, 256, 256}, {7, 7, 512, 512}};
    const int layer = argc > 1 ? atoi(argv[1]) : 0, reps = argc > 2 ? atoi(argv[2]) : 1;
    const int m = shapes[layer][0] * shapes[layer][1], n = shapes[layer][3];
    const int kw = 9 * shapes[layer][2] / 32, kp = (kw + 3) / 4 * 4;
    const int mp = (m + 3) / 4 * 4, np = (n + LCE_ROWS - 1) / LCE_ROWS * LCE_ROWS;
    uint32_t *a = malloc((size_t)m * kw * 4), *b = malloc((size_t)n * kw * 4);
    int32_t *lhs = calloc((size_t)np * kp, 4), *rhs = calloc((size_t)mp * kp, 4);
    float *mult = malloc(np * 4), *bias = malloc(np * 4), *dst = malloc((size_t)m * n * 4);
    params_t p;
    double check = 0;
    if (lce_params_size() != sizeof p) {
        printf("params layout differs\n");
        return 2;
    }
    for (size_t i = 0; i < (size_t)m * kw; i++) a[i] = rnd32();
    for (size_t i = 0; i < (size_t)n * kw; i++) b[i] = rnd32();
    for (int r = 0; r < n; r++)
        for (int t = 0; t < kw; t++)
            lhs[(size_t)(r / LCE_ROWS) * LCE_ROWS * kp + (t / 4) * 4 * LCE_ROWS +
                (r % LCE_ROWS) * 4 + t % 4] = (int32_t)b[(size_t)r * kw + t];
    for (int c = 0; c < m; c++)
        for (int t = 0; t < kw; t++)
            rhs[(size_t)(c / 4) * 4 * kp + (t / 4) * 16 + (c % 4) * 4 + t % 4] =
                (int32_t)a[(size_t)c * kw + t];
    for (int i = 0; i < np; i++) mult[i] = 1.0f, bias[i] = 0.0f;
    memset(&p, 0, sizeof p);
    p.lhs = lhs, p.rhs = rhs, p.dst = dst;
    p.last_row = np - LCE_ROWS, p.last_col = mp - 4, p.dst_rows = n, p.dst_cols = m;
    p.lhs_stride = 4 * kp, p.rhs_stride = 4 * kp, p.dst_stride = 4 * n, p.depth = kp;
    p.clamp_min = INT32_MIN, p.clamp_max = INT32_MAX, p.multiplier = mult, p.bias = bias;
    for (int i = 0; i < reps + 1; i++) lce_bgemm_float(&p);
    for (int c = 0; c < m; c++)
        for (int r = 0; r < n; r += (c % 13 == 0 ? 1 : 29)) {
            int want = 0;
            for (int t = 0; t < kw; t++)
                want += __builtin_popcount(a[(size_t)c * kw + t] ^ b[(size_t)r * kw + t]);
            if (dst[(size_t)c * n + r] != 2.0f * want) {
                printf("MISMATCH pixel %d channel %d: %g, want %d\n", c, r, dst[(size_t)c * n + r],
                       2 * want);
                return 1;
            }
            check += want;
        }
    printf("lce-%dx4 layer=%dx%dx%d->%d m=%d n=%d kw=%d macs=%lld check=%.0f\n", LCE_ROWS,
           shapes[layer][0], shapes[layer][1], shapes[layer][2], n, m, n, kw,
           (long long)m * n * kw * 32, check);
    return 0;
}
