/* testrng: a small deterministic random generator (xorshift64) for the unit tests' data.
 * Seed rng_state (not 0) before use. Header-only: each test program is one translation
 * unit. Depends on nothing. */
#ifndef LUAMR_TEST_RNG_H
#define LUAMR_TEST_RNG_H

#include <stdint.h>

static uint64_t rng_state;

static inline uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

#endif
