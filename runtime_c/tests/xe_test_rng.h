/*
 * xe_test_rng.h - the C tests' random numbers: xorshift64*, deterministic, so
 * a failure reproduces. Define XE_TEST_RNG_SEED (a nonzero uint64_t) before
 * including it; each test file has its own state.
 */
#ifndef XE_TEST_RNG_H
#define XE_TEST_RNG_H

#include <stdint.h>

#ifndef XE_TEST_RNG_SEED
#error "define XE_TEST_RNG_SEED before including xe_test_rng.h"
#endif

static uint64_t rng_state = XE_TEST_RNG_SEED;

static inline uint32_t rnd32(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545F4914F6CDD1Dull) >> 32);
}

/* Uniform in [-1, 1), 24 random bits. */
static inline float rnd_unit(void) { return (float)(rnd32() >> 8) / 16777216.0f * 2.0f - 1.0f; }

#endif
