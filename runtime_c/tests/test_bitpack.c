/*
 * test_bitpack.c - pins docs/bitpacking.md (packing version 1) at the bit
 * level for every pack kernel this CPU can run, from hand-written expected
 * words rather than from another packer:
 *   - x < 0 -> bit 1; 0.0f, -0.0f (since -0.0 < 0 is false), +inf, NaN and
 *     -NaN -> bit 0; -inf and the smallest negative subnormal -> bit 1;
 *   - channel c -> word c/32, bit c%32, LSB first;
 *   - the 32*CW - C unused high bits of each pixel's last word are 0;
 *   - words past CW of each row are not written (ldo > CW);
 *   - every channel count 1..130.
 * Also pins the dot-product identity dot = n - 2*popcount(a XOR b) on the
 * bgemm of every set (packed weights, through the driver). Exits non-zero on
 * the first violation, naming it.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "xnor_edge.h"

#if XE_PACKING_VERSION != 1
#error "test_bitpack.c pins packing version 1; update it with docs/bitpacking.md"
#endif

#define MAXC 130
#define MAXW 5 /* ceil(130/32) */
#define LDO (MAXW + 2)
#define FENCE 0xDEADBEEFu

static int failures;

static void fail(const char *isa, const char *what, size_t ch, size_t word, uint32_t got,
                 uint32_t want) {
    fprintf(stderr, "FAIL %s: %s (channels=%zu, word %zu: got %08x, want %08x)\n", isa, what, ch,
            word, got, want);
    failures++;
}

/* Packs one row with kt and compares its LDO words against want[] (fence beyond CW). */
static void expect_row(const xe_kernels *kt, const char *what, const float *x, size_t ch,
                       const uint32_t *want) {
    uint32_t out[LDO];
    size_t cw = (ch + 31) / 32;
    for (size_t w = 0; w < LDO; w++) out[w] = FENCE;
    kt->pack(1, ch, x, ch, out, LDO);
    for (size_t w = 0; w < LDO; w++) {
        uint32_t expect = w < cw ? want[w] : FENCE;
        if (out[w] != expect) {
            fail(kt->name, w < cw ? what : "wrote past ceil(channels/32)", ch, w, out[w], expect);
            return;
        }
    }
}

static void test_special_values(const xe_kernels *kt) {
    /* channel i holds values[i]; expected bit i is its sign bit under the contract. */
    float x[32];
    const float tiny_neg = -1.401298464e-45f; /* smallest negative subnormal */
    const float vals[] = {0.0f,     -0.0f,     1.0f,     -1.0f,  NAN,    -NAN,
                          INFINITY, -INFINITY, tiny_neg, 1e-30f, -1e30f, -0.5f};
    const int bits[] = {0, 0, 0, 1, 0, 0, 0, 1, 1, 0, 1, 1};
    uint32_t want = 0;
    size_t n = sizeof vals / sizeof vals[0];
    for (size_t i = 0; i < 32; i++) {
        x[i] = vals[i % n];
        if (bits[i % n]) want |= (uint32_t)1 << i;
    }
    expect_row(kt, "special values (0, -0, NaN, -NaN, inf, subnormal)", x, 32, &want);
    /* One value at a time in channel 0, so each rule is reported by name. */
    for (size_t i = 0; i < n; i++) {
        uint32_t w1 = (uint32_t)bits[i];
        char what[64];
        snprintf(what, sizeof what, "single value %g -> bit %d", (double)vals[i], bits[i]);
        expect_row(kt, what, &vals[i], 1, &w1);
    }
}

static void test_positions(const xe_kernels *kt) {
    float x[MAXC];
    uint32_t want[MAXW];
    for (size_t ch = 1; ch <= MAXC; ch++) {
        size_t cw = (ch + 31) / 32;
        /* A single negative channel c must set exactly word c/32, bit c%32. */
        for (size_t c = 0; c < ch; c++) {
            for (size_t i = 0; i < ch; i++) x[i] = 1.0f;
            x[c] = -2.0f;
            memset(want, 0, sizeof want);
            want[c / 32] = (uint32_t)1 << (c % 32);
            expect_row(kt, "single negative channel c -> word c/32, bit c%32 (LSB first)", x, ch,
                       want);
            if (failures) return;
        }
        /* All negative: every real bit 1, every padding bit of the last word 0. */
        for (size_t i = 0; i < ch; i++) x[i] = -1.0f;
        for (size_t w = 0; w < cw; w++) {
            size_t real = ch - w * 32 < 32 ? ch - w * 32 : 32;
            want[w] = real == 32 ? 0xFFFFFFFFu : (((uint32_t)1 << real) - 1);
        }
        expect_row(kt, "all negative: real bits 1, channel padding bits 0", x, ch, want);
        /* All zero (sign +1): every bit 0. */
        for (size_t i = 0; i < ch; i++) x[i] = (ch & 1) ? 0.0f : -0.0f;
        memset(want, 0, sizeof want);
        expect_row(kt, "zeros (sign(0) = +1) -> bit 0", x, ch, want);
        if (failures) return;
    }
}

