// test_safetensors.c — the safetensors reader, writer and float conversions.
// References: files written by the Python safetensors library with torch's conversions
// (tests/reference/make_model_file_goldens.py), and the IEEE definitions of the formats
// (values computed with ldexp; nearest-even rounding found by search over all values).
#include <stdint.h>
#include <unistd.h>

#include "mnrl/safetensors.h"
#include "test.h"

#define DIR MNRL_TEST_DATA_DIR "/modelfiles"

static uint32_t bits_of(float f) {
    uint32_t b;
    memcpy(&b, &f, 4);
    return b;
}

static float from_bits(uint32_t b) {
    float f;
    memcpy(&f, &b, 4);
    return f;
}

// A 16-bit float with `mant_bits` mantissa bits and a 15-bit-wide rest for the exponent,
// evaluated from its definition (f16: 10 mantissa bits, bias 15; bf16: 7 bits, bias 127).
static double small_float_value(uint16_t h, int mant_bits, int bias) {
    int exp_bits = 15 - mant_bits;
    int exponent = (h >> mant_bits) & ((1 << exp_bits) - 1);
    int mantissa = h & ((1 << mant_bits) - 1);
    double sign = (h & 0x8000) ? -1.0 : 1.0;
    if (exponent == (1 << exp_bits) - 1) return mantissa ? NAN : sign * INFINITY;
    if (exponent == 0) return sign * ldexp(mantissa, 1 - bias - mant_bits);
    return sign * ldexp((1 << mant_bits) + mantissa, exponent - bias - mant_bits);
}

static void check_widening_exhaustive(void) {
    int f16_bad = 0, bf16_bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float got = safetensors_f16_to_f32((uint16_t)h);
        double want = small_float_value((uint16_t)h, 10, 15);
        // NaNs keep their payload in the top mantissa bits and their sign.
        uint32_t want_nan = (h & 0x8000u) << 16 | 0x7f800000u | (h & 0x3ffu) << 13;
        if (isnan(want) ? bits_of(got) != want_nan : (got != want || !signbit(got) != !signbit(want))) f16_bad++;
        got = safetensors_bf16_to_f32((uint16_t)h);
        want = small_float_value((uint16_t)h, 7, 127);
        if (isnan(want) ? !isnan(got) : (got != want || !signbit(got) != !signbit(want))) bf16_bad++;
    }
    CHECK_EQ_INT(f16_bad, 0);
    CHECK_EQ_INT(bf16_bad, 0);
}

// The nearest 16-bit float to x (ties to the even pattern), by binary search over the
// positive finite patterns [0, max_finite] whose values increase with the pattern.
static uint16_t nearest_small_float(float x, int mant_bits, int bias, uint16_t max_finite, uint16_t inf) {
    double v = fabs((double)x);
    uint16_t sign = signbit(x) ? 0x8000 : 0;
    uint32_t lo = 0, hi = max_finite;  // largest pattern with value <= v
    if (v >= small_float_value(max_finite, mant_bits, bias)) {
        lo = max_finite;
    } else {
        while (lo < hi) {
            uint32_t mid = (lo + hi + 1) / 2;
            if (small_float_value((uint16_t)mid, mant_bits, bias) <= v) lo = mid;
            else hi = mid - 1;
        }
    }
    double below = small_float_value((uint16_t)lo, mant_bits, bias);
    // Above the largest finite value the next step is the value one ulp further (the
    // exponent's infinity); IEEE rounds to infinity from the midpoint on.
    double above = lo == max_finite ? ldexp(1.0, (1 << (15 - mant_bits)) - 1 - bias) : small_float_value((uint16_t)(lo + 1), mant_bits, bias);
    if (v == below) return sign | (uint16_t)lo;
    uint32_t up = lo == max_finite ? inf : lo + 1;
    if (v - below > above - v || (v - below == above - v && (lo & 1))) return sign | (uint16_t)up;
    return sign | (uint16_t)lo;
}

static void check_narrowing_sampled(void) {
    int f16_bad = 0, bf16_bad = 0, n = 0;
    // Every 997th float32 pattern (about 4.3 million values, all exponents and signs).
    for (uint64_t b = 0; b <= UINT32_MAX; b += 997, n++) {
        float x = from_bits((uint32_t)b);
        if (isnan(x)) {
            f16_bad += (safetensors_f32_to_f16(x) & 0x7fff) != 0x7e00;
            bf16_bad += safetensors_f32_to_bf16(x) != 0x7fc0;
            continue;
        }
        f16_bad += safetensors_f32_to_f16(x) != nearest_small_float(x, 10, 15, 0x7bff, 0x7c00);
        bf16_bad += safetensors_f32_to_bf16(x) != nearest_small_float(x, 7, 127, 0x7f7f, 0x7f80);
    }
    CHECK(n > 4000000);
    CHECK_EQ_INT(f16_bad, 0);
    CHECK_EQ_INT(bf16_bad, 0);
}

