// wmma_tiles.cuh — the nvcuda::wmma fragments of the tensor-core kernels (attention_tc.cu,
// mnrl_loss.cu): bf16 16x16x16 operands with fp32 accumulators, the one shape the CPU
// emulation provides (tests/emu/mma.h).
#ifndef MNRL_WMMA_TILES_CUH
#define MNRL_WMMA_TILES_CUH

#include <cuda_bf16.h>
#include <mma.h>

namespace {

using namespace nvcuda;
typedef __nv_bfloat16 bf16;

typedef wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> FragA;
typedef wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> FragB;   // rows [k][n]
typedef wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> FragBt;  // X^T of rows [n][k]
typedef wmma::fragment<wmma::accumulator, 16, 16, 16, float> FragC;

}  // namespace

#endif
