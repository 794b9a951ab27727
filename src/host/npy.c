// npy.c — NumPy .npy reader and writer (see npy.h for the format).
#include "mnrl/npy.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mnrl/safetensors.h"

#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAGIC_LEN 6
#define NPY_ALIGN 64
// numpy leaves room for the first axis to grow to 21 digits without rewriting the file
// (GROWTH_AXIS_MAX_DIGITS in numpy.lib.format); its writer pads the dict by that much.
#define NPY_GROWTH_AXIS_MAX_DIGITS 21
#define NPY_HEADER_MAX 512

// A shape as Python's repr of the tuple: "(5,)" or "(3, 4)".
static void format_shape(char *out, size_t cap, int ndim, const int64_t *shape) {
    if (ndim == 1)
        snprintf(out, cap, "(%" PRId64 ",)", shape[0]);
    else
        snprintf(out, cap, "(%" PRId64 ", %" PRId64 ")", shape[0], shape[1]);
}

static const char *npy_descr(NpyDtype dtype) { return dtype == NPY_F16 ? "<f2" : "<f4"; }
static size_t npy_item_size(NpyDtype dtype) { return dtype == NPY_F16 ? 2 : 4; }

// ---- reading ---------------------------------------------------------------------------

// A tiny cursor over the header dict; np.save writes one fixed layout, but hand-written
// or other writers' headers may differ in spacing and key order, so parse the literal.
typedef struct {
    const char *p, *end;
} HeaderCursor;

static void skip_spaces(HeaderCursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n')) c->p++;
}

static int expect_char(HeaderCursor *c, char ch) {
    skip_spaces(c);
    if (c->p >= c->end || *c->p != ch) return -1;
    c->p++;
    return 0;
}

// A quoted Python string ('...' or "...") without escapes into out.
static int parse_string(HeaderCursor *c, char *out, size_t cap) {
    skip_spaces(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) return -1;
    char quote = *c->p++;
    size_t n = 0;
    while (c->p < c->end && *c->p != quote) {
        if (n + 1 >= cap) return -1;
        out[n++] = *c->p++;
    }
    if (c->p >= c->end) return -1;
    c->p++;
    out[n] = '\0';
    return 0;
}

// A tuple of non-negative integers: "()", "(5,)", "(3, 4)", "(3, 4,)".
static int parse_shape(HeaderCursor *c, int64_t *shape, int max_dims, int *ndim) {
    if (expect_char(c, '(') != 0) return -1;
    *ndim = 0;
    for (;;) {
        skip_spaces(c);
        if (c->p < c->end && *c->p == ')') {
            c->p++;
            return 0;
        }
        int64_t value = 0;
        const char *digits = c->p;
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
            if (value > (INT64_MAX - 9) / 10) return -1;
            value = value * 10 + (*c->p++ - '0');
        }
        if (c->p == digits) return -1;
        // Python 2 era writers appended L to longs.
        if (c->p < c->end && *c->p == 'L') c->p++;
        if (*ndim < max_dims) shape[*ndim] = value;
        (*ndim)++;
        skip_spaces(c);
        if (c->p < c->end && *c->p == ',') c->p++;
        else if (c->p < c->end && *c->p == ')') continue;
        else return -1;
    }
}

typedef struct {
    char descr[32];
    int fortran_order;  // -1 until seen
    int ndim;           // -1 until seen
    int64_t shape[3];   // up to 3 kept, enough to report "3-D"
} NpyHeader;

static int parse_header_dict(const char *text, size_t len, NpyHeader *h) {
    HeaderCursor c = {text, text + len};
    h->descr[0] = '\0';
    h->fortran_order = -1;
    h->ndim = -1;
    if (expect_char(&c, '{') != 0) return -1;
    for (;;) {
        skip_spaces(&c);
        if (c.p < c.end && *c.p == '}') break;
        char key[32];
        if (parse_string(&c, key, sizeof key) != 0 || expect_char(&c, ':') != 0) return -1;
        if (strcmp(key, "descr") == 0) {
            if (parse_string(&c, h->descr, sizeof h->descr) != 0) return -1;
        } else if (strcmp(key, "fortran_order") == 0) {
            skip_spaces(&c);
            if ((size_t)(c.end - c.p) >= 4 && memcmp(c.p, "True", 4) == 0) {
                h->fortran_order = 1;
                c.p += 4;
            } else if ((size_t)(c.end - c.p) >= 5 && memcmp(c.p, "False", 5) == 0) {
                h->fortran_order = 0;
                c.p += 5;
            } else {
                return -1;
            }
        } else if (strcmp(key, "shape") == 0) {
            if (parse_shape(&c, h->shape, 3, &h->ndim) != 0) return -1;
        } else {
            return -1;
        }
        skip_spaces(&c);
        if (c.p < c.end && *c.p == ',') c.p++;
    }
    c.p++;
    skip_spaces(&c);
    if (c.p != c.end) return -1;  // only padding may follow the dict
    if (h->descr[0] == '\0' || h->fortran_order < 0 || h->ndim < 0) return -1;
    return 0;
}