static SafetensorsFile *open_ok(const char *path) {
    SafetensorsFile *f = NULL;
    MnrlError err = {{0}};
    int rc = safetensors_open(path, &f, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    return rc == 0 ? f : NULL;
}

static float *read_all(const SafetensorsFile *f, const SafetensorsTensor *t) {
    float *out = mnrl_malloc((t->numel ? t->numel : 1) * sizeof *out);
    MnrlError err = {{0}};
    int rc = safetensors_read_f32(f, t, out, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    return out;
}

static void check_reader_values(void) {
    SafetensorsFile *f = open_ok(DIR "/values_f32.safetensors");
    if (!f) return;
    CHECK_EQ_INT(f->n_tensors, 8);
    CHECK_STR(safetensors_metadata(f, "format"), "pt");
    CHECK(safetensors_metadata(f, "missing") == NULL);
    for (size_t i = 1; i < f->n_tensors; i++) CHECK(strcmp(f->tensors[i - 1].name, f->tensors[i].name) < 0);
    const SafetensorsTensor *m = safetensors_find(f, "random.matrix");
    CHECK(m && m->dtype == ST_F32 && m->ndim == 2 && m->shape[0] == 3 && m->shape[1] == 5 && m->numel == 15);
    const SafetensorsTensor *s = safetensors_find(f, "scalar");
    CHECK(s && s->ndim == 0 && s->numel == 1);
    if (s) {
        float *v = read_all(f, s);
        CHECK(v[0] == 7.25f);
        free(v);
    }
    const SafetensorsTensor *e = safetensors_find(f, "empty");
    CHECK(e && e->ndim == 2 && e->shape[0] == 0 && e->shape[1] == 3 && e->numel == 0 && e->nbytes == 0);
    const SafetensorsTensor *c = safetensors_find(f, "random.cube");
    CHECK(c && c->ndim == 3 && c->numel == 24);
    CHECK(safetensors_find(f, "nope") == NULL);
    safetensors_close(f);
}

// F16/BF16 files read as float32 equal torch's own widening, bit for bit (NaN aside).
static void check_widening_against_torch(const char *narrow_path, const char *wide_path, SafetensorsDtype dtype) {
    SafetensorsFile *narrow = open_ok(narrow_path), *wide = open_ok(wide_path);
    if (!narrow || !wide) return;
    CHECK_EQ_INT(narrow->n_tensors, wide->n_tensors);
    int compared = 0;
    for (size_t i = 0; i < narrow->n_tensors && i < wide->n_tensors; i++) {
        const SafetensorsTensor *a = &narrow->tensors[i], *b = &wide->tensors[i];
        CHECK_STR(a->name, b->name);
        CHECK(a->dtype == dtype && b->dtype == ST_F32 && a->numel == b->numel);
        float *got = read_all(narrow, a), *want = read_all(wide, b);
        for (size_t k = 0; k < a->numel && k < b->numel; k++, compared++)
            // NaN bits are not compared: torch's widening does not keep payloads (IEEE
            // does, and check_widening_exhaustive checks that).
            CHECK_MSG(bits_of(got[k]) == bits_of(want[k]) || (isnan(got[k]) && isnan(want[k])),
                      "%s[%zu]: %08x vs torch %08x", a->name, k,
                      bits_of(got[k]), bits_of(want[k]));
        free(got);
        free(want);
    }
    CHECK(compared > 200);
    safetensors_close(narrow);
    safetensors_close(wide);
}

typedef struct {
    SafetensorsWriteTensor tensors[16];
    float *values[16];
    size_t n;
} WriteSet;

// The F32 golden's tensors as write requests of the given dtype (values converted by us).
// The BF16 golden has no "nan" tensor: torch's bf16 NaN bits depend on its code path.
static void write_set_from(const SafetensorsFile *f, SafetensorsDtype dtype, WriteSet *set) {
    set->n = 0;
    for (size_t i = 0; i < f->n_tensors; i++) {
        const SafetensorsTensor *t = &f->tensors[i];
        if (dtype == ST_BF16 && strcmp(t->name, "nan") == 0) continue;
        float *values = set->values[set->n] = read_all(f, t);
        SafetensorsWriteTensor *w = &set->tensors[set->n++];
        *w = (SafetensorsWriteTensor){.name = t->name, .dtype = dtype, .ndim = t->ndim, .data = values};
        memcpy(w->shape, t->shape, sizeof t->shape);
    }
}

static void write_set_free(WriteSet *set) {
    for (size_t i = 0; i < set->n; i++) free(set->values[i]);
}

static char tmp_path[256];

static void check_writer_matches_python(void) {
    SafetensorsFile *f = open_ok(DIR "/values_f32.safetensors");
    if (!f) return;
    const char *keys[] = {"format"}, *values[] = {"pt"};
    const struct {
        SafetensorsDtype dtype;
        const char *golden;
    } cases[] = {{ST_F32, DIR "/values_f32.safetensors"},
                 {ST_F16, DIR "/values_f16.safetensors"},
                 {ST_BF16, DIR "/values_bf16.safetensors"}};
    for (int c = 0; c < 3; c++) {
        WriteSet set;
        write_set_from(f, cases[c].dtype, &set);
        MnrlError err = {{0}};
        int rc = safetensors_write(tmp_path, set.tensors, set.n, keys, values, 1, &err);
        CHECK_MSG(rc == 0, "%s", err.msg);
        CHECK_MSG(test_same_file_bytes(tmp_path, cases[c].golden), "dtype %s", safetensors_dtype_name(cases[c].dtype));
        write_set_free(&set);
    }
    // Mixed dtypes, no metadata, given in an order unlike the file's.
    const char *names[] = {"random.matrix", "random.cube", "special", "scalar", "empty"};
    const char *as[] = {"b.half", "a.bf16", "c.float", "a.float", "z.half"};
    SafetensorsDtype dtypes[] = {ST_F16, ST_BF16, ST_F32, ST_F32, ST_F16};
    SafetensorsWriteTensor mixed[5];
    float *data[5];
    for (int i = 0; i < 5; i++) {
        const SafetensorsTensor *t = safetensors_find(f, names[i]);
        data[i] = read_all(f, t);
        mixed[i] = (SafetensorsWriteTensor){.name = as[i], .dtype = dtypes[i], .ndim = t->ndim, .data = data[i]};
        memcpy(mixed[i].shape, t->shape, sizeof t->shape);
    }
    MnrlError err = {{0}};
    int rc = safetensors_write(tmp_path, mixed, 5, NULL, NULL, 0, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    CHECK(test_same_file_bytes(tmp_path, DIR "/values_mixed.safetensors"));
    for (int i = 0; i < 5; i++) free(data[i]);
    safetensors_close(f);
}

// Our own files read back: values (after the dtype's rounding) and metadata with
// characters JSON must escape.
static void check_round_trip(void) {
    enum { N = 1000 };
    float values[N];
    uint64_t rng = 42;
    for (int i = 0; i < N; i++)
        values[i] = (float)((double)(mnrl_splitmix64(&rng) >> 11) / 9007199254740992.0 - 0.5) * ldexpf(1.0f, i % 40 - 20);
    SafetensorsWriteTensor t[3] = {
        {.name = "w.f32", .dtype = ST_F32, .ndim = 2, .shape = {10, 100}, .data = values},
        {.name = "w.f16", .dtype = ST_F16, .ndim = 1, .shape = {N}, .data = values},
        {.name = "w.bf16 \"quoted\"/é", .dtype = ST_BF16, .ndim = 3, .shape = {10, 10, 10}, .data = values},
    };
    const char *keys[] = {"format", "note"}, *vals[] = {"pt", "line\none\ttab \"q\" \\ \x01 é"};
    MnrlError err = {{0}};
    int rc = safetensors_write(tmp_path, t, 3, keys, vals, 2, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    SafetensorsFile *f = open_ok(tmp_path);
    if (!f) return;
    CHECK_EQ_INT(f->n_tensors, 3);
    CHECK_STR(safetensors_metadata(f, "note"), vals[1]);
    CHECK_STR(safetensors_metadata(f, "format"), "pt");
    for (int k = 0; k < 3; k++) {
        const SafetensorsTensor *r = safetensors_find(f, t[k].name);
        CHECK(r && r->dtype == t[k].dtype && r->ndim == t[k].ndim && r->numel == N);
        if (!r) continue;
        float *got = read_all(f, r);
        int bad = 0;
        for (int i = 0; i < N; i++) {
            float want = t[k].dtype == ST_F32   ? values[i]
                         : t[k].dtype == ST_F16 ? safetensors_f16_to_f32(safetensors_f32_to_f16(values[i]))
                                                : safetensors_bf16_to_f32(safetensors_f32_to_bf16(values[i]));
            bad += bits_of(got[i]) != bits_of(want);
        }
        CHECK_EQ_INT(bad, 0);
        free(got);
    }
    // The header is padded to a multiple of 8 bytes, as the library pads it.
    size_t header_len;
    memcpy(&header_len, f->map, 8);
    CHECK_EQ_INT(header_len % 8, 0);
    safetensors_close(f);
}

static void check_error(const char *file, const char *const *needles, int n_needles) {
    char path[512];
    snprintf(path, sizeof path, "%s/broken/%s", DIR, file);
    SafetensorsFile *f = NULL;
    MnrlError err = {{0}};
    CHECK_MSG(safetensors_open(path, &f, &err) == -1, "%s opened", file);
    CHECK(f == NULL);
    CHECK_CONTAINS(err.msg, path);
    for (int i = 0; i < n_needles; i++) CHECK_CONTAINS(err.msg, needles[i]);
}

#define EXPECT_ERROR(file, ...)                                                    \
    do {                                                                           \
        const char *needles_[] = {__VA_ARGS__};                                    \
        check_error(file, needles_, (int)(sizeof needles_ / sizeof *needles_));    \
    } while (0)

static void check_corrupt_files(void) {
    EXPECT_ERROR("short.safetensors", "3 bytes is too short", "re-download it");
    EXPECT_ERROR("truncated.safetensors", "tensor \"b\": data_offsets [64, 76] run past the end of the data section (69 bytes)",
                 "corrupt or truncated");
    EXPECT_ERROR("header_too_long.safetensors", "header length 1000000", "runs past the end of the file");
    EXPECT_ERROR("bad_json.safetensors", "header is not valid JSON");
    EXPECT_ERROR("not_object.safetensors", "header must be a JSON object");
    EXPECT_ERROR("unknown_dtype.safetensors", "tensor \"a\": unknown dtype \"F12\"");
    EXPECT_ERROR("wrong_size.safetensors",
                 "tensor \"x\": data_offsets [0, 16] hold 16 bytes, but shape [2, 2] of BF16 needs 8; the file is "
                 "corrupt or truncated — re-download it");
    EXPECT_ERROR("overlap.safetensors", "\"a\" (data_offsets [0, 16]) and \"b\" (data_offsets [8, 24]) overlap");
    EXPECT_ERROR("past_end.safetensors", "tensor \"a\": data_offsets [8, 24] run past the end");
    EXPECT_ERROR("negative_shape.safetensors", "tensor \"a\": shape entry 0 is not a non-negative integer");
    EXPECT_ERROR("bad_metadata.safetensors", "\"__metadata__\": value of \"format\" is not a string");
    EXPECT_ERROR("no_such_file.safetensors", "cannot open");
}

static void check_misuse(void) {
    MnrlError err = {{0}};
    // A valid file with a non-float tensor opens; reading it as float32 names the dtype.
    SafetensorsFile *f = open_ok(DIR "/tiny_bf16/model.safetensors");
    if (f) {
        const SafetensorsTensor *ids = safetensors_find(f, "bert.embeddings.position_ids");
        CHECK(ids && ids->dtype == ST_I64 && ids->numel == 40);
        float out[40];
        if (ids) CHECK(safetensors_read_f32(f, ids, out, &err) == -1);
        CHECK_CONTAINS(err.msg, "\"bert.embeddings.position_ids\" has dtype I64");
        safetensors_close(f);
    }
    float one = 1;
    SafetensorsWriteTensor bad_dtype = {.name = "x", .dtype = ST_I64, .ndim = 1, .shape = {1}, .data = &one};
    CHECK(safetensors_write(tmp_path, &bad_dtype, 1, NULL, NULL, 0, &err) == -1);
    CHECK_CONTAINS(err.msg, "cannot write dtype I64");
    SafetensorsWriteTensor twice[2] = {{.name = "x", .dtype = ST_F32, .ndim = 1, .shape = {1}, .data = &one},
                                       {.name = "x", .dtype = ST_BF16, .ndim = 1, .shape = {1}, .data = &one}};
    CHECK(safetensors_write(tmp_path, twice, 2, NULL, NULL, 0, &err) == -1);
    CHECK_CONTAINS(err.msg, "tensor \"x\" given twice");
}

int main(void) {
    snprintf(tmp_path, sizeof tmp_path, "test_safetensors.%ld.safetensors", (long)getpid());
    check_widening_exhaustive();
    check_narrowing_sampled();
    check_reader_values();
    check_widening_against_torch(DIR "/values_f16.safetensors", DIR "/values_f16_as_f32.safetensors", ST_F16);
    check_widening_against_torch(DIR "/values_bf16.safetensors", DIR "/values_bf16_as_f32.safetensors", ST_BF16);
    check_writer_matches_python();
    check_round_trip();
    check_corrupt_files();
    check_misuse();
    unlink(tmp_path);
    TEST_END();
}
