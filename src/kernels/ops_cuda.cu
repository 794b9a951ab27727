// ops_cuda.cu — the CUDA side of the ops table: device discovery now; the stream,
// arena and cuBLASLt handle join it with the CUDA backend. CPU counterpart: none
// (this file launches no kernel; it reports what the CUDA runtime sees).
#include <cuda_runtime.h>
#include <stdio.h>

#include "mnrl/cuda_info.h"

extern "C" int mnrl_cuda_describe(char *out, size_t cap) {
    int runtime = 0, driver = 0, devices = 0;
    cudaRuntimeGetVersion(&runtime);
    cudaDriverGetVersion(&driver);
    cudaError_t status = cudaGetDeviceCount(&devices);
    if (status != cudaSuccess) {
        snprintf(out, cap, "CUDA runtime %d.%d, no usable device (%s)", runtime / 1000,
                 (runtime % 1000) / 10, cudaGetErrorString(status));
        return 0;
    }
    cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) prop.name[0] = '\0';
    snprintf(out, cap, "CUDA runtime %d.%d, driver %d.%d, %d device(s), device 0: %s (sm_%d%d)",
             runtime / 1000, (runtime % 1000) / 10, driver / 1000, (driver % 1000) / 10,
             devices, prop.name, prop.major, prop.minor);
    return devices;
}
