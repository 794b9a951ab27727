// self_atomics.cu — cuemu self-test: atomics from many blocks (add on int, unsigned,
// float, double and bf16; max, min, CAS, exchange, sub). Expected values from host loops.
#include <algorithm>
#include <vector>

#include "mnrl/cuda_launch.h"
#include "test.h"

struct Counters {
    int add_int, max_int, min_int, cas_claims, sub_int;
    unsigned add_unsigned;
    float add_float;
    double add_double;
    __nv_bfloat16 add_bf16;
    unsigned long long add_ull;
    int exch_last;
};

// Every thread contributes its global index i to each counter; one CAS claim per block.
__global__ void contend(Counters *c, int *first_claim) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    atomicAdd(&c->add_int, i % 7 - 3);
    atomicAdd(&c->add_unsigned, (unsigned)i);
    atomicAdd(&c->add_float, 0.25f);
    atomicAdd(&c->add_double, (double)i * 0.5);
    atomicAdd(&c->add_bf16, __float2bfloat16(1.0f));
    atomicAdd(&c->add_ull, 1ull << 33);
    atomicMax(&c->max_int, (i * 7919) % 10007);
    atomicMin(&c->min_int, (i * 7919) % 10007 - 5000);
    atomicSub(&c->sub_int, 2);
    atomicExch(&c->exch_last, 1);
    if (atomicCAS(&first_claim[blockIdx.x], -1, (int)threadIdx.x) == -1) atomicAdd(&c->cas_claims, 1);
}

int main(void) {
    const int blocks = 37, threads = 96, n = blocks * threads;
    Counters zero;
    memset(static_cast<void *>(&zero), 0, sizeof zero);
    zero.max_int = -1000000, zero.min_int = 1000000;
    Counters *c;
    int *claims;
    cudaMalloc(&c, sizeof(Counters));
    cudaMalloc(&claims, blocks * sizeof(int));  // 0xFF fill: -1 = unclaimed
    cudaMemcpy(c, &zero, sizeof zero, cudaMemcpyHostToDevice);
    CUDA_LAUNCH(blocks, threads, 0, 0, contend)(c, claims);
    CHECK(cudaGetLastError() == cudaSuccess);
    Counters got;
    std::vector<int> host_claims(blocks);
    cudaMemcpy(&got, c, sizeof got, cudaMemcpyDeviceToHost);
    cudaMemcpy(host_claims.data(), claims, blocks * sizeof(int), cudaMemcpyDeviceToHost);

    long long add_int = 0;
    unsigned add_unsigned = 0;
    double add_double = 0;
    int max_int = -1000000, min_int = 1000000;
    for (int i = 0; i < n; i++) {
        add_int += i % 7 - 3;
        add_unsigned += (unsigned)i;
        add_double += (double)i * 0.5;
        max_int = std::max(max_int, (i * 7919) % 10007);
        min_int = std::min(min_int, (i * 7919) % 10007 - 5000);
    }
    CHECK_EQ_INT(got.add_int, add_int);
    CHECK_EQ_INT(got.add_unsigned, add_unsigned);
    CHECK_NEAR(got.add_float, 0.25 * n, 0);
    CHECK_NEAR(got.add_double, add_double, 0);
    // bf16 counts exactly to 256, then 1 + 256 rounds back to 256 (8-bit mantissa).
    CHECK_NEAR(__bfloat162float(got.add_bf16), 256.0, 0);
    CHECK_EQ_INT(got.add_ull, (unsigned long long)n << 33);
    CHECK_EQ_INT(got.max_int, max_int);
    CHECK_EQ_INT(got.min_int, min_int);
    CHECK_EQ_INT(got.sub_int, -2 * n);
    CHECK_EQ_INT(got.exch_last, 1);
    CHECK_EQ_INT(got.cas_claims, blocks);
    int bad_claims = 0;
    for (int b = 0; b < blocks; b++) bad_claims += host_claims[b] < 0 || host_claims[b] >= threads;
    CHECK_EQ_INT(bad_claims, 0);
    cudaFree(c);
    cudaFree(claims);
    TEST_END();
}
