// rng.h — Philox4x32-10, the counter-based generator of Salmon et al., "Parallel Random
// Numbers: As Easy as 1, 2, 3" (SC11), which cuRAND and torch use on GPUs. A counter-based
// generator is a pure function of (counter, key): any element's random number can be
// recomputed anywhere, in any order, on the CPU or in a CUDA thread, so a dropout mask is
// never stored — backward and a cached-MNRL replay regenerate exactly the same mask.
//
// Mapping (fixed; the CPU and CUDA backends and the Python reference all follow it):
//   key     = the 64-bit run seed:            key[0] = seed low 32 bits, key[1] = high 32
//   stream  = mnrl_rng_stream(step, rank, tensor_id)   (a 64-bit value per tensor use)
//           = step << 32 | rank << 20 | tensor_id      (rank < 4096, tensor_id < 2^20)
//   element e of that tensor (a flat index) uses block q = e / 4 and lane e % 4 of
//   philox4x32_10(counter = {q low, q high, stream low, stream high}, key).
//   Its uniform is u = (word >> 8) * 2^-24 in [0, 1) (24 bits, exact in fp32), and a
//   dropout element is kept when u < keep_prob.
// So (seed, step, rank, tensor id, element) always gives the same number, and different
// tensors, steps or ranks never share counters.
#ifndef MNRL_RNG_H
#define MNRL_RNG_H

#include <stdint.h>

#ifdef __CUDACC__
#define MNRL_RNG_FN static inline __host__ __device__
#else
#define MNRL_RNG_FN static inline
#endif

typedef struct {
    uint32_t v[4];
} MnrlPhilox4;

// One Philox round: two 32x32->64 multiplies, the high halves xored with the other
// words and the round key (Random123's philox4x32round).
MNRL_RNG_FN MnrlPhilox4 mnrl_philox_round(MnrlPhilox4 c, uint32_t k0, uint32_t k1) {
    uint64_t p0 = (uint64_t)0xD2511F53u * c.v[0];
    uint64_t p1 = (uint64_t)0xCD9E8D57u * c.v[2];
    MnrlPhilox4 r;
    r.v[0] = (uint32_t)(p1 >> 32) ^ c.v[1] ^ k0;
    r.v[1] = (uint32_t)p1;
    r.v[2] = (uint32_t)(p0 >> 32) ^ c.v[3] ^ k1;
    r.v[3] = (uint32_t)p0;
    return r;
}

// Philox4x32 with 10 rounds; the key is bumped by the Weyl constants between rounds.
MNRL_RNG_FN MnrlPhilox4 mnrl_philox4x32_10(MnrlPhilox4 counter, uint32_t k0, uint32_t k1) {
    for (int round = 0; round < 10; round++) {
        if (round > 0) {
            k0 += 0x9E3779B9u;
            k1 += 0xBB67AE85u;
        }
        counter = mnrl_philox_round(counter, k0, k1);
    }
    return counter;
}

// The 64-bit stream of one use of one tensor (see the mapping above).
MNRL_RNG_FN uint64_t mnrl_rng_stream(uint64_t step, uint32_t rank, uint32_t tensor_id) {
    return (step << 32) | ((uint64_t)(rank & 0xFFFu) << 20) | (uint64_t)(tensor_id & 0xFFFFFu);
}

// The four 32-bit words of block q (elements 4q .. 4q+3) of a stream.
MNRL_RNG_FN MnrlPhilox4 mnrl_rng_block(uint64_t seed, uint64_t stream, uint64_t q) {
    MnrlPhilox4 c;
    c.v[0] = (uint32_t)q;
    c.v[1] = (uint32_t)(q >> 32);
    c.v[2] = (uint32_t)stream;
    c.v[3] = (uint32_t)(stream >> 32);
    return mnrl_philox4x32_10(c, (uint32_t)seed, (uint32_t)(seed >> 32));
}

// 24-bit uniform in [0, 1) from one Philox word; exact in fp32.
MNRL_RNG_FN float mnrl_rng_uniform(uint32_t word) {
    return (float)(word >> 8) * (1.0f / 16777216.0f);
}

// Uniform of element e of a stream. Loops over consecutive elements should call
// mnrl_rng_block once per 4 elements instead; this is the one-element definition.
MNRL_RNG_FN float mnrl_rng_uniform_at(uint64_t seed, uint64_t stream, uint64_t e) {
    return mnrl_rng_uniform(mnrl_rng_block(seed, stream, e >> 2).v[e & 3]);
}

#undef MNRL_RNG_FN
#endif
