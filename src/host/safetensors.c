// safetensors.c — validated mmap reader, exact float conversions, and a writer whose
// bytes match the Python `safetensors` library (see safetensors.h).
#include "mnrl/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

// The Python/Rust library refuses headers above this size; so do we, which also bounds
// what a corrupt length field can make us parse.
#define MAX_HEADER_BYTES 100000000u
#define CORRUPT_HINT "the file is corrupt or truncated — re-download it"

static const struct {
    const char *name;
    size_t size;
} DTYPES[ST_DTYPE_COUNT] = {
    [ST_BOOL] = {"BOOL", 1},    [ST_U8] = {"U8", 1},   [ST_I8] = {"I8", 1},
    [ST_F8_E5M2] = {"F8_E5M2", 1}, [ST_F8_E4M3] = {"F8_E4M3", 1},
    [ST_I16] = {"I16", 2},      [ST_U16] = {"U16", 2}, [ST_F16] = {"F16", 2},
    [ST_BF16] = {"BF16", 2},    [ST_I32] = {"I32", 4}, [ST_U32] = {"U32", 4},
    [ST_F32] = {"F32", 4},      [ST_F64] = {"F64", 8}, [ST_I64] = {"I64", 8},
    [ST_U64] = {"U64", 8},
};

const char *safetensors_dtype_name(SafetensorsDtype dtype) { return DTYPES[dtype].name; }
size_t safetensors_dtype_size(SafetensorsDtype dtype) { return DTYPES[dtype].size; }

static int dtype_from_name(const char *name, SafetensorsDtype *out) {
    for (int d = 0; d < ST_DTYPE_COUNT; d++) {
        if (strcmp(DTYPES[d].name, name) == 0) {
            *out = (SafetensorsDtype)d;
            return 0;
        }
    }
    return -1;
}

// ---- float conversions ------------------------------------------------------------------

static float bits_to_f32(uint32_t bits) {
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static uint32_t f32_to_bits(float f) {
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    return bits;
}

float safetensors_bf16_to_f32(uint16_t b) { return bits_to_f32((uint32_t)b << 16); }

float safetensors_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exponent = (h >> 10) & 0x1f;
    uint32_t mantissa = h & 0x3ff;
    if (exponent == 0x1f) return bits_to_f32(sign | 0x7f800000u | (mantissa << 13));
    if (exponent == 0) {
        if (mantissa == 0) return bits_to_f32(sign);
        // Subnormal: shift the leading 1 up to the implicit-bit position; every shift
        // halves the scale, i.e. lowers the float32 biased exponent by one.
        uint32_t biased = 127 - 14;
        while (!(mantissa & 0x400)) {
            mantissa <<= 1;
            biased--;
        }
        return bits_to_f32(sign | (biased << 23) | ((mantissa & 0x3ff) << 13));
    }
    return bits_to_f32(sign | ((exponent + 127 - 15) << 23) | (mantissa << 13));
}

// value >> shift, rounded to nearest with ties to even.
static uint32_t shift_round_even(uint32_t value, unsigned shift) {
    uint32_t kept = value >> shift;
    uint32_t rest = value & ((1u << shift) - 1);
    uint32_t half = 1u << (shift - 1);
    if (rest > half || (rest == half && (kept & 1))) kept++;
    return kept;
}

uint16_t safetensors_f32_to_f16(float f) {
    uint32_t bits = f32_to_bits(f);
    uint16_t sign = (uint16_t)((bits >> 16) & 0x8000);
    uint32_t magnitude = bits & 0x7fffffffu;
    if (magnitude > 0x7f800000u) return sign | 0x7e00;  // NaN, as torch/FP16 write it
    // 65520 is the midpoint between 65504 (largest half) and 65536: it and all above
    // round to infinity.
    if (magnitude >= 0x477ff000u) return sign | 0x7c00;
    if (magnitude < 0x38800000u) {  // below 2^-14: a half subnormal (or zero)
        uint32_t exponent = magnitude >> 23;
        unsigned shift = 126 - exponent;  // value * 2^24 = mantissa >> shift
        if (exponent == 0 || shift > 24) return sign;
        return sign | (uint16_t)shift_round_even((magnitude & 0x7fffff) | 0x800000, shift);
    }
    // Rebias the exponent (127 -> 15) and round the mantissa from 23 to 10 bits; a carry
    // out of the mantissa correctly bumps the exponent.
    return sign | (uint16_t)shift_round_even(magnitude - ((127u - 15u) << 23), 13);
}