// Splits bytes into header dict text and payload; checks the magic and version.
static int split_file(const char *path, const unsigned char *bytes, size_t len, const char **dict,
                      size_t *dict_len, size_t *data_offset, MnrlError *err) {
    if (len < NPY_MAGIC_LEN + 2 || memcmp(bytes, NPY_MAGIC, NPY_MAGIC_LEN) != 0)
        return mnrl_fail(err, "%s: not a NumPy .npy file (no \\x93NUMPY magic); write it with numpy.save", path);
    int major = bytes[6], minor = bytes[7];
    size_t len_bytes = major == 1 ? 2 : 4;
    if ((major != 1 && major != 2 && major != 3) || minor != 0)
        return mnrl_fail(err, "%s: .npy format version %d.%d is not supported (1.0, 2.0 and 3.0 are)", path,
                         major, minor);
    if (len < 8 + len_bytes)
        return mnrl_fail(err, "%s: truncated .npy file (%zu bytes, the header length is missing)", path, len);
    size_t header_len = 0;
    for (size_t i = 0; i < len_bytes; i++) header_len |= (size_t)bytes[8 + i] << (8 * i);
    size_t start = 8 + len_bytes;
    if (header_len > len - start)
        return mnrl_fail(err, "%s: truncated .npy file (header of %zu bytes, only %zu present)", path, header_len,
                         len - start);
    *dict = (const char *)bytes + start;
    *dict_len = header_len;
    *data_offset = start + header_len;
    return 0;
}

static int check_header(const char *path, const NpyHeader *h, NpyDtype *dtype, MnrlError *err) {
    if (strcmp(h->descr, "<f4") == 0) {
        *dtype = NPY_F32;
    } else if (strcmp(h->descr, "<f2") == 0) {
        *dtype = NPY_F16;
    } else {
        return mnrl_fail(err,
                         "%s: dtype '%s' is not supported; store float32 ('<f4') or float16 ('<f2') little-endian "
                         "(numpy: a.astype('<f4'))",
                         path, h->descr);
    }
    if (h->fortran_order)
        return mnrl_fail(err, "%s: Fortran-order array; save a C-order copy (np.ascontiguousarray)", path);
    if (h->ndim < 1 || h->ndim > 2)
        return mnrl_fail(err, "%s: %d-D array; only 1-D and 2-D arrays are supported", path, h->ndim);
    return 0;
}

static void widen(const unsigned char *src, NpyDtype dtype, size_t numel, float *out) {
    for (size_t i = 0; i < numel; i++) {
        const unsigned char *b = src + i * npy_item_size(dtype);
        if (dtype == NPY_F16) {
            out[i] = safetensors_f16_to_f32((uint16_t)(b[0] | b[1] << 8));
        } else {
            uint32_t bits = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
            memcpy(&out[i], &bits, sizeof bits);
        }
    }
}

