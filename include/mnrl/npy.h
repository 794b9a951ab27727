// npy.h — NumPy .npy files of float32 or float16 arrays: `encode` writes embeddings with
// it and the parity tests read their goldens with it.
//
// Format (numpy.lib.format, version 1.0): b"\x93NUMPY", major 1, minor 0, a little-endian
// u16 header length, an ASCII Python dict literal
// "{'descr': '<f4', 'fortran_order': False, 'shape': (N, H), }" padded with spaces and
// ended by '\n' so that the data starts at a multiple of 64 bytes, then the raw
// little-endian values in C order. The writer produces the bytes np.save writes for the
// same array; the reader accepts what np.save writes (versions 1.0, 2.0 and 3.0, whose
// header length is a u32), plain or gzip-compressed, and names what is wrong otherwise.
#ifndef MNRL_NPY_H
#define MNRL_NPY_H

#include <stddef.h>
#include <stdint.h>

#include "mnrl/common.h"

typedef enum { NPY_F32, NPY_F16 } NpyDtype;

typedef struct {
    NpyDtype dtype;   // as stored in the file; data is always float32
    int ndim;         // 1 or 2
    int64_t shape[2]; // shape[1] is 1 when ndim is 1
    size_t numel;
    float *data;      // numel values, C order (F16 widened exactly); free with npy_free
} NpyArray;

// Reads a 1-D or 2-D '<f4' or '<f2' C-order array. Anything else (another dtype, byte
// order, Fortran order, 0-D or 3-D+, a truncated or overlong file, a malformed header) is
// an error naming the file and the problem. On failure out is left empty.
int npy_read(const char *path, NpyArray *out, MnrlError *err);
void npy_free(NpyArray *array);

// Writes data (numel = product of shape[0..ndim-1] float32 values, C order) as a 1-D or
// 2-D array of dtype (F16: rounded to nearest even, as numpy's astype), atomically.
int npy_write(const char *path, const float *data, int ndim, const int64_t *shape, NpyDtype dtype,
              MnrlError *err);

#endif