uint16_t safetensors_f32_to_bf16(float f) {
    uint32_t bits = f32_to_bits(f);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;  // torch's canonical NaN
    return (uint16_t)((bits + 0x7fffu + ((bits >> 16) & 1)) >> 16);
}

// ---- reading ----------------------------------------------------------------------------

void safetensors_format_shape(char *out, size_t cap, const int64_t *shape, int ndim) {
    size_t n = (size_t)snprintf(out, cap, "[");
    for (int d = 0; d < ndim && n < cap; d++)
        n += (size_t)snprintf(out + n, cap - n, d ? ", %" PRId64 : "%" PRId64, shape[d]);
    if (n < cap) snprintf(out + n, cap - n, "]");
}

// A non-negative JSON integer that fits in an int64.
static bool json_count(const json_t *value, int64_t *out) {
    if (!json_is_integer(value) || json_integer_value(value) < 0) return false;
    *out = (int64_t)json_integer_value(value);
    return true;
}

static int parse_shape(const char *path, const char *name, const json_t *shape, SafetensorsTensor *t,
                       MnrlError *err) {
    if (!json_is_array(shape) || json_array_size(shape) > SAFETENSORS_MAX_DIMS)
        return mnrl_fail(err, "%s: tensor \"%s\": \"shape\" must be an array of at most %d non-negative integers; " CORRUPT_HINT,
                         path, name, SAFETENSORS_MAX_DIMS);
    t->ndim = (int)json_array_size(shape);
    t->numel = 1;
    for (int d = 0; d < t->ndim; d++) {
        if (!json_count(json_array_get(shape, (size_t)d), &t->shape[d]))
            return mnrl_fail(err, "%s: tensor \"%s\": shape entry %d is not a non-negative integer; " CORRUPT_HINT,
                             path, name, d);
        uint64_t dim = (uint64_t)t->shape[d];
        if (dim != 0 && t->numel > SIZE_MAX / DTYPES[t->dtype].size / dim)
            return mnrl_fail(err, "%s: tensor \"%s\": shape is too large to address; " CORRUPT_HINT, path, name);
        t->numel *= (size_t)dim;
    }
    t->nbytes = t->numel * DTYPES[t->dtype].size;
    return 0;
}

// Parses one tensor entry; *begin is its offset in the data section.
static int parse_tensor(const char *path, const char *name, const json_t *info, const char *data,
                        size_t data_len, SafetensorsTensor *t, size_t *begin, MnrlError *err) {
    if (!json_is_object(info))
        return mnrl_fail(err, "%s: tensor \"%s\": expected an object with dtype, shape and data_offsets; " CORRUPT_HINT,
                         path, name);
    const json_t *dtype = json_object_get(info, "dtype");
    if (!json_is_string(dtype))
        return mnrl_fail(err, "%s: tensor \"%s\": \"dtype\" is missing or not a string; " CORRUPT_HINT, path, name);
    if (dtype_from_name(json_string_value(dtype), &t->dtype) != 0)
        return mnrl_fail(err, "%s: tensor \"%s\": unknown dtype \"%s\" (the safetensors format defines "
                         "BOOL, U8, I8, F8_E5M2, F8_E4M3, I16, U16, F16, BF16, I32, U32, F32, F64, I64, U64); "
                         "the file is corrupt or from a newer format version",
                         path, name, json_string_value(dtype));
    if (parse_shape(path, name, json_object_get(info, "shape"), t, err) != 0) return -1;
    const json_t *offsets = json_object_get(info, "data_offsets");
    int64_t first, last;
    if (!json_is_array(offsets) || json_array_size(offsets) != 2 ||
        !json_count(json_array_get(offsets, 0), &first) || !json_count(json_array_get(offsets, 1), &last) ||
        last < first)
        return mnrl_fail(err, "%s: tensor \"%s\": \"data_offsets\" must be [begin, end] with 0 <= begin <= end; " CORRUPT_HINT,
                         path, name);
    char shape_text[256];
    safetensors_format_shape(shape_text, sizeof shape_text, t->shape, t->ndim);
    if ((uint64_t)(last - first) != (uint64_t)t->nbytes)
        return mnrl_fail(err, "%s: tensor \"%s\": data_offsets [%" PRId64 ", %" PRId64 "] hold %" PRId64
                         " bytes, but shape %s of %s needs %zu; " CORRUPT_HINT,
                         path, name, first, last, last - first, shape_text, DTYPES[t->dtype].name, t->nbytes);
    if ((uint64_t)last > data_len)
        return mnrl_fail(err, "%s: tensor \"%s\": data_offsets [%" PRId64 ", %" PRId64 "] run past the end of the "
                         "data section (%zu bytes); " CORRUPT_HINT,
                         path, name, first, last, data_len);
    t->name = mnrl_strdup(name);
    t->data = data + first;
    *begin = (size_t)first;
    return 0;
}

