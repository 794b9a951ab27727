// cuda_info.h — what the CUDA runtime sees, for --version and backend selection.
#ifndef MNRL_CUDA_INFO_H
#define MNRL_CUDA_INFO_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

// Writes a one-line description (runtime, driver, devices) into out and returns the
// number of usable devices (0 when there is no GPU or no driver).
int mnrl_cuda_describe(char *out, size_t cap);

#ifdef __cplusplus
}
#endif

#endif
