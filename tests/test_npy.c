// test_npy.c — the .npy reader against files numpy wrote (tests/data/parity/npy, made by
// tests/reference/make_parity_goldens.py), the writer byte-for-byte against np.save of the
// same arrays in float32 and float16, and every malformed file refused with a message that
// names the problem.
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "mnrl/npy.h"
#include "test.h"

#define DIR MNRL_TEST_DATA_DIR "/parity/npy"

static const char *const ARRAYS[] = {"special_2d", "random_2d", "random_1d", "wide_1d", "empty_2d"};
#define N_ARRAYS (sizeof ARRAYS / sizeof ARRAYS[0])
static char tmp_path[256];

static int read_ok(const char *path, NpyArray *a) {
    MnrlError err = {{0}};
    int rc = npy_read(path, a, &err);
    CHECK_MSG(rc == 0, "%s: %s", path, err.msg);
    return rc;
}

// Bitwise equality, except that any NaN equals any NaN (payloads are not compared).
static int same_values(const NpyArray *a, const NpyArray *b) {
    if (a->ndim != b->ndim || a->shape[0] != b->shape[0] || a->shape[1] != b->shape[1]) return 0;
    for (size_t i = 0; i < a->numel; i++) {
        if (isnan(a->data[i]) && isnan(b->data[i])) continue;
        if (memcmp(&a->data[i], &b->data[i], sizeof(float)) != 0) return 0;
    }
    return 1;
}

// The values the Python script put into special_2d (inputs, not results): spot checks
// that the reader decodes little-endian float32 in C order.
static void test_special_values(void) {
    NpyArray a;
    if (read_ok(DIR "/special_2d_f32.npy", &a) != 0) return;
    CHECK_EQ_INT(a.dtype, NPY_F32);
    CHECK_EQ_INT(a.ndim, 2);
    CHECK_EQ_INT(a.shape[0], 4);
    CHECK_EQ_INT(a.shape[1], 6);
    CHECK(a.data[0] == 0.0f && !signbit(a.data[0]));
    CHECK(a.data[1] == 0.0f && signbit(a.data[1]));
    CHECK(a.data[5] == 3.14159265f);
    CHECK(a.data[12] == 0x1p-24f);
    CHECK(a.data[17] == 3.4028234e38f);
    CHECK(a.data[19] == 1e-40f);  // subnormal
    CHECK(isinf(a.data[20]) && a.data[20] > 0);
    CHECK(isinf(a.data[21]) && a.data[21] < 0);
    CHECK(isnan(a.data[22]));
    CHECK(a.data[23] == 7.0f);
    npy_free(&a);

    // float16: 65520 and 1e6 overflow to inf, 2^-25 ties to zero, 1 + 3*2^-11 rounds up.
    if (read_ok(DIR "/special_2d_f16.npy", &a) != 0) return;
    CHECK_EQ_INT(a.dtype, NPY_F16);
    CHECK(a.data[7] == 65504.0f);
    CHECK(isinf(a.data[9]) && isinf(a.data[10]));
    CHECK(a.data[12] == 0x1p-24f);
    CHECK(a.data[13] == 0.0f);
    CHECK(a.data[16] == 1.0f + 0x1p-9f);
    npy_free(&a);
}

// Every array: F16 widened exactly as numpy's astype(float32); version 2.0 and gzip files
// give the same values as the plain version 1.0 file.
static void test_reader_matches_numpy(void) {
    for (size_t i = 0; i < N_ARRAYS; i++) {
        char p16[256], p16w[256];
        snprintf(p16, sizeof p16, DIR "/%s_f16.npy", ARRAYS[i]);
        snprintf(p16w, sizeof p16w, DIR "/%s_f16_as_f32.npy", ARRAYS[i]);
        NpyArray half, wide;
        if (read_ok(p16, &half) != 0) continue;
        if (read_ok(p16w, &wide) == 0) {
            CHECK_MSG(same_values(&half, &wide), "%s", ARRAYS[i]);
            npy_free(&wide);
        }
        npy_free(&half);
    }
    NpyArray plain, v2, gz;
    if (read_ok(DIR "/random_2d_f32.npy", &plain) != 0) return;
    CHECK_EQ_INT(plain.shape[0], 17);
    CHECK_EQ_INT(plain.shape[1], 33);
    CHECK_EQ_INT(plain.numel, 17 * 33);
    if (read_ok(DIR "/random_2d_v2.npy", &v2) == 0) {
        CHECK(same_values(&plain, &v2));
        npy_free(&v2);
    }
    if (read_ok(DIR "/random_2d_f32.npy.gz", &gz) == 0) {
        CHECK(same_values(&plain, &gz));
        npy_free(&gz);
    }
    npy_free(&plain);

    NpyArray one, empty;
    if (read_ok(DIR "/random_1d_f32.npy", &one) == 0) {
        CHECK_EQ_INT(one.ndim, 1);
        CHECK_EQ_INT(one.shape[0], 5);
        CHECK_EQ_INT(one.shape[1], 1);
        npy_free(&one);
    }
    if (read_ok(DIR "/empty_2d_f32.npy", &empty) == 0) {
        CHECK_EQ_INT(empty.shape[0], 0);
        CHECK_EQ_INT(empty.shape[1], 384);
        CHECK_EQ_INT(empty.numel, 0);
        npy_free(&empty);
    }
}