static int parse_metadata(const char *path, const json_t *meta, SafetensorsFile *f, MnrlError *err) {
    if (!json_is_object(meta))
        return mnrl_fail(err, "%s: \"__metadata__\" must be an object of strings; " CORRUPT_HINT, path);
    size_t n = json_object_size(meta);
    f->meta_keys = mnrl_calloc(n, sizeof *f->meta_keys);
    f->meta_values = mnrl_calloc(n, sizeof *f->meta_values);
    const char *key;
    const json_t *value;
    json_object_foreach((json_t *)meta, key, value) {
        if (!json_is_string(value))
            return mnrl_fail(err, "%s: \"__metadata__\": value of \"%s\" is not a string; " CORRUPT_HINT, path, key);
        f->meta_keys[f->n_meta] = mnrl_strdup(key);
        f->meta_values[f->n_meta] = mnrl_strdup(json_string_value(value));
        f->n_meta++;
    }
    return 0;
}

typedef struct {
    size_t begin;
    size_t index;
} Extent;

static int compare_extent(const void *a, const void *b) {
    const Extent *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->index < y->index ? -1 : (x->index > y->index);
}

// Tensors may leave gaps but never share bytes (empty tensors share nothing).
static int check_overlaps(const char *path, const SafetensorsFile *f, Extent *extents, MnrlError *err) {
    qsort(extents, f->n_tensors, sizeof *extents, compare_extent);
    const Extent *previous = NULL;
    for (size_t i = 0; i < f->n_tensors; i++) {
        const SafetensorsTensor *t = &f->tensors[extents[i].index];
        if (t->nbytes == 0) continue;
        if (previous) {
            const SafetensorsTensor *p = &f->tensors[previous->index];
            if (previous->begin + p->nbytes > extents[i].begin)
                return mnrl_fail(err, "%s: tensors \"%s\" (data_offsets [%zu, %zu]) and \"%s\" (data_offsets [%zu, %zu]) "
                                 "overlap; " CORRUPT_HINT,
                                 path, p->name, previous->begin, previous->begin + p->nbytes, t->name,
                                 extents[i].begin, extents[i].begin + t->nbytes);
        }
        previous = &extents[i];
    }
    return 0;
}

static int compare_tensor_name(const void *a, const void *b) {
    return strcmp(((const SafetensorsTensor *)a)->name, ((const SafetensorsTensor *)b)->name);
}