static int decode(const char *path, const unsigned char *bytes, size_t len, NpyArray *out, MnrlError *err) {
    const char *dict = NULL;
    size_t dict_len = 0, data_offset = 0;
    if (split_file(path, bytes, len, &dict, &dict_len, &data_offset, err) != 0) return -1;
    NpyHeader h;
    if (parse_header_dict(dict, dict_len, &h) != 0)
        return mnrl_fail(err, "%s: malformed .npy header \"%.*s\"; expected {'descr': ..., 'fortran_order': ..., "
                         "'shape': (...)}", path, (int)(dict_len < 200 ? dict_len : 200), dict);
    NpyDtype dtype = NPY_F32;
    if (check_header(path, &h, &dtype, err) != 0) return -1;
    size_t numel = 1;
    for (int d = 0; d < h.ndim; d++) {
        if (h.shape[d] != 0 && numel > SIZE_MAX / 4 / (size_t)h.shape[d])
            return mnrl_fail(err, "%s: shape too large", path);
        numel *= (size_t)h.shape[d];
    }
    size_t want = numel * npy_item_size(dtype);
    size_t have = len - data_offset;
    if (have != want) {
        char shape_text[64];
        format_shape(shape_text, sizeof shape_text, h.ndim, h.shape);
        return mnrl_fail(err, "%s: %s data: %zu bytes for shape %s of '%s', expected %zu bytes", path,
                         have < want ? "truncated" : "overlong", have, shape_text, h.descr, want);
    }
    out->dtype = dtype;
    out->ndim = h.ndim;
    out->shape[0] = h.shape[0];
    out->shape[1] = h.ndim == 2 ? h.shape[1] : 1;
    out->numel = numel;
    out->data = mnrl_malloc(numel ? numel * sizeof(float) : 1);
    widen(bytes + data_offset, dtype, numel, out->data);
    return 0;
}

int npy_read(const char *path, NpyArray *out, MnrlError *err) {
    memset(out, 0, sizeof *out);
    char *bytes;
    size_t len;
    if (mnrl_read_file(path, &bytes, &len, err) != 0) return -1;
    int rc = decode(path, (const unsigned char *)bytes, len, out, err);
    free(bytes);
    return rc;
}

void npy_free(NpyArray *array) {
    free(array->data);
    memset(array, 0, sizeof *array);
}

// ---- writing ---------------------------------------------------------------------------

// The header exactly as numpy.lib.format._write_array_header builds it for version 1.0:
// the sorted-key dict repr, growth padding for the first axis, then spaces and '\n' to a
// multiple of 64 bytes counting the 10-byte preamble.
static size_t format_header(char *out, int ndim, const int64_t *shape, NpyDtype dtype) {
    char shape_text[64];
    char first_axis[32];
    format_shape(shape_text, sizeof shape_text, ndim, shape);
    int dict_len = snprintf(out, NPY_HEADER_MAX, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
                            npy_descr(dtype), shape_text);
    int axis_digits = snprintf(first_axis, sizeof first_axis, "%" PRId64, shape[0]);
    size_t n = (size_t)dict_len;
    for (int i = axis_digits; i < NPY_GROWTH_AXIS_MAX_DIGITS; i++) out[n++] = ' ';
    // numpy pads by ALIGN - (preamble + text + '\n') % ALIGN: a full 64 spaces when the
    // text already ends on the boundary, never zero.
    size_t preamble = NPY_MAGIC_LEN + 2 + 2;
    size_t pad = NPY_ALIGN - (preamble + n + 1) % NPY_ALIGN;
    for (size_t i = 0; i < pad; i++) out[n++] = ' ';
    out[n++] = '\n';
    return n;
}

int npy_write(const char *path, const float *data, int ndim, const int64_t *shape, NpyDtype dtype,
              MnrlError *err) {
    if (ndim < 1 || ndim > 2)
        return mnrl_fail(err, "%s: cannot write a %d-D array; only 1-D and 2-D are supported", path, ndim);
    size_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0) return mnrl_fail(err, "%s: negative dimension %" PRId64, path, shape[d]);
        numel *= (size_t)shape[d];
    }
    char header[NPY_HEADER_MAX];
    size_t header_len = format_header(header, ndim, shape, dtype);
    size_t item = npy_item_size(dtype);
    size_t preamble = NPY_MAGIC_LEN + 4;
    size_t total = preamble + header_len + numel * item;
    unsigned char *bytes = mnrl_malloc(total);
    memcpy(bytes, NPY_MAGIC, NPY_MAGIC_LEN);
    bytes[6] = 1;
    bytes[7] = 0;
    bytes[8] = (unsigned char)(header_len & 0xff);
    bytes[9] = (unsigned char)(header_len >> 8);
    memcpy(bytes + preamble, header, header_len);
    unsigned char *dst = bytes + preamble + header_len;
    for (size_t i = 0; i < numel; i++, dst += item) {
        uint32_t bits;
        if (dtype == NPY_F16) {
            bits = safetensors_f32_to_f16(data[i]);
        } else {
            memcpy(&bits, &data[i], sizeof bits);
        }
        for (size_t b = 0; b < item; b++) dst[b] = (unsigned char)(bits >> (8 * b));
    }
    int rc = mnrl_write_file_atomic(path, bytes, total, err);
    free(bytes);
    return rc;
}