// The writer reproduces np.save's bytes for the float32 array and for its float16 cast.
static void test_writer_matches_np_save(void) {
    for (size_t i = 0; i < N_ARRAYS; i++) {
        char src[256];
        snprintf(src, sizeof src, DIR "/%s_f32.npy", ARRAYS[i]);
        NpyArray a;
        if (read_ok(src, &a) != 0) continue;
        const NpyDtype dtypes[] = {NPY_F32, NPY_F16};
        const char *tags[] = {"f32", "f16"};
        for (int d = 0; d < 2; d++) {
            char golden[256];
            snprintf(golden, sizeof golden, DIR "/%s_%s.npy", ARRAYS[i], tags[d]);
            MnrlError err = {{0}};
            int rc = npy_write(tmp_path, a.data, a.ndim, a.shape, dtypes[d], &err);
            CHECK_MSG(rc == 0, "%s", err.msg);
            CHECK_MSG(test_same_file_bytes(tmp_path, golden), "%s as %s", ARRAYS[i], tags[d]);
        }
        npy_free(&a);
    }
    unlink(tmp_path);
}

static void expect_read_error(const char *name, const char *needle) {
    char path[256];
    snprintf(path, sizeof path, DIR "/bad/%s", name);
    NpyArray a;
    MnrlError err = {{0}};
    CHECK_MSG(npy_read(path, &a, &err) == -1, "%s was accepted", name);
    CHECK_CONTAINS(err.msg, path);
    CHECK_CONTAINS(err.msg, needle);
    CHECK(a.data == NULL);
}

static void test_bad_files(void) {
    expect_read_error("float64.npy", "'<f8' is not supported");
    expect_read_error("big_endian.npy", "'>f4' is not supported");
    expect_read_error("int32.npy", "'<i4' is not supported");
    expect_read_error("fortran.npy", "Fortran-order");
    expect_read_error("three_d.npy", "3-D array");
    expect_read_error("scalar.npy", "0-D array");
    expect_read_error("truncated_data.npy", "truncated data: 2241 bytes for shape (17, 33)");
    expect_read_error("overlong_data.npy", "overlong data");
    expect_read_error("truncated_header.npy", "truncated .npy file");
    expect_read_error("not_npy.npy", "not a NumPy .npy file");
    expect_read_error("bad_header.npy", "malformed .npy header");
    expect_read_error("version_9.npy", "version 9.0 is not supported");
    expect_read_error("no_such_file.npy", "no_such_file.npy");
}

static void test_write_errors(void) {
    float x[4] = {1, 2, 3, 4};
    int64_t shape3[3] = {1, 2, 2};
    MnrlError err = {{0}};
    CHECK(npy_write(tmp_path, x, 3, shape3, NPY_F32, &err) == -1);
    CHECK_CONTAINS(err.msg, "3-D");
    CHECK(access(tmp_path, F_OK) != 0);
    int64_t shape1[1] = {4};
    CHECK(npy_write("/nonexistent-dir/x.npy", x, 1, shape1, NPY_F32, &err) == -1);
    CHECK_CONTAINS(err.msg, "/nonexistent-dir/x.npy");
}

int main(void) {
    snprintf(tmp_path, sizeof tmp_path, "test_npy.%ld.npy", (long)getpid());
    test_special_values();
    test_reader_matches_numpy();
    test_writer_matches_np_save();
    test_bad_files();
    test_write_errors();
    TEST_END();
}