static int parse_header(SafetensorsFile *f, const char *header, size_t header_len, const char *data,
                        size_t data_len, MnrlError *err) {
    json_error_t jerr;
    json_t *root = json_loadb(header, header_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return mnrl_fail(err, "%s: the header is not valid JSON (line %d, column %d: %s); " CORRUPT_HINT, f->path,
                         jerr.line, jerr.column, jerr.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return mnrl_fail(err, "%s: the header must be a JSON object of tensors; " CORRUPT_HINT, f->path);
    }
    size_t n = json_object_size(root);
    f->tensors = mnrl_calloc(n, sizeof *f->tensors);
    Extent *extents = mnrl_calloc(n, sizeof *extents);
    int rc = 0;
    const char *key;
    json_t *value;
    json_object_foreach(root, key, value) {
        if (strcmp(key, "__metadata__") == 0) {
            rc = parse_metadata(f->path, value, f, err);
        } else {
            extents[f->n_tensors].index = f->n_tensors;
            rc = parse_tensor(f->path, key, value, data, data_len, &f->tensors[f->n_tensors],
                              &extents[f->n_tensors].begin, err);
            if (rc == 0) f->n_tensors++;
        }
        if (rc != 0) break;
    }
    json_decref(root);
    if (rc == 0) rc = check_overlaps(f->path, f, extents, err);
    free(extents);
    if (rc == 0) qsort(f->tensors, f->n_tensors, sizeof *f->tensors, compare_tensor_name);
    return rc;
}

static int map_file(SafetensorsFile *f, MnrlError *err) {
    int fd = open(f->path, O_RDONLY);
    if (fd < 0) return mnrl_fail(err, "%s: cannot open: %s", f->path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        mnrl_fail(err, "%s: cannot stat: %s", f->path, strerror(errno));
        close(fd);
        return -1;
    }
    if (st.st_size < 8) {
        close(fd);
        return mnrl_fail(err, "%s: %lld bytes is too short for a safetensors file (it starts with an 8-byte "
                         "header length); " CORRUPT_HINT,
                         f->path, (long long)st.st_size);
    }
    f->map_len = (size_t)st.st_size;
    f->map = mmap(NULL, f->map_len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);  // the mapping keeps the file's pages
    if (f->map == MAP_FAILED) {
        f->map = NULL;
        return mnrl_fail(err, "%s: cannot map into memory: %s", f->path, strerror(errno));
    }
    return 0;
}

int safetensors_open(const char *path, SafetensorsFile **out, MnrlError *err) {
    SafetensorsFile *f = mnrl_calloc(1, sizeof *f);
    f->path = mnrl_strdup(path);
    if (map_file(f, err) != 0) {
        safetensors_close(f);
        return -1;
    }
    const unsigned char *bytes = f->map;
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; i--) header_len = header_len << 8 | bytes[i];
    size_t after_length = f->map_len - 8;
    int rc;
    if (header_len > after_length)
        rc = mnrl_fail(err, "%s: the header length %" PRIu64 " (the first 8 bytes) runs past the end of the file "
                       "(%zu bytes); " CORRUPT_HINT,
                       path, header_len, f->map_len);
    else if (header_len > MAX_HEADER_BYTES)
        rc = mnrl_fail(err, "%s: the header length %" PRIu64 " is over the format's limit of %u bytes; " CORRUPT_HINT,
                       path, header_len, MAX_HEADER_BYTES);
    else
        rc = parse_header(f, (const char *)bytes + 8, (size_t)header_len, (const char *)bytes + 8 + header_len,
                          after_length - (size_t)header_len, err);
    if (rc != 0) {
        safetensors_close(f);
        return -1;
    }
    *out = f;
    return 0;
}

void safetensors_close(SafetensorsFile *f) {
    if (!f) return;
    if (f->map) munmap(f->map, f->map_len);
    for (size_t i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
    for (size_t i = 0; i < f->n_meta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_values[i]);
    }
    free(f->tensors);
    free(f->meta_keys);
    free(f->meta_values);
    free(f->path);
    free(f);
}

const SafetensorsTensor *safetensors_find(const SafetensorsFile *f, const char *name) {
    SafetensorsTensor key = {.name = (char *)name};
    return bsearch(&key, f->tensors, f->n_tensors, sizeof *f->tensors, compare_tensor_name);
}

const char *safetensors_metadata(const SafetensorsFile *f, const char *key) {
    for (size_t i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta_keys[i], key) == 0) return f->meta_values[i];
    return NULL;
}