static void test_multirow(const xe_kernels *kt) {
    /* Rows with ldx > channels and ldo > CW: each row starts on its own word. */
    enum { ROWS = 3, CH = 40, LDX = 45, LDOUT = 4 };
    float x[ROWS * LDX];
    uint32_t out[ROWS * LDOUT];
    for (size_t i = 0; i < ROWS * LDX; i++)
        x[i] = -1.0f; /* the gaps between rows are negative too */
    for (size_t r = 0; r < ROWS; r++) x[r * LDX + r] = 3.0f;
    for (size_t i = 0; i < ROWS * LDOUT; i++) out[i] = FENCE;
    kt->pack(ROWS, CH, x, LDX, out, LDOUT);
    for (size_t r = 0; r < ROWS; r++) {
        uint32_t w0 = 0xFFFFFFFFu & ~((uint32_t)1 << r), w1 = 0xFFu;
        if (out[r * LDOUT] != w0)
            fail(kt->name, "strided rows: word 0", CH, r * LDOUT, out[r * LDOUT], w0);
        if (out[r * LDOUT + 1] != w1)
            fail(kt->name, "strided rows: word 1 (8 real bits)", CH, r * LDOUT + 1,
                 out[r * LDOUT + 1], w1);
        if (out[r * LDOUT + 2] != FENCE || out[r * LDOUT + 3] != FENCE)
            fail(kt->name, "strided rows: wrote past CW", CH, r * LDOUT + 2, out[r * LDOUT + 2],
                 FENCE);
    }
}

static void test_dot_identity(const xe_kernels *kt) {
    /* Pack two random +-1 vectors of n channels, bgemm them (the second as
     * packed weights, through the driver), and check n - 2*d against the float
     * dot product of the signs. */
    for (size_t n = 1; n <= MAXC; n++) {
        float xa[MAXC], xb[MAXC];
        uint32_t pa[MAXW], pb[MAXW], wpacked[XE_MAX_NR * (MAXW + 8)];
        int32_t d = -1;
        long dot = 0;
        size_t cw = (n + 31) / 32;
        for (size_t i = 0; i < n; i++) {
            xa[i] = ((i * 2654435761u + n) >> 7) & 1 ? -1.0f : 1.0f;
            xb[i] = ((i * 40503u + 3 * n) >> 5) & 1 ? -0.25f : 0.0f;
            dot += (xa[i] < 0 ? -1 : 1) * (xb[i] < 0 ? -1 : 1);
        }
        kt->pack(1, n, xa, n, pa, cw);
        kt->pack(1, n, xb, n, pb, cw);
        xe_bgemm_pack(kt, 1, cw, pb, cw, wpacked);
        xe_bgemm(kt, 1, 0, 1, cw, pa, cw, wpacked, &d, 1);
        if ((long)n - 2 * (long)d != dot) {
            fprintf(stderr, "FAIL %s: n - 2*popcount = %ld, float dot %ld (n=%zu)\n", kt->name,
                    (long)n - 2 * (long)d, dot, n);
            failures++;
            return;
        }
    }
}

int main(void) {
    /* Every set of kernel_sets.inc, with whether this build compiled it. */
    static const struct {
        const char *name;
        int built;
    } all[] = {
#define XE_KERNEL_SET(id, name, arch, features) {name, arch},
#include "kernel_sets.inc"
#undef XE_KERNEL_SET
    };
    int tested = 0;
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        const xe_kernels *kt = xe_kernels_find(all[i].name);
        int before = failures;
        if (kt == NULL) {
            printf("%-9s skipped (%s)\n", all[i].name,
                   all[i].built ? "this CPU lacks its instructions" : "not built for this target");
            continue;
        }
        test_special_values(kt);
        test_positions(kt);
        test_multirow(kt);
        test_dot_identity(kt);
        tested++;
        printf("%-9s %s\n", all[i].name, failures == before ? "ok" : "FAILED");
    }
    printf("test_bitpack: packing version %d, %d pack kernels, %s\n", XE_PACKING_VERSION, tested,
           failures ? "FAILED" : "contract holds");
    return failures ? 1 : 0;
}