int safetensors_read_f32(const SafetensorsFile *f, const SafetensorsTensor *t, float *out, MnrlError *err) {
    // Element reads go through memcpy: the format does not promise aligned offsets.
    const unsigned char *src = t->data;
    switch (t->dtype) {
    case ST_F32:
        memcpy(out, src, t->nbytes);
        return 0;
    case ST_F16:
    case ST_BF16:
        for (size_t i = 0; i < t->numel; i++) {
            uint16_t half;
            memcpy(&half, src + 2 * i, 2);
            out[i] = t->dtype == ST_F16 ? safetensors_f16_to_f32(half) : safetensors_bf16_to_f32(half);
        }
        return 0;
    default:
        return mnrl_fail(err, "%s: tensor \"%s\" has dtype %s; only F32, F16 and BF16 tensors can be loaded as "
                         "floating-point weights",
                         f->path, t->name, DTYPES[t->dtype].name);
    }
}

// ---- writing ----------------------------------------------------------------------------

typedef struct {
    char *data;
    size_t len, cap;
} Bytes;

static void bytes_reserve(Bytes *b, size_t extra) {
    if (b->cap - b->len >= extra) return;
    while (b->cap - b->len < extra) b->cap = b->cap ? 2 * b->cap : 4096;
    b->data = mnrl_realloc(b->data, b->cap);
}

static void bytes_append(Bytes *b, const void *src, size_t n) {
    bytes_reserve(b, n);
    memcpy(b->data + b->len, src, n);
    b->len += n;
}

static void bytes_printf(Bytes *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bytes_printf(Bytes *b, const char *fmt, ...) {
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    bytes_append(b, tmp, (size_t)n);
}

// A JSON string escaped as serde_json (the Rust library's serializer) escapes it: only
// '"', '\\' and control characters; non-ASCII bytes pass through.
static void bytes_json_string(Bytes *b, const char *s) {
    bytes_append(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        const char *shortcut = NULL;
        switch (*p) {
        case '"': shortcut = "\\\""; break;
        case '\\': shortcut = "\\\\"; break;
        case '\b': shortcut = "\\b"; break;
        case '\f': shortcut = "\\f"; break;
        case '\n': shortcut = "\\n"; break;
        case '\r': shortcut = "\\r"; break;
        case '\t': shortcut = "\\t"; break;
        default: break;
        }
        if (shortcut) bytes_append(b, shortcut, strlen(shortcut));
        else if (*p < 0x20) bytes_printf(b, "\\u%04x", *p);
        else bytes_append(b, p, 1);
    }
    bytes_append(b, "\"", 1);
}

static size_t write_tensor_numel(const SafetensorsWriteTensor *t) {
    size_t numel = 1;
    for (int d = 0; d < t->ndim; d++) numel *= (size_t)t->shape[d];
    return numel;
}

// The Python library's order: dtype descending (by the format's dtype order, which is
// by alignment), then name ascending.
static int compare_write_order(const void *a, const void *b) {
    const SafetensorsWriteTensor *x = *(const SafetensorsWriteTensor *const *)a;
    const SafetensorsWriteTensor *y = *(const SafetensorsWriteTensor *const *)b;
    if (x->dtype != y->dtype) return x->dtype > y->dtype ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int check_write_tensors(const char *path, const SafetensorsWriteTensor *tensors, size_t n, MnrlError *err) {
    for (size_t i = 0; i < n; i++) {
        const SafetensorsWriteTensor *t = &tensors[i];
        if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16)
            return mnrl_fail(err, "%s: tensor \"%s\": cannot write dtype %s; only F32, F16 and BF16", path, t->name,
                             t->dtype < ST_DTYPE_COUNT ? DTYPES[t->dtype].name : "(invalid)");
        if (t->ndim < 0 || t->ndim > SAFETENSORS_MAX_DIMS)
            return mnrl_fail(err, "%s: tensor \"%s\": %d dimensions (at most %d)", path, t->name, t->ndim,
                             SAFETENSORS_MAX_DIMS);
        for (int d = 0; d < t->ndim; d++)
            if (t->shape[d] < 0)
                return mnrl_fail(err, "%s: tensor \"%s\": negative dimension %" PRId64, path, t->name, t->shape[d]);
        if (t->name[0] == '\0' || strcmp(t->name, "__metadata__") == 0)
            return mnrl_fail(err, "%s: \"%s\" cannot be a tensor name", path, t->name);
        // Quadratic, but a model has a few hundred tensors and this runs once per save.
        for (size_t j = 0; j < i; j++)
            if (strcmp(tensors[j].name, t->name) == 0)
                return mnrl_fail(err, "%s: tensor \"%s\" given twice", path, t->name);
    }
    return 0;
}

static void append_header(Bytes *b, const SafetensorsWriteTensor *const *sorted, size_t n,
                          const char *const *meta_keys, const char *const *meta_values, size_t n_meta) {
    bytes_append(b, "{", 1);
    if (meta_keys || n_meta > 0) {
        bytes_append(b, "\"__metadata__\":{", 16);
        for (size_t i = 0; i < n_meta; i++) {
            if (i) bytes_append(b, ",", 1);
            bytes_json_string(b, meta_keys[i]);
            bytes_append(b, ":", 1);
            bytes_json_string(b, meta_values[i]);
        }
        bytes_append(b, n > 0 ? "}," : "}", n > 0 ? 2 : 1);
    }
    size_t offset = 0;
    for (size_t i = 0; i < n; i++) {
        const SafetensorsWriteTensor *t = sorted[i];
        if (i) bytes_append(b, ",", 1);
        bytes_json_string(b, t->name);
        bytes_printf(b, ":{\"dtype\":\"%s\",\"shape\":[", DTYPES[t->dtype].name);
        for (int d = 0; d < t->ndim; d++) bytes_printf(b, d ? ",%" PRId64 : "%" PRId64, t->shape[d]);
        size_t nbytes = write_tensor_numel(t) * DTYPES[t->dtype].size;
        bytes_printf(b, "],\"data_offsets\":[%zu,%zu]}", offset, offset + nbytes);
        offset += nbytes;
    }
    bytes_append(b, "}", 1);
}

static void append_data(Bytes *b, const SafetensorsWriteTensor *t) {
    size_t numel = write_tensor_numel(t);
    if (t->dtype == ST_F32) {
        bytes_append(b, t->data, numel * sizeof(float));
        return;
    }
    bytes_reserve(b, numel * 2);
    for (size_t i = 0; i < numel; i++) {
        uint16_t half = t->dtype == ST_F16 ? safetensors_f32_to_f16(t->data[i]) : safetensors_f32_to_bf16(t->data[i]);
        memcpy(b->data + b->len + 2 * i, &half, 2);
    }
    b->len += numel * 2;
}

int safetensors_write(const char *path, const SafetensorsWriteTensor *tensors, size_t n_tensors,
                      const char *const *meta_keys, const char *const *meta_values, size_t n_meta,
                      MnrlError *err) {
    if (check_write_tensors(path, tensors, n_tensors, err) != 0) return -1;
    const SafetensorsWriteTensor **sorted = mnrl_malloc((n_tensors ? n_tensors : 1) * sizeof *sorted);
    for (size_t i = 0; i < n_tensors; i++) sorted[i] = &tensors[i];
    qsort(sorted, n_tensors, sizeof *sorted, compare_write_order);
    Bytes file = {0};
    bytes_append(&file, "\0\0\0\0\0\0\0\0", 8);
    append_header(&file, sorted, n_tensors, meta_keys, meta_values, n_meta);
    while ((file.len - 8) % 8) bytes_append(&file, " ", 1);
    uint64_t header_len = file.len - 8;
    for (int i = 0; i < 8; i++) file.data[i] = (char)(header_len >> (8 * i));
    for (size_t i = 0; i < n_tensors; i++) append_data(&file, sorted[i]);
    free(sorted);
    int rc = mnrl_write_file_atomic(path, file.data, file.len, err);
    free(file.data);
    return rc;
}
